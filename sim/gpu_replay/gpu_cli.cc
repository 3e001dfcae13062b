#include "sim/gpu_replay/gpu_cli.h"

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

#include "core/cli/cli.h"
#include "core/cli/cli_util.h"
#include "core/gpu/gpu_policy_registry.h"
#include "core/results/svg_plot.h"
#include "core/io/gpu_scenario_loader.h"
#include "sim/gpu_replay/replay.h"

namespace orrery::gpu_replay {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using cli::SplitComma, cli::WriteFile, cli::kExitFailed, cli::kExitOk, cli::kExitUsage;

constexpr const char* kRunUsage =
    "usage: orrery sim run GPU_SCENARIO.yaml [--policy NAME] [--seed N] [--set path=value]...\n"
    "                      [--out DIR]\n";
constexpr const char* kCompareUsage =
    "usage: orrery sim compare GPU_SCENARIO.yaml [--policies a,b,c] [--seeds N]\n"
    "                          [--set path=value]... [--out DIR] [--jobs N] [--run-dirs]\n";

// Options of `sim run|compare` that take a value (for finding the scenario argument).
bool TakesValue(const std::string& opt) {
  static const char* const kWithValue[] = {"--policy",       "--seed",     "--set",   "--out",
                                           "--decision-log", "--policies", "--seeds", "--jobs"};
  return std::any_of(std::begin(kWithValue), std::end(kWithValue),
                     [&](const char* o) { return opt == o; });
}

Status MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status(StatusCode::kUnavailable, "cannot create " + dir.string() + ": " + ec.message());
  return Status::Ok();
}

Status WriteRun(const fs::path& dir, const GpuScenario& s, const Workload& w, const ReplayResult& r,
                double wall_s) {
  ORRERY_RETURN_IF_ERROR(MakeDir(dir));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "allocation.csv", RenderAllocationCsv(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "fragmentation.csv", RenderFragmentationCsv(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "placements.csv", RenderPlacementsCsv(w, r)));
  ORRERY_RETURN_IF_ERROR(
      WriteFile(dir / "summary.json", RenderGpuSummaryJson(s, w, r, cli::Version(), wall_s)));
  return Status::Ok();
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string Pct(double v, int decimals = 2) {
  return v != v ? std::string("n/a") : FormatFixed(v, decimals) + " %";
}

std::string Pad(std::string s, size_t width, bool left = false) {
  if (s.size() >= width) return s;
  return left ? s + std::string(width - s.size(), ' ') : std::string(width - s.size(), ' ') + s;
}

// Loads the scenario and its trace; prints the error and returns the exit code on failure.
int Load(const std::string& cmd, const std::string& path, const std::vector<std::string>& overrides,
         std::ostream& err, GpuScenario* s, Workload* w) {
  auto scenario = io::LoadGpuScenario(path, overrides);
  if (!scenario.ok()) {
    err << "orrery sim " << cmd << ": " << scenario.status().message() << "\n";
    return kExitUsage;
  }
  auto workload = LoadWorkload(*scenario);
  if (!workload.ok()) {
    err << "orrery sim " << cmd << ": " << workload.status().message() << "\n";
    return kExitUsage;
  }
  for (const auto& warning : workload->warnings) err << "warning: " << warning << "\n";
  *s = *std::move(scenario);
  *w = *std::move(workload);
  return kExitOk;
}

ReplayOptions OptionsFor(const GpuScenario& s) {
  return {.policy = s.policy,
          .seed = s.seed,
          .inflate = s.inflate,
          .shuffle = s.shuffle,
          .scores = s.scores,
          .hybrid = s.hybrid};
}

struct Stats {
  double mean = ReplayMetrics::kNaN, sd = ReplayMetrics::kNaN;
  double min = ReplayMetrics::kNaN, max = ReplayMetrics::kNaN;
};
// Mean, sample standard deviation (0 for one value), min and max of the non-NaN values.
Stats Describe(const std::vector<double>& xs) {
  Stats s;
  std::vector<double> v;
  for (double x : xs) {
    if (x == x) v.push_back(x);
  }
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

// "4.92 +- 0.12", or "n/a" when no run got there (e.g. 100 % arrived with inflate < 1).
std::string MeanSd(const Stats& s) {
  return s.mean != s.mean ? "n/a" : FormatFixed(s.mean, 2) + " +- " + FormatFixed(s.sd, 2);
}

}  // namespace

bool IsGpuPlacementInvocation(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") return i + 1 < args.size() && io::IsGpuPlacementFile(args[i + 1]);
    if (a.size() > 1 && a[0] == '-') {
      if (TakesValue(a)) ++i;  // "--opt value"; "--opt=value" is one argument
      continue;
    }
    return io::IsGpuPlacementFile(a);
  }
  return false;
}

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const auto t0 = std::chrono::steady_clock::now();
  cli::SimRunHelp help{kRunUsage};
  help.scenario = "gpu_placement scenario file";
  help.policy = "GPU placement policy (orrery policies)";
  help.decision_log = "not used here: see placements.csv";
  help.no_progress = "accepted for compatibility; this mode prints no progress line";
  help.timing_seed = "not used here: placement replay has no heartbeats";
  cli::SimRunFlags flags;
  if (auto rc = cli::ParseSimRunFlags(args, help, &flags, out, err)) return *rc;
  const std::string& scenario_path = flags.scenario_path;
  const std::string& out_dir = flags.out_dir;
  if (!flags.decision_log.empty()) {
    err << "orrery sim run: --decision-log is not available for gpu_placement scenarios; every "
           "decision is in placements.csv\n";
    return kExitUsage;
  }
  if (flags.timing_seed >= 0) {
    err << "orrery sim run: --timing-seed is not available for gpu_placement scenarios (a "
           "placement replay has no heartbeats)\n";
    return kExitUsage;
  }
  const std::vector<std::string> overrides = flags.Overrides();
  GpuScenario s;
  Workload w;
  if (int rc = Load("run", scenario_path, overrides, err, &s, &w); rc != kExitOk) return rc;
  const auto t1 = std::chrono::steady_clock::now();
  auto r = RunReplay(w, OptionsFor(s));
  if (!r.ok()) {
    err << "orrery sim run: " << r.status().message() << "\n";
    return kExitFailed;
  }
  const auto t2 = std::chrono::steady_clock::now();
  const fs::path dir = out_dir.empty() ? fs::path("out") / s.name : fs::path(out_dir);
  if (Status st = WriteRun(dir, s, w, *r, Seconds(t0, t2)); !st.ok()) {
    err << "orrery sim run: " << st.message() << "\n";
    return kExitFailed;
  }
  const auto t3 = std::chrono::steady_clock::now();
  const ReplayMetrics m = Measure(*r);
  out << "  scenario    " << s.name << " (gpu_placement: placement-only replay)\n";
  out << "  policy      " << r->policy << "   seed " << r->seed << "\n";
  out << "  cluster     " << w.cluster.size() << " nodes, "
      << w.cluster.gpu_total_milli() / gpu::kMilliPerGpu << " GPUs ("
      << fs::path(s.nodes_path).filename().string() << ")\n";
  out << "  pods        " << r->outcomes.size() << " arrivals from " << w.pods.size()
      << " in the list (" << fs::path(s.pods_path).filename().string() << ", inflate "
      << FormatFixed(s.inflate, 2) << "): " << r->placed << " placed, " << r->failed << " failed, "
      << r->infeasible << " infeasible\n";
  out << "  typical     " << w.typical.pods().size() << " pod shapes covering "
      << Pct(100 * w.typical.coverage(), 1) << " of the list\n";
  out << "  unallocated GPU " << Pct(m.unallocated_pct_at_100) << " at 100 % arrived, "
      << Pct(m.unallocated_pct_end) << " at the end (" << Pct(m.arrived_pct_end, 1)
      << " arrived)\n";
  out << "  fragmented  " << Pct(m.frag_pct_at_100) << " of all GPU ("
      << Pct(m.frag_ratio_pct_at_100) << " of idle GPU) at 100 % arrived\n";
  out << "  phases      load " << FormatFixed(Seconds(t0, t1), 2) << " s, place "
      << FormatFixed(r->place_wall_s, 2) << " s, write " << FormatFixed(Seconds(t2, t3), 2)
      << " s\n";
  out << "  results     " << dir.string()
      << "/{allocation.csv,fragmentation.csv,placements.csv,summary.json}\n";
  return kExitOk;
}

int CompareCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const auto t0 = std::chrono::steady_clock::now();
  po::options_description desc("options");
  std::string scenario_path, policies, out_dir = "out/compare";
  std::vector<std::string> sets;
  int seeds = 1;
  int jobs = 0;
  desc.add_options()("help,h", "show this help")("scenario", po::value(&scenario_path),
                                                 "gpu_placement scenario file")(
      "policies", po::value(&policies), "comma-separated GPU policies (default: all)")(
      "seeds", po::value(&seeds), "seeds 1..N for every policy [1]")(
      "set", po::value(&sets)->composing(), "override a scenario field: dotted.path=value")(
      "out", po::value(&out_dir), "output directory [out/compare]")(
      "jobs", po::value(&jobs), "runs in parallel [the number of CPUs]")(
      "run-dirs", "also write every run's files under DIR/<policy>-seed<N>/");
  po::variables_map vm;
  if (auto rc =
          cli::ParseCommand("sim compare", args, desc, "scenario", kCompareUsage, vm, out, err)) {
    return *rc;
  }
  const auto& registry = gpu::GpuPolicyRegistry::Builtin();
  std::vector<std::string> names = SplitComma(policies);
  if (names.empty()) {
    for (const auto& e : registry.entries()) names.push_back(e.name);
  }
  for (const auto& n : names) {
    if (!registry.Contains(n)) {
      err << "orrery sim compare: --policies: unknown GPU placement policy '" << n
          << "' (known: " << registry.Names() << ")\n";
      return kExitUsage;
    }
  }
  if (seeds < 1 || seeds > 100000) {
    err << "orrery sim compare: --seeds: expected a whole number >= 1\n" << kCompareUsage;
    return kExitUsage;
  }
  GpuScenario s;
  Workload w;
  if (int rc = Load("compare", scenario_path, sets, err, &s, &w); rc != kExitOk) return rc;
  if (Status st = MakeDir(out_dir); !st.ok()) {
    err << "orrery sim compare: " << st.message() << "\n";
    return kExitFailed;
  }

  struct Run {
    std::string policy;
    uint64_t seed = 0;
    ReplayMetrics m;
    uint64_t arrivals = 0, placed = 0, failed = 0, infeasible = 0;
    double wall_s = 0;
    std::vector<double> alloc_curve, frag_curve;
    std::string error;
  };
  std::vector<Run> runs;
  for (const auto& n : names) {
    for (int k = 1; k <= seeds; ++k) runs.push_back({.policy = n, .seed = uint64_t(k)});
  }
  // The curves run to the last whole percent every run reaches; the arrivals depend on the seed
  // only, so compute that bound from the workload streams up front.
  int max_pct = 0;
  {
    int lowest = -1;
    for (int k = 1; k <= seeds; ++k) {
      int64_t arrived = 0;
      for (int32_t i : ArrivalsForSeed(w, s.inflate, s.shuffle, uint64_t(k))) {
        arrived += w.pods[size_t(i)].TotalGpuMilli();
      }
      const int pct = static_cast<int>(
          std::floor(100.0 * double(arrived) / double(w.cluster.gpu_total_milli())));
      lowest = lowest < 0 ? pct : std::min(lowest, pct);
    }
    max_pct = std::max(0, lowest);
  }
  const bool run_dirs = vm.count("run-dirs") > 0;
  std::atomic<size_t> next{0};
  std::mutex write_mu;
  auto worker = [&] {
    for (size_t i = next++; i < runs.size(); i = next++) {
      Run& run = runs[i];
      ReplayOptions o = OptionsFor(s);
      o.policy = run.policy;
      o.seed = run.seed;
      const auto a = std::chrono::steady_clock::now();
      auto r = RunReplay(w, o);
      run.wall_s = Seconds(a, std::chrono::steady_clock::now());
      if (!r.ok()) {
        run.error = r.status().message();
        continue;
      }
      run.m = Measure(*r);
      run.arrivals = r->outcomes.size();
      run.placed = r->placed;
      run.failed = r->failed;
      run.infeasible = r->infeasible;
      run.alloc_curve =
          CurveAtArrived(*r, max_pct, [&](const ReplayRow& row) { return AllocatedPct(*r, row); });
      run.frag_curve =
          CurveAtArrived(*r, max_pct, [&](const ReplayRow& row) { return FragRatioPct(*r, row); });
      if (run_dirs) {
        GpuScenario sr = s;
        sr.policy = run.policy;
        sr.seed = run.seed;
        const fs::path dir = fs::path(out_dir) / (run.policy + "-seed" + std::to_string(run.seed));
        Status st = WriteRun(dir, sr, w, *r, run.wall_s);
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(write_mu);
          run.error = st.message();
        }
      }
    }
  };
  unsigned threads = jobs > 0 ? unsigned(jobs) : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, unsigned(runs.size()));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  int rc = kExitOk;
  for (const Run& run : runs) {
    if (!run.error.empty()) {
      err << "orrery sim compare: " << run.policy << " seed " << run.seed << ": " << run.error
          << "\n";
      rc = kExitFailed;
    }
  }

  // compare.csv: one row per run.
  std::string csv =
      "policy,seed,arrivals,placed,failed,infeasible,arrived_gpu_pct_end,allocated_gpu_pct_end,"
      "unallocated_gpu_pct_at_100,unallocated_gpu_pct_end,frag_gpu_pct_at_100,"
      "frag_ratio_pct_at_100,wall_s\n";
  for (const Run& run : runs) {
    if (!run.error.empty()) continue;
    csv += run.policy + "," + std::to_string(run.seed) + "," + std::to_string(run.arrivals) + "," +
           std::to_string(run.placed) + "," + std::to_string(run.failed) + "," +
           std::to_string(run.infeasible) + "," + FormatFixed(run.m.arrived_pct_end) + "," +
           FormatFixed(run.m.allocated_pct_end) + "," + FormatFixed(run.m.unallocated_pct_at_100) +
           "," + FormatFixed(run.m.unallocated_pct_end) + "," + FormatFixed(run.m.frag_pct_at_100) +
           "," + FormatFixed(run.m.frag_ratio_pct_at_100) + "," + FormatFixed(run.wall_s, 3) + "\n";
  }

  // Per policy: the table, compare_summary.csv, the curves.
  std::string summary =
      "policy,runs,unallocated_gpu_pct_at_100_mean,unallocated_gpu_pct_at_100_sd,"
      "unallocated_gpu_pct_at_100_min,unallocated_gpu_pct_at_100_max,"
      "unallocated_gpu_pct_end_mean,unallocated_gpu_pct_end_sd,failed_mean,"
      "frag_ratio_pct_at_100_mean,wall_s_mean\n";
  std::ostringstream table;
  table << "GPU placement: " << s.name << ", " << fs::path(s.pods_path).filename().string()
        << " on " << w.cluster.size() << " nodes / "
        << w.cluster.gpu_total_milli() / gpu::kMilliPerGpu << " GPUs, inflate "
        << FormatFixed(s.inflate, 2) << ", seeds 1.." << seeds << ", scoring "
        << gpu::ScoringName(s.scores.scoring) << ", ties " << gpu::TieBreakName(s.scores.tie_break)
        << "\n";
  table << "unallocated GPU in % of capacity (mean +- sample sd, [min, max] over seeds)\n";
  table << Pad("policy", 16, true) << Pad("runs", 5) << Pad("at 100% arrived", 17)
        << Pad("[min, max]", 17) << Pad("at end", 16) << Pad("failed", 9) << Pad("frag@100%", 11)
        << Pad("wall s", 8) << "\n";
  std::vector<results::SvgSeries> alloc_series, frag_series;
  std::string curve_csv = "arrived_gpu_pct";
  std::vector<std::vector<double>> curve_cols;
  for (const auto& name : names) {
    std::vector<double> u100, uend, failed, frag, wall;
    std::vector<double> alloc_sum(size_t(max_pct) + 1, 0.0), frag_sum(size_t(max_pct) + 1, 0.0);
    std::vector<int> alloc_n(size_t(max_pct) + 1, 0), frag_n(size_t(max_pct) + 1, 0);
    for (const Run& run : runs) {
      if (run.policy != name || !run.error.empty()) continue;
      u100.push_back(run.m.unallocated_pct_at_100);
      uend.push_back(run.m.unallocated_pct_end);
      failed.push_back(double(run.failed));
      frag.push_back(run.m.frag_ratio_pct_at_100);
      wall.push_back(run.wall_s);
      for (int p = 0; p <= max_pct; ++p) {
        if (run.alloc_curve[size_t(p)] == run.alloc_curve[size_t(p)]) {
          alloc_sum[size_t(p)] += run.alloc_curve[size_t(p)];
          ++alloc_n[size_t(p)];
        }
        if (run.frag_curve[size_t(p)] == run.frag_curve[size_t(p)]) {
          frag_sum[size_t(p)] += run.frag_curve[size_t(p)];
          ++frag_n[size_t(p)];
        }
      }
    }
    const Stats a = Describe(u100), e = Describe(uend), f = Describe(failed), fr = Describe(frag),
                wl = Describe(wall);
    summary += name + "," + std::to_string(u100.size()) + "," + FormatFixed(a.mean) + "," +
               FormatFixed(a.sd) + "," + FormatFixed(a.min) + "," + FormatFixed(a.max) + "," +
               FormatFixed(e.mean) + "," + FormatFixed(e.sd) + "," + FormatFixed(f.mean, 1) + "," +
               FormatFixed(fr.mean) + "," + FormatFixed(wl.mean, 3) + "\n";
    table << Pad(name, 16, true) << Pad(std::to_string(u100.size()), 5) << Pad(MeanSd(a), 17)
          << Pad(a.mean != a.mean
                     ? "n/a"
                     : "[" + FormatFixed(a.min, 2) + ", " + FormatFixed(a.max, 2) + "]",
                 17)
          << Pad(MeanSd(e), 16) << Pad(FormatFixed(f.mean, 1), 9)
          << Pad(FormatFixed(fr.mean, 1), 11) << Pad(FormatFixed(wl.mean, 2), 8) << "\n";
    results::SvgSeries sa{.name = name}, sf{.name = name};
    std::vector<double> col(size_t(max_pct) + 1, ReplayMetrics::kNaN);
    for (int p = 0; p <= max_pct; ++p) {
      if (alloc_n[size_t(p)] > 0) {
        col[size_t(p)] = alloc_sum[size_t(p)] / alloc_n[size_t(p)];
        sa.x.push_back(p);
        sa.y.push_back(col[size_t(p)]);
      }
      if (frag_n[size_t(p)] > 0) {
        sf.x.push_back(p);
        sf.y.push_back(frag_sum[size_t(p)] / frag_n[size_t(p)]);
      }
    }
    alloc_series.push_back(std::move(sa));
    frag_series.push_back(std::move(sf));
    curve_csv += "," + name;
    curve_cols.push_back(std::move(col));
  }
  curve_csv += "\n";
  for (int p = 0; p <= max_pct; ++p) {
    curve_csv += std::to_string(p);
    for (const auto& col : curve_cols) curve_csv += "," + FormatFixed(col[size_t(p)]);
    curve_csv += "\n";
  }
  results::SvgSeries ideal{
      .name = "no loss (allocated = arrived)", .dashed = true, .color = "#888888"};
  for (int p = 0; p <= max_pct; ++p) {
    ideal.x.push_back(p);
    ideal.y.push_back(std::min(p, 100));
  }
  alloc_series.insert(alloc_series.begin(), std::move(ideal));
  const std::string subtitle = s.name + ", " + fs::path(s.pods_path).stem().string() +
                               ", mean of " + std::to_string(seeds) + " seed" +
                               (seeds > 1 ? "s" : "");
  // Both charts: arrived GPU request on x, a percentage on y, over the same ranges.
  auto percent_chart = [&](const std::string& title, const std::string& y_label,
                           std::vector<results::SvgSeries> series) {
    return results::SvgChart{.title = title + " (" + subtitle + ")",
                             .x_label = "Arrived GPU request (% of cluster GPU capacity)",
                             .y_label = y_label,
                             .series = std::move(series),
                             .x_min = 0,
                             .x_max = double(max_pct),
                             .y_min = 0,
                             .y_max = 100,
                             .width = 900,
                             .height = 560};
  };
  results::SvgChart alloc_chart = percent_chart(
      "Allocated vs arrived GPU", "Allocated GPU (% of capacity)", std::move(alloc_series));
  results::SvgChart frag_chart = percent_chart(
      "GPU fragmentation ratio", "Fragmented GPU (% of idle GPU)", std::move(frag_series));
  // The same, zoomed on the knee where the policies part ways.
  results::SvgChart zoom_chart = alloc_chart;
  zoom_chart.title = "Allocated vs arrived GPU, zoomed (" + subtitle + ")";
  zoom_chart.x_min = std::min(70.0, double(max_pct));
  zoom_chart.y_min = 75;
  zoom_chart.legend = results::SvgChart::Legend::kOutsideRight;
  zoom_chart.width = 1100;
  const fs::path dir(out_dir);
  for (const auto& [file, text] : std::vector<std::pair<std::string, std::string>>{
           {"compare.csv", csv},
           {"compare_summary.csv", summary},
           {"compare_curve.csv", curve_csv},
           {"compare.svg", results::RenderSvgLineChart(alloc_chart)},
           {"compare_zoom.svg", results::RenderSvgLineChart(zoom_chart)},
           {"compare_frag.svg", results::RenderSvgLineChart(frag_chart)}}) {
    if (Status st = WriteFile(dir / file, text); !st.ok()) {
      err << "orrery sim compare: " << st.message() << "\n";
      return kExitFailed;
    }
  }
  out << table.str();
  out << runs.size() << " runs on " << threads << " thread(s) in "
      << FormatFixed(Seconds(t0, std::chrono::steady_clock::now()), 2) << " s; results in "
      << out_dir
      << "/{compare.csv,compare_summary.csv,compare_curve.csv,compare.svg,"
         "compare_zoom.svg,compare_frag.svg}\n";
  return rc;
}

}  // namespace orrery::gpu_replay

#include "sim/sim_cli.h"

#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "core/cli/cli_util.h"
#include "core/io/scenario_json.h"
#include "core/io/scenario_loader.h"
#include "core/results/lease_trace.h"
#include "core/results/run_record.h"
#include "core/results/svg_plot.h"
#include "sim/gpu_replay/gpu_cli.h"  // GPU placement replay (kind: gpu_placement)
#include "sim/simgrid_driver.h"

namespace orrery::sim {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

using cli::SplitComma, cli::WriteFile, cli::kExitFailed, cli::kExitOk, cli::kExitUsage;
using io::LoadProgress;
using io::LoadProgressFn;
using io::LoadScenario;

constexpr const char* kRunUsage =
    "usage: orrery sim run SCENARIO.yaml [--policy NAME] [--seed N] [--set dotted.path=value]...\n"
    "                      [--out DIR] [--decision-log FILE] [--no-progress] [--trace]\n"
    "                      [--timing-seed N]\n";
constexpr const char* kExpandUsage =
    "usage: orrery sim expand SCENARIO.yaml [--seed N] [--set dotted.path=value]... [--out FILE]\n"
    "       (the workload after generators ran, as JSON: what bench/ray_replay.py replays)\n";
constexpr const char* kCompareUsage =
    "usage: orrery sim compare SCENARIO.yaml [--policies a,b,c] [--grid path=v1,v2]... [--seeds N]\n"
    "                          [--set path=value]... [--out DIR]\n";

Status WriteResults(const fs::path& dir, const results::RunRecord& r) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + dir.string() + ": " +
                                                      ec.message());
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "summary.json", results::RenderSummaryJson(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "tasks.csv", results::RenderTasksCsv(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "timeseries.csv", results::RenderTimeseriesCsv(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "timeseries.svg", results::RenderTimeseriesSvg(r)));
  if (!r.lease_events.empty()) {
    ORRERY_RETURN_IF_ERROR(WriteFile(dir / "leases.csv", results::RenderLeasesCsv(r.lease_events)));
  }
  return Status::Ok();
}

// A progress line for loading on stderr, rewritten in place with \r at most every 0.5 s of wall
// time (only used when stderr is a TTY). The loader reports counts; the clock is read here.
class LoadProgressLine {
 public:
  void operator()(const LoadProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (printed_ && now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    printed_ = true;
    const char* unit = std::string_view(p.phase) == "parse"        ? "bytes"
                       : std::string_view(p.phase) == "generators" ? "generators"
                                                                   : "tasks";
    std::fprintf(stderr, "\r[load] %-10s %llu/%llu %s   ", p.phase,
                 static_cast<unsigned long long>(p.done), static_cast<unsigned long long>(p.total),
                 unit);
    std::fflush(stderr);
  }
  void Clear() const {
    if (printed_) std::fprintf(stderr, "\r%80s\r", "");
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  bool printed_ = false;
};

// `sim expand`: the expanded workload as JSON (io::RenderExpandedScenarioJson), to FILE or stdout.
int ExpandCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  cli::SimRunFlags flags;
  cli::SimRunHelp help{kExpandUsage};
  help.decision_log = "(not used)";
  help.timing_seed = "(not used)";
  help.policy = "scheduling policy recorded in the output";
  help.out = "output file (default: standard output)";
  if (auto rc = cli::ParseSimRunFlags(args, help, &flags, out, err)) return *rc;
  if (flags.scenario_path.empty()) {
    err << "orrery sim expand: missing SCENARIO.yaml\n" << kExpandUsage;
    return kExitUsage;
  }
  auto scenario = LoadScenario(flags.scenario_path, flags.Overrides(), {});
  if (!scenario.ok()) {
    err << "orrery sim expand: " << scenario.status().message() << "\n";
    return kExitUsage;
  }
  for (const auto& w : scenario->warnings) err << "warning: " << w << "\n";
  const std::string text = io::RenderExpandedScenarioJson(*scenario);
  if (flags.out_dir.empty() || flags.out_dir == "-") {
    out << text;
    return kExitOk;
  }
  if (Status s = WriteFile(flags.out_dir, text); !s.ok()) {
    err << "orrery sim expand: " << s.message() << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  cli::SimRunFlags flags;
  if (auto rc = cli::ParseSimRunFlags(args, {kRunUsage}, &flags, out, err)) return *rc;
  const std::string& scenario_path = flags.scenario_path;
  const std::string& out_dir = flags.out_dir;
  const std::string& decision_log = flags.decision_log;
  if (scenario_path.empty()) {
    err << "orrery sim run: missing SCENARIO.yaml\n" << kRunUsage;
    return kExitUsage;
  }
  const std::vector<std::string> overrides = flags.Overrides();
  const bool tty = !flags.no_progress && isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  LoadProgressLine line;
  LoadProgressFn progress;
  if (tty) progress = [&line](const LoadProgress& p) { line(p); };
  auto scenario = LoadScenario(scenario_path, overrides, progress);
  line.Clear();
  if (!scenario.ok()) {
    err << "orrery sim run: " << scenario.status().message() << "\n";
    return kExitUsage;
  }
  for (const auto& w : scenario->warnings) err << "warning: " << w << "\n";
  SimRunOptions o;
  if (flags.timing_seed >= 0) o.model.timing_seed = static_cast<uint64_t>(flags.timing_seed);
  o.progress = tty;
  o.decision_log = !decision_log.empty();
  o.trace_leases = flags.trace;
  const auto t1 = std::chrono::steady_clock::now();
  auto run = RunOnSimGrid(*scenario, o);
  if (!run.ok()) {
    err << "orrery sim run: " << run.status().message() << "\n";
    return kExitFailed;
  }
  run->record.orrery_version = cli::Version();
  for (const auto& w : run->warnings) err << "warning: " << w << "\n";
  const fs::path dir = out_dir.empty() ? fs::path("out") / scenario->name : fs::path(out_dir);
  if (tty) {
    std::fprintf(stderr, "[write] %s (%zu task rows) ...", dir.c_str(),
                 run->record.attempts.size());
  }
  if (Status s = WriteResults(dir, run->record); !s.ok()) {
    err << "orrery sim run: " << s.message() << "\n";
    return kExitFailed;
  }
  if (tty) std::fprintf(stderr, "\r%80s\r", "");
  if (!decision_log.empty()) {
    std::string text;
    for (const auto& l : run->decision_log) text += l + "\n";
    if (Status s = WriteFile(decision_log, text); !s.ok()) {
      err << "orrery sim run: " << s.message() << "\n";
      return kExitFailed;
    }
  }
  const auto t2 = std::chrono::steady_clock::now();
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  out << results::RenderSummaryTable(run->record);
  char phases[160];
  std::snprintf(phases, sizeof phases,
                "  phases      load %.2f s, simulate %.2f s, write %.2f s; %llu events (%.0f/s)\n",
                secs(t0, t1), run->record.wall_s, secs(t1, t2) - run->record.wall_s,
                static_cast<unsigned long long>(run->events),
                run->record.wall_s > 0 ? static_cast<double>(run->events) / run->record.wall_s
                                       : 0.0);
  out << phases;
  out << "  results     " << dir.string()
      << "/{summary.json,tasks.csv,timeseries.csv,timeseries.svg"
      << (run->record.lease_events.empty() ? "" : ",leases.csv") << "}\n";
  return kExitOk;
}

// Runs `orrery sim run ...` in a child process (SimGrid allows one simulation per process).
int RunChild(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> full = {"/proc/self/exe", "sim", "run"};
  full.insert(full.end(), args.begin(), args.end());
  full.push_back("--no-progress");
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f != nullptr) {
      dup2(fileno(f), STDOUT_FILENO);
      dup2(fileno(f), STDERR_FILENO);
    }
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// One configuration of a comparison: a policy plus values for the grid's paths.
struct Config {
  std::string policy;
  std::vector<std::pair<std::string, std::string>> settings;  // path, value
  std::string Label() const {
    std::string l = policy;
    for (const auto& [k, v] : settings) l += " " + k + "=" + v;
    return l;
  }
  std::string Dir() const {
    std::string d = policy;
    for (const auto& [k, v] : settings) d += "_" + k.substr(k.rfind('.') + 1) + "-" + v;
    for (char& c : d) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
    }
    return d;
  }
};

int CompareCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string scenario_path, policies, out_dir = "out/compare";
  std::vector<std::string> sets, grids;
  int seeds = 1;
  desc.add_options()("help,h", "show this help")("scenario", po::value(&scenario_path),
                                                 "scenario file")(
      "policies", po::value(&policies), "comma-separated policy names (default: the file's)")(
      "seeds", po::value(&seeds), "seeds 1..N for every configuration")(
      "set", po::value(&sets)->composing(), "override a scenario field for every run")(
      "grid", po::value(&grids)->composing(),
      "dotted.path=v1,v2,...: compare these values (several --grid: all combinations)")(
      "out", po::value(&out_dir), "output directory");
  po::variables_map vm;
  if (auto rc =
          cli::ParseCommand("sim compare", args, desc, "scenario", kCompareUsage, vm, out, err)) {
    return *rc;
  }
  std::vector<std::string> names = SplitComma(policies);
  if (scenario_path.empty() || (names.empty() && grids.empty()) || seeds < 1) {
    err << "orrery sim compare: need SCENARIO.yaml, --policies a,b and/or --grid path=v1,v2, "
           "and --seeds >= 1\n"
        << kCompareUsage;
    return kExitUsage;
  }
  // Grid dimensions.
  std::vector<std::pair<std::string, std::vector<std::string>>> dims;
  for (const auto& g : grids) {
    const auto eq = g.find('=');
    auto values = eq == std::string::npos ? std::vector<std::string>{} : SplitComma(g.substr(eq + 1));
    if (eq == std::string::npos || eq == 0 || values.empty()) {
      err << "orrery sim compare: --grid " << g << ": expected dotted.path=v1,v2,...\n";
      return kExitUsage;
    }
    dims.emplace_back(g.substr(0, eq), values);
  }
  {
    auto base = LoadScenario(scenario_path, sets);
    if (!base.ok()) {
      err << "orrery sim compare: " << base.status().message() << "\n";
      return kExitUsage;
    }
    if (names.empty()) names.push_back(base->scheduler.options.policy);
  }
  std::vector<Config> configs;
  for (const auto& p : names) {
    std::vector<Config> partial = {{p, {}}};
    for (const auto& [path, values] : dims) {
      std::vector<Config> next;
      for (const auto& c : partial) {
        for (const auto& v : values) {
          Config c2 = c;
          c2.settings.emplace_back(path, v);
          next.push_back(std::move(c2));
        }
      }
      partial = std::move(next);
    }
    configs.insert(configs.end(), partial.begin(), partial.end());
  }
  // Validate every configuration up front so a typo fails fast with exit 2.
  auto overrides_of = [&](const Config& c) {
    std::vector<std::string> o = sets;
    o.push_back("scheduler.policy=" + c.policy);
    for (const auto& [k, v] : c.settings) o.push_back(k + "=" + v);
    return o;
  };
  for (const auto& c : configs) {
    auto s = LoadScenario(scenario_path, overrides_of(c));
    if (!s.ok()) {
      err << "orrery sim compare: " << c.Label() << ": " << s.status().message() << "\n";
      return kExitUsage;
    }
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  std::string csv = "config,policy";
  for (const auto& d : dims) csv += "," + d.first;
  csv += ",seed,makespan_s,jct_mean_s,jct_p95_s,queue_p50_s,queue_p95_s,cpu_util,gpu_util,"
         "node_seconds,spillbacks,launched,env_hits,env_misses,env_evictions,finished,failed,"
         "infeasible,wall_s\n";
  struct Point {
    double cost = 0, queue_p95 = 0, makespan = 0;
    int n = 0;
  };
  std::vector<Point> means(configs.size());
  const size_t total = configs.size() * static_cast<size_t>(seeds);
  size_t done = 0;
  int rc_all = kExitOk;
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const Config& c = configs[ci];
    for (int seed = 1; seed <= seeds; ++seed) {
      const fs::path dir = fs::path(out_dir) / (c.Dir() + "-seed" + std::to_string(seed));
      std::vector<std::string> a = {scenario_path, "--seed", std::to_string(seed), "--out",
                                    dir.string()};
      for (const auto& o : overrides_of(c)) {
        a.push_back("--set");
        a.push_back(o);
      }
      fs::create_directories(dir, ec);
      if (isatty(STDERR_FILENO)) {
        std::fprintf(stderr, "\r[compare] run %zu/%zu: %s seed %d   ", ++done, total,
                     c.Label().c_str(), seed);
      }
      const int rc = RunChild(a, dir / "run.log");
      if (rc != 0) {
        err << "orrery sim compare: " << c.Label() << " seed " << seed << " failed (exit " << rc
            << "), see " << (dir / "run.log").string() << "\n";
        rc_all = kExitFailed;
        continue;
      }
      std::ifstream f(dir / "summary.json");
      nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
      if (j.is_discarded()) {
        rc_all = kExitFailed;
        continue;
      }
      means[ci].cost += j["node_seconds"].get<double>();
      means[ci].queue_p95 += j["queue_delay_s"]["p95"].get<double>();
      means[ci].makespan += j["makespan_s"].get<double>();
      ++means[ci].n;
      std::ostringstream row;
      row << '"' << c.Label() << "\"," << c.policy;
      for (const auto& [k, v] : c.settings) row << "," << v;
      row << "," << seed << "," << j["makespan_s"] << "," << j["jct_s"]["mean"] << ","
          << j["jct_s"]["p95"] << "," << j["queue_delay_s"]["p50"] << ","
          << j["queue_delay_s"]["p95"] << "," << j["utilization"]["CPU"] << ","
          << j["utilization"]["GPU"] << "," << j["node_seconds"] << "," << j["spillbacks"] << ","
          << j["autoscaler"]["launched"] << "," << j["env_cache"]["hits"] << ","
          << j["env_cache"]["misses"] << "," << j["env_cache"]["evictions"] << ","
          << j["tasks"]["finished"] << "," << j["tasks"]["failed"] << ","
          << j["tasks"]["infeasible"] << "," << j["wall_s"] << "\n";
      csv += row.str();
    }
  }
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r%100s\r", "");
  // Table of means over seeds.
  size_t width = 6;
  for (const auto& c : configs) width = std::max(width, c.Label().size());
  out << std::string("configuration") + std::string(width > 13 ? width - 13 : 0, ' ')
      << "  runs  node_seconds  queue_p95_s  makespan_s\n";
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const Point& m = means[ci];
    if (m.n == 0) continue;
    char line[160];
    std::snprintf(line, sizeof line, "  %4d  %12.1f  %11.3f  %10.2f\n", m.n, m.cost / m.n,
                  m.queue_p95 / m.n, m.makespan / m.n);
    const std::string label = configs[ci].Label();
    out << label << std::string(width - label.size(), ' ') << line;
  }
  // Plot: cost (node-seconds) against p95 queue delay, one point per configuration; points of
  // the same policy (and, with two or more grid dimensions, the same first-dimension value) are
  // joined in grid order.
  results::SvgChart chart;
  chart.title = "Cost vs p95 queue delay (mean of " + std::to_string(seeds) + " seed(s))";
  chart.x_label = "node-seconds";
  chart.y_label = "queue delay p95 (s)";
  std::map<std::string, size_t> series_of;
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const Point& m = means[ci];
    if (m.n == 0) continue;
    std::string key = configs[ci].policy;
    if (dims.size() >= 2) key += " " + configs[ci].settings[0].first + "=" + configs[ci].settings[0].second;
    auto [it, fresh] = series_of.emplace(key, chart.series.size());
    if (fresh) chart.series.push_back({key, {}, {}, false, ""});
    chart.series[it->second].x.push_back(m.cost / m.n);
    chart.series[it->second].y.push_back(m.queue_p95 / m.n);
  }
  chart.legend = results::SvgChart::Legend::kTopRight;
  if (Status s = WriteFile(fs::path(out_dir) / "compare.csv", csv); !s.ok()) {
    err << "orrery sim compare: " << s.message() << "\n";
    return kExitFailed;
  }
  if (Status s = WriteFile(fs::path(out_dir) / "cost_vs_queue.svg",
                           results::RenderSvgLineChart(chart));
      !s.ok()) {
    err << "orrery sim compare: " << s.message() << "\n";
    return kExitFailed;
  }
  out << "results in " << out_dir << "/compare.csv, plot " << out_dir << "/cost_vs_queue.svg\n";
  return rc_all;
}

}  // namespace

cli::Command SimCommand() {
  return {"sim",
          "sim run|compare|expand SCENARIO.yaml ...  simulate a scenario on SimGrid",
          [](const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
            if (args.empty() || args[0] == "-h" || args[0] == "--help") {
              (args.empty() ? err : out) << kRunUsage << kCompareUsage << kExpandUsage;
              return args.empty() ? kExitUsage : kExitOk;
            }
            std::vector<std::string> rest(args.begin() + 1, args.end());
            // --- GPU placement replay (sim/gpu_replay/): a scenario whose top-level `kind` is
            // gpu_placement runs the placement-only loop instead of SimGrid. ---
            if ((args[0] == "run" || args[0] == "compare") &&
                gpu_replay::IsGpuPlacementInvocation(rest)) {
              return args[0] == "run" ? gpu_replay::RunCommand(rest, out, err)
                                      : gpu_replay::CompareCommand(rest, out, err);
            }
            // --- end GPU placement replay ---
            if (args[0] == "run") return RunCommand(rest, out, err);
            if (args[0] == "compare") return CompareCommand(rest, out, err);
            if (args[0] == "expand") return ExpandCommand(rest, out, err);
            err << "orrery sim: unknown subcommand '" << args[0] << "'\n"
                << kRunUsage << kCompareUsage;
            return kExitUsage;
          }};
}

}  // namespace orrery::sim

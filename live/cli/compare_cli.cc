#include "live/cli/compare_cli.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "core/cli/cli_util.h"
#include "core/io/scenario_loader.h"
#include "core/results/csv.h"
#include "core/results/lease_trace.h"
#include "core/results/svg_plot.h"
#include "live/cli/live_cli.h"
#include "live/run/live_run.h"

extern char** environ;

namespace orrery::live {
namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using cli::kExitFailed, cli::kExitOk, cli::kExitUsage;
using json = nlohmann::json;

constexpr const char* kUsage =
    "usage: orrery compare SCENARIO.yaml (--local | --address HOST:PORT) [--policy P] [--seed N]\n"
    "                      [--set dotted.path=value]... [--out DIR] [--temp-dir DIR]\n"
    "                      [--timeout S] [--live-runs N] [--sim-runs N] [--trace]\n"
    "       orrery compare --sim-results DIR... --live-results DIR... [--bars live|ray] [--out "
    "DIR]\n";

std::string ReadText(const fs::path& p, bool* ok) {
  std::ifstream f(p, std::ios::binary);
  *ok = static_cast<bool>(f);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

using results::SplitCsvLine;

struct Attempt {
  std::string task_id, attempt, name, node, state;
  double submit = -1, start = -1, end = -1;
};

// tasks.csv rows by column name (the header names the columns, so their order may change).
StatusOr<std::vector<Attempt>> ReadTasksCsv(const fs::path& p) {
  bool ok = false;
  const std::string text = ReadText(p, &ok);
  if (!ok) return Status(StatusCode::kInvalidArgument, p.string() + ": cannot read");
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  const auto header = SplitCsvLine(line);
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  for (const char* need :
       {"task_id", "name", "submit_s", "start_s", "end_s", "node_id", "state", "attempt"}) {
    if (!col.count(need)) {
      return Status(StatusCode::kInvalidArgument,
                    p.string() + ": header: expected a column '" + need + "'");
    }
  }
  std::vector<Attempt> out;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const auto f = SplitCsvLine(line);
    if (f.size() != header.size()) {
      return Status(StatusCode::kInvalidArgument,
                    p.string() + ":" + std::to_string(line_no) + ": expected " +
                        std::to_string(header.size()) + " fields, got " + std::to_string(f.size()));
    }
    Attempt a{f[col["task_id"]], f[col["attempt"]], f[col["name"]], f[col["node_id"]],
              f[col["state"]]};
    // start_s/end_s are empty for an attempt that never started/ended (the result schema):
    // -1, as the run record holds them.
    auto time_or_unset = [](const std::string& cell) { return cell.empty() ? -1.0 : std::stod(cell); };
    try {
      a.submit = std::stod(f[col["submit_s"]]);
      a.start = time_or_unset(f[col["start_s"]]);
      a.end = time_or_unset(f[col["end_s"]]);
    } catch (const std::exception&) {
      return Status(StatusCode::kInvalidArgument,
                    p.string() + ":" + std::to_string(line_no) +
                        ": submit_s/start_s/end_s: expected numbers (start_s/end_s may be empty)");
    }
    if (a.attempt.empty() || !std::all_of(a.attempt.begin(), a.attempt.end(), ::isdigit) ||
        a.attempt.size() > 9) {
      return Status(StatusCode::kInvalidArgument,
                    p.string() + ":" + std::to_string(line_no) +
                        ": attempt: expected a non-negative integer, got '" + a.attempt + "'");
    }
    out.push_back(std::move(a));
  }
  return out;
}

// A summary.json value by dotted path; a missing value reads as 0 (e.g. GPU utilisation of a
// cluster without GPUs), a present non-number is an error.
StatusOr<double> Lookup(const json& j, const std::string& dotted, const fs::path& file) {
  const json* v = &j;
  std::stringstream ss(dotted);
  std::string key;
  while (std::getline(ss, key, '.')) {
    if (!v->is_object() || !v->contains(key)) return 0.0;
    v = &(*v)[key];
  }
  if (v->is_null()) return 0.0;
  if (!v->is_number()) {
    return Status(StatusCode::kInvalidArgument,
                  file.string() + ": " + dotted + ": expected a number, got " + v->dump());
  }
  return v->get<double>();
}

// Per task: JCT = end of its finished last attempt - its first submit (as run_record.cc
// computes jct_s); per started attempt: queue delay = start - submit.
void Durations(const std::vector<Attempt>& rows, std::vector<double>* jct,
               std::vector<double>* queue) {
  std::map<std::string, double> first_submit;
  std::map<std::string, const Attempt*> last;
  for (const auto& a : rows) {
    auto it = first_submit.find(a.task_id);
    if (it == first_submit.end() || a.submit < it->second) first_submit[a.task_id] = a.submit;
    if (a.start >= 0) queue->push_back(a.start - a.submit);
    const Attempt*& l = last[a.task_id];
    if (l == nullptr || std::stoi(a.attempt) >= std::stoi(l->attempt)) l = &a;
  }
  for (const auto& [id, a] : last) {
    if (a->state == "finished" && a->end >= 0) jct->push_back(a->end - first_submit[id]);
  }
  std::sort(jct->begin(), jct->end());
  std::sort(queue->begin(), queue->end());
}

// The per-class statistics of a run's attempts (core/results/fidelity.h).
std::vector<results::AttemptTimes> TimesOf(const std::vector<Attempt>& rows) {
  std::vector<results::AttemptTimes> times;
  times.reserve(rows.size());
  for (const auto& a : rows) {
    times.push_back({a.task_id, std::stoi(a.attempt), a.name, a.state == "finished", a.submit,
                     a.start, a.end});
  }
  return times;
}

results::RunStats ClassStatsOf(const std::vector<Attempt>& rows, double makespan_s) {
  return results::ComputeRunStats(TimesOf(rows), makespan_s);
}

// DIR/leases.csv's legs per class, joined with DIR/tasks.csv (`rows`); nullopt-like empty
// optional when the run was not traced.
StatusOr<std::optional<std::vector<results::ClassLegs>>> ReadLegs(
    const fs::path& dir, const std::vector<Attempt>& rows) {
  const fs::path file = dir / "leases.csv";
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::optional<std::vector<results::ClassLegs>>();
  bool ok = false;
  const std::string text = ReadText(file, &ok);
  if (!ok) return Status(StatusCode::kInvalidArgument, file.string() + ": cannot read");
  auto events = results::ParseLeasesCsv(text, file.string());
  if (!events.ok()) return events.status();
  return std::optional(results::ComputeLeaseLegs(*events, TimesOf(rows)));
}

// Another live run's per-class statistics: DIR/summary.json's makespan and DIR/tasks.csv; its
// legs when DIR/leases.csv exists.
struct RunAndLegs {
  results::RunStats stats;
  std::optional<std::vector<results::ClassLegs>> legs;
};
StatusOr<RunAndLegs> ReadRun(const fs::path& dir) {
  const fs::path file = dir / "summary.json";
  bool ok = false;
  const std::string text = ReadText(file, &ok);
  if (!ok) return Status(StatusCode::kInvalidArgument, file.string() + ": cannot read");
  const json summary = json::parse(text, nullptr, false);
  if (summary.is_discarded() || !summary.is_object()) {
    return Status(StatusCode::kInvalidArgument, file.string() + ": expected a JSON object");
  }
  auto makespan = Lookup(summary, "makespan_s", file);
  if (!makespan.ok()) return makespan.status();
  auto rows = ReadTasksCsv(dir / "tasks.csv");
  if (!rows.ok()) return rows.status();
  RunAndLegs out;
  out.stats = ClassStatsOf(*rows, *makespan);
  auto legs = ReadLegs(dir, *rows);
  if (!legs.ok()) return legs.status();
  out.legs = std::move(*legs);
  return out;
}

// Numeric order for numeric ids ("2" < "10"), text order otherwise.
bool IdLess(const std::string& a, const std::string& b) {
  const bool na = !a.empty() && std::all_of(a.begin(), a.end(), ::isdigit);
  const bool nb = !b.empty() && std::all_of(b.begin(), b.end(), ::isdigit);
  if (na && nb && a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

// Fixed, locale-free formatting: integers plainly, others with up to 4 decimals.
std::string Num(double x) {
  if (!std::isfinite(x)) return "";
  char buf[64];
  if (x == std::floor(x) && std::fabs(x) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", x);
  } else {
    std::snprintf(buf, sizeof buf, "%.4f", x);
    std::string s = buf;
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }
  return buf;
}

std::string Pct(const MetricDiff& m) {
  if (m.sim == 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f", (m.live - m.sim) / std::fabs(m.sim) * 100.0);
  return buf;
}

using results::Pad;

// ---- running the two backends ----------------------------------------------------------------

// Runs this binary with `args`, stdout and stderr into `log`; waits up to `timeout`, then
// SIGTERM, then (after 5 s) SIGKILL. Returns the exit code, or -1 when it did not exit normally
// or could not start (the reason in `why`).
int RunSelf(const std::vector<std::string>& args, const fs::path& log, std::chrono::seconds timeout,
            std::string* why) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    *why = "cannot find this executable (/proc/self/exe): " + ec.message();
    return -1;
  }
  std::vector<std::string> argv_s = {self.string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, self.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *why = "cannot start " + self.string() + ": " + std::strerror(rc);
    return -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool termed = false;
  auto kill_at = std::chrono::steady_clock::time_point::max();
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (termed) {
        *why = "timed out after " + std::to_string(timeout.count()) + " s (--timeout)";
        return -1;
      }
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      *why = "killed by signal " + std::to_string(WTERMSIG(status));
      return -1;
    }
    if (r < 0 && errno != EINTR) {
      *why = std::string("waitpid: ") + std::strerror(errno);
      return -1;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!termed && now >= deadline) {
      ::kill(pid, SIGTERM);
      termed = true;
      kill_at = now + std::chrono::seconds(5);
    } else if (termed && now >= kill_at) {
      ::kill(pid, SIGKILL);
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The last `n` lines of a log file, indented.
std::string Tail(const fs::path& log, size_t n) {
  bool ok = false;
  const std::string text = ReadText(log, &ok);
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += "    " + lines[i] + "\n";
  }
  return out;
}

// Writes compare.csv, placement.csv and compare.svg into `dir` and prints the table.
bool WriteComparison(const Comparison& cmp, const std::string& name, const fs::path& dir,
                     bool with_runs, std::ostream& out, std::ostream& err) {
  for (const auto& [file, text] :
       {std::pair<const char*, std::string>{"compare.csv", RenderCompareCsv(cmp)},
        {"placement.csv", RenderPlacementCsv(cmp)},
        {"compare.svg", RenderCompareSvg(cmp, name)},
        {"classes.csv", results::RenderClassesCsv(cmp.sim_classes, cmp.live_classes, cmp.verdict)},
        {"classes.svg", RenderClassesSvg(cmp, name)}}) {
    if (Status s = cli::WriteFile(dir / file, text); !s.ok()) {
      err << "orrery compare: " << s.message() << "\n";
      return false;
    }
  }
  out << RenderCompareTable(cmp);
  if (cmp.sim_runs.size() > 1) {
    out << "  sim per class = mean of " << cmp.sim_runs.size()
        << " simulator runs (random timer phases; their range in classes.svg)\n";
  }
  out << results::RenderClassesTable(cmp.sim_classes, cmp.live_classes, cmp.verdict, "sim",
                                     "live");
  if (cmp.has_legs) {
    std::vector<std::pair<std::string, std::vector<results::ClassLegs>>> runs = {
        {"sim", cmp.sim_legs}};
    for (size_t k = 0; k < cmp.live_legs.size(); ++k) {
      runs.emplace_back(k == 0 ? "live" : "live-" + std::to_string(k + 1), cmp.live_legs[k]);
    }
    if (Status s = cli::WriteFile(dir / "legs.csv", results::RenderLegsCsv(runs)); !s.ok()) {
      err << "orrery compare: " << s.message() << "\n";
      return false;
    }
    out << results::RenderLegsTable(cmp.sim_legs, cmp.live_legs, "sim", "live");
  }
  std::string runs;
  if (with_runs) {
    runs = "sim/,";
    for (size_t k = 2; k <= cmp.sim_runs.size(); ++k) runs += "sim-" + std::to_string(k) + "/,";
    runs += "live/,";
    for (size_t k = 2; k <= cmp.live_classes.size(); ++k) runs += "live-" + std::to_string(k) + "/,";
  }
  out << "  results     " << dir.string() << "/{" << runs
      << "compare.csv,placement.csv,compare.svg,classes.csv,classes.svg"
      << (cmp.has_legs ? ",legs.csv" : "") << "}\n";
  return true;
}

// --sim-results A --live-results B: no runs, only the comparison (bad result files are input).
int CompareExisting(const std::vector<fs::path>& sim_dirs, const std::vector<fs::path>& live_dirs,
                    const std::string& out_dir, bool ray_bars, std::ostream& out,
                    std::ostream& err) {
  auto cmp =
      CompareResults(sim_dirs, live_dirs, ray_bars ? results::RayBars() : results::FidelityBars{});
  if (!cmp.ok()) {
    err << "orrery compare: " << cmp.status().message() << "\n";
    return kExitUsage;
  }
  const fs::path dir = out_dir.empty() ? fs::path("out") / "compare" : fs::path(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (const auto& w : cmp->warnings) err << "warning: " << w << "\n";
  out << "compare ";
  for (size_t k = 0; k < sim_dirs.size(); ++k) out << (k ? ", " : "") << sim_dirs[k].string();
  out << " (sim) vs ";
  for (size_t k = 0; k < live_dirs.size(); ++k) out << (k ? ", " : "") << live_dirs[k].string();
  out << " (" << (ray_bars ? "reference runs, judged with the bars against real Ray" : "live")
      << ")\n";
  return WriteComparison(*cmp, cmp->scenario, dir, false, out, err) ? kExitOk : kExitFailed;
}

int RunCompare(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string scenario_path, address, out_dir, policy, temp_dir, bars = "live";
  std::vector<std::string> sets, sim_results, live_results;
  int64_t live_runs = 1;
  int64_t sim_runs = 1;
  int64_t seed = -1;
  int64_t timeout_s = 1800;
  desc.add_options()("help,h", "show this help")("scenario", po::value(&scenario_path),
                                                 "scenario file")(
      "local", "start the scenario's cluster on loopback for the live run")(
      "address", po::value(&address), "head HOST:PORT of a running cluster for the live run")(
      "policy", po::value(&policy), "scheduling policy of both runs (orrery policies)")(
      "seed", po::value(&seed), "random seed of both runs (overrides the file)")(
      "set", po::value(&sets)->composing(), "override a scenario field: dotted.path=value")(
      "out", po::value(&out_dir), "result directory (default: out/<scenario name>-compare)")(
      "temp-dir", po::value(&temp_dir), "session root of the live run (default /tmp/orrery)")(
      "timeout", po::value(&timeout_s), "seconds each run may take before it is stopped [1800]")(
      "sim-results", po::value(&sim_results)->composing(),
      "compare this existing sim result dir (no runs; repeat for several sim runs: their mean "
      "is judged)")(
      "live-results", po::value(&live_results)->composing(),
      "compare this existing live result dir (no runs; repeat for several live runs)")(
      "trace",
      "trace every lease in both runs (leases.csv) and show where each class's queue "
      "delay goes")("live-runs", po::value(&live_runs),
                    "run the live side N times; the verdict is against their mean [1]")(
      "sim-runs", po::value(&sim_runs),
      "run the simulator N times with timing seeds 1..N (random timer phases); the verdict "
      "judges their mean [1: one run, every timer at its mean phase]")(
      "bars", po::value(&bars),
      "with --live-results: live (sim vs Orrery live, the default) or ray (the reference runs are "
      "real Ray, e.g. bench/ray_replay.py: 25 % or 0.2 s per class)");
  po::variables_map vm;
  if (auto rc = cli::ParseCommand("compare", args, desc, "scenario", kUsage, vm, out, err))
    return *rc;
  if (!sim_results.empty() || !live_results.empty()) {
    if (sim_results.empty() || live_results.empty() || !scenario_path.empty() ||
        vm.count("local") || !address.empty() || !sets.empty() || !policy.empty() ||
        vm.count("seed") || vm.count("live-runs") || vm.count("sim-runs")) {
      err << "orrery compare: --sim-results and --live-results go together, without a scenario "
             "or run options\n"
          << kUsage;
      return kExitUsage;
    }
    if (bars != "live" && bars != "ray") {
      err << "orrery compare: --bars: expected live or ray, got '" << bars << "'\n";
      return kExitUsage;
    }
    return CompareExisting({sim_results.begin(), sim_results.end()},
                           {live_results.begin(), live_results.end()}, out_dir, bars == "ray", out,
                           err);
  }
  if (scenario_path.empty()) {
    err << "orrery compare: missing SCENARIO.yaml\n" << kUsage;
    return kExitUsage;
  }
  if (vm.count("bars")) {  // a scenario's live half is Orrery's own: its bars are the live ones
    err << "orrery compare: --bars goes with --sim-results and --live-results (existing runs, "
           "e.g. real Ray's from bench/ray_replay.py)\n";
    return kExitUsage;
  }
  const bool local = vm.count("local") != 0;
  if (address.empty() && !local) {
    if (const char* e = std::getenv("ORRERY_ADDRESS"); e && *e) address = e;
  }
  if (local == !address.empty()) {
    err << "orrery compare: pass exactly one of --local and --address HOST:PORT\n" << kUsage;
    return kExitUsage;
  }
  if (vm.count("seed") && seed < 0) {
    err << "orrery compare: --seed: expected a non-negative integer\n";
    return kExitUsage;
  }
  if (timeout_s <= 0) {
    err << "orrery compare: --timeout: expected a positive number of seconds\n";
    return kExitUsage;
  }
  if (live_runs < 1 || live_runs > 20) {
    err << "orrery compare: --live-runs: expected an integer from 1 to 20, got " << live_runs
        << "\n";
    return kExitUsage;
  }
  if (sim_runs < 1 || sim_runs > 100) {
    err << "orrery compare: --sim-runs: expected an integer from 1 to 100, got " << sim_runs
        << "\n";
    return kExitUsage;
  }
  // Validate everything both runs will see before either starts (bad input costs nothing).
  std::vector<std::string> overrides = sets;
  if (!policy.empty()) overrides.push_back("scheduler.policy=" + policy);
  if (vm.count("seed")) overrides.push_back("seed=" + std::to_string(seed));
  auto scenario = io::LoadScenario(scenario_path, overrides);
  if (!scenario.ok()) {
    err << "orrery compare: " << scenario.status().message() << "\n";
    return kExitUsage;
  }
  if (Status s = CheckLiveSupport(*scenario); !s.ok()) {
    err << "orrery compare: " << s.message() << "\n";
    return kExitUsage;
  }
  if (!local) {
    // Policy is a cluster setting: both runs decide with the cluster's, or compare refuses when
    // the scenario (or --policy) asks for another.
    auto cluster = FindCluster("compare", address, temp_dir, err);
    if (!cluster) return kExitUsage;
    auto scheduling = ClusterScheduling(*scenario, cluster->address, cluster->token);
    if (!scheduling.ok()) {
      err << "orrery compare: " << scheduling.status().message() << "\n";
      return scheduling.status().code() == StatusCode::kFailedPrecondition ? kExitUsage
                                                                           : kExitFailed;
    }
    if (!scenario->scheduler.policy_given) {
      for (auto& o : SchedulingOverrides(*scheduling)) overrides.push_back(std::move(o));
    }
  }
  for (const auto& w : scenario->warnings) err << "warning: " << w << "\n";
  const fs::path dir =
      out_dir.empty() ? fs::path("out") / (scenario->name + "-compare") : fs::path(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    err << "orrery compare: --out: cannot create " << dir.string() << ": " << ec.message() << "\n";
    return kExitUsage;
  }
  // Results of an earlier compare into the same DIR must not pass for this run's.
  std::vector<std::string> labels = {"sim"};
  for (int64_t k = 2; k <= sim_runs; ++k) labels.push_back("sim-" + std::to_string(k));
  const size_t first_live = labels.size();
  labels.push_back("live");
  for (int64_t k = 2; k <= live_runs; ++k) labels.push_back("live-" + std::to_string(k));
  for (const auto& sub : labels) {
    for (const char* f : {"summary.json", "tasks.csv", "timeseries.csv"}) {
      fs::remove(dir / sub / f, ec);
    }
  }

  // The same overrides for both; --set scheduler.policy is what --policy means to `sim run`.
  std::vector<std::string> common = {scenario_path};
  for (const auto& s : overrides) {
    common.push_back("--set");
    common.push_back(s);
  }
  struct Run {
    std::string label;
    std::string progress;
    std::vector<std::string> args;
  };
  const bool trace = vm.count("trace") != 0;
  std::vector<Run> runs;
  for (size_t k = 0; k < first_live; ++k) {
    std::vector<std::string> sim_args = {"sim", "run"};
    sim_args.insert(sim_args.end(), common.begin(), common.end());
    sim_args.insert(sim_args.end(), {"--out", (dir / labels[k]).string(), "--no-progress"});
    if (sim_runs > 1) sim_args.insert(sim_args.end(), {"--timing-seed", std::to_string(k + 1)});
    if (trace) sim_args.push_back("--trace");
    std::string progress = "simulating";
    if (sim_runs > 1) {
      progress += ", run " + std::to_string(k + 1) + " of " + std::to_string(sim_runs) +
                  " (timing seed " + std::to_string(k + 1) + ")";
    }
    runs.push_back(Run{labels[k], progress + "...", std::move(sim_args)});
  }
  const size_t live_count = labels.size() - first_live;
  for (size_t k = first_live; k < labels.size(); ++k) {
    std::vector<std::string> live_args = {"live", "run"};
    live_args.insert(live_args.end(), common.begin(), common.end());
    live_args.insert(live_args.end(), {"--out", (dir / labels[k]).string()});
    if (trace) live_args.push_back("--trace");
    if (local) {
      live_args.push_back("--local");
    } else {
      live_args.insert(live_args.end(), {"--address", address});
    }
    if (!temp_dir.empty()) live_args.insert(live_args.end(), {"--temp-dir", temp_dir});
    std::string progress = local ? "running live (--local)" : "running live";
    if (live_count > 1) {
      progress +=
          ", run " + std::to_string(k - first_live + 1) + " of " + std::to_string(live_count);
    }
    runs.push_back(Run{labels[k], progress + "...", std::move(live_args)});
  }
  for (const Run& run : runs) {
    const fs::path log = dir / (run.label + ".log");
    err << run.progress << " (log " << log.string() << ")\n";
    const auto t0 = std::chrono::steady_clock::now();
    std::string why;
    const int rc = RunSelf(run.args, log, std::chrono::seconds(timeout_s), &why);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // `run` exits 1 when tasks failed but still writes its results: that run completed.
    const bool wrote = fs::exists(dir / run.label / "summary.json", ec) &&
                       fs::exists(dir / run.label / "tasks.csv", ec);
    if (rc == kExitUsage) {
      err << "orrery compare: " << run.label << " run rejected its input:\n" << Tail(log, 10);
      return kExitUsage;
    }
    if (rc < 0 || !wrote) {
      err << "orrery compare: the " << run.label << " run failed"
          << (why.empty() ? " (exit " + std::to_string(rc) + ")" : ": " + why) << "; last lines of "
          << log.string() << ":\n"
          << Tail(log, 10);
      return kExitFailed;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %s run done in %.1f s%s\n", run.label.c_str(), took,
                  rc == 0 ? "" : " (some tasks failed)");
    err << buf;
  }

  std::vector<fs::path> sim_dirs, live_dirs;
  for (size_t k = 0; k < labels.size(); ++k) {
    (k < first_live ? sim_dirs : live_dirs).push_back(dir / labels[k]);
  }
  auto cmp = CompareResults(sim_dirs, live_dirs);
  if (!cmp.ok()) {
    err << "orrery compare: " << cmp.status().message() << "\n";
    return kExitFailed;
  }
  out << "compare " << scenario->name << ": sim vs live (" << (local ? "--local" : address)
      << ")\n";
  if (!WriteComparison(*cmp, scenario->name, dir, true, out, err)) return kExitFailed;
  return kExitOk;
}

}  // namespace

size_t Comparison::SamePlacements() const {
  return static_cast<size_t>(std::count_if(placements.begin(), placements.end(),
                                           [](const PlacementDiff& p) { return p.same(); }));
}

const std::vector<std::string>& ComparedMetrics() {
  static const std::vector<std::string> kMetrics = {"tasks.finished",
                                                    "tasks.failed",
                                                    "tasks.canceled",
                                                    "makespan_s",
                                                    "jct_s.p50",
                                                    "jct_s.p95",
                                                    "queue_delay_s.p50",
                                                    "queue_delay_s.p95",
                                                    "utilization.CPU",
                                                    "utilization.GPU",
                                                    "spillbacks",
                                                    "env_cache.hits",
                                                    "env_cache.misses",
                                                    "env_cache.evictions",
                                                    "autoscaler.launched",
                                                    "autoscaler.terminated",
                                                    "autoscaler.peak_nodes",
                                                    "node_seconds"};
  return kMetrics;
}

StatusOr<Comparison> CompareResults(const fs::path& sim_dir, const fs::path& live_dir) {
  return CompareResults(sim_dir, std::vector<fs::path>{live_dir});
}

StatusOr<Comparison> CompareResults(const fs::path& sim_dir,
                                    const std::vector<fs::path>& live_dirs,
                                    const results::FidelityBars& bars) {
  return CompareResults(std::vector<fs::path>{sim_dir}, live_dirs, bars);
}

StatusOr<Comparison> CompareResults(const std::vector<fs::path>& sim_dirs,
                                    const std::vector<fs::path>& live_dirs,
                                    const results::FidelityBars& bars) {
  const fs::path& sim_dir = sim_dirs.front();
  const fs::path& live_dir = live_dirs.front();
  Comparison c;
  json summaries[2];
  const fs::path dirs[2] = {sim_dir, live_dir};
  std::vector<Attempt> rows[2];
  for (int i = 0; i < 2; ++i) {
    const fs::path file = dirs[i] / "summary.json";
    bool ok = false;
    const std::string text = ReadText(file, &ok);
    if (!ok) return Status(StatusCode::kInvalidArgument, file.string() + ": cannot read");
    summaries[i] = json::parse(text, nullptr, false);
    if (summaries[i].is_discarded() || !summaries[i].is_object()) {
      return Status(StatusCode::kInvalidArgument, file.string() + ": expected a JSON object");
    }
    auto r = ReadTasksCsv(dirs[i] / "tasks.csv");
    if (!r.ok()) return r.status();
    rows[i] = std::move(*r);
  }
  if (summaries[0].contains("scenario") && summaries[0]["scenario"].is_string()) {
    c.scenario = summaries[0]["scenario"].get<std::string>();
  }
  // Two results of different scenarios (or seeds, or policies) compare apples with oranges.
  for (const char* key : {"scenario", "seed", "policy"}) {
    const json a = summaries[0].value(key, json()), b = summaries[1].value(key, json());
    if (a != b) {
      c.warnings.push_back(std::string("the runs differ in ") + key + ": " + a.dump() + " (" +
                           sim_dir.string() + ") vs " + b.dump() + " (" + live_dir.string() +
                           "): the comparison may be meaningless");
    }
  }
  for (const auto& m : ComparedMetrics()) {
    auto s = Lookup(summaries[0], m, sim_dir / "summary.json");
    if (!s.ok()) return s.status();
    auto l = Lookup(summaries[1], m, live_dir / "summary.json");
    if (!l.ok()) return l.status();
    c.metrics.push_back({m, *s, *l});
  }
  // Placements: the union of both runs' attempts, matched by (task_id, attempt).
  auto key_less = [](const std::pair<std::string, std::string>& a,
                     const std::pair<std::string, std::string>& b) {
    if (a.first != b.first) return IdLess(a.first, b.first);
    return IdLess(a.second, b.second);
  };
  std::map<std::pair<std::string, std::string>, PlacementDiff, decltype(key_less)> by_key(key_less);
  for (int i = 0; i < 2; ++i) {
    for (const auto& a : rows[i]) {
      PlacementDiff& p = by_key[{a.task_id, a.attempt}];
      p.task_id = a.task_id;
      p.attempt = a.attempt;
      if (p.name.empty()) p.name = a.name;
      (i == 0 ? p.sim_node : p.live_node) = a.node;
    }
  }
  for (auto& [k, p] : by_key) c.placements.push_back(std::move(p));
  Durations(rows[0], &c.sim_jct, &c.sim_queue);
  Durations(rows[1], &c.live_jct, &c.live_queue);
  const auto makespan = std::find_if(c.metrics.begin(), c.metrics.end(),
                                     [](const MetricDiff& m) { return m.metric == "makespan_s"; });
  c.sim_runs.push_back(ClassStatsOf(rows[0], makespan->sim));
  for (size_t k = 1; k < sim_dirs.size(); ++k) {
    auto more = ReadRun(sim_dirs[k]);
    if (!more.ok()) return more.status();
    c.sim_runs.push_back(std::move(more->stats));
  }
  c.sim_classes = results::MeanRunStats(c.sim_runs);
  c.live_classes.push_back(ClassStatsOf(rows[1], makespan->live));
  std::vector<std::optional<std::vector<results::ClassLegs>>> legs;
  for (int i = 0; i < 2; ++i) {
    auto l = ReadLegs(dirs[i], rows[i]);
    if (!l.ok()) return l.status();
    legs.push_back(std::move(*l));
  }
  for (size_t k = 1; k < live_dirs.size(); ++k) {
    auto more = ReadRun(live_dirs[k]);
    if (!more.ok()) return more.status();
    c.live_classes.push_back(std::move(more->stats));
    legs.push_back(std::move(more->legs));
  }
  const size_t traced = static_cast<size_t>(
      std::count_if(legs.begin(), legs.end(), [](const auto& l) { return l.has_value(); }));
  if (traced == legs.size()) {
    c.has_legs = true;
    c.sim_legs = std::move(*legs[0]);
    for (size_t k = 1; k < legs.size(); ++k) c.live_legs.push_back(std::move(*legs[k]));
  } else if (traced > 0) {
    c.warnings.push_back("only " + std::to_string(traced) + " of the " +
                         std::to_string(legs.size()) +
                         " runs have leases.csv (--trace): no per-lease table");
  }
  c.verdict = results::JudgeFidelity(c.sim_classes, c.live_classes, bars);
  return c;
}

std::string RenderCompareCsv(const Comparison& c) {
  std::string out = "metric,sim,live,diff,diff_pct\n";
  for (const auto& m : c.metrics) {
    std::string pct = Pct(m);
    if (!pct.empty() && pct[0] == '+') pct.erase(0, 1);
    out += m.metric + "," + Num(m.sim) + "," + Num(m.live) + "," + Num(m.live - m.sim) + "," + pct +
           "\n";
  }
  return out;
}

std::string RenderPlacementCsv(const Comparison& c) {
  std::string out = "task_id,attempt,name,sim_node,live_node,same\n";
  auto q = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string r = "\"";
    for (char ch : s) r += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return r + "\"";
  };
  for (const auto& p : c.placements) {
    out += q(p.task_id) + "," + q(p.attempt) + "," + q(p.name) + "," + q(p.sim_node) + "," +
           q(p.live_node) + "," + (p.same() ? "1" : "0") + "\n";
  }
  return out;
}

std::string RenderCompareSvg(const Comparison& c, const std::string& scenario) {
  // Empirical CDF as a step line: (x_i, i/n) -> (x_i, (i+1)/n).
  auto cdf = [](const std::string& name, const std::vector<double>& xs, bool dashed,
                const std::string& color) {
    results::SvgSeries s{name, {}, {}, dashed, color};
    const double n = static_cast<double>(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      s.x.insert(s.x.end(), {xs[i], xs[i]});
      s.y.insert(s.y.end(), {static_cast<double>(i) / n, static_cast<double>(i + 1) / n});
    }
    return s;
  };
  results::SvgChart chart;
  chart.title = scenario + ": simulated vs live, CDF of job completion time and queue delay";
  chart.x_label = "seconds";
  chart.y_label = "fraction of tasks";
  chart.y_min = 0;
  chart.y_max = 1;
  chart.x_min = 0;
  chart.legend = results::SvgChart::Legend::kBottomRight;
  chart.series = {cdf("sim: JCT", c.sim_jct, false, "#1f77b4"),
                  cdf("live: JCT", c.live_jct, false, "#ff7f0e"),
                  cdf("sim: queue delay", c.sim_queue, true, "#1f77b4"),
                  cdf("live: queue delay", c.live_queue, true, "#ff7f0e")};
  return results::RenderSvgLineChart(chart);
}

std::string RenderClassesSvg(const Comparison& c, const std::string& scenario) {
  results::SvgBarChart chart;
  chart.title = scenario + ": mean queue delay per task class, simulated vs live";
  chart.value_label = "mean queue delay (s)";
  std::set<std::string> names;
  for (const auto& k : c.sim_classes.classes) names.insert(k.name);
  for (const auto& run : c.live_classes) {
    for (const auto& k : run.classes) names.insert(k.name);
  }
  // One bar per class: the mean over the runs that have the class, and their range as a
  // whisker when more than one has it (the sim runs' mean is c.sim_classes, computed alike).
  const double nan = std::nan("");
  auto series = [&](const std::string& label, const std::vector<results::RunStats>& runs,
                    const char* color) {
    results::SvgBarSeries out{runs.size() > 1 ? label + " (mean of " + std::to_string(runs.size()) +
                                                    " runs, whisker: their range)"
                                              : label,
                              {},
                              {},
                              {},
                              color};
    for (const auto& name : names) {
      double sum = 0, lo = INFINITY, hi = -INFINITY;
      int n = 0;
      for (const auto& run : runs) {
        if (const results::ClassStats* k = run.Find(name)) {
          sum += k->queue.mean;
          lo = std::min(lo, k->queue.mean);
          hi = std::max(hi, k->queue.mean);
          ++n;
        }
      }
      out.value.push_back(n ? sum / n : nan);
      out.lo.push_back(n > 1 ? lo : nan);
      out.hi.push_back(n > 1 ? hi : nan);
    }
    return out;
  };
  chart.categories.assign(names.begin(), names.end());
  chart.series = {series("sim", c.sim_runs, "#1f77b4"), series("live", c.live_classes, "#ff7f0e")};
  return results::RenderSvgBarChart(chart);
}

std::string RenderCompareTable(const Comparison& c, size_t max_differences) {
  std::string out = "  " + Pad("metric", 22, false) + Pad("sim", 12, true) + Pad("live", 12, true) +
                    Pad("diff", 12, true) + Pad("diff %", 9, true) + "\n";
  for (const auto& m : c.metrics) {
    std::string row = "  " + Pad(m.metric, 22, false) + Pad(Num(m.sim), 12, true) +
                      Pad(Num(m.live), 12, true) + Pad(Num(m.live - m.sim), 12, true) +
                      Pad(Pct(m), 9, true);
    while (row.back() == ' ') row.pop_back();
    out += row + "\n";
  }
  const size_t n = c.placements.size(), same = c.SamePlacements();
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "placement agreement: %zu/%zu task attempts on the same node (%.1f%%)\n", same, n,
                n == 0 ? 100.0 : 100.0 * static_cast<double>(same) / static_cast<double>(n));
  out += buf;
  size_t listed = 0;
  for (const auto& p : c.placements) {
    if (p.same()) continue;
    if (listed == max_differences) {
      out += "  ... " + std::to_string(n - same - listed) + " more in placement.csv\n";
      break;
    }
    if (listed++ == 0) {
      out += "  " + Pad("task_id", 9, false) + Pad("attempt", 8, false) + Pad("name", 16, false) +
             Pad("sim", 12, false) + "live\n";
    }
    out += "  " + Pad(p.task_id, 9, false) + Pad(p.attempt, 8, false) + Pad(p.name, 16, false) +
           Pad(p.sim_node.empty() ? "-" : p.sim_node, 12, false) +
           (p.live_node.empty() ? "-" : p.live_node) + "\n";
  }
  return out;
}

cli::Command CompareCommand() {
  return {"compare",
          "compare SCENARIO.yaml (--local | --address A)  run a scenario in sim and live, side "
          "by side",
          RunCompare};
}

}  // namespace orrery::live

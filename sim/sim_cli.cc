#include "sim/sim_cli.h"

#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/results/run_record.h"
#include "sim/scenario.h"
#include "sim/simgrid_driver.h"

namespace orrery::sim {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using cli::kExitFailed;
using cli::kExitOk;
using cli::kExitUsage;

constexpr const char* kRunUsage =
    "usage: orrery sim run SCENARIO.yaml [--policy NAME] [--seed N] [--set dotted.path=value]...\n"
    "                      [--out DIR] [--decision-log FILE] [--no-progress]\n";
constexpr const char* kCompareUsage =
    "usage: orrery sim compare SCENARIO.yaml --policies a,b,c [--seeds N] [--set path=value]...\n"
    "                          [--out DIR]\n";

Status WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + p.string());
  f << text;
  f.close();
  if (!f) return Status(StatusCode::kUnavailable, "error writing " + p.string());
  return Status::Ok();
}

Status WriteResults(const fs::path& dir, const results::RunRecord& r) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + dir.string() + ": " +
                                                      ec.message());
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "summary.json", results::RenderSummaryJson(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "tasks.csv", results::RenderTasksCsv(r)));
  ORRERY_RETURN_IF_ERROR(WriteFile(dir / "timeseries.csv", results::RenderTimeseriesCsv(r)));
  return Status::Ok();
}

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string scenario_path, policy, out_dir, decision_log;
  std::vector<std::string> sets;
  int64_t seed = -1;
  desc.add_options()("help,h", "show this help")(
      "scenario", po::value(&scenario_path), "scenario file")(
      "policy", po::value(&policy), "scheduling policy for DEFAULT requests (orrery policies)")(
      "seed", po::value(&seed), "random seed (overrides the file)")(
      "set", po::value(&sets)->composing(), "override a scenario field: dotted.path=value")(
      "out", po::value(&out_dir), "result directory (default: out/<scenario name>)")(
      "decision-log", po::value(&decision_log), "write one line per scheduling decision")(
      "no-progress", "never print the progress line");
  po::positional_options_description pos;
  pos.add("scenario", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err << "orrery sim run: " << e.what() << "\n" << kRunUsage;
    return kExitUsage;
  }
  if (vm.count("help")) {
    out << kRunUsage << desc;
    return kExitOk;
  }
  if (scenario_path.empty()) {
    err << "orrery sim run: missing SCENARIO.yaml\n" << kRunUsage;
    return kExitUsage;
  }
  std::vector<std::string> overrides = sets;
  if (!policy.empty()) overrides.push_back("scheduler.policy=" + policy);
  if (vm.count("seed")) {
    if (seed < 0) {
      err << "orrery sim run: --seed: expected a non-negative integer\n";
      return kExitUsage;
    }
    overrides.push_back("seed=" + std::to_string(seed));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto scenario = LoadScenario(scenario_path, overrides);
  if (!scenario.ok()) {
    err << "orrery sim run: " << scenario.status().message() << "\n";
    return kExitUsage;
  }
  for (const auto& w : scenario->warnings) err << "warning: " << w << "\n";
  SimRunOptions o;
  o.progress = !vm.count("no-progress") && isatty(STDERR_FILENO);
  o.decision_log = !decision_log.empty();
  const auto t1 = std::chrono::steady_clock::now();
  auto run = RunOnSimGrid(*scenario, o);
  if (!run.ok()) {
    err << "orrery sim run: " << run.status().message() << "\n";
    return kExitFailed;
  }
  run->record.orrery_version = cli::Version();
  const fs::path dir = out_dir.empty() ? fs::path("out") / scenario->name : fs::path(out_dir);
  if (Status s = WriteResults(dir, run->record); !s.ok()) {
    err << "orrery sim run: " << s.message() << "\n";
    return kExitFailed;
  }
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
  out << "  results     " << dir.string() << "/{summary.json,tasks.csv,timeseries.csv}\n";
  return kExitOk;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
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

int CompareCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string scenario_path, policies, out_dir = "out/compare";
  std::vector<std::string> sets;
  int seeds = 1;
  desc.add_options()("help,h", "show this help")("scenario", po::value(&scenario_path),
                                                 "scenario file")(
      "policies", po::value(&policies), "comma-separated policy names")(
      "seeds", po::value(&seeds), "number of seeds per policy (1..N)")(
      "set", po::value(&sets)->composing(), "override a scenario field")(
      "out", po::value(&out_dir), "output directory");
  po::positional_options_description pos;
  pos.add("scenario", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err << "orrery sim compare: " << e.what() << "\n" << kCompareUsage;
    return kExitUsage;
  }
  if (vm.count("help")) {
    out << kCompareUsage << desc;
    return kExitOk;
  }
  const auto names = SplitComma(policies);
  if (scenario_path.empty() || names.empty() || seeds < 1) {
    err << "orrery sim compare: need SCENARIO.yaml, --policies a,b and --seeds >= 1\n"
        << kCompareUsage;
    return kExitUsage;
  }
  // Validate once up front so a typo fails fast with exit 2.
  for (const auto& p : names) {
    std::vector<std::string> o = sets;
    o.push_back("scheduler.policy=" + p);
    auto s = LoadScenario(scenario_path, o);
    if (!s.ok()) {
      err << "orrery sim compare: " << s.status().message() << "\n";
      return kExitUsage;
    }
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  std::string csv = "policy,seed,makespan_s,jct_mean_s,jct_p95_s,queue_p50_s,queue_p95_s,"
                    "cpu_util,gpu_util,spillbacks,finished,failed,infeasible,wall_s\n";
  out << "policy             seed  makespan_s  jct_mean_s  queue_p95_s  cpu_util  spillbacks\n";
  int rc_all = kExitOk;
  for (const auto& p : names) {
    for (int seed = 1; seed <= seeds; ++seed) {
      const fs::path dir = fs::path(out_dir) / (p + "-seed" + std::to_string(seed));
      std::vector<std::string> a = {scenario_path, "--policy", p, "--seed", std::to_string(seed),
                                    "--out", dir.string()};
      for (const auto& s : sets) {
        a.push_back("--set");
        a.push_back(s);
      }
      fs::create_directories(dir, ec);
      const int rc = RunChild(a, dir / "run.log");
      if (rc != 0) {
        err << "orrery sim compare: run " << p << " seed " << seed << " failed (exit " << rc
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
      char line[256];
      std::snprintf(line, sizeof line, "%-18s %4d  %10.3f  %10.3f  %11.3f  %8.3f  %10llu\n",
                    p.c_str(), seed, j["makespan_s"].get<double>(),
                    j["jct_s"]["mean"].get<double>(), j["queue_delay_s"]["p95"].get<double>(),
                    j["utilization"]["CPU"].get<double>(),
                    static_cast<unsigned long long>(j["spillbacks"].get<uint64_t>()));
      out << line;
      std::ostringstream row;
      row << p << "," << seed << "," << j["makespan_s"] << "," << j["jct_s"]["mean"] << ","
          << j["jct_s"]["p95"] << "," << j["queue_delay_s"]["p50"] << ","
          << j["queue_delay_s"]["p95"] << "," << j["utilization"]["CPU"] << ","
          << j["utilization"]["GPU"] << "," << j["spillbacks"] << "," << j["tasks"]["finished"]
          << "," << j["tasks"]["failed"] << "," << j["tasks"]["infeasible"] << "," << j["wall_s"]
          << "\n";
      csv += row.str();
    }
  }
  if (Status s = WriteFile(fs::path(out_dir) / "compare.csv", csv); !s.ok()) {
    err << "orrery sim compare: " << s.message() << "\n";
    return kExitFailed;
  }
  out << "results in " << out_dir << "/compare.csv\n";
  return rc_all;
}

}  // namespace

cli::Command SimCommand() {
  return {"sim",
          "sim run|compare SCENARIO.yaml ...   simulate a scenario on SimGrid",
          [](const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
            if (args.empty() || args[0] == "-h" || args[0] == "--help") {
              (args.empty() ? err : out) << kRunUsage << kCompareUsage;
              return args.empty() ? kExitUsage : kExitOk;
            }
            std::vector<std::string> rest(args.begin() + 1, args.end());
            if (args[0] == "run") return RunCommand(rest, out, err);
            if (args[0] == "compare") return CompareCommand(rest, out, err);
            err << "orrery sim: unknown subcommand '" << args[0] << "'\n"
                << kRunUsage << kCompareUsage;
            return kExitUsage;
          }};
}

}  // namespace orrery::sim

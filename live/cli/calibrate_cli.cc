#include "live/cli/calibrate_cli.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/cli/cli_util.h"
#include "core/scenario/scenario.h"
#include "live/cli/live_cli.h"
#include "live/run/calibrate.h"
#include "live/run/live_run.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using cli::kExitFailed, cli::kExitOk, cli::kExitUsage;

constexpr const char* kUsage =
    "usage: orrery calibrate (--local | [--address A]) [--samples N] [--out FILE]\n"
    "  Measures the live cluster's control-plane latencies (lease round trip, spillback, task\n"
    "  start on a reused and on a new worker, finish -> resources free, view propagation, report\n"
    "  period, object latency and bandwidth) and writes a scenario `control_plane:` block.\n"
    "  Scenarios include it with `control_plane: FILE`. Run it on an idle cluster.\n";

std::string UtcNow() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string HostDescription() {
  utsname u{};
  std::string host = uname(&u) == 0 ? std::string(u.nodename) + " (" + u.sysname + " " +
                                          u.release + ", " + u.machine + ")"
                                    : "unknown host";
  return host + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs online";
}

int RunCalibrate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string address, temp_dir, out_path;
  int samples = 200;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("local", "measure a private 2-node cluster")(
      "address", po::value(&address), "head HOST:PORT (default $ORRERY_ADDRESS or the session)")(
      "temp-dir", po::value(&temp_dir), "session root (default /tmp/orrery)")(
      "samples", po::value(&samples), "samples per round-trip latency (default 200, 20..100000)")(
      "out", po::value(&out_path), "write the block here (default: stdout)");
  po::variables_map vm;
  if (auto rc = cli::ParseCommand("calibrate", args, desc, nullptr, kUsage, vm, out, err)) {
    return *rc;
  }
  if (samples < 20 || samples > 100000) {
    err << "orrery calibrate: --samples: expected 20..100000, got " << samples << "\n";
    return kExitUsage;
  }
  const bool local = vm.count("local") > 0;
  if (local && !address.empty()) {
    err << "orrery calibrate: --local and --address exclude each other\n" << kUsage;
    return kExitUsage;
  }
  std::ofstream file;
  if (!out_path.empty()) {
    file.open(out_path);
    if (!file) {
      err << "orrery calibrate: --out: cannot write " << out_path << "\n";
      return kExitFailed;
    }
  }

  std::unique_ptr<LocalCluster> cluster;
  std::string head, token, what;
  if (local) {
    Scenario s;
    s.name = "calibrate";
    for (const char* id : {"node-a", "node-b"}) {
      NodeSpec n;
      n.id = id;
      n.type = "calibrate";
      n.total = ResourceSet::FromMap({{"CPU", Quantity::Whole(2)}});
      s.nodes.push_back(std::move(n));
    }
    s.driver_node = 0;
    const fs::path dir = fs::temp_directory_path() /
                         ("orrery-calibrate-" + std::to_string(static_cast<long>(getpid())));
    auto c = LocalCluster::Start(s, dir);
    if (!c.ok()) {
      err << "orrery calibrate: " << c.status().ToString() << "\n";
      return kExitFailed;
    }
    cluster = std::move(*c);
    head = cluster->address();
    token = cluster->token();
    what = "a private 2-node cluster (2 CPUs each, report period 100 ms) in this process";
  } else {
    auto found = FindCluster("calibrate", address, temp_dir, err);
    if (!found) return kExitUsage;
    head = found->address;
    token = found->token;
    what = "the cluster at " + head;
  }

  CalibrateOptions o;
  o.samples = samples;
  o.progress = &err;
  o.private_cluster = local;
  // Enough start-ups at once to load every core of a local cluster's host several times over,
  // as a burst of new workers does (fidelity burst-3n: 21 on 2 cores). With 4 x cores (8 here)
  // the derived CPU part was 34 ms and burst-3n's warm-up ended 0.37 s modelled against 0.42-0.50
  // s live; 16 at once measured 43 ms: a start-up costs more CPU when more run.
  o.worker_start_batch =
      local ? std::clamp(8 * static_cast<int>(std::thread::hardware_concurrency()), 8, 64) : 8;
  auto c = Calibrate(head, token, o);
  if (!c.ok()) {
    err << "orrery calibrate: " << c.status().ToString() << "\n";
    return kExitFailed;
  }
  if (local) c->host_cores = static_cast<int>(std::thread::hardware_concurrency());
  const std::string block = ControlPlaneYaml(
      *c, {"Measured by `orrery calibrate" + std::string(local ? " --local" : "") +
               " --samples " + std::to_string(samples) + "` on " + UtcNow(),
           "of " + what, "on " + HostDescription() + ", orrery " + cli::Version()});
  (out_path.empty() ? out : static_cast<std::ostream&>(file)) << block;
  if (!out_path.empty()) {
    file.close();
    if (!file) {
      err << "orrery calibrate: --out: writing " << out_path << " failed\n";
      return kExitFailed;
    }
    err << "calibrate: wrote " << out_path << "\n";
  }
  return kExitOk;
}

}  // namespace

cli::Command CalibrateCommand() {
  return {"calibrate",
          "calibrate --local | --address A   measure control-plane latencies for the simulator",
          RunCalibrate};
}

}  // namespace orrery::live

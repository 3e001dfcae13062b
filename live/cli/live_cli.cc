#include "live/cli/live_cli.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include "core/envcache/env_cache.h"  // --- runtime envs
#include "core/io/scenario_loader.h"
#include "core/placement/two_phase.h"  // --- actors: bundle resource names
#include "core/results/lease_trace.h"
#include "core/results/run_record.h"
#include "core/scheduling/scheduler_settings.h"
#include "live/cli/autoscaler_cli.h"  // --- autoscaler
#include "live/cli/job_cli.h"         // --- jobs
#include "live/client/client.h"
#include "live/common/node_address.h"  // --node-ip
#include "live/common/port_check.h"
#include "live/common/runtime_env.h"  // --- runtime envs
#include "live/common/session.h"
#include "live/common/tls.h"                         // --- TLS
#include "live/head/actor_directory.h"               // --- actors
#include "live/head/autoscaler/autoscaler_config.h"  // --- autoscaler
#include "live/head/head.h"
#include "live/node/gpu_detect.h"  // GPUs: detection at node start
#include "live/node/node.h"
#include "live/node/worker_pool.h"
#include "live/rpc/convert.h"
#include "live/run/live_run.h"
#include "live/worker/worker.h"

namespace orrery::live {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using cli::kExitFailed, cli::kExitOk, cli::kExitUsage;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kDefaultHeadPort = 6379;

// ---- input parsing -------------------------------------------------------------------------

// A JSON object of non-negative numbers, e.g. {"accel": 2}.
StatusOr<std::map<std::string, double>> ParseQuantities(const std::string& text,
                                                        const std::string& flag) {
  std::map<std::string, double> out;
  if (text.empty()) return out;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for '1e999'
    return InvalidArgument(flag + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) return InvalidArgument(flag + ": expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (k.empty()) return InvalidArgument(flag + ": empty resource name");
    if (!v.is_number()) return InvalidArgument(flag + "." + k + ": expected a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < 0 || d > 1e12) {
      return InvalidArgument(flag + "." + k + ": expected a non-negative number");
    }
    out[k] = d;
  }
  return out;
}

StatusOr<Labels> ParseLabels(const std::string& text) {
  Labels out;
  if (text.empty()) return out;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for '1e999'
    return InvalidArgument(std::string("--labels: malformed JSON: ") + e.what());
  }
  if (!j.is_object()) return InvalidArgument("--labels: expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return InvalidArgument("--labels." + k + ": expected a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

// Merges --num-cpus / --num-gpus with --resources (which must not name CPU or GPU).
StatusOr<std::map<std::string, double>> MergeResources(const po::variables_map& vm,
                                                       const std::string& resources_json,
                                                       double default_cpus) {
  auto m = ParseQuantities(resources_json, "--resources");
  if (!m.ok()) return m.status();
  for (const char* name : {"CPU", "GPU"}) {
    if (m->count(name)) {
      return InvalidArgument(std::string("--resources: use --num-") +
                             (name[0] == 'C' ? "cpus" : "gpus") + " for " + name);
    }
  }
  const double cpus = vm.count("num-cpus") ? vm["num-cpus"].as<double>() : default_cpus;
  const double gpus = vm.count("num-gpus") ? vm["num-gpus"].as<double>() : 0.0;
  if (!std::isfinite(cpus) || cpus < 0) {
    return InvalidArgument("--num-cpus: expected a finite number >= 0");
  }
  if (!std::isfinite(gpus) || gpus < 0) {
    return InvalidArgument("--num-gpus: expected a finite number >= 0");
  }
  if (cpus > 0) (*m)["CPU"] = cpus;
  if (gpus > 0) (*m)["GPU"] = gpus;
  return m;
}

StatusOr<ResourceSet> NodeTotals(const std::map<std::string, double>& m) {
  std::map<std::string, Quantity> q;
  for (const auto& [k, v] : m) q[k] = Quantity::FromDouble(v);
  ResourceSet set = ResourceSet::FromMap(q);
  auto r = NodeResources::Create(set);
  if (!r.ok()) return r.status();
  return set;
}

// --- GPUs: NVML, else the CUDA runtime, else /dev/nvidiaN, within CUDA_VISIBLE_DEVICES.
int DetectGpus() { return DetectGpuInventory(SystemGpuProbe()).count(); }


// ---- cluster discovery ---------------------------------------------------------------------

}  // namespace

// Why a cluster did not answer, in words (no raw gRPC text): the cause and what to check.
static std::string DescribeUnreachable(const Status& s) {
  const std::string& m = s.message();
  if (std::string tls = DescribeTlsFailure(s); !tls.empty()) return tls;  // --- TLS
  switch (s.code()) {
    case StatusCode::kUnavailable:
      if (m.find("Connection refused") != std::string::npos) {
        return "nothing listens there (connection refused): is the head running? "
               "('orrery status' or 'orrery start --head')";
      }
      if (m.find("Name resolution") != std::string::npos || m.find("DNS") != std::string::npos) {
        return "the host name does not resolve";
      }
      return "it cannot be reached (no route, or the connection was reset)";
    case StatusCode::kDeadlineExceeded:
      return "no answer within 3 s (a stalled or overloaded head, or a filtered port)";
    case StatusCode::kUnauthenticated:
      return "the head refused the cluster token: it belongs to another cluster (a stale "
             "ORRERY_TOKEN, or another --temp-dir)";
    default:
      return m;
  }
}

// Declared in live_cli.h (shared with job_cli.cc).
std::optional<Cluster> FindCluster(const std::string& cmd, const std::string& address_flag,
                                   const std::string& temp_dir, std::ostream& err) {
  Cluster c;
  auto session = LatestSession(TempRoot(temp_dir));
  c.address = address_flag;
  if (c.address.empty()) {
    if (const char* e = std::getenv("ORRERY_ADDRESS"); e && *e) c.address = e;
  }
  if (c.address.empty() && session.ok()) {
    if (auto a = ReadFileTrimmed(*session / "address"); a.ok()) c.address = *a;
  }
  if (c.address.empty()) {
    err << "orrery " << cmd << ": no cluster address: pass --address HOST:PORT, set "
        << "ORRERY_ADDRESS, or start one with 'orrery start --head'\n";
    return std::nullopt;
  }
  if (const char* t = std::getenv("ORRERY_TOKEN"); t && *t) c.token = t;
  if (c.token.empty() && session.ok()) {
    if (auto t = ReadFileTrimmed(*session / "token"); t.ok()) c.token = *t;
  }
  if (c.token.empty()) {
    err << "orrery " << cmd << ": no cluster token: set ORRERY_TOKEN or pass the --temp-dir of "
        << "the session that started the head\n";
    return std::nullopt;
  }
  HeadClient head(c.address, c.token, milliseconds(3000));
  auto ready = head.Ready();
  if (!ready.ok()) {
    err << "orrery " << cmd << ": no cluster reachable at " << c.address << ": "
        << DescribeUnreachable(ready.status()) << "\n";
    return std::nullopt;
  }
  return c;
}

namespace {

// ---- daemons -------------------------------------------------------------------------------

std::string SelfExe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("orrery") : p.string();
}

// Starts `exe args...` as a daemon (own session, double fork, stdio to `log`), with `env`
// added to the environment. Returns the daemon's pid. Only async-signal-safe calls after fork.
StatusOr<pid_t> SpawnDaemon(const std::string& exe, const std::vector<std::string>& args,
                            const fs::path& log, const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> argv_s = {exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  // `extra_env` replaces inherited variables of the same name: getenv() returns the first
  // match, so a stale ORRERY_TOKEN in the caller's environment would otherwise win.
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    const std::string_view var(*e);
    const bool replaced = std::any_of(extra_env.begin(), extra_env.end(), [&](const auto& x) {
      const size_t eq = x.find('=');
      return var.substr(0, var.find('=')) == std::string_view(x).substr(0, eq);
    });
    if (!replaced) env_s.emplace_back(*e);
  }
  for (const auto& e : extra_env) env_s.push_back(e);
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string log_s = log.string();
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  const pid_t mid = ::fork();
  if (mid < 0) return Internal(std::string("fork: ") + std::strerror(errno));
  if (mid == 0) {
    ::setsid();
    const pid_t d = ::fork();
    if (d == 0) {
      // Never keep the caller's stdio: `orrery start | cat` must see EOF once start returns.
      // A log that cannot be opened is fatal (the caller reports the daemon did not come up).
      const int in = ::open("/dev/null", O_RDONLY);
      const int out = ::open(log_s.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
      if (in < 0 || out < 0) ::_exit(126);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    const int32_t v = d;
    [[maybe_unused]] ssize_t n = ::write(p[1], &v, sizeof(v));
    ::_exit(d > 0 ? 0 : 1);
  }
  ::close(p[1]);
  int32_t pid = -1;
  const ssize_t n = ::read(p[0], &pid, sizeof(pid));
  ::close(p[0]);
  ::waitpid(mid, nullptr, 0);
  if (n != sizeof(pid) || pid <= 0) return Internal("could not start " + exe);
  return static_cast<pid_t>(pid);
}

std::string LogTail(const fs::path& log) {
  auto text = ReadFileTrimmed(log);
  if (!text.ok()) return "";
  const size_t n = text->size();
  return n > 2000 ? text->substr(n - 2000) : *text;
}

// Waits until `ok()` or the daemon died or the timeout passed.
template <typename F>
bool WaitFor(F&& ok, pid_t daemon, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (ok()) return true;
    if (daemon > 0 && !IsProcessAlive(daemon)) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

void KillQuietly(pid_t pid) {
  if (IsDaemonProcess(pid)) ::kill(pid, SIGKILL);
}

// --token-file: a cluster token chosen by the operator (a Kubernetes Secret, a systemd
// credential) instead of one the head generates. 16-1024 printable ASCII characters without
// spaces (it travels in an HTTP header); InvalidArgument naming the flag and file otherwise.
StatusOr<std::string> ReadTokenFile(const std::string& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    return InvalidArgument("--token-file: " + file + " is not a file");
  }
  auto text = ReadFileTrimmed(file);
  if (!text.ok()) return InvalidArgument("--token-file: cannot read " + file);
  const std::string& t = *text;
  if (t.size() < 16 || t.size() > 1024) {
    return InvalidArgument("--token-file: " + file + " holds " + std::to_string(t.size()) +
                           " characters; expected a token of 16 to 1024 (e.g. `openssl rand "
                           "-hex 32`)");
  }
  for (unsigned char c : t) {
    if (c <= ' ' || c > '~') {
      return InvalidArgument("--token-file: " + file +
                             ": expected printable ASCII without spaces or line breaks");
    }
  }
  return t;
}

// `orrery stop` leaves this file in every session it stops, so `start --block` can tell a
// requested stop (exit 0) from a daemon that ended by itself (exit 1: restart me).
constexpr const char* kStopMarker = "stopped_by_command";

struct NodeFlags {
  std::string node_name, resources, labels, bind = "127.0.0.1";
  // --- runtime envs: passed through from `start` to `__node` as given.
  std::string renv_cache_bytes, renv_eviction, renv_setup_timeout_s;
  int metrics_port = 0;  // --- Metrics: 0 an OS-chosen port, -1 none
  int node_port = 0;     // the node's gRPC port (--node-port; 0: the OS picks one)
  // --- Issue 17: the advertised address (empty: bind) and the node's health-probe port (-1: none).
  std::string node_ip;
  int health_port = -1;
};

// --- runtime envs: checks the node's runtime-env flags and sets them on `o`.
Status ApplyRuntimeEnvFlags(const NodeFlags& f, NodeOptions* o) {
  if (!f.renv_cache_bytes.empty()) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(f.renv_cache_bytes.c_str(), &end, 10);
    if (errno != 0 || end == f.renv_cache_bytes.c_str() || *end != '\0' ||
        f.renv_cache_bytes[0] == '-') {
      return InvalidArgument("--runtime-env-cache-bytes: expected a number of bytes, got '" +
                             f.renv_cache_bytes + "'");
    }
    o->runtime_env_cache_bytes = v;
  }
  if (!f.renv_eviction.empty()) {
    if (auto p = envcache::MakeEvictionPolicy(f.renv_eviction); !p.ok()) {
      return InvalidArgument("--runtime-env-eviction: expected one of " +
                             std::string(envcache::kEvictionPolicyNames) + ", got '" +
                             f.renv_eviction + "'");
    }
    o->runtime_env_eviction = f.renv_eviction;
  }
  if (!f.renv_setup_timeout_s.empty()) {
    char* end = nullptr;
    const double v = std::strtod(f.renv_setup_timeout_s.c_str(), &end);
    if (end == f.renv_setup_timeout_s.c_str() || *end != '\0' || !(v > 0) || !std::isfinite(v) ||
        v > kMaxSetupTimeoutS) {
      return InvalidArgument(
          "--runtime-env-setup-timeout-s: expected a number of seconds in (0, 86400], got '" +
          f.renv_setup_timeout_s + "'");
    }
    o->runtime_env_setup_timeout_s = v;
  }
  return Status::Ok();
}

// Starts a node daemon for `head_address`, waits until it registered and answers. Prints it.
int StartNode(const fs::path& session, const std::string& head_address, const std::string& token,
              const po::variables_map& vm, const NodeFlags& f, bool head_node, std::ostream& out,
              std::ostream& err, pid_t* started_pid = nullptr) {
  std::vector<std::string> args = {"__node",      "--address", head_address,   "--bind",
                                   f.bind,        "--session-dir", session.string()};
  if (!f.node_name.empty()) args.insert(args.end(), {"--node-name", f.node_name});
  if (vm.count("num-cpus")) {
    std::ostringstream s;
    s << vm["num-cpus"].as<double>();
    args.insert(args.end(), {"--num-cpus", s.str()});
  }
  if (vm.count("num-gpus")) {
    std::ostringstream s;
    s << vm["num-gpus"].as<double>();
    args.insert(args.end(), {"--num-gpus", s.str()});
  }
  if (!f.resources.empty()) args.insert(args.end(), {"--resources", f.resources});
  if (!f.labels.empty()) args.insert(args.end(), {"--labels", f.labels});
  if (head_node) args.push_back("--head-node");
  // --- runtime envs
  if (!f.renv_cache_bytes.empty()) {
    args.insert(args.end(), {"--runtime-env-cache-bytes", f.renv_cache_bytes});
  }
  if (!f.renv_eviction.empty()) {
    args.insert(args.end(), {"--runtime-env-eviction", f.renv_eviction});
  }
  if (!f.renv_setup_timeout_s.empty()) {
    args.insert(args.end(), {"--runtime-env-setup-timeout-s", f.renv_setup_timeout_s});
  }
  args.insert(args.end(), {"--metrics-port", std::to_string(f.metrics_port)});  // --- Metrics
  if (f.node_port > 0) args.insert(args.end(), {"--port", std::to_string(f.node_port)});
  if (!f.node_ip.empty()) args.insert(args.end(), {"--node-ip", f.node_ip});
  args.insert(args.end(), {"--health-port", std::to_string(f.health_port)});
  const auto stamp =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const fs::path log =
      session / "logs" /
      ("node-" + (f.node_name.empty() ? std::to_string(stamp) : f.node_name) + ".log");
  // The token travels in the environment, not on the command line (ps shows argv).
  auto pid = SpawnDaemon(SelfExe(), args, log, {"ORRERY_TOKEN=" + token});
  if (!pid.ok()) {
    err << "orrery start: " << pid.status().message() << "\n";
    return kExitFailed;
  }
  (void)WriteFileAtomic(session / "pids" / ("node-" + std::to_string(*pid) + ".pid"),
                        std::to_string(*pid) + "\n");
  HeadClient head(head_address, token, milliseconds(2000));
  v1::NodeInfo me;
  const bool registered = WaitFor(
      [&] {
        auto nodes = head.ListNodes();
        if (!nodes.ok()) return false;
        for (const auto& n : nodes->nodes()) {
          // Registered, and serving: the node answers Ready only once its lease manager is
          // built, a moment after the head lists it (so ask until then, within the deadline).
          if (n.pid() == *pid && n.state() == v1::NODE_STATE_ALIVE) {
            me = n;
            return NodeClient(me.address(), token, milliseconds(1000)).Ready().ok();
          }
        }
        return false;
      },
      *pid, milliseconds(15000));
  if (!registered) {
    err << "orrery start: the node daemon did not come up; its log (" << log.string() << "):\n"
        << LogTail(log) << "\n";
    KillQuietly(*pid);
    return kExitFailed;
  }
  if (started_pid) *started_pid = *pid;
  auto total = FromProto(me.total(), "total");
  out << "Started node " << me.node_id() << " at " << me.address() << " with "
      << (total.ok() ? total->ToString() : std::string("?")) << " (pid " << *pid << ")\n";
  if (!me.metrics_address().empty()) {  // --- Metrics
    out << "  metrics: http://" << me.metrics_address() << "/metrics\n";
  }
  if (f.health_port >= 0) {  // the daemon logs where its probes listen (an OS-chosen port too)
    std::string health;
    (void)WaitFor(
        [&] {
          std::ifstream in(log);
          for (std::string line; std::getline(in, line);) {
            if (const auto at = line.find("health probes at "); at != std::string::npos) {
              health = line.substr(at + 17);
              return true;
            }
          }
          return false;
        },
        *pid, milliseconds(3000));
    if (!health.empty()) out << "  health: " << health << "\n";
  }
  return kExitOk;
}

void AddNodeOptions(po::options_description& d, NodeFlags& f) {
  d.add_options()("node-name", po::value(&f.node_name), "node id (default: <hostname>-<port>)")(
      "num-cpus", po::value<double>(), "CPUs of the node (default: this machine's)")(
      "num-gpus", po::value<double>(), "GPUs of the node (default: detected)")(
      "resources", po::value(&f.resources), "custom resources, JSON: {\"name\": qty}")(
      "labels", po::value(&f.labels), "node labels, JSON: {\"key\": \"value\"}")(
      "bind", po::value(&f.bind), "listen address (default 127.0.0.1)")(
      "metrics-port", po::value(&f.metrics_port),
      "node's Prometheus /metrics port (default 0: any free port; -1: none)")(
      "node-ip", po::value(&f.node_ip),
      "the address other machines reach this one at (an address of this machine; default: "
      "--bind, unless that is 0.0.0.0)")(
      "health-port", po::value(&f.health_port),
      "node's /healthz and /readyz port (0: any free port; default: none)");
  // --- runtime envs
  d.add_options()("runtime-env-cache-bytes", po::value(&f.renv_cache_bytes),
                  "unused runtime envs are evicted beyond this many bytes (default 10 GiB)")(
      "runtime-env-eviction", po::value(&f.renv_eviction),
      "runtime-env eviction policy: arbitrary (default) | lru | gdsf")(
      "runtime-env-setup-timeout-s", po::value(&f.renv_setup_timeout_s),
      "timeout of one runtime-env setup command (default 600)");
}

constexpr const char* kStartUsage =
    "usage: orrery start --head [--port P] [--node-name N] [--num-cpus N] [--num-gpus N]\n"
    "                    [--resources JSON] [--labels JSON] [--temp-dir DIR] [--bind ADDR]\n"
    "                    [--job-store PATH] [--dashboard-port P] [--max-running-jobs N]\n"
    "                    [--job-log-max-bytes B] [--job-log-backups N]\n"
    "                    [--worker-log-max-bytes B] [--worker-log-backups N]\n"
    "                    [--metrics-port P] [--head-metrics-port P]\n"
    "                    [--node-ip ADDR] [--health-port P]\n"
    "                    [--autoscaler-config FILE.yaml]\n"
    "                    [--health-check-period-ms MS] [--health-check-failures N]\n"
    "                    [--policy NAME] [--set scheduler.KEY=VALUE]...\n"
    "                    [--node-port P] [--token-file FILE] [--block]\n"
    "       orrery start --address HOST:PORT [node options as above]\n"
    "       orrery start --head --resume [--temp-dir DIR] [--block]\n";

// The cluster's scheduling setting from `--policy NAME` and `--set scheduler.KEY=VALUE` (the
// keys a scenario's scheduler block has: core/scheduling/scheduler_settings.h).
Status ParseSchedulingFlags(const std::string& policy, const std::vector<std::string>& sets,
                            SchedulerOptions* o) {
  if (!policy.empty()) ORRERY_RETURN_IF_ERROR(ApplySchedulerSetting("policy", policy, o));
  for (const std::string& kv : sets) {
    const size_t eq = kv.find('=');
    if (kv.rfind("scheduler.", 0) != 0 || eq == std::string::npos) {
      return InvalidArgument("--set: expected scheduler.KEY=VALUE, got '" + kv + "'");
    }
    ORRERY_RETURN_IF_ERROR(ApplySchedulerSetting(kv.substr(10, eq - 10), kv.substr(eq + 1), o));
  }
  return Status::Ok();
}

// How a node on another machine joins: only possible when the head listens beyond loopback,
// and then at an address other machines can reach (this host's name for 0.0.0.0).
std::string RemoteJoinHint(const std::string& bind, int port, const fs::path& token_file) {
  const bool loopback = bind.rfind("127.", 0) == 0 || bind == "localhost" || bind == "::1";
  if (loopback) {
    return "the head listens on " + bind +
           " only; start it with --bind ADDR (an address other machines reach) to add nodes "
           "from elsewhere";
  }
  char host[256] = {};
  const std::string where =
      bind == "0.0.0.0" || bind == "::" ? (::gethostname(host, sizeof(host) - 1) == 0 ? host : bind)
                                        : bind;
  return "ORRERY_TOKEN=<the token in " + token_file.string() + "> orrery start --address " + where +
         ":" + std::to_string(port) + " --bind <that machine's address>";
}

// Stops `daemons` (not other sessions under the root): SIGTERM, SIGKILL after 5 s, reaping.
// Returns kExitFailed if one outlived that.
int StopOwnDaemons(const fs::path& session,
                   const std::vector<std::pair<std::string, pid_t>>& daemons, std::ostream& out,
                   std::ostream& err) {
  (void)WriteFileAtomic(session / kStopMarker, "\n");
  for (const auto& d : daemons) {
    if (IsDaemonProcess(d.second)) ::kill(d.second, SIGTERM);
  }
  auto all_gone = [&] {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    return std::none_of(daemons.begin(), daemons.end(),
                        [](const auto& d) { return IsProcessAlive(d.second); });
  };
  bool gone = WaitFor(all_gone, 0, milliseconds(5000));
  if (!gone) {
    for (const auto& d : daemons) {
      if (IsDaemonProcess(d.second)) ::kill(d.second, SIGKILL);
    }
    gone = WaitFor(all_gone, 0, milliseconds(2000));
  }
  out << "Stopped the daemons of " << session.string() << (gone ? "" : " (some survived)")
      << std::endl;
  if (!gone) err << "orrery start: a daemon of " << session.string() << " outlived SIGKILL\n";
  return gone ? kExitOk : kExitFailed;
}

// --block: the foreground process of a service (systemd Type=simple, a container's main
// process). Waits for SIGTERM/SIGINT/SIGHUP (then stops the daemons, exit 0) or for one of
// `daemons` to end: after `orrery stop` (the session holds kStopMarker) that is exit 0, else
// it stops the others (only this session's: not other sessions under the root) and exits 1
// naming the daemon, so a restart policy starts it again (a node the head declared dead stops
// by itself; restarted, it rejoins as a new node). Reaps every child: `start` made itself the
// daemons' subreaper, and as a container's PID 1 it inherits every orphan.
int BlockUntilStopped(const fs::path& session,
                      const std::vector<std::pair<std::string, pid_t>>& daemons, std::ostream& out,
                      std::ostream& err) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  out << "Blocking until SIGTERM or `orrery stop` (--block)." << std::endl;
  std::map<pid_t, int> ended;  // daemon pid -> wait status (-1: not our child, status unknown)
  while (true) {
    timespec ts{1, 0};
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      out << "orrery start: got " << strsignal(sig) << "; stopping the daemons" << std::endl;
      return StopOwnDaemons(session, daemons, out, err);
    }
    int st = 0;
    for (pid_t p; (p = ::waitpid(-1, &st, WNOHANG)) > 0;) ended.emplace(p, st);
    const std::pair<std::string, pid_t>* gone = nullptr;
    for (const auto& d : daemons) {
      if (ended.count(d.second) || !IsProcessAlive(d.second)) {
        ended.emplace(d.second, -1);
        gone = &d;
        break;
      }
    }
    if (!gone) continue;
    std::error_code ec;
    if (fs::exists(session / kStopMarker, ec)) {
      // `stop` ends the others too (SIGKILL after 5 s): wait for them, reaping.
      const auto deadline = Clock::now() + std::chrono::seconds(8);
      auto all_gone = [&] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return std::none_of(daemons.begin(), daemons.end(),
                            [](const auto& d) { return IsProcessAlive(d.second); });
      };
      while (!all_gone() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(50));
      out << "orrery start: stopped by `orrery stop`" << std::endl;
      return all_gone() ? kExitOk : StopOwnDaemons(session, daemons, out, err);
    }
    const int ws = ended[gone->second];
    std::string how = "exited";
    if (ws != -1 && WIFEXITED(ws)) how = "exited with code " + std::to_string(WEXITSTATUS(ws));
    if (ws != -1 && WIFSIGNALED(ws)) {
      how = "was killed by signal " + std::to_string(WTERMSIG(ws)) + " (" +
            strsignal(WTERMSIG(ws)) + ")";
    }
    err << "orrery start: the " << gone->first << " daemon (pid " << gone->second << ") " << how
        << " without `orrery stop`; stopping the others (logs in " << (session / "logs").string()
        << ")" << std::endl;
    StopOwnDaemons(session, daemons, out, err);
    return kExitFailed;
  }
}

// --- fault tolerance: the head's command line, one argument per line, in its session; what
// `start --head --resume` runs again (live/head/head_store.h: the restarted head takes the
// cluster over from its store).
constexpr const char* kHeadArgsFile = "head_args";

// `orrery start --head --resume`: the latest session's head, started again as it was first
// started (same session dir, so the same token and store; the port it had, also when the OS
// chose it). Refused when that head still runs, when the session was stopped with `orrery stop`
// (its store was cleared), or when the session has no recorded command line.
int ResumeHead(const fs::path& root, bool block, std::ostream& out, std::ostream& err) {
  auto session = LatestSession(root);
  if (!session.ok()) {
    err << "orrery start --resume: no session under " << root.string()
        << " (start a cluster with orrery start --head)\n";
    return kExitFailed;
  }
  for (const auto& [name, pid] : ReadPidFiles(*session)) {
    if (name == "head" && IsDaemonProcess(pid)) {
      err << "orrery start --resume: the head of " << session->string() << " is running (pid "
          << pid << "): nothing to resume\n";
      return kExitFailed;
    }
  }
  if (fs::exists(*session / kStopMarker)) {
    err << "orrery start --resume: " << session->string()
        << " was stopped with `orrery stop` (its state was cleared): start a new cluster with "
           "orrery start --head\n";
    return kExitFailed;
  }
  auto recorded = ReadFileTrimmed(*session / kHeadArgsFile);
  if (!recorded.ok() || recorded->empty()) {
    err << "orrery start --resume: " << session->string() << " has no " << kHeadArgsFile
        << " (started by an older orrery): cannot tell how its head was started\n";
    return kExitFailed;
  }
  std::vector<std::string> head_args;
  std::istringstream lines(*recorded);
  for (std::string line; std::getline(lines, line);) head_args.push_back(line);
  // The port the head had: the recorded one, or the one the OS chose (head_port).
  auto chosen = ReadFileTrimmed(*session / "head_port");
  for (size_t i = 0; i + 1 < head_args.size(); ++i) {
    if (head_args[i] == "--port" && head_args[i + 1] == "0" && chosen.ok() && !chosen->empty()) {
      head_args[i + 1] = *chosen;
    }
  }
  auto address = ReadFileTrimmed(*session / "address");
  auto token = ReadFileTrimmed(*session / "token");
  if (!address.ok() || !token.ok()) {
    err << "orrery start --resume: " << session->string()
        << " has no address or token file: cannot resume it\n";
    return kExitFailed;
  }
  const fs::path log = *session / "logs" / "head.log";
  const auto started = Clock::now();
  auto pid = SpawnDaemon(SelfExe(), head_args, log);
  if (!pid.ok()) {
    err << "orrery start --resume: " << pid.status().message() << "\n";
    return kExitFailed;
  }
  (void)WriteFileAtomic(*session / "pids" / "head.pid", std::to_string(*pid) + "\n");
  const bool up = WaitFor(
      [&] { return HeadClient(*address, *token, milliseconds(1000)).Ready().ok(); }, *pid,
      milliseconds(15000));
  if (!up) {
    err << "orrery start --resume: the head did not come up; its log (" << log.string()
        << "):\n"
        << LogTail(log) << "\n";
    KillQuietly(*pid);
    return kExitFailed;
  }
  const double took = std::chrono::duration<double>(Clock::now() - started).count();
  out << "Resumed the Orrery head at " << *address << " (session " << session->string()
      << ", pid " << *pid << ") in " << std::fixed << std::setprecision(2) << took << " s\n";
  if (auto nodes = HeadClient(*address, *token, milliseconds(3000)).GetClusterView(); nodes.ok()) {
    int alive = 0;
    for (const auto& n : nodes->nodes()) alive += n.state() == v1::NODE_STATE_ALIVE ? 1 : 0;
    out << "  " << alive << " node(s) restored; each reports again within the reconnect grace "
        << "(60 s), or is declared dead then\n";
  }
  if (!block) return kExitOk;
  return BlockUntilStopped(*session, {{"head", *pid}}, out, err);
}

int RunStart(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  NodeFlags f;
  std::string address, temp_dir;
  int port = kDefaultHeadPort;
  // --- jobs: where the job records live (they outlive a session) and the jobs API port.
  std::string job_store;
  int dashboard_port = 8265;
  desc.add_options()("job-store", po::value(&job_store),
                     "head: the job store file (default <temp dir>/job_store.sqlite)")(
      "dashboard-port", po::value(&dashboard_port),
      "head: port of the HTTP jobs API (default 8265; 0: any free port)");
  // --- jobs: limits (JobManagerOptions) and worker log rotation (live/node/worker_log.h: the node's
  // workers read ORRERY_LOG_MAX_BYTES / ORRERY_LOG_BACKUP_COUNT, inherited from here).
  int max_running_jobs = HeadOptions().max_running_jobs;
  uint64_t job_log_max_bytes = HeadOptions().job_log.max_bytes;
  int job_log_backups = HeadOptions().job_log.backups;
  std::string worker_log_max_bytes, worker_log_backups;
  desc.add_options()("max-running-jobs", po::value(&max_running_jobs),
                     "head: job drivers running at once; more wait PENDING (default 16)")(
      "job-log-max-bytes", po::value(&job_log_max_bytes),
      "head: a job log rotates at this size (default 104857600)")(
      "job-log-backups", po::value(&job_log_backups),
      "head: rotated files kept per job log (default 2)")(
      "worker-log-max-bytes", po::value(&worker_log_max_bytes),
      "a worker log file rotates at this size (default 536870912)")(
      "worker-log-backups", po::value(&worker_log_backups),
      "rotated files kept per worker log file (default 5)");
  // Liveness (HeadOptions): a node is dead after this many checks without a heartbeat.
  int64_t health_period_ms = HeadOptions().health_check_period.count();
  int health_failures = HeadOptions().health_check_failures;
  desc.add_options()("health-check-period-ms", po::value(&health_period_ms),
                     "with --head: node health-check period in ms (default 1000)")(
      "health-check-failures", po::value(&health_failures),
      "with --head: failed checks in a row before a node is declared dead (default 5)");
  int head_metrics_port = 0;  // --- Metrics
  std::string policy;             // scheduling: a cluster setting
  std::vector<std::string> scheduler_sets;
  desc.add_options()("policy", po::value(&policy),
                     "with --head: the cluster's scheduling policy (orrery policies; default "
                     "hybrid); every node decides with it")(
      "set", po::value(&scheduler_sets)->composing(),
      "with --head: a policy option, scheduler.KEY=VALUE (spread_threshold, top_k_absolute, "
      "top_k_fraction, avoid_gpu_nodes)");
  std::string autoscaler_config;  // --- autoscaler
  desc.add_options()("autoscaler-config", po::value(&autoscaler_config),
                     "with --head: run the autoscaler with these node types (YAML, see README)");
  desc.add_options()("head-metrics-port", po::value(&head_metrics_port),
                     "with --head: the head's Prometheus /metrics port (default 0: any free port; "
                     "-1: none)");
  // Deployment (live/deploy/): a service manager's foreground process, an operator's token.
  std::string token_file;
  desc.add_options()("block", "stay in the foreground until SIGTERM or `orrery stop`; exit 1 if a "
                              "daemon ends by itself (systemd, containers)")(
      "node-port", po::value(&f.node_port),
      "the node's gRPC port (default 0: any free port; pin it for a firewall)")(
      "token-file", po::value(&token_file),
      "the cluster token from this file (head: use it instead of a new one; node: instead of "
      "$ORRERY_TOKEN)");
  desc.add_options()("resume",
                     "with --head: start the head of the latest session again after it died "
                     "(kill -9, a crash): same session, token, port and store; its nodes, actors "
                     "and placement groups carry on (README, \"Fault tolerance\")");
  desc.add_options()("help,h", "show this help")("head", "start the head (and a node)")(
      "address", po::value(&address), "join the cluster whose head is at HOST:PORT")(
      "port", po::value(&port), "head port (default 6379)")("temp-dir", po::value(&temp_dir),
                                                            "session root (default /tmp/orrery)");
  AddNodeOptions(desc, f);
  po::variables_map vm;
  if (auto rc = cli::ParseCommand("start", args, desc, nullptr, kStartUsage, vm, out, err))
    return *rc;
  if (max_running_jobs < 1 || max_running_jobs > 100000 || job_log_max_bytes < 1024 ||
      job_log_backups < 0 || job_log_backups > 100) {
    err << "orrery start: --max-running-jobs: expected 1..100000, --job-log-max-bytes: expected "
           ">= 1024, --job-log-backups: expected 0..100\n";
    return kExitUsage;
  }
  for (const auto& [var, v] : {std::pair{"ORRERY_LOG_MAX_BYTES", &worker_log_max_bytes},
                               std::pair{"ORRERY_LOG_BACKUP_COUNT", &worker_log_backups}}) {
    if (v->empty()) continue;
    if (v->find_first_not_of("0123456789") != std::string::npos || v->size() > 19 ||
        (*v)[0] == '0') {
      err << "orrery start: --worker-log-" << (v == &worker_log_max_bytes ? "max-bytes" : "backups")
          << ": expected a positive whole number, got '" << *v << "'\n";
      return kExitUsage;
    }
    ::setenv(var, v->c_str(), 1);  // the daemons started below, and their workers, inherit it
  }
  const bool head = vm.count("head") != 0;
  if (head == !address.empty()) {
    err << "orrery start: pass exactly one of --head and --address\n" << kStartUsage;
    return kExitUsage;
  }
  if (port < 0 || port > 65535) {
    err << "orrery start: --port: expected 0..65535\n";
    return kExitUsage;
  }
  if (!head && (!policy.empty() || !scheduler_sets.empty())) {
    err << "orrery start: --policy and --set scheduler.* are cluster settings: pass them with "
           "--head (a joining node uses the cluster's)\n";
    return kExitUsage;
  }
  {
    SchedulerOptions check;
    if (Status s = ParseSchedulingFlags(policy, scheduler_sets, &check); !s.ok()) {
      err << "orrery start: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (vm.count("node-name")) {
    if (Status s = ValidateNodeName(f.node_name); !s.ok()) {
      err << "orrery start: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  {  // --- runtime envs
    NodeOptions check;
    if (Status s = ApplyRuntimeEnvFlags(f, &check); !s.ok()) {
      err << "orrery start: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (health_period_ms < 10 || health_period_ms > 3600000) {
    err << "orrery start: --health-check-period-ms: expected 10..3600000, got " << health_period_ms
        << "\n";
    return kExitUsage;
  }
  if (health_failures < 1 || health_failures > 1000) {
    err << "orrery start: --health-check-failures: expected 1..1000, got " << health_failures
        << "\n";
    return kExitUsage;
  }
  if (dashboard_port < 0 || dashboard_port > 65535) {  // --- jobs
    err << "orrery start: --dashboard-port: expected 0..65535\n";
    return kExitUsage;
  }
  // --- Metrics
  for (const auto& [flag, p] : {std::pair<const char*, int>{"--metrics-port", f.metrics_port},
                                {"--head-metrics-port", head_metrics_port}}) {
    if (p < -1 || p > 65535) {
      err << "orrery start: " << flag << ": expected -1 (none) or 0..65535, got " << p << "\n";
      return kExitUsage;
    }
  }
  if (f.health_port < -1 || f.health_port > 65535) {
    err << "orrery start: --health-port: expected 0..65535, got " << f.health_port << "\n";
    return kExitUsage;
  }
  if (Status s = CheckBindAddress(f.bind); !s.ok()) {
    err << "orrery start: " << s.message() << "\n";
    return kExitUsage;
  }
  if (!f.node_ip.empty()) {  // an address this machine owns, where the daemons listen
    if (Status s = CheckNodeIp(f.node_ip, f.bind); !s.ok()) {
      err << "orrery start: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  // Validate the node's resources and labels before anything starts.
  const double cpus = std::max(1u, std::thread::hardware_concurrency());
  auto res = MergeResources(vm, f.resources, cpus);
  if (res.ok() && !vm.count("num-gpus")) {
    if (const int g = DetectGpus(); g > 0) (*res)["GPU"] = g;  // --- GPUs
  }
  if (!res.ok()) {
    err << "orrery start: " << res.status().message() << "\n";
    return kExitUsage;
  }
  if (auto t = NodeTotals(*res); !t.ok()) {
    err << "orrery start: " << t.status().message() << "\n";
    return kExitUsage;
  }
  if (auto l = ParseLabels(f.labels); !l.ok()) {
    err << "orrery start: " << l.status().message() << "\n";
    return kExitUsage;
  }
  const fs::path root = TempRoot(temp_dir);
  // The root holds the token, job store and logs: it must be this user's private directory.
  if (Status s = EnsurePrivateRoot(root); !s.ok()) {
    err << "orrery start: " << s.message() << "\n";
    return kExitUsage;
  }
  if (vm.count("resume")) {
    if (!head) {
      err << "orrery start: --resume needs --head\n";
      return kExitUsage;
    }
    return ResumeHead(root, vm.count("block") != 0, out, err);
  }
  if (!autoscaler_config.empty()) {  // --- autoscaler: checked before anything starts
    if (!head) {
      err << "orrery start: --autoscaler-config needs --head\n";
      return kExitUsage;
    }
    if (auto c = LoadAutoscalerConfig(autoscaler_config); !c.ok()) {
      err << "orrery start: --autoscaler-config: " << c.status().message() << "\n";
      return kExitUsage;
    }
    autoscaler_config = fs::absolute(autoscaler_config).string();
  }

  std::string file_token;
  if (!token_file.empty()) {
    auto t = ReadTokenFile(token_file);
    if (!t.ok()) {
      err << "orrery start: " << t.status().message() << "\n";
      return kExitUsage;
    }
    file_token = *t;
    token_file = fs::absolute(token_file).string();
  }
  const bool block = vm.count("block") != 0;
  // The daemons double-fork away from this process; as their subreaper it can wait for them.
  if (block) ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  // Ports first: a second head on a port in use must not start (nor print "Started"); a node
  // checks its own metrics port.
  if (f.node_port < 0 || f.node_port > 65535) {
    err << "orrery start: --node-port: expected 0..65535, got " << f.node_port << "\n";
    return kExitUsage;
  }
  std::vector<std::pair<std::string, int>> ports = {
      {"metrics", f.metrics_port}, {"node", f.node_port}, {"health", f.health_port}};
  if (head) {
    ports.insert(ports.begin(), {{"head", port}, {"dashboard", dashboard_port},
                                 {"head-metrics", head_metrics_port}});
  }
  for (const auto& [what, p] : ports) {
    if (p <= 0) continue;
    if (Status s = CheckPortFree(f.bind, p, what); !s.ok()) {
      err << "orrery start: " << s.message() << "\n";
      return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
    }
  }

  if (!head) {
    std::string token = file_token;
    if (const char* t = std::getenv("ORRERY_TOKEN"); token.empty() && t && *t) token = t;
    auto session = LatestSession(root);
    if (token.empty() && session.ok()) {
      if (auto t = ReadFileTrimmed(*session / "token"); t.ok()) token = *t;
    }
    if (token.empty()) {
      err << "orrery start: no cluster token: set ORRERY_TOKEN (the head's session dir has it "
          << "in 'token') or pass the head's --temp-dir\n";
      return kExitUsage;
    }
    if (auto ready = HeadClient(address, token, milliseconds(3000)).Ready(); !ready.ok()) {
      err << "orrery start: no cluster reachable at " << address << ": "
          << DescribeUnreachable(ready.status()) << "\n";
      return kExitUsage;
    }
    if (!f.node_name.empty()) {  // a clashing name: refused before a daemon starts
      if (auto nodes = HeadClient(address, token, milliseconds(3000)).ListNodes(); nodes.ok()) {
        for (const auto& n : nodes->nodes()) {
          if (n.node_id() == f.node_name && n.state() != v1::NODE_STATE_DEAD) {
            err << "orrery start: --node-name " << f.node_name << ": an alive node of that name is "
                << "already registered at " << n.address()
                << " (pick another name, or stop that node first)\n";
            return kExitUsage;
          }
        }
      }
    }
    if (!session.ok()) {
      session = CreateSession(root);
      if (!session.ok()) {
        err << "orrery start: " << session.status().message() << "\n";
        return kExitFailed;
      }
      (void)WriteFileAtomic(*session / "address", address + "\n");
    }
    std::error_code ec;
    fs::remove(*session / kStopMarker, ec);  // an earlier stop of a session joined again
    pid_t node_pid = -1;
    const int rc = StartNode(*session, address, token, vm, f, false, out, err, &node_pid);
    if (rc != kExitOk || !block) return rc;
    return BlockUntilStopped(*session, {{"node", node_pid}}, out, err);
  }

  CleanStaleSessions(root);  // object stores that killed nodes left behind
  auto session = CreateSession(root);
  if (!session.ok()) {
    err << "orrery start: " << session.status().message() << "\n";
    return kExitFailed;
  }
  const fs::path log = *session / "logs" / "head.log";
  // --- jobs: the store defaults to the temp root, so `stop` + `start --head` keeps the records.
  if (job_store.empty()) job_store = (root / "job_store.sqlite").string();
  job_store = fs::absolute(job_store).string();
  std::vector<std::string> head_args = {
      "__head", "--session-dir", session->string(), "--port", std::to_string(port), "--bind",
      f.bind, "--job-store", job_store, "--dashboard-port", std::to_string(dashboard_port),
      "--metrics-port", std::to_string(head_metrics_port),
      "--health-check-period-ms", std::to_string(health_period_ms),
      "--health-check-failures", std::to_string(health_failures),
      "--max-running-jobs", std::to_string(max_running_jobs),  // --- jobs: limits
      "--job-log-max-bytes", std::to_string(job_log_max_bytes),
      "--job-log-backups", std::to_string(job_log_backups)};
  if (!f.node_ip.empty()) head_args.insert(head_args.end(), {"--node-ip", f.node_ip});
  if (!autoscaler_config.empty()) {  // --- autoscaler
    head_args.insert(head_args.end(), {"--autoscaler-config", autoscaler_config});
  }
  if (!policy.empty()) head_args.insert(head_args.end(), {"--policy", policy});
  for (const auto& kv : scheduler_sets) head_args.insert(head_args.end(), {"--set", kv});
  if (!token_file.empty()) head_args.insert(head_args.end(), {"--token-file", token_file});
  // --- fault tolerance: `start --head --resume` starts this exact command line again.
  std::string recorded;
  for (const auto& a : head_args) recorded += a + "\n";
  (void)WriteFileAtomic(*session / kHeadArgsFile, recorded);
  auto pid = SpawnDaemon(SelfExe(), head_args, log);
  if (!pid.ok()) {
    err << "orrery start: " << pid.status().message() << "\n";
    return kExitFailed;
  }
  (void)WriteFileAtomic(*session / "pids" / "head.pid", std::to_string(*pid) + "\n");
  const std::string host = !f.node_ip.empty()    ? f.node_ip
                           : f.bind == "0.0.0.0" ? "127.0.0.1"
                                                 : f.bind;
  std::string head_address = host + ":" + std::to_string(port);
  std::string token;
  bool port_known = port != 0;
  const bool up = WaitFor(
      [&] {
        if (token.empty()) {
          auto t = ReadFileTrimmed(*session / "token");
          if (!t.ok() || t->empty()) return false;
          token = *t;
        }
        if (!port_known) {  // the OS chose the port: the head wrote it before the token
          auto p = ReadFileTrimmed(*session / "head_port");
          if (!p.ok() || p->empty()) return false;
          head_address = host + ":" + *p;
          port_known = true;
        }
        return HeadClient(head_address, token, milliseconds(1000)).Ready().ok();
      },
      *pid, milliseconds(15000));
  if (!up) {
    err << "orrery start: the head did not come up; its log (" << log.string() << "):\n"
        << LogTail(log) << "\n";
    KillQuietly(*pid);
    return kExitFailed;
  }
  (void)WriteFileAtomic(*session / "address", head_address + "\n");
  out << "Started the Orrery head at " << head_address << " (session " << session->string()
      << ", pid " << *pid << ")\n";
  if (auto d = ReadFileTrimmed(*session / "dashboard_address"); d.ok()) {  // --- jobs
    const char* scheme = ProcessTls().enabled() ? "https://" : "http://";
    // --- dashboard: the one place the URL with the token is shown (it logs the browser in).
    out << "Dashboard: " << scheme << *d << "/?token=" << token << "\n";
    out << "Jobs API at " << scheme << *d << "/api/jobs/ (job store " << job_store << ")\n"
        << "  health: " << scheme << *d << "/readyz\n";
  }
  if (auto ready = HeadClient(head_address, token, milliseconds(3000)).Ready();
      ready.ok() && !ready->metrics_address().empty()) {
    out << "  head metrics: http://" << ready->metrics_address() << "/metrics\n";
  }
  out << "  Prometheus targets (file_sd): "  // --- Metrics
      << (*session / "metrics" / "prometheus_targets.json").string() << "\n";
  pid_t node_pid = -1;
  const int rc = StartNode(*session, head_address, token, vm, f, true, out, err, &node_pid);
  if (rc != kExitOk) {
    KillQuietly(*pid);
    return rc;
  }
  const std::string td = temp_dir.empty() ? "" : " --temp-dir " + temp_dir;
  out << "\nAddress: " << head_address << "\n"
      << "To add a node on this machine:   orrery start --address " << head_address << td << "\n"
      << "On another machine:              " << RemoteJoinHint(f.bind, port, *session / "token")
      << "\n"
      << "Run a task:                      orrery task run" << td << " -- echo hello\n"
      << "Submit a job:                    orrery job submit" << td << " -- echo hello\n"
      << "Look at it:                      orrery status" << td << "\n"
      << "Stop it:                         orrery stop" << td << "\n";
  if (!block) return kExitOk;
  return BlockUntilStopped(*session, {{"head", *pid}, {"node", node_pid}}, out, err);
}

int RunStop(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string temp_dir;
  desc.add_options()("help,h", "show this help")("temp-dir", po::value(&temp_dir),
                                                 "session root (default /tmp/orrery)");
  po::variables_map vm;
  if (!ParseOptions("stop", args, desc, vm, err)) return kExitUsage;
  if (vm.count("help")) {
    out << "usage: orrery stop [--temp-dir DIR]\n"
        << "Stops this machine's daemons of every session under the temp dir.\n"
        << desc;
    return kExitOk;
  }
  const fs::path root = TempRoot(temp_dir);
  const std::vector<fs::path> sessions = ListSessions(root);
  if (sessions.empty()) {
    out << "No Orrery session found in " << root.string() << ".\n";
    return kExitOk;
  }
  // Every session, not only session_latest: daemons of an earlier `start` on the same temp
  // dir are otherwise left running where no command reaches them.
  struct Daemon {
    fs::path session;
    std::string name;
    pid_t pid;
  };
  std::vector<Daemon> live;
  for (const fs::path& session : sessions) {
    for (const auto& [name, pid] : ReadPidFiles(session)) {
      if (IsDaemonProcess(pid)) live.push_back({session, name, pid});
    }
  }
  // Marked first, so a `start --block` watching its daemons sees a requested stop.
  for (const auto& d : live) (void)WriteFileAtomic(d.session / kStopMarker, "\n");
  // SIGTERM: daemons stop their tasks and exit; SIGKILL what is left after the grace period.
  for (const auto& d : live) ::kill(d.pid, SIGTERM);
  auto all_gone = [&] {
    return std::none_of(live.begin(), live.end(), [](const Daemon& d) { return IsProcessAlive(d.pid); });
  };
  bool gone = WaitFor(all_gone, 0, milliseconds(5000));
  int killed = 0;
  if (!gone) {
    for (const auto& d : live) {
      if (IsDaemonProcess(d.pid)) {
        ::kill(d.pid, SIGKILL);
        ++killed;
      }
    }
    gone = WaitFor(all_gone, 0, milliseconds(2000));
  }
  std::error_code ec;
  std::set<fs::path> touched;
  for (const fs::path& session : sessions) {
    for (const auto& [name, pid] : ReadPidFiles(session)) {
      if (!IsProcessAlive(pid)) fs::remove(session / "pids" / (name + ".pid"), ec);
    }
  }
  for (const auto& d : live) touched.insert(d.session);
  CleanStaleSessions(root);
  out << "Stopped " << live.size() << " daemon(s)";
  if (touched.size() == 1) {
    out << " of " << touched.begin()->string();
  } else {
    out << " in " << touched.size() << " session(s) under " << root.string();
  }
  if (killed > 0) out << " (" << killed << " killed after 5 s)";
  out << ".\n";
  if (!gone) {
    err << "orrery stop: still running:";
    for (const auto& d : live) {
      if (IsProcessAlive(d.pid)) err << " " << d.name << " (pid " << d.pid << ", " << d.session.string() << ")";
    }
    err << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

// ---- status / list -------------------------------------------------------------------------

std::string NodeStateText(v1::NodeState s) { return NodeStateName(FromProto(s)); }

std::string TaskStateText(v1::TaskState s) {
  std::string n = v1::TaskState_Name(s);
  const std::string prefix = "TASK_STATE_";
  return n.rfind(prefix, 0) == 0 ? n.substr(prefix.size()) : n;
}

json ResourcesJson(const v1::Resources& r) {
  json j = json::object();
  auto set = FromProto(r, "resources");
  if (set.ok()) {
    set->ForEach([&](std::string_view k, Quantity q) { j[std::string(k)] = q.ToDouble(); });
  }
  return j;
}

std::string ResourcesText(const v1::Resources& r) {
  auto set = FromProto(r, "resources");
  return set.ok() ? set->ToString() : "?";
}

std::string UsedTotal(const ResourceSet& total, const ResourceSet& avail) {
  std::ostringstream s;
  bool first = true;
  total.ForEach([&](std::string_view k, Quantity q) {
    s << (first ? "" : ", ") << k << " " << (q - avail.Get(k)).ToString() << "/" << q.ToString();
    first = false;
  });
  return s.str();
}

struct CommonFlags {
  std::string address, temp_dir, format = "table";
};

void AddCommon(po::options_description& d, CommonFlags& c, bool format) {
  d.add_options()("help,h", "show this help")("address", po::value(&c.address),
                                              "head HOST:PORT (default $ORRERY_ADDRESS)")(
      "temp-dir", po::value(&c.temp_dir), "session root (default /tmp/orrery)");
  if (format) d.add_options()("format", po::value(&c.format), "table (default) or json");
}

int RunStatus(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  CommonFlags c;
  AddCommon(desc, c, false);
  po::variables_map vm;
  if (!ParseOptions("status", args, desc, vm, err)) return kExitUsage;
  if (vm.count("help")) {
    out << "usage: orrery status [--address A] [--temp-dir DIR]\n" << desc;
    return kExitOk;
  }
  auto cluster = FindCluster("status", c.address, c.temp_dir, err);
  if (!cluster) return kExitUsage;
  // The view: the nodes and the cluster's scheduling setting.
  auto nodes = HeadClient(cluster->address, cluster->token).GetClusterView();
  if (!nodes.ok()) {
    err << "orrery status: " << nodes.status().ToString() << "\n";
    return kExitFailed;
  }
  ResourceSet total, avail;
  int alive = 0, dead = 0;
  std::map<std::pair<std::string, std::string>, int> demand;  // (shape, reason) -> count
  out << "======== Cluster status (" << cluster->address << ") ========\n";
  // --- dashboard: its address (the token is in the session dir's 'token' file, or the URL
  // `orrery start --head` printed).
  if (auto ready = HeadClient(cluster->address, cluster->token, milliseconds(3000)).Ready();
      ready.ok() && !ready->dashboard_url().empty()) {
    out << "Dashboard: " << ready->dashboard_url()
        << " (sign in: open it with ?token=<the session dir's 'token' file>)\n";
  }
  if (nodes->has_scheduler()) {
    auto sched = SchedulerFromProto(nodes->scheduler());
    out << "Scheduling policy: "
        << (sched.ok() ? DescribeScheduling(*sched) : nodes->scheduler().policy()) << "\n";
  }
  out << "Nodes:\n";
  for (const auto& n : nodes->nodes()) {
    auto t = FromProto(n.total(), "total");
    auto a = FromProto(n.available(), "available");
    if (!t.ok() || !a.ok()) continue;
    const bool is_alive = n.state() == v1::NODE_STATE_ALIVE;
    (is_alive ? alive : dead) += 1;
    out << "  " << std::left << std::setw(20) << n.node_id() << std::setw(22) << n.address()
        << std::setw(7) << NodeStateText(n.state()) << UsedTotal(*t, *a)
        << (n.is_head_node() ? "  (head)" : "") << "\n";
    if (!is_alive) continue;
    total += *t;
    avail += *a;
    for (const auto& d : n.pending()) {
      demand[{ResourcesText(d.shape()), WaitReasonName(FromProto(d.wait_reason()))}] += d.count();
    }
  }
  out << "  " << alive << " alive, " << dead << " dead\n\n";
  out << "Resources (used/total over alive nodes):\n";
  total.ForEach([&](std::string_view k, Quantity q) {
    out << "  " << k << ": " << (q - avail.Get(k)).ToString() << "/" << q.ToString() << "\n";
  });
  out << "\nPending demand:\n";
  if (demand.empty()) out << "  (no resource demands)\n";
  for (const auto& [key, count] : demand) {
    out << "  " << key.first << ": " << count << " pending task(s), " << key.second << "\n";
  }
  // --- autoscaler: pending launches, active nodes, infeasible demand.
  if (auto as = GetAutoscalerStatus(cluster->address, cluster->token); as.ok()) {
    PrintAutoscalerStatus(*as, out);
  }
  // --- actors: counts by state from the head's directory.
  if (auto actors = ListActors(cluster->address, cluster->token); actors.ok()) {
    std::map<std::string, int> by_state;
    for (const auto& a : actors->actors()) ++by_state[ActorStateText(a.state())];
    out << "\nActors:\n";
    if (by_state.empty()) out << "  (no actors)\n";
    for (const auto& [state, count] : by_state) out << "  " << state << ": " << count << "\n";
  }
  // --- Metrics: where the head and each alive node serve Prometheus metrics.
  bool metrics_header = false;
  if (auto ready = HeadClient(cluster->address, cluster->token, milliseconds(3000)).Ready();
      ready.ok() && !ready->metrics_address().empty()) {
    out << "\nMetrics (Prometheus):\n  head: http://" << ready->metrics_address() << "/metrics\n";
    metrics_header = true;
  }
  for (const auto& n : nodes->nodes()) {
    if (n.state() != v1::NODE_STATE_ALIVE || n.metrics_address().empty()) continue;
    if (!metrics_header) out << "\nMetrics (Prometheus):\n";
    metrics_header = true;
    out << "  " << n.node_id() << ": http://" << n.metrics_address() << "/metrics\n";
  }
  return kExitOk;
}

int RunList(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  CommonFlags c;
  std::string what;
  AddCommon(desc, c, true);
  desc.add_options()("what", po::value(&what), "nodes | tasks");
  po::variables_map vm;
  const char* usage =
      "usage: orrery list nodes|tasks|actors|placement-groups|jobs [--format table|json] [--address A] "
      "[--temp-dir DIR]\n";
  if (auto rc = cli::ParseCommand("list", args, desc, "what", usage, vm, out, err)) return *rc;
  if (what != "nodes" && what != "tasks" && what != "placement-groups" && what != "actors" &&
      what != "jobs") {
    err << "orrery list: expected 'nodes', 'tasks', 'actors', 'placement-groups' or 'jobs'"
        << (what.empty() ? "" : ", got '" + what + "'") << "\n"
        << usage;
    return kExitUsage;
  }
  if (c.format != "table" && c.format != "json") {
    err << "orrery list: --format: expected table or json\n";
    return kExitUsage;
  }
  auto cluster = FindCluster("list", c.address, c.temp_dir, err);
  if (!cluster) return kExitUsage;
  if (what == "jobs") return RunListJobs(*cluster, c.format, out, err);  // --- jobs
  HeadClient head(cluster->address, cluster->token);
  if (what == "nodes") {
    auto nodes = head.ListNodes();
    if (!nodes.ok()) {
      err << "orrery list: " << nodes.status().ToString() << "\n";
      return kExitFailed;
    }
    if (c.format == "json") {
      json arr = json::array();
      for (const auto& n : nodes->nodes()) {
        arr.push_back({{"node_id", n.node_id()},
                       {"address", n.address()},
                       {"state", NodeStateText(n.state())},
                       {"total", ResourcesJson(n.total())},
                       {"available", ResourcesJson(n.available())},
                       {"labels", json(std::map<std::string, std::string>(n.labels().begin(),
                                                                          n.labels().end()))},
                       {"is_head_node", n.is_head_node()},
                       {"pid", n.pid()},
                       {"ms_since_heartbeat", n.ms_since_heartbeat()},
                       {"metrics_address", n.metrics_address()}});
      }
      out << arr.dump(2) << "\n";
      return kExitOk;
    }
    out << std::left << std::setw(20) << "NODE" << std::setw(22) << "ADDRESS" << std::setw(7)
        << "STATE"
        << "RESOURCES (used/total)\n";
    for (const auto& n : nodes->nodes()) {
      auto t = FromProto(n.total(), "total");
      auto a = FromProto(n.available(), "available");
      out << std::setw(20) << n.node_id() << std::setw(22) << n.address() << std::setw(7)
          << NodeStateText(n.state()) << (t.ok() && a.ok() ? UsedTotal(*t, *a) : "?") << "\n";
    }
    return kExitOk;
  }
  if (what == "actors") return PrintActors(cluster->address, cluster->token, c.format, out, err);
  if (what == "placement-groups") {
    auto groups = head.ListPlacementGroups();
    if (!groups.ok()) {
      err << "orrery list: " << groups.status().ToString() << "\n";
      return kExitFailed;
    }
    auto state_text = [](v1::PlacementGroupState st) {
      std::string name = v1::PlacementGroupState_Name(st);
      name = name.substr(std::string("PLACEMENT_GROUP_STATE_").size());
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return name;
    };
    if (c.format == "json") {
      json arr = json::array();
      for (const auto& g : groups->groups()) {
        json bundles = json::array();
        for (const auto& b : g.bundles()) bundles.push_back(ResourcesJson(b));
        arr.push_back({{"group_id", g.group_id()},
                       {"strategy", g.strategy()},
                       {"state", state_text(g.state())},
                       {"bundles", bundles},
                       {"bundle_nodes",
                        std::vector<std::string>(g.bundle_nodes().begin(), g.bundle_nodes().end())},
                       {"attempts", g.attempts()},
                       {"reason", g.reason()}});
      }
      out << arr.dump(2) << "\n";
      return kExitOk;
    }
    out << std::left << std::setw(24) << "GROUP" << std::setw(15) << "STRATEGY" << std::setw(12)
        << "STATE"
        << "BUNDLE NODES\n";
    for (const auto& g : groups->groups()) {
      std::string where;
      for (const auto& n : g.bundle_nodes()) where += (where.empty() ? "" : ",") + n;
      out << std::setw(24) << g.group_id() << std::setw(15) << g.strategy() << std::setw(12)
          << state_text(g.state()) << where << "\n";
    }
    return kExitOk;
  }
  auto tasks = head.ListTasks();
  if (!tasks.ok()) {
    err << "orrery list: " << tasks.status().ToString() << "\n";
    return kExitFailed;
  }
  // An exit code exists only once a process exited: a pending, leased, running or canceled
  // task has none (shown "-" / null), nor a failure without an exit (its node died).
  auto exit_code = [](const v1::TaskRecord& t) -> std::optional<int> {
    if (t.state() == v1::TASK_STATE_FINISHED) return t.exit_code();
    if (t.state() == v1::TASK_STATE_FAILED && t.exit_code() != 0) return t.exit_code();
    return std::nullopt;
  };
  if (c.format == "json") {
    json arr = json::array();
    for (const auto& t : tasks->tasks()) {
      const auto code = exit_code(t);
      arr.push_back({{"task_id", t.task_id()},
                     {"name", t.name()},
                     {"node_id", t.node_id()},
                     {"state", TaskStateText(t.state())},
                     {"exit_code", code ? json(*code) : json(nullptr)},
                     {"resources", ResourcesJson(t.resources())},
                     {"wait_reason", WaitReasonName(FromProto(t.wait_reason()))},
                     {"spillbacks", t.spillbacks()},
                     {"submit_unix_ms", t.submit_unix_ms()},
                     {"start_unix_ms", t.start_unix_ms()},
                     {"end_unix_ms", t.end_unix_ms()},
                     {"error", t.error()},
                     {"attempt", t.attempt()}});
    }
    out << arr.dump(2) << "\n";
    return kExitOk;
  }
  // Columns as wide as their longest entry (ids of jobs' drivers and retries are long).
  size_t id_w = 4, node_w = 4;
  for (const auto& t : tasks->tasks()) {
    id_w = std::max(id_w, t.task_id().size());
    node_w = std::max(node_w, t.node_id().size());
  }
  out << std::left << std::setw(static_cast<int>(id_w + 2)) << "TASK" << std::setw(10) << "STATE"
      << std::setw(static_cast<int>(node_w + 2)) << "NODE" << std::setw(6) << "EXIT"
      << "NAME\n";
  for (const auto& t : tasks->tasks()) {
    const auto code = exit_code(t);
    out << std::setw(static_cast<int>(id_w + 2)) << t.task_id() << std::setw(10)
        << TaskStateText(t.state()) << std::setw(static_cast<int>(node_w + 2)) << t.node_id()
        << std::setw(6) << (code ? std::to_string(*code) : "-") << t.name()
        << (t.attempt() > 0 ? " (attempt " + std::to_string(t.attempt()) + ")" : "")  // --- actors
        << "\n";
  }
  return kExitOk;
}

// ---- task run ------------------------------------------------------------------------------

StatusOr<SchedulingStrategy> ParseStrategy(const std::string& s) {
  // Any case, as scenario files accept it (DEFAULT, Spread, ...).
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (s.empty() || lower == "default") return SchedulingStrategy::Default();
  if (lower == "spread") return SchedulingStrategy::Spread();
  if (lower.rfind("node:", 0) == 0) {
    std::string rest = s.substr(5);
    bool soft = false;
    if (rest.size() > 5 && lower.substr(lower.size() - 5) == ":soft") {
      soft = true;
      rest.resize(rest.size() - 5);
    }
    if (!rest.empty()) return SchedulingStrategy::NodeAffinity(rest, soft);
  }
  return InvalidArgument(
      "--strategy: expected default, spread, node:NAME or node:NAME:soft, got '" + s + "'");
}

std::string RandomTaskId() {
  auto t = GenerateToken();
  return t.ok() ? t->substr(0, 16) : std::to_string(getpid());
}

constexpr const char* kTaskUsage =
    "usage: orrery task run [--num-cpus N] [--num-gpus N] [--resources JSON]\n"
    "                       [--strategy default|spread|node:NAME|node:NAME:soft] [--node NAME]\n"
    "                       [--runtime-env-json JSON | --runtime-env FILE] [--working-dir DIR]\n"
    "                       [--max-retries N] [--placement-group ID [--bundle-index I]]\n"
    "                       [--address A] [--temp-dir DIR] -- CMD ARGS...\n"
    "       orrery task run --builtin gpu-probe --num-gpus N [opts] [-- --hold-ms MS]\n"
    "  gpu-probe: a CUDA kernel on each granted GPU; prints one JSON line per device\n";

int RunTaskCmd(const std::vector<std::string>& all, std::ostream& out, std::ostream& err) {
  if (all.size() == 1 && (all[0] == "--help" || all[0] == "-h")) {
    out << kTaskUsage;
    return kExitOk;
  }
  if (all.empty() || all[0] != "run") {
    err << "orrery task: expected 'run'\n" << kTaskUsage;
    return kExitUsage;
  }
  std::vector<std::string> args(all.begin() + 1, all.end());
  std::vector<std::string> cmd;
  if (auto dd = std::find(args.begin(), args.end(), "--"); dd != args.end()) {
    cmd.assign(dd + 1, args.end());
    args.erase(dd, args.end());
  }
  po::options_description desc("options");
  CommonFlags c;
  std::string resources, strategy_s, entry;
  // --- actors: retries across dead nodes and placement groups.
  int max_retries = 0, bundle_index = -1;
  std::string group;
  AddCommon(desc, c, false);
  desc.add_options()("max-retries", po::value(&max_retries),
                     "run again elsewhere if the node dies, up to N times (default 0; a non-zero "
                     "exit is not retried)")(
      "placement-group", po::value(&group), "run in a bundle of this placement group")(
      "bundle-index", po::value(&bundle_index), "the bundle (default -1: any bundle)");
  std::string builtin;  // a built-in program instead of CMD (its arguments after --)
  desc.add_options()("builtin", po::value(&builtin),
                     "run a built-in program: gpu-probe (the CUDA probe built with nvcc)");
  desc.add_options()("num-cpus", po::value<double>(), "CPUs (default 1)")(
      "num-gpus", po::value<double>(), "GPUs (default 0)")(
      "resources", po::value(&resources), "custom resources, JSON: {\"name\": qty}")(
      "strategy", po::value(&strategy_s), "default | spread | node:NAME | node:NAME:soft")(
      "node", po::value(&entry), "entry node to ask first (default: the head's node)");
  // --- runtime envs
  std::string renv_json, renv_file, working_dir;
  desc.add_options()("runtime-env-json", po::value(&renv_json),
                     "runtime env, JSON: {\"env_vars\": {...}, \"working_dir\": DIR, "
                     "\"setup\": [CMD...], \"setup_timeout_s\": S}")(
      "runtime-env", po::value(&renv_file), "runtime env from a YAML or JSON file")(
      "working-dir", po::value(&working_dir), "the task's working_dir (overrides the env's)");
  po::variables_map vm;
  if (auto rc = cli::ParseCommand("task run", args, desc, nullptr, kTaskUsage, vm, out, err))
    return *rc;
  if (!builtin.empty()) {
    if (builtin != "gpu-probe") {
      err << "orrery task run: --builtin: expected gpu-probe, got '" << builtin << "'\n";
      return kExitUsage;
    }
    // Next to this binary in the build tree (live/cuda/), as every node of a loopback or
    // same-build cluster has it.
    const fs::path probe = fs::path(SelfExe()).parent_path() / "live" / "cuda" / "orrery-gpu-probe";
    std::error_code ec;
    if (!fs::exists(probe, ec)) {
      err << "orrery task run: --builtin gpu-probe: " << probe.string()
          << " does not exist (this build found no nvcc; see README, GPUs)\n";
      return kExitUsage;
    }
    cmd.insert(cmd.begin(), probe.string());
  }
  if (cmd.empty()) {
    err << "orrery task run: missing the command after --\n" << kTaskUsage;
    return kExitUsage;
  }
  auto res = MergeResources(vm, resources, 1.0);
  if (!res.ok()) {
    err << "orrery task run: " << res.status().message() << "\n";
    return kExitUsage;
  }
  if (max_retries < 0) {
    err << "orrery task run: --max-retries: expected a non-negative integer\n";
    return kExitUsage;
  }
  if (group.empty() && vm.count("bundle-index")) {
    err << "orrery task run: --bundle-index needs --placement-group\n";
    return kExitUsage;
  }
  if (!group.empty()) {
    // --- actors: the bundle's resources under Ray's names (see core/placement/two_phase.h).
    auto cl = FindCluster("task run", c.address, c.temp_dir, err);
    if (!cl) return kExitUsage;
    auto info = HeadClient(cl->address, cl->token).GetPlacementGroup(group);
    if (!info.ok()) {
      err << "orrery task run: --placement-group: " << info.status().message() << "\n";
      return info.status().code() == StatusCode::kNotFound ? kExitUsage : kExitFailed;
    }
    if (bundle_index < -1 || bundle_index >= info->bundles_size()) {
      err << "orrery task run: --bundle-index: expected -1 (any) or 0.." << info->bundles_size() - 1
          << " for placement group " << group << ", got " << bundle_index << "\n";
      return kExitUsage;
    }
    if (info->state() == v1::PLACEMENT_GROUP_STATE_REMOVED) {
      err << "orrery task run: placement group " << group << " was removed\n";
      return kExitFailed;
    }
    auto name = [&](std::string_view r) {
      return bundle_index >= 0 ? IndexedBundleResourceName(r, bundle_index, group)
                               : WildcardBundleResourceName(r, group);
    };
    std::map<std::string, double> in_bundle;
    for (const auto& [r, v] : *res) {
      if (v > 0) in_bundle[name(r)] = v;
    }
    in_bundle[name(kBundleMarkerResource)] = 0.001;
    *res = std::move(in_bundle);
  }
  auto request = ResourceRequest::Create(*res, UnitInstanceNames(), "resources");
  if (!request.ok()) {
    err << "orrery task run: " << request.status().message() << "\n";
    return kExitUsage;
  }
  auto strategy = ParseStrategy(strategy_s);
  if (!strategy.ok()) {
    err << "orrery task run: " << strategy.status().message() << "\n";
    return kExitUsage;
  }
  // --- runtime envs: parsed before anything is asked of the cluster.
  if (!renv_json.empty() && !renv_file.empty()) {
    err << "orrery task run: give --runtime-env-json or --runtime-env, not both\n";
    return kExitUsage;
  }
  auto renv = !renv_file.empty() ? LoadRuntimeEnvFile(renv_file)
                                 : ParseRuntimeEnvJson(renv_json, "--runtime-env-json");
  if (!renv.ok()) {
    err << "orrery task run: " << renv.status().message() << "\n";
    return kExitUsage;
  }
  if (!working_dir.empty()) renv->working_dir = working_dir;
  auto cluster = FindCluster("task run", c.address, c.temp_dir, err);
  if (!cluster) return kExitUsage;
  if (!renv->working_dir.empty()) {
    auto up = UploadWorkingDir(*renv, cluster->address, cluster->token);
    if (!up.ok()) {
      err << "orrery task run: " << up.status().message() << "\n";
      return up.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
    }
    renv = std::move(up);
  }
  auto nodes = HeadClient(cluster->address, cluster->token).ListNodes();
  if (!nodes.ok()) {
    err << "orrery task run: " << nodes.status().ToString() << "\n";
    return kExitUsage;
  }
  // The entry node: --node, else the head's node, else the first alive node by id.
  std::string entry_address;
  for (const auto& n : nodes->nodes()) {
    if (n.state() != v1::NODE_STATE_ALIVE) continue;
    if (!entry.empty() ? n.node_id() == entry : n.is_head_node()) entry_address = n.address();
  }
  if (entry_address.empty() && entry.empty()) {
    for (const auto& n : nodes->nodes()) {
      if (n.state() == v1::NODE_STATE_ALIVE) {
        entry_address = n.address();
        break;
      }
    }
  }
  if (entry_address.empty()) {
    err << "orrery task run: "
        << (entry.empty() ? "no alive node in the cluster" : "no alive node named '" + entry + "'")
        << "\n";
    return kExitUsage;
  }
  std::string name;
  for (const auto& a : cmd) name += (name.empty() ? "" : " ") + a;
  v1::RequestWorkerLeaseRequest req;
  // --- dashboard: the task table shows which job a task belongs to.
  if (const char* job = std::getenv("ORRERY_JOB_ID"); job != nullptr) req.set_job_id(job);
  const std::string base_id = RandomTaskId();
  req.set_task_id(base_id);
  req.set_name(name.substr(0, 200));
  ToProto(request->set(), req.mutable_resources());
  ToProto(*strategy, req.mutable_strategy());
  AcquireOptions ao;
  bool told = false;
  ao.on_queued = [&](v1::WaitReason r) {
    if (told) return;
    told = true;
    err << "orrery: task " << req.task_id() << " is pending (" << WaitReasonName(FromProto(r))
        << ")\n";
  };
  // --- actors: attempt k (a new lease id "<id>-r<k>") after the node of attempt k-1 died.
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      req.set_task_id(base_id + "-r" + std::to_string(attempt));
      req.set_attempt(attempt);
      req.set_spillbacks(0);
      req.set_grant_or_reject(false);
    }
    auto lease = AcquireLease(entry_address, cluster->token, req, ao);
    if (!lease.ok()) {
      err << "orrery task run: "
          << (lease.status().code() == StatusCode::kCancelled ? "canceled: " : "")
          << lease.status().message() << "\n";
      return kExitFailed;
    }
    v1::RunTaskRequest run;
    run.set_task_id(req.task_id());
    for (const auto& a : cmd) run.add_argv(a);
    std::error_code ec;
    run.set_cwd(fs::current_path(ec).string());
    run.set_runtime_env_json(ToJson(*renv));  // --- runtime envs
    NodeClient node(lease->address, cluster->token);
    auto exit = node.RunTask(run, [&](const v1::RunTaskReply& m) {
      if (m.has_stdout_chunk()) out << m.stdout_chunk() << std::flush;
      if (m.has_stderr_chunk()) err << m.stderr_chunk() << std::flush;
    });
    if (exit.ok()) return exit->exit_code();
    const bool node_gone =
        !NodeClient(lease->address, cluster->token, std::chrono::milliseconds(500)).Ready().ok();
    if (!node_gone) (void)node.ReturnWorkerLease(req.task_id());
    err << "orrery task run: on node " << lease->node_id << ": "
        << (node_gone ? "the node died (" + exit.status().message() + ")"
                      : exit.status().ToString())
        << "\n";
    if (!node_gone || attempt >= max_retries) return kExitFailed;
    err << "orrery: retrying task " << base_id << " (attempt " << attempt + 2 << " of "
        << max_retries + 1 << ")\n";
    // Wait (bounded) until the head declares the node dead, so no node spills the retry back
    // to it, then take an alive entry node (the old one may be the dead one).
    HeadClient head(cluster->address, cluster->token);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    std::string next_entry;
    while (std::chrono::steady_clock::now() < deadline) {
      auto now_nodes = head.ListNodes();
      bool dead = false;
      std::string same, head_node, first;  // the old entry if alive, else the head's, else any
      if (now_nodes.ok()) {
        for (const auto& n : now_nodes->nodes()) {
          if (n.node_id() == lease->node_id) dead = n.state() != v1::NODE_STATE_ALIVE;
          if (n.state() != v1::NODE_STATE_ALIVE) continue;
          if (n.address() == entry_address) same = n.address();
          if (n.is_head_node()) head_node = n.address();
          if (first.empty()) first = n.address();
        }
      }
      next_entry = !same.empty() ? same : !head_node.empty() ? head_node : first;
      if (dead && !next_entry.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (next_entry.empty()) {
      err << "orrery task run: no alive node left to retry on\n";
      return kExitFailed;
    }
    entry_address = next_entry;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the nodes' views catch up
  }
}

// ---- live run ------------------------------------------------------------------------------

constexpr const char* kLiveRunUsage =
    "usage: orrery live run SCENARIO.yaml (--address HOST:PORT | --local) [--out DIR]\n"
    "                       [--set dotted.path=value]... [--seed N] [--workload sleep|cpu]\n"
    "                       [--temp-dir DIR] [--trace]\n";

Status WriteTextFile(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  f.close();
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + p.string());
  return Status::Ok();
}

int RunLiveRun(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string scenario_path, address, out_dir, workload = "sleep", temp_dir;
  std::vector<std::string> sets;
  int64_t seed = -1;
  desc.add_options()("help,h", "show this help")("scenario", po::value(&scenario_path),
                                                 "scenario file")(
      "address", po::value(&address), "head HOST:PORT of a running cluster")(
      "local", "start the scenario's cluster on loopback, run, tear it down")(
      "out", po::value(&out_dir), "result directory (default: out/<scenario name>-live)")(
      "set", po::value(&sets)->composing(), "override a scenario field: dotted.path=value")(
      "seed", po::value(&seed), "random seed (overrides the file)")(
      "workload", po::value(&workload), "built-in workload of tasks without output: sleep|cpu")(
      "temp-dir", po::value(&temp_dir), "session root for the token (default /tmp/orrery)")(
      "progress", "print a line per finished task")(
      "trace", "also write leases.csv: every step of every worker lease at the driver");
  po::variables_map vm;
  if (auto rc = cli::ParseCommand("live run", args, desc, "scenario", kLiveRunUsage, vm, out, err))
    return *rc;
  if (scenario_path.empty()) {
    err << "orrery live run: missing SCENARIO.yaml\n" << kLiveRunUsage;
    return kExitUsage;
  }
  const bool local = vm.count("local") != 0;
  if (address.empty() && !local) {
    if (const char* e = std::getenv("ORRERY_ADDRESS"); e && *e) address = e;
  }
  if (local == !address.empty()) {
    err << "orrery live run: pass exactly one of --address HOST:PORT and --local\n"
        << kLiveRunUsage;
    return kExitUsage;
  }
  LiveRunOptions options;
  if (workload == "cpu") {
    options.workload = LiveRunOptions::Workload::kCpu;
  } else if (workload != "sleep") {
    err << "orrery live run: --workload: expected sleep or cpu, got '" << workload << "'\n";
    return kExitUsage;
  }
  if (vm.count("progress")) options.progress = &err;
  options.trace_leases = vm.count("trace") != 0;
  std::vector<std::string> overrides = sets;
  if (vm.count("seed")) {
    if (seed < 0) {
      err << "orrery live run: --seed: expected a non-negative integer\n";
      return kExitUsage;
    }
    overrides.push_back("seed=" + std::to_string(seed));
  }
  auto scenario = io::LoadScenario(scenario_path, overrides);
  if (!scenario.ok()) {
    err << "orrery live run: " << scenario.status().message() << "\n";
    return kExitUsage;
  }
  if (Status s = CheckLiveSupport(*scenario); !s.ok()) {
    err << "orrery live run: " << s.message() << "\n";
    return kExitUsage;
  }
  for (const auto& w : scenario->warnings) err << "warning: " << w << "\n";
  const fs::path dir =
      out_dir.empty() ? fs::path("out") / (scenario->name + "-live") : fs::path(out_dir);
  std::unique_ptr<LocalCluster> cluster;
  std::string token;
  if (local) {
    std::error_code ec;
    fs::create_directories(TempRoot(temp_dir), ec);
    std::string tmpl = (TempRoot(temp_dir) / "liverun_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      err << "orrery live run: cannot create a run directory under "
          << TempRoot(temp_dir).string() << "\n";
      return kExitFailed;
    }
    auto c = LocalCluster::Start(*scenario, tmpl);
    if (!c.ok()) {
      err << "orrery live run: " << c.status().ToString() << "\n";
      return kExitFailed;
    }
    cluster = std::move(*c);
    LocalCluster* lc = cluster.get();
    options.inject_failure = [lc](const std::string& id, bool crash) {
      return crash ? lc->Crash(id) : lc->Recover(id);
    };
    address = cluster->address();
    token = cluster->token();
    out << "Started " << scenario->nodes.size() << " node(s) of " << scenario->name
        << " on loopback (head " << address << ")\n";
  } else {
    auto found = FindCluster("live run", address, temp_dir, err);
    if (!found) return kExitUsage;
    token = found->token;
  }
  auto record = RunScenario(*scenario, address, token, options);
  cluster.reset();  // stops every daemon and worker of --local
  if (!record.ok()) {
    err << "orrery live run: " << record.status().ToString() << "\n";
    return record.status().code() == StatusCode::kFailedPrecondition ? kExitUsage : kExitFailed;
  }
  record->orrery_version = cli::Version();
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (const auto& [name, text] :
       {std::pair<const char*, std::string>{"summary.json", results::RenderSummaryJson(*record)},
        {"tasks.csv", results::RenderTasksCsv(*record)},
        {"timeseries.csv", results::RenderTimeseriesCsv(*record)},
        {"leases.csv", record->lease_events.empty()
                           ? std::string()
                           : results::RenderLeasesCsv(record->lease_events)}}) {
    if (text.empty()) continue;
    if (Status s = WriteTextFile(dir / name, text); !s.ok()) {
      err << "orrery live run: " << s.message() << "\n";
      return kExitFailed;
    }
  }
  out << results::RenderSummaryTable(*record);
  out << "  results     " << dir.string() << "/{summary.json,tasks.csv,timeseries.csv"
      << (record->lease_events.empty() ? "" : ",leases.csv") << "}\n";
  const auto counts = results::CountTasks(*record);
  return counts.failed > 0 ? kExitFailed : kExitOk;
}

int RunLiveCmd(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    (args.empty() ? err : out) << kLiveRunUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "run") {
    err << "orrery live: unknown subcommand '" << args[0] << "'\n" << kLiveRunUsage;
    return kExitUsage;
  }
  return RunLiveRun(std::vector<std::string>(args.begin() + 1, args.end()), out, err);
}

// ---- hidden daemon entry points ------------------------------------------------------------

// Blocks the stop signals in every thread (the daemons' threads start after this) and waits
// for one of them or for `stop_requested`.
void BlockStopSignals() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&s, sig);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

template <typename F>
void WaitForStop(F&& stop_requested) {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&s, sig);
  timespec ts{0, 100 * 1000 * 1000};
  while (!stop_requested()) {
    const int sig = sigtimedwait(&s, nullptr, &ts);
    if (sig > 0) return;
  }
}

int RunHeadDaemon(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  std::string session;
  HeadOptions o;
  int64_t period_ms = o.health_check_period.count();
  desc.add_options()("session-dir", po::value(&session)->required(), "")(
      "port", po::value(&o.port), "")("bind", po::value(&o.bind), "")(
      "node-ip", po::value(&o.node_ip), "")("health-check-period-ms", po::value(&period_ms), "")(
      "health-check-failures", po::value(&o.health_check_failures), "");
  desc.add_options()("job-store", po::value(&o.job_store), "")(  // --- jobs
      "dashboard-port", po::value(&o.dashboard_port), "")(
      "max-running-jobs", po::value(&o.max_running_jobs), "")(
      "job-log-max-bytes", po::value(&o.job_log.max_bytes), "")(
      "job-log-backups", po::value(&o.job_log.backups), "");
  desc.add_options()("metrics-port", po::value(&o.metrics_port), "");  // --- Metrics
  std::string autoscaler_config;  // --- autoscaler
  desc.add_options()("autoscaler-config", po::value(&autoscaler_config), "");
  std::string policy;
  std::vector<std::string> scheduler_sets;
  desc.add_options()("policy", po::value(&policy), "")(
      "set", po::value(&scheduler_sets)->composing(), "");
  std::string token_file;
  desc.add_options()("token-file", po::value(&token_file), "");
  int64_t reconnect_grace_ms = o.reconnect_grace.count();  // --- head fault tolerance
  desc.add_options()("head-store", po::value(&o.head_store), "")(
      "reconnect-grace-ms", po::value(&reconnect_grace_ms), "");
  po::variables_map vm;
  if (!ParseOptions("__head", args, desc, vm, err)) return kExitUsage;
  if (reconnect_grace_ms < 0 || reconnect_grace_ms > 3600000) {
    err << "orrery __head: --reconnect-grace-ms: expected 0..3600000\n";
    return kExitUsage;
  }
  o.reconnect_grace = milliseconds(reconnect_grace_ms);
  if (Status s = ParseSchedulingFlags(policy, scheduler_sets, &o.scheduler); !s.ok()) {
    err << "orrery __head: " << s.message() << "\n";
    return kExitUsage;
  }
  if (!autoscaler_config.empty()) {  // --- autoscaler
    auto c = LoadAutoscalerConfig(autoscaler_config);
    if (!c.ok()) {
      err << "orrery __head: --autoscaler-config: " << c.status().message() << "\n";
      return kExitUsage;
    }
    o.autoscaler = std::make_shared<const LiveAutoscalerConfig>(std::move(*c));
  }
  if (period_ms < 10 || period_ms > 3600000 || o.health_check_failures < 1 ||
      o.health_check_failures > 1000) {
    err << "orrery __head: --health-check-period-ms: expected 10..3600000, "
           "--health-check-failures: expected 1..1000\n";
    return kExitUsage;
  }
  if (!o.node_ip.empty()) {
    if (Status s = CheckNodeIp(o.node_ip, o.bind); !s.ok()) {
      err << "orrery __head: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  o.health_check_period = milliseconds(period_ms);
  o.session_dir = session;
  BlockStopSignals();
  // --- head fault tolerance: a head started again in its session (after a crash) keeps the
  // session's token, so the nodes and drivers that hold it reconnect.
  const fs::path session_token = fs::path(session) / "token";
  const bool restarted = token_file.empty() && fs::exists(session_token);
  auto token = !token_file.empty() ? ReadTokenFile(token_file)
               : restarted         ? ReadTokenFile(session_token.string())
                                   : GenerateToken();
  if (!token.ok()) {
    err << "orrery __head: " << token.status().message() << "\n";
    return kExitFailed;
  }
  o.token = *token;
  auto head = HeadDaemon::Start(o);
  if (!head.ok()) {
    err << "orrery __head: " << head.status().message() << "\n";
    return kExitFailed;
  }
  // The port it got (`--port 0` lets the OS choose), written before the token, whose presence
  // means "ready to be asked".
  if (Status s = WriteFileAtomic(fs::path(session) / "head_port",
                                 std::to_string((*head)->port()) + "\n");
      !s.ok()) {
    err << "orrery __head: " << s.message() << "\n";
    return kExitFailed;
  }
  if (Status s = restarted ? Status::Ok() : WriteNewFile(session_token, *token + "\n", 0600);
      !s.ok()) {
    err << "orrery __head: " << s.message() << "\n";
    return kExitFailed;
  }
  out << "head serving on port " << (*head)->port() << std::endl;
  WaitForStop([&] { return (*head)->StopRequested(); });
  (*head)->Stop();
  return kExitOk;
}

int RunNodeDaemon(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  NodeFlags f;
  NodeOptions o;
  AddNodeOptions(desc, f);
  desc.add_options()("address", po::value(&o.head_address)->required(), "")("head-node", "")(
      "port", po::value(&o.port), "")("seed", po::value(&o.seed), "")(
      "session-dir", po::value(&o.session_dir), "");
  po::variables_map vm;
  if (!ParseOptions("__node", args, desc, vm, err)) return kExitUsage;
  if (const char* t = std::getenv("ORRERY_TOKEN"); t && *t) o.token = t;
  if (o.token.empty()) {
    err << "orrery __node: ORRERY_TOKEN is not set\n";
    return kExitUsage;
  }
  ::unsetenv("ORRERY_TOKEN");  // tasks must not inherit the cluster token
  const double cpus = std::max(1u, std::thread::hardware_concurrency());
  auto res = MergeResources(vm, f.resources, cpus);
  const GpuInventory gpus = DetectGpuInventory(SystemGpuProbe());  // --- GPUs
  if (res.ok() && !vm.count("num-gpus") && gpus.count() > 0) (*res)["GPU"] = gpus.count();
  if (!res.ok()) {
    err << "orrery __node: " << res.status().message() << "\n";
    return kExitUsage;
  }
  auto total = NodeTotals(*res);
  auto labels = ParseLabels(f.labels);
  if (!total.ok() || !labels.ok()) {
    err << "orrery __node: " << (!total.ok() ? total.status() : labels.status()).message() << "\n";
    return kExitUsage;
  }
  o.total = *total;
  o.labels = *labels;
  // --- GPUs: label the model when the node offers GPUs and NVML named them; --labels wins.
  if (res->count("GPU") && !gpus.model().empty()) o.labels.emplace("gpu_model", gpus.model());
  if (vm.count("node-name")) {
    if (Status s = ValidateNodeName(f.node_name); !s.ok()) {
      err << "orrery __node: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  o.node_id = f.node_name;
  o.bind = f.bind;
  if (Status s = ApplyRuntimeEnvFlags(f, &o); !s.ok()) {  // --- runtime envs
    err << "orrery __node: " << s.message() << "\n";
    return kExitUsage;
  }
  o.is_head_node = vm.count("head-node") != 0;
  o.reap_orphans = true;  // alone in its process: adopt and kill what tasks leave behind
  o.metrics_port = f.metrics_port;  // --- Metrics
  if (!f.node_ip.empty()) {
    if (Status s = CheckNodeIp(f.node_ip, f.bind); !s.ok()) {
      err << "orrery __node: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  o.node_ip = f.node_ip;
  o.health_port = f.health_port;
  BlockStopSignals();
  auto node = NodeDaemon::Start(o);
  if (!node.ok()) {
    err << "orrery __node: " << node.status().message() << "\n";
    return kExitFailed;
  }
  out << "node " << (*node)->node_id() << " serving at " << (*node)->address() << std::endl;
  if (o.health_port >= 0) {  // `orrery start` reads this line from the log
    const std::string a = (*node)->address();
    out << "node " << (*node)->node_id() << " health probes at "
        << (ProcessTls().enabled() ? "https://" : "http://") << a.substr(0, a.rfind(':'))
        << ":" << (*node)->health_port() << "/readyz" << std::endl;
  }
  WaitForStop([&] { return (*node)->StopRequested(); });
  (*node)->Stop();
  return kExitOk;
}

}  // namespace

std::vector<cli::Command> LiveCommands() {
  return {
      {"start", "start --head | --address A   start a live head and/or node daemon", RunStart},
      {"stop", "stop [--temp-dir DIR]         stop this machine's daemons of the session", RunStop},
      {"status", "status                       nodes, resources used/total, pending demand",
       RunStatus},
      {"list",
       "list nodes|tasks|actors|placement-groups|jobs [--format json]  list the live cluster's "
       "nodes, tasks, actors, placement groups or jobs",
       RunList},
      {"task", "task run [opts] -- CMD ARGS   run one command as a task on the live cluster",
       RunTaskCmd},
      {"live", "live run SCENARIO.yaml (--address A | --local)  replay a scenario on a live cluster",
       RunLiveCmd},
      {"__head", "", RunHeadDaemon},
      {"__worker", "",
       [](const std::vector<std::string>&, std::ostream&, std::ostream&) {
         return RunWorkerMain();
       }},
      {"__node", "", RunNodeDaemon},
      {"__api_worker", "",
       [](const std::vector<std::string>& args, std::ostream&, std::ostream&) {
         return RunApiWorkerMain(args);
       }},
  };
}

}  // namespace orrery::live

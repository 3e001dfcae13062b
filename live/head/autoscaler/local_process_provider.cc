// LocalProcessProvider: node daemons as child processes of the head.
#include "live/head/autoscaler/local_process_provider.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>

#include "live/common/session.h"

namespace orrery::live {

namespace fs = std::filesystem;
using autoscaler::ProviderNodeState;

LocalProcessProvider::LocalProcessProvider(LocalProcessProviderOptions options)
    : o_(std::move(options)), supervisor_(std::make_unique<ProcessSupervisor>()) {}

LocalProcessProvider::~LocalProcessProvider() { Shutdown(); }

std::vector<std::string> LocalProcessProvider::ArgvFor(const NodeId& id,
                                                       const std::string& type) const {
  const autoscaler::NodeTypeConfig& t = o_.node_types.at(type);
  // CPU and GPU go as --num-cpus / --num-gpus (always given, so the node detects nothing on
  // its own); every other resource in --resources.
  nlohmann::json res = nlohmann::json::object();
  double cpus = 0, gpus = 0;
  t.resources.ForEach([&](std::string_view name, Quantity q) {
    if (name == "CPU") {
      cpus = q.ToDouble();
    } else if (name == "GPU") {
      gpus = q.ToDouble();
    } else {
      res[std::string(name)] = q.ToDouble();
    }
  });
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [k, v] : t.labels) labels[k] = v;
  labels["node_type"] = type;
  auto num = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  std::vector<std::string> argv = {o_.orrery_exe, "__node",     "--address",   o_.head_address,
                                   "--node-name", id,           "--num-cpus",  num(cpus),
                                   "--num-gpus",  num(gpus),    "--resources", res.dump(),
                                   "--labels",    labels.dump()};
  if (!o_.session_dir.empty()) argv.insert(argv.end(), {"--session-dir", o_.session_dir});
  return argv;
}

Status LocalProcessProvider::Launch(const std::string& type, int64_t count) {
  if (count < 1) return InvalidArgument("launch count: expected >= 1");
  if (!o_.node_types.count(type)) return InvalidArgument("unknown node type '" + type + "'");
  for (int64_t i = 0; i < count; ++i) {
    NodeId id;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!next_index_.count(type)) {
        auto first = o_.first_index.find(type);
        next_index_[type] = first == o_.first_index.end() ? 0 : first->second;
      }
      id = type + "-" + std::to_string(next_index_[type]++);
    }
    ProcessSpec spec;
    spec.argv = ArgvFor(id, type);
    spec.env = {{"ORRERY_TOKEN", o_.token}};
    std::shared_ptr<std::ofstream> log;
    if (!o_.log_dir.empty()) {
      std::error_code ec;
      fs::create_directories(o_.log_dir, ec);
      log = std::make_shared<std::ofstream>(fs::path(o_.log_dir) / ("node-" + id + ".log"),
                                            std::ios::app);
    }
    auto pid_box = std::make_shared<pid_t>(0);
    ProcessCallbacks cb;
    auto write = [log](std::string_view s) {
      if (log && *log) {
        log->write(s.data(), static_cast<std::streamsize>(s.size()));
        log->flush();
      }
    };
    cb.on_stdout = write;
    cb.on_stderr = write;
    cb.on_started = [pid_box](pid_t p) { *pid_box = p; };
    cb.on_exit = [this, id, pid_box](int code, int sig) { OnExit(id, *pid_box, code, sig); };
    // Registered before the spawn so that an immediate exit finds the entry.
    {
      std::lock_guard<std::mutex> l(mu_);
      Managed m;
      m.type = type;
      m.launch_time_s = o_.now_s();
      nodes_[id] = m;
    }
    auto pid = supervisor_->Spawn(spec, std::move(cb));
    std::lock_guard<std::mutex> l(mu_);
    if (!pid.ok()) {
      nodes_.erase(id);
      return pid.status().WithContext("launching node " + id);
    }
    auto it = nodes_.find(id);
    if (it != nodes_.end()) it->second.pid = *pid;
    if (!o_.pid_dir.empty()) {
      (void)WriteFileAtomic(fs::path(o_.pid_dir) / ("node-" + std::to_string(*pid) + ".pid"),
                            std::to_string(*pid) + "\n");
    }
  }
  return Status::Ok();
}

void LocalProcessProvider::OnExit(const NodeId& id, pid_t pid, int exit_code, int signal) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  if (it->second.terminate_at_s < 0) {
    exits_.push_back("node " + id + " (" + it->second.type + ") exited on its own " +
                     (signal > 0 ? "(signal " + std::to_string(signal) + ")"
                                 : "(exit code " + std::to_string(exit_code) + ")") +
                     (it->second.was_running ? "" : " before registering"));
  }
  nodes_.erase(it);
  if (!o_.pid_dir.empty() && pid > 0) {
    std::error_code ec;
    fs::remove(fs::path(o_.pid_dir) / ("node-" + std::to_string(pid) + ".pid"), ec);
  }
}

Status LocalProcessProvider::Terminate(const std::vector<NodeId>& ids) {
  std::lock_guard<std::mutex> l(mu_);
  std::string unknown;
  const double now = o_.now_s();
  for (const auto& id : ids) {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) {
      unknown += (unknown.empty() ? "" : ", ") + id;
      continue;
    }
    if (it->second.state == ProviderNodeState::kTerminating) continue;
    it->second.state = ProviderNodeState::kTerminating;
    it->second.terminate_at_s = now;
  }
  if (!unknown.empty()) return Status(StatusCode::kNotFound, "not launched here: " + unknown);
  return Status::Ok();
}

StatusOr<std::vector<autoscaler::ProviderNode>> LocalProcessProvider::List() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<autoscaler::ProviderNode> out;
  for (const auto& [id, m] : nodes_) out.push_back({id, m.type, m.state, m.launch_time_s});
  return out;
}

pid_t LocalProcessProvider::PidOf(const NodeId& id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(id);
  return it == nodes_.end() ? 0 : it->second.pid;
}

std::vector<std::string> LocalProcessProvider::Observe(
    const std::map<NodeId, ObservedNode>& head_nodes) {
  std::vector<std::pair<pid_t, int>> signals;
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> l(mu_);
    const double now = o_.now_s();
    for (auto& [id, m] : nodes_) {
      auto seen = head_nodes.find(id);
      const bool alive = seen != head_nodes.end() && seen->second.alive;
      if (m.state == ProviderNodeState::kPending) {
        if (alive) {
          m.state = ProviderNodeState::kRunning;
          m.was_running = true;
        } else if (now - m.launch_time_s > o_.boot_timeout_s) {
          lines.push_back("node " + id + " did not register within " +
                          std::to_string(static_cast<int>(o_.boot_timeout_s)) + " s: terminating");
          m.state = ProviderNodeState::kTerminating;
          m.terminate_at_s = now;
        }
      }
      if (m.state != ProviderNodeState::kTerminating || m.pid <= 0) continue;
      if (m.sigterm_at_s < 0) {
        const bool idle = !alive || seen->second.idle;
        if (idle || now - m.terminate_at_s > o_.drain_timeout_s) {
          m.sigterm_at_s = now;
          signals.emplace_back(m.pid, SIGTERM);
        }
      } else if (!m.sigkill_sent && now - m.sigterm_at_s > o_.kill_grace_s) {
        m.sigkill_sent = true;
        signals.emplace_back(m.pid, SIGKILL);
        lines.push_back("node " + id + " ignored SIGTERM for " +
                        std::to_string(static_cast<int>(o_.kill_grace_s)) + " s: SIGKILL");
      }
    }
    for (auto& e : exits_) lines.push_back(std::move(e));
    exits_.clear();
  }
  for (const auto& [pid, sig] : signals) supervisor_->Kill(pid, sig);
  return lines;
}

void LocalProcessProvider::Shutdown(double grace_s) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (nodes_.empty()) return;
    for (auto& [id, m] : nodes_) {
      m.state = ProviderNodeState::kTerminating;
      if (m.terminate_at_s < 0) m.terminate_at_s = o_.now_s();
    }
  }
  supervisor_->KillAll(std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
  // The exits are reported by the supervisor thread; give it a moment to reap (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (nodes_.empty()) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace orrery::live

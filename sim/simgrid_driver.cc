#include "sim/simgrid_driver.h"

#include <simgrid/Exception.hpp>
#include <simgrid/s4u.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>

namespace orrery::sim {
namespace {

namespace s4u = simgrid::s4u;
// Events the control actor processes before it looks at the wall clock again (progress line).
constexpr uint64_t kEventsPerBatch = 1 << 16;

bool g_simulated = false;  // SimGrid: one simulation per process

// The network side of the model: per-destination pools of long-lived actors doing Comms.
class SimGridPlatform : public Platform {
 public:
  SimGridPlatform(std::vector<s4u::Host*> hosts, s4u::ConditionVariablePtr wake)
      : hosts_(std::move(hosts)), pools_(hosts_.size()), wake_(std::move(wake)) {}

  void set_model(Model* m) { model_ = m; }

  void StartTransfer(int from, int to, uint64_t bytes, uint64_t token) override {
    Pool& p = pools_[to];
    p.jobs.push_back({from, bytes, token});
    if (!p.sem) p.sem = s4u::Semaphore::create(0);
    if (p.idle == 0) Spawn(to);
    --p.idle;
    p.sem->release();
  }

  void SetNodeUp(int node, bool up) override {
    Pool& p = pools_[node];
    if (!up) {
      // Actors on the host die with it; the model has written their transfers off.
      p.jobs.clear();
      p.idle = 0;
      p.sem = s4u::Semaphore::create(0);
      hosts_[node]->turn_off();
    } else {
      hosts_[node]->turn_on();
    }
  }

 private:
  struct Job {
    int from;
    uint64_t bytes;
    uint64_t token;
  };
  struct Pool {
    std::deque<Job> jobs;
    s4u::SemaphorePtr sem;
    int idle = 0;
  };

  void Spawn(int node) {
    Pool& p = pools_[node];
    ++p.idle;
    s4u::SemaphorePtr sem = p.sem;
    s4u::Actor::create("xfer", hosts_[node], [this, node, sem]() {
      for (;;) {
        sem->acquire();
        Pool& pool = pools_[node];
        if (pool.sem != sem || pool.jobs.empty()) return;  // the host crashed meanwhile
        Job job = pool.jobs.front();
        pool.jobs.pop_front();
        bool ok = true;
        try {
          s4u::Comm::sendto(hosts_[job.from], hosts_[node], job.bytes);
        } catch (const simgrid::Exception&) {
          ok = false;
        }
        ++pools_[node].idle;
        model_->OnTransferDone(s4u::Engine::get_clock(), job.token, ok);
        wake_->notify_all();
      }
    })->daemonize();
  }

  std::vector<s4u::Host*> hosts_;
  std::vector<Pool> pools_;
  s4u::ConditionVariablePtr wake_;
  Model* model_ = nullptr;
};

}  // namespace

StatusOr<SimRunResult> RunOnSimGrid(const Scenario& scenario, const SimRunOptions& options) {
  if (g_simulated) {
    return FailedPrecondition("SimGrid runs one simulation per process; start a new process");
  }
  g_simulated = true;
  if (scenario.nodes.empty()) return InvalidArgument(scenario.path + ": the cluster has no nodes");
  if (scenario.owner.idle_lease_timeout_s > 0) {
    return InvalidArgument(scenario.path +
                           ": owner.idle_lease_timeout: the simulator returns idle leases at once "
                           "(orrery live run keeps them); drop it or set it to 0s");
  }
  const auto wall_start = std::chrono::steady_clock::now();

  // Small actor stacks without guard pages keep thousands of actors cheap (see DEPS.md).
  std::vector<std::string> args = {"orrery",
                                   "--log=root.thres:critical",
                                   "--log=xbt_cfg.thres:critical",
                                   "--cfg=contexts/stack-size:64",
                                   "--cfg=contexts/guard-size:0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  int argc = static_cast<int>(argv.size());
  s4u::Engine engine(&argc, argv.data());

  auto* zone = s4u::create_star_zone("cluster");
  std::vector<s4u::Host*> hosts;
  hosts.reserve(scenario.nodes.size());
  for (const auto& n : scenario.nodes) {
    s4u::Host* h = zone->create_host(n.id, 1e9);
    s4u::Link* link = zone->create_link(n.id + "-nic", scenario.network.bandwidth_Bps);
    // Two links per route in a star: half the one-way latency on each.
    link->set_latency(scenario.network.latency_s / 2);
    zone->add_route(h->get_netpoint(), nullptr, nullptr, nullptr, {s4u::LinkInRoute(link)}, true);
    hosts.push_back(h);
  }
  zone->seal();

  auto wake = s4u::ConditionVariable::create();
  auto mutex = s4u::Mutex::create();
  SimGridPlatform platform(hosts, wake);
  Model model(scenario, &platform, options.model);
  if (options.decision_log) model.EnableDecisionLog();
  if (options.trace_leases) model.EnableLeaseTrace();
  platform.set_model(&model);

  SimRunResult result;
  double end_time = 0;
  s4u::Actor::create("control", hosts[scenario.driver_node], [&]() {
    std::unique_lock<s4u::Mutex> lock(*mutex);
    auto last_print = std::chrono::steady_clock::now();
    const bool progress = options.progress;
    for (;;) {
      const double now = s4u::Engine::get_clock();
      // In batches, so that a burst of millions of events at one instant still shows progress.
      const bool more = model.ProcessUntil(now, kEventsPerBatch);
      if (!more && model.Done()) break;
      if (progress) {
        auto w = std::chrono::steady_clock::now();
        if (w - last_print > std::chrono::milliseconds(500)) {
          last_print = w;
          std::fprintf(stderr,
                       "\r[sim] t=%.1fs  tasks %llu/%llu submitted, %llu done  events %llu   ", now,
                       static_cast<unsigned long long>(model.NumTasksSubmitted()),
                       static_cast<unsigned long long>(model.NumTasks()),
                       static_cast<unsigned long long>(model.NumTasksFinal()),
                       static_cast<unsigned long long>(model.NumEventsProcessed()));
        }
      }
      if (more) continue;
      if (model.HasEvents()) {
        const double next = model.NextEventTime();
        if (next > now) wake->wait_until(lock, next);
      } else {
        wake->wait(lock);  // only transfers can still wake us
      }
    }
    end_time = s4u::Engine::get_clock();
    if (progress) std::fprintf(stderr, "\r%80s\r", "");
  });
  engine.run();

  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  result.events = model.NumEventsProcessed();
  result.record = model.Finish(end_time, wall);
  result.decision_log = model.decision_log();
  result.warnings = model.warnings();
  return result;
}

}  // namespace orrery::sim

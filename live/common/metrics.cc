#include "live/common/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <stdlib.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "live/rpc/event_loop.h"
#include "live/common/session.h"

namespace orrery::live {

namespace fs = std::filesystem;

namespace {

// A gauge family with one variable label whose whole set of series is replaced at once.
class GaugeVec {
 public:
  GaugeVec(prometheus::Family<prometheus::Gauge>& family, std::string label)
      : family_(family), label_(std::move(label)) {}

  void SetAll(const std::map<std::string, double>& values) {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [v, x] : values) {
      auto [it, inserted] = series_.try_emplace(v, nullptr);
      if (inserted) it->second = &family_.Add({{label_, v}});
      it->second->Set(x);
    }
    for (auto it = series_.begin(); it != series_.end();) {
      if (values.count(it->first) == 0) {
        family_.Remove(it->second);
        it = series_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  prometheus::Family<prometheus::Gauge>& family_;
  const std::string label_;
  std::mutex mu_;
  std::map<std::string, prometheus::Gauge*> series_;
};

prometheus::Family<prometheus::Gauge>& Gauge(prometheus::Registry& r, const std::string& name,
                                             const std::string& help,
                                             const std::map<std::string, std::string>& constant) {
  return prometheus::BuildGauge().Name(name).Help(help).Labels(constant).Register(r);
}

}  // namespace

// ---- MetricsEndpoint ----------------------------------------------------------------------------

class MetricsEndpoint::Server {
 public:
  explicit Server(const std::string& listen) : exposer(listen, 2) {}
  prometheus::Exposer exposer;
};

StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& bind, int port, const std::string& advertise_host) {
  if (port < 0 || port > 65535) {
    return InvalidArgument("metrics port: expected 0..65535, got " + std::to_string(port));
  }
  const std::string listen = bind + ":" + std::to_string(port);
  std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint());
  e->registry_ = std::make_shared<prometheus::Registry>();
  try {
    // civetweb throws when it cannot listen.
    e->server_ = std::make_unique<Server>(listen);
  } catch (const std::exception& ex) {
    return Status(StatusCode::kUnavailable,
                  "metrics: cannot listen on " + listen + ": " + ex.what());
  }
  const auto ports = e->server_->exposer.GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return Status(StatusCode::kUnavailable, "metrics: cannot listen on " + listen);
  }
  e->port_ = ports.front();
  e->host_ = advertise_host;
  e->server_->exposer.RegisterCollectable(e->registry_);
  return e;
}

MetricsEndpoint::~MetricsEndpoint() {
  BeginStop();
  if (stopper_.joinable()) stopper_.join();
}

void MetricsEndpoint::BeginStop() {
  if (!server_ || stopper_.joinable()) return;
  stopper_ = std::thread([server = std::move(server_)]() mutable { server.reset(); });
}

std::string MetricsEndpoint::address() const { return host_ + ":" + std::to_string(port_); }

std::vector<double> SchedulingLatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
}

// ---- NodeMetrics --------------------------------------------------------------------------------

class NodeMetrics::Families {
 public:
  Families(prometheus::Registry& r, const std::string& node_id)
      : node({{"node", node_id}}),
        tasks(Gauge(r, "orrery_tasks", "Tasks on this node by state (terminal states: since start)",
                    node),
              "state"),
        actors(Gauge(r, "orrery_actors", "Actors (API actor leases) on this node by state", node),
               "state"),
        scheduler_tasks(Gauge(r, "orrery_scheduler_tasks",
                              "Lease requests in this node's scheduler by state", node),
                        "state"),
        unschedulable(Gauge(r, "orrery_scheduler_unschedulable_tasks",
                            "Queued lease requests by wait reason", node),
                      "reason"),
        resources(Gauge(r, "orrery_resources", "Resources of this node, used and available", node)),
        cpu(Gauge(r, "orrery_node_cpu_utilization",
                  "Granted CPU / total CPU of this node (from its resources, not /proc)", node)
                .Add({})),
        gpus(Gauge(r, "orrery_node_gpus_utilization",
                   "Granted fraction of each GPU device (the core's per-device grants)", node),
             "gpu"),
        spillbacks(prometheus::BuildCounter()
                       .Name("orrery_spillbacks_total")
                       .Help("Lease requests this node spilled to another node")
                       .Labels(node)
                       .Register(r)
                       .Add({})),
        env_bytes(Gauge(r, "orrery_runtime_env_cache_bytes",
                        "Bytes held by this node's runtime-env cache", node)
                      .Add({})),
        env_evictions(prometheus::BuildCounter()
                          .Name("orrery_runtime_env_cache_evictions_total")
                          .Help("Runtime envs evicted from this node's cache")
                          .Labels(node)
                          .Register(r)
                          .Add({})),
        latency(prometheus::BuildHistogram()
                    .Name("orrery_scheduling_latency_seconds")
                    .Help("Lease request received to granted on this node")
                    .Labels(node)
                    .Register(r)
                    .Add({}, SchedulingLatencyBuckets())) {}

  const std::map<std::string, std::string> node;
  GaugeVec tasks, actors, scheduler_tasks, unschedulable;
  prometheus::Family<prometheus::Gauge>& resources;
  prometheus::Gauge& cpu;
  GaugeVec gpus;
  prometheus::Counter& spillbacks;
  prometheus::Gauge& env_bytes;
  prometheus::Counter& env_evictions;
  prometheus::Histogram& latency;

  std::mutex mu;  // guards the two members below
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> resource_series;
  uint64_t evictions_seen = 0;
};

NodeMetrics::NodeMetrics(prometheus::Registry& registry, const std::string& node_id)
    : f_(std::make_unique<Families>(registry, node_id)) {}
NodeMetrics::~NodeMetrics() = default;

void NodeMetrics::SetTasks(const std::map<std::string, double>& m) { f_->tasks.SetAll(m); }
void NodeMetrics::SetActors(const std::map<std::string, double>& m) { f_->actors.SetAll(m); }
void NodeMetrics::SetSchedulerTasks(const std::map<std::string, double>& m) {
  f_->scheduler_tasks.SetAll(m);
}
void NodeMetrics::SetUnschedulableTasks(const std::map<std::string, double>& m) {
  f_->unschedulable.SetAll(m);
}

void NodeMetrics::SetResources(const std::map<std::string, std::pair<double, double>>& by_name) {
  std::lock_guard<std::mutex> l(f_->mu);
  auto& series = f_->resource_series;
  for (const auto& [name, v] : by_name) {
    auto [it, inserted] = series.try_emplace(name, nullptr, nullptr);
    if (inserted) {
      it->second.first = &f_->resources.Add({{"name", name}, {"state", "used"}});
      it->second.second = &f_->resources.Add({{"name", name}, {"state", "available"}});
    }
    it->second.first->Set(v.first);
    it->second.second->Set(v.second);
  }
  // Resources that went away (e.g. a cancelled placement-group bundle's) leave the family.
  for (auto it = series.begin(); it != series.end();) {
    if (by_name.count(it->first) == 0) {
      f_->resources.Remove(it->second.first);
      f_->resources.Remove(it->second.second);
      it = series.erase(it);
    } else {
      ++it;
    }
  }
}

void NodeMetrics::SetCpuUtilization(double fraction) { f_->cpu.Set(fraction); }

void NodeMetrics::SetGpuUtilization(const std::vector<double>& per_device) {
  std::map<std::string, double> m;
  for (size_t i = 0; i < per_device.size(); ++i) m[std::to_string(i)] = per_device[i];
  f_->gpus.SetAll(m);
}

void NodeMetrics::AddSpillbacks(uint64_t n) {
  if (n > 0) f_->spillbacks.Increment(static_cast<double>(n));
}

void NodeMetrics::ObserveSchedulingLatency(double seconds) { f_->latency.Observe(seconds); }

NodeMetrics::HistogramSnapshot NodeMetrics::SchedulingLatency() const {
  const prometheus::ClientMetric m = f_->latency.Collect();
  HistogramSnapshot out;
  for (const auto& b : m.histogram.bucket) out.buckets.emplace_back(b.upper_bound, b.cumulative_count);
  out.sum = m.histogram.sample_sum;
  out.count = m.histogram.sample_count;
  return out;
}

void NodeMetrics::SetRuntimeEnvCache(uint64_t bytes, uint64_t evictions_total) {
  f_->env_bytes.Set(static_cast<double>(bytes));
  std::lock_guard<std::mutex> l(f_->mu);
  if (evictions_total > f_->evictions_seen) {
    f_->env_evictions.Increment(static_cast<double>(evictions_total - f_->evictions_seen));
    f_->evictions_seen = evictions_total;
  }
}

// ---- HeadMetrics --------------------------------------------------------------------------------

class HeadMetrics::Families {
 public:
  explicit Families(prometheus::Registry& r)
      : nodes(Gauge(r, "orrery_nodes", "Nodes known to the head by state", {}), "state"),
        groups(Gauge(r, "orrery_placement_groups", "Placement groups by state", {}), "state"),
        active(Gauge(r, "orrery_autoscaler_active_nodes", "Alive nodes by node type", {}),
               "node_type"),
        pending(Gauge(r, "orrery_autoscaler_pending_nodes",
                      "Nodes being launched by node type (no live autoscaler yet: 0)", {}),
                "node_type"),
        tasks(Gauge(r, "orrery_head_task_table", "Tasks in the head's task table by state", {}),
              "state") {}
  GaugeVec nodes, groups, active, pending, tasks;
};

HeadMetrics::HeadMetrics(prometheus::Registry& registry)
    : f_(std::make_unique<Families>(registry)) {}
HeadMetrics::~HeadMetrics() = default;

void HeadMetrics::SetNodes(const std::map<std::string, double>& m) { f_->nodes.SetAll(m); }
void HeadMetrics::SetPlacementGroups(const std::map<std::string, double>& m) {
  f_->groups.SetAll(m);
}
void HeadMetrics::SetAutoscalerNodes(const std::map<std::string, double>& active,
                                     const std::map<std::string, double>& pending) {
  f_->active.SetAll(active);
  f_->pending.SetAll(pending);
}
void HeadMetrics::SetTaskTable(const std::map<std::string, double>& m) { f_->tasks.SetAll(m); }

// ---- MetricsTargetsWriter -----------------------------------------------------------------------

StatusOr<std::unique_ptr<MetricsTargetsWriter>> MetricsTargetsWriter::Open(
    const std::string& session_dir) {
  std::unique_ptr<MetricsTargetsWriter> w(new MetricsTargetsWriter());
  fs::path dir;
  if (session_dir.empty()) {
    std::error_code ec;
    std::string tmpl = (fs::temp_directory_path(ec) / "orrery_metrics_XXXXXX").string();
    if (ec || mkdtemp(tmpl.data()) == nullptr) {
      return Status(StatusCode::kUnavailable, "metrics: cannot create a temp dir for the targets");
    }
    w->private_dir_ = tmpl;
    dir = w->private_dir_ / "metrics";
  } else {
    dir = fs::path(session_dir) / "metrics";
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable,
                  "metrics: cannot create " + dir.string() + ": " + ec.message());
  }
  w->path_ = dir / "prometheus_targets.json";
  w->io_ = std::make_unique<EventLoop>();
  return w;
}

MetricsTargetsWriter::~MetricsTargetsWriter() {
  if (io_) io_->Stop();
  if (!private_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(private_dir_, ec);
  }
}

void MetricsTargetsWriter::Update(std::vector<MetricsTarget> targets) {
  io_->Post([this, targets = std::move(targets)] {
    if (targets == last_ && fs::exists(path_)) return;
    if (WriteFileAtomic(path_, Render(targets)).ok()) last_ = targets;
  });
}

std::string MetricsTargetsWriter::Render(const std::vector<MetricsTarget>& targets) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : targets) {
    out.push_back({{"targets", {t.address}}, {"labels", t.labels}});
  }
  return out.dump(2) + "\n";
}

}  // namespace orrery::live

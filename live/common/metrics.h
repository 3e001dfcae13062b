// Prometheus metrics of the live daemons (DESIGN section 7), over prometheus-cpp.
//
//   MetricsEndpoint      a registry served as Prometheus text at http://BIND:PORT/metrics
//                        (prometheus-cpp's Exposer; port 0 = the OS picks one).
//   NodeMetrics          the node daemon's families; every series carries node="<node id>".
//   HeadMetrics          the head daemon's families (cluster-wide: nodes, placement groups,
//                        autoscaler node counts).
//   MetricsTargetsWriter the head's Prometheus file_sd target list,
//                        <session_dir>/metrics/prometheus_targets.json.
//
// Names and label values follow the simulator's timeseries.csv (sim/model.cc), so a live run and a
// simulated one read the same: orrery_tasks{state=pending|leased|running|finished|failed|canceled|
// submitted} (finished/failed/canceled/submitted count since the daemon started),
// orrery_resources{name,state=used|available}, orrery_scheduler_unschedulable_tasks{reason} with
// core's wait reason names, orrery_nodes{state=alive|dead}, orrery_placement_groups{state}.
//
// Thread safety: every setter is thread-safe (prometheus-cpp metrics are atomics; families take a
// short mutex) and never blocks on I/O, so the daemons call them from their event loop. Scrapes
// run on the Exposer's own threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace orrery::live {

class EventLoop;

// A registry served over HTTP. Destroying it stops the server.
class MetricsEndpoint {
 public:
  // Listens on `bind`:`port` (0: an OS-chosen port). `advertise_host` is the host part of
  // address() (e.g. the hostname when binding 0.0.0.0). Unavailable if the port cannot be bound.
  static StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& bind, int port,
                                                          const std::string& advertise_host);
  ~MetricsEndpoint();

  int port() const { return port_; }
  std::string address() const;  // advertise_host:port
  prometheus::Registry& registry() { return *registry_; }
  // Starts shutting the HTTP server down on a helper thread: civetweb takes up to 2 s to stop
  // once it has served a scrape, so a daemon calls this first in its Stop() and the wait overlaps
  // the rest of its shutdown. The destructor joins it. The registry stays usable. Idempotent.
  void BeginStop();

  class Server;

 private:
  MetricsEndpoint() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Server> server_;
  std::thread stopper_;
  std::string host_;
  int port_ = 0;
};

// Latency histogram buckets, seconds: 100 µs to 10 s.
std::vector<double> SchedulingLatencyBuckets();

// The node daemon's metrics, registered in `registry` with the constant label node=`node_id`.
class NodeMetrics {
 public:
  NodeMetrics(prometheus::Registry& registry, const std::string& node_id);
  ~NodeMetrics();

  // Each Set*(map) replaces the family's series: label values missing from `by_label` are
  // removed, so callers pass every state they want shown (zeros included).
  void SetTasks(const std::map<std::string, double>& by_state);           // orrery_tasks
  void SetActors(const std::map<std::string, double>& by_state);          // orrery_actors
  void SetSchedulerTasks(const std::map<std::string, double>& by_state);  // orrery_scheduler_tasks
  void SetUnschedulableTasks(const std::map<std::string, double>& by_reason);
  // orrery_resources: name -> (used, available).
  void SetResources(const std::map<std::string, std::pair<double, double>>& by_name);
  void SetCpuUtilization(double fraction);  // orrery_node_cpu_utilization
  // orrery_node_gpus_utilization{gpu="<device index>"}, one value per device.
  void SetGpuUtilization(const std::vector<double>& per_device);
  void AddSpillbacks(uint64_t n);                 // orrery_spillbacks_total
  void ObserveSchedulingLatency(double seconds);  // orrery_scheduling_latency_seconds
  // That histogram now: (upper bound, cumulative count) per bucket, the last +Inf; sum; count.
  struct HistogramSnapshot {
    std::vector<std::pair<double, uint64_t>> buckets;
    double sum = 0;
    uint64_t count = 0;
  };
  HistogramSnapshot SchedulingLatency() const;
  // The runtime-env cache of this node (wired by the runtime-env agent). `evictions_total` is the
  // cache's own running count; the counter advances by the difference (never backwards).
  void SetRuntimeEnvCache(uint64_t bytes, uint64_t evictions_total);

  class Families;

 private:
  std::unique_ptr<Families> f_;
};

// The head daemon's metrics (no node label: they describe the cluster).
class HeadMetrics {
 public:
  explicit HeadMetrics(prometheus::Registry& registry);
  ~HeadMetrics();

  void SetNodes(const std::map<std::string, double>& by_state);  // orrery_nodes
  void SetPlacementGroups(
      const std::map<std::string, double>& by_state);  // orrery_placement_groups
  // orrery_autoscaler_active_nodes / _pending_nodes, by node type.
  void SetAutoscalerNodes(const std::map<std::string, double>& active_by_type,
                          const std::map<std::string, double>& pending_by_type);
  // orrery_head_task_table{state}: the head's task table (what `orrery list tasks` shows; bounded
  // by HeadOptions::max_tasks, so not a running total).
  void SetTaskTable(const std::map<std::string, double>& by_state);

  class Families;

 private:
  std::unique_ptr<Families> f_;
};

// One scrape target of the file_sd list.
struct MetricsTarget {
  std::string address;  // HOST:PORT
  std::map<std::string, std::string> labels;
  friend bool operator==(const MetricsTarget&, const MetricsTarget&) = default;
};

// Writes the Prometheus file_sd target list, one entry per target:
//   [{"targets": ["127.0.0.1:9100"], "labels": {"orrery_role": "node", "orrery_node": "b"}}, ...]
// Target labels never use `node`, which the scraped series carry themselves.
// Writes happen on the writer's own thread (atomic replace: WriteFileAtomic), so Update() never
// blocks its caller; an unchanged list is not rewritten.
// Thread safety: Update may be called from any thread.
class MetricsTargetsWriter {
 public:
  // The file is `session_dir`/metrics/prometheus_targets.json; an empty `session_dir` means a
  // private temp dir, removed on destruction. Fails if the directory cannot be created.
  static StatusOr<std::unique_ptr<MetricsTargetsWriter>> Open(const std::string& session_dir);
  ~MetricsTargetsWriter();

  const std::filesystem::path& path() const { return path_; }
  void Update(std::vector<MetricsTarget> targets);

  // The file's JSON text (pretty-printed, targets in the given order).
  static std::string Render(const std::vector<MetricsTarget>& targets);

 private:
  MetricsTargetsWriter() = default;
  std::filesystem::path path_;
  std::filesystem::path private_dir_;  // removed on destruction when non-empty
  std::unique_ptr<EventLoop> io_;
  std::vector<MetricsTarget> last_;  // guarded by being touched only on io_
};

}  // namespace orrery::live

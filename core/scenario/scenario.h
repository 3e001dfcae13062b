// A scenario: the cluster, the scheduler settings and the workload of one run, as plain data.
// core/io/scenario_loader.h reads it from a YAML file (documented in scenarios/README.md);
// core/scenario/generators.h expands the file's generators into concrete, time-ordered work.
//
// The same Scenario drives the simulator (sim/) and, at tiny scale, the live cluster (live/), so
// it holds only backend-neutral data and lives in core (neither backend depends on the other).
// Generators are expanded at load time with the scenario's seed, so a (file, seed, --set
// overrides) triple always yields the same tasks.
//
// Memory: tasks are compact (sizeof(TaskSpec) = 64 bytes each) and refer to shared tables for
// names, shapes, strategies and arguments, so 1,000,000 tasks cost well under 100 MB.
//
// Thread safety: plain values; immutable once loaded (io::LoadScenario).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/agent/submitter.h"
#include "core/cluster_view.h"
#include "core/placement/bundle_policy.h"
#include "core/resources.h"
#include "core/scheduling/scheduler.h"
#include "core/status.h"

namespace orrery {

struct NodeSpec {
  NodeId id;         // "<type>-<index>", e.g. "cpu-0", unless the file names nodes explicitly
  std::string type;  // node type name
  ResourceSet total;
  Labels labels;
  // A node the autoscaler may launch later (not part of the cluster at start). Standby nodes of
  // a type come after its initial nodes and are numbered on from them.
  bool standby = false;
};

// A node type the autoscaler manages (cluster.node_types entries with max_workers).
struct NodeTypeSpec {
  std::string name;
  ResourceSet resources;
  Labels labels;
  int64_t min_workers = 0;
  int64_t max_workers = 0;
};

struct AutoscalerSpec {
  bool enabled = false;
  double period_s = 5.0;         // how often a planning round runs
  double idle_timeout_s = 300.0;  // Ray's default
  double upscaling_speed = 1.0;
  int64_t max_workers = 1000000;  // cluster limit (managed nodes)
  double boot_delay_s = 30.0;    // launch -> node joins the cluster
  std::vector<NodeTypeSpec> node_types;  // managed types, by name
};

// Per-node runtime-environment cache (DESIGN section 4).
struct EnvCacheSpec {
  std::string policy = "arbitrary";     // arbitrary | lru | gdsf
  uint64_t limit_bytes = 10ULL << 30;  // 10 GiB
  double setup_timeout_s = 600.0;
  int max_attempts = 3;
  // Starting a new worker process for a task costs this much; a task whose runtime env already
  // has an idle worker on the node reuses it for free (workers are pooled per env hash; GPU
  // workers are not reused, as Ray does by default). 0 = worker start-up is not modelled.
  double worker_startup_s = 0.0;
};

// The driver's task submitter (`owner:` in a scenario; core/agent/submitter.h), shared by the
// simulator's owner and `live run`. The defaults are a Ray driver's: a granted lease runs the
// next queued task of its class, at most 10 lease requests of a class in flight
// (max_pending_lease_requests_per_scheduling_category), a lease held over 500 ms goes back when
// its task finishes (worker_lease_timeout_milliseconds), idle leases go back at once.
// `reuse_leases: false` gives every task attempt a fresh lease of its own, sent at once.
struct OwnerSpec {
  // Feed a granted lease the next queued task of its scheduling class (SchedulingClasses).
  bool reuse_leases = true;
  // Lease requests of one class in flight at once; 0 = unlimited.
  int max_pending_lease_requests_per_class = 10;
  // A granted lease with nothing to run goes back after this long; 0 = at once.
  double idle_lease_timeout_s = 0.0;
  // A lease held longer than this since its grant goes back when its task finishes; 0 = never.
  double lease_timeout_s = 0.5;
  // A lease of a class that holds GPUs runs this many tasks, then goes back (Ray's max_calls=1
  // default for GPU tasks: the worker exits, releasing the GPU memory a task left behind, and
  // the next task of the class asks for a new lease); 0 = unlimited, as for CPU classes.
  int gpu_tasks_per_lease = 1;
};

// `base` with the scenario's owner settings on top (each backend keeps its own transport
// settings: spillback and rejection limits, backoff).
agent::SubmitterOptions OwnerSubmitterOptions(const OwnerSpec& owner,
                                              agent::SubmitterOptions base);

// Control-plane latencies the simulator adds to its network hops (`control_plane:` in a scenario,
// usually the file `orrery calibrate` writes; scenarios/README.md, "control_plane"). All in
// seconds; 0 = not modelled (the default: every hop costs the network latency only).
struct ControlPlaneSpec {
  // Owner -> node -> owner round trip of a lease request decided at once, as the owner sees it.
  // The simulator adds what exceeds two network latencies, half to each leg, to every lease
  // request and reply (first requests, follow-ups after a spillback, same-node ones).
  double lease_request_s = 0;
  // RunTask sent on a granted lease -> the task runs on a reused worker: added to the push.
  double task_start_s = 0;
  // A task ends -> its node can grant the freed resources: added before the node frees them.
  double task_finish_s = 0;
  // The cores the cluster's worker start-ups share, over the whole cluster (a worker's start-up
  // is CPU work: on one host, as a `calibrate --local` cluster, every node's start-ups share its
  // cores). With m start-ups in progress each advances at min(1, k / m) of its full speed
  // (processor sharing, as the host's scheduler shares the cores; measured live: 8 at once on 2
  // cores end 110-215 ms after one alone takes 50 ms). 0 = unlimited.
  int worker_start_parallel = 0;
  // The fraction of a start-up that is that shared CPU work (done first); the rest is latency
  // each start-up has however many run (exec, the worker's handshake). `calibrate --local`
  // derives it from one start-up alone against a batch at once.
  double worker_start_shared = 1;
  // Measured for the record (the model derives them from report_period and the hops):
  double spillback_s = 0, resources_visible_remote_s = 0, report_jitter_s = 0;
  bool given = false;  // a control_plane block was read
};

struct NetworkSpec {
  double bandwidth_Bps = 1.25e9;  // per node link, bytes per second (10 Gbit/s)
  double latency_s = 0.0005;      // one-way control/data latency between two nodes
};

struct SchedulerSpec {
  SchedulerOptions options;      // policy name + hybrid options
  // The file (or an override) names the policy or one of its options: a live run on a running
  // cluster then refuses a cluster that decides otherwise, instead of using the cluster's.
  bool policy_given = false;
  double report_period_s = 0.1;  // how often nodes broadcast their resources
  // How a node's change reaches the other nodes (simulator; a live cluster always does the
  // first): true = with its next heartbeat to the head, then the head's next broadcast
  // (heartbeats half a period after each broadcast, the mean lag of a live cluster's independent
  // timers: one period on average); false = every node learns every change at the next report
  // tick (half a period on average).
  bool view_via_head = true;
};

struct RuntimeEnvSpec {
  std::string id;            // content hash / name
  uint64_t size_bytes = 0;   // package size (downloaded over the network on first use per node)
  double install_s = 0.0;    // install time after download
};

// One object argument of a task: the output of an earlier task, or an object that exists at
// start on a given node.
struct ArgSpec {
  int32_t producer = -1;  // index into Scenario::tasks, or -1
  int32_t node = -1;      // index into Scenario::nodes when producer == -1
  uint64_t bytes = 0;     // size; for a producer, its output_bytes
};

enum class WorkKind : uint8_t { kTask, kActor };
const char* WorkKindName(WorkKind k);  // "task" | "actor"

struct TaskSpec {
  double submit_s = 0;
  double duration_s = 0;      // run time once started (actors: lifetime)
  uint64_t output_bytes = 0;  // size of the object it returns (0 = none)
  uint32_t name = 0;          // index into Scenario::names (the generator's name)
  uint32_t job = 0;           // index into Scenario::jobs
  uint32_t shape = 0;         // index into Scenario::shapes
  uint32_t strategy = 0;      // index into Scenario::strategies
  uint32_t args_begin = 0;    // range in Scenario::args
  uint32_t args_count = 0;
  int32_t placement_group = -1;  // index into Scenario::placement_groups
  int32_t bundle = -1;           // bundle index within the group (-1 = any bundle)
  int32_t env = -1;              // index into Scenario::runtime_envs
  uint16_t max_retries = 3;      // extra attempts after a node failure
  WorkKind kind = WorkKind::kTask;
};

struct PlacementGroupSpec {
  std::string id;
  double create_s = 0;
  PlacementStrategy strategy = PlacementStrategy::kPack;
  std::vector<ResourceRequest> bundles;
};

struct FailureSpec {
  enum class Action : uint8_t { kCrash, kRecover };
  double at_s = 0;
  int32_t node = -1;  // index into Scenario::nodes
  Action action = Action::kCrash;
};

struct Scenario {
  std::string name;
  std::string path;  // the file it came from
  uint64_t seed = 1;

  std::vector<NodeSpec> nodes;  // in file order; ids unique
  int32_t driver_node = 0;      // index into nodes: where jobs' drivers submit work
  NetworkSpec network;
  SchedulerSpec scheduler;

  // Tables shared by tasks.
  std::vector<std::string> names;
  std::vector<std::string> jobs;
  std::vector<ResourceRequest> shapes;
  std::vector<SchedulingStrategy> strategies;
  std::vector<ArgSpec> args;

  std::vector<TaskSpec> tasks;  // sorted by submit_s (stable: file order within equal times)
  std::vector<PlacementGroupSpec> placement_groups;
  std::vector<RuntimeEnvSpec> runtime_envs;
  std::vector<FailureSpec> failures;  // sorted by at_s

  AutoscalerSpec autoscaler;
  EnvCacheSpec env_cache;
  OwnerSpec owner;
  ControlPlaneSpec control_plane;

  double max_time_s = std::numeric_limits<double>::infinity();  // stop condition
  std::vector<std::string> warnings;  // e.g. shapes no node type could ever hold
};

// The scheduling class of every task (by task index), dense from 0 in order of first use, as a
// Ray driver's scheduling key: tasks of the same name (a generator's name is its function, and
// Ray's scheduling class includes the function), resource shape, strategy (affinity target
// included), placement group and bundle, runtime env and kind, and the same argument objects
// (Ray's key includes the task's dependencies: consumers of different outputs never share a
// lease) share a class, so a lease granted for one may run the others (the owner's lease reuse).
// Names, shapes and strategies are interned at load time, so equal indexes are equal content.
// Returns the number of classes in *num_classes when non-null. O(tasks + args) expected.
std::vector<uint32_t> SchedulingClasses(const Scenario& s, uint32_t* num_classes = nullptr);

// The owner's per-class options of the classes SchedulingClasses gave (`class_of`, by task), for
// Submitter::SetClassOptions: a class whose shape holds GPUs gets owner.gpu_tasks_per_lease.
std::vector<agent::ClassOptions> SchedulingClassOptions(const Scenario& s,
                                                        const std::vector<uint32_t>& class_of,
                                                        uint32_t num_classes);

}  // namespace orrery

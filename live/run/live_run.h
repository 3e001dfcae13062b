// `orrery live run`: replays a scenario (core/scenario/scenario.h, the same data the simulator
// runs) on a real cluster with built-in workloads, and renders the same result files (DESIGN section 6,
// backend "live", times in wall seconds from the run's start).
//
// How a scenario maps onto the cluster:
//   - every task is submitted at its submit time (wall clock from the run's start), once its
//     producers (object arguments) are final, to ONE agent::Submitter, the driver's owner, as in
//     the simulator: tasks are grouped by scheduling class (core's SchedulingClasses), and the
//     scenario's `owner:` settings (lease reuse, pending-request limit per class, idle timeout)
//     apply; a pool of call threads carries its decisions out (lease requests, task runs), as
//     many as there are calls in flight, not one per task;
//   - the first lease request goes where the simulator sends it: the target of a NODE_AFFINITY
//     strategy, else the node holding most argument bytes (core's ChooseLocalityNode), else the
//     scenario's driver node; the request carries the arguments' locations, so the deciding
//     node's LeaseManager sees the same locality input as in the simulator;
//   - the task then runs a built-in workload on a pooled worker for its duration: PRODUCE of its
//     output size when it has an output (kept in the node's object store), else SLEEP (or CPU
//     burn with Workload::kCpu); arguments on other nodes are fetched before it starts;
//   - objects that exist at start (`args: [{node: X, bytes: N}]`) are created on X first;
//   - `failures` are injected at their times: crash stops the node daemon abruptly (in-process
//     with --local; SIGKILL of the daemon's pid for a separate process on this machine), recover
//     starts it again with the same id (--local only). The head marks a crashed node dead after
//     its heartbeat timeout; a task whose attempt died with its node is resubmitted (a new task
//     id `<id>.aK`, a new tasks.csv row with attempt K) up to its max_retries, once the head and
//     the other nodes see the node dead; a lease request that was queued at the crashed node is
//     asked again (same attempt), as is one to a node killed outside `failures` once the head
//     declares it dead (it is down for the rest of the run). A hard-affinity task to a dead
//     node is canceled by the deciding node ("node X is dead");
//   - objects survive their node by lineage (Ray's semantics): a task's output is in the store of
//     the node it ran on and of every node that fetched it; a consumer whose argument has no
//     copy left on a live node (crashed, declared dead, restarted empty, or its fetch failed)
//     makes the producing task run again (a new attempt, counted against its max_retries) and
//     waits for it, then runs (an attempt that failed only fetching a lost argument is prepared
//     again and not counted). When it cannot be rebuilt (the producer is out of retries, is an
//     actor, or the object was created at the run's start), the consumer fails with the object
//     id, the node(s) that held it and why.
// Placement groups are created on the head at their `at` times (id `<run id>-<name>`, removed when
// the run ends); a task of a group waits until it is created, asks for its shape under the
// bundle's resource names (indexed if `bundle` is given, else wildcard) and goes first to the
// bundle's node.
// Runtime envs: each scenario env becomes a real runtime env (EmulatedRuntimeEnv) installed by the
// nodes' runtime-env agents; built-in workloads run on pooled workers of that env. With --local
// the nodes get the scenario's runtime_env_cache (policy, limit, setup timeout, attempts).
// summary.json env_cache is the growth of the nodes' agent counters during the run.
// Actors (workload.actors): an actor-creation lease (actor_creation in the request, so a
// zero-resource actor is placed by the random policy as in the simulator) held for the actor's
// lifetime by a sleep workload; tasks.csv kind `actor`.
// Autoscaled node types (--local): the head runs the live autoscaler (live/head/autoscaler/autoscaler_loop.h) with
// the scenario's node types; standby nodes are not started, the autoscaler launches node daemon
// processes as the planner decides; summary.json gets autoscaler {launched, terminated,
// peak_nodes} and node_seconds integrated over the samples (nodes alive or launching).
// Not supported yet (CheckLiveSupport names the field): an env larger than 256 MiB (its bytes
// are written on every node that installs it).
//
// Thread safety: RunScenario blocks its caller and uses its own threads; LocalCluster is owned
// by one thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/results/run_record.h"
#include "core/status.h"
#include "live/node/node.h"
#include "live/common/runtime_env.h"
#include "core/scenario/scenario.h"

namespace orrery::live {

// InvalidArgument "FILE: FIELD: live run does not support ... yet" for the first unsupported
// feature the scenario uses; Ok otherwise.
Status CheckLiveSupport(const Scenario& scenario);

// The runtime env that stands in for a scenario env on a live node: env var ORRERY_SCENARIO_ENV
// = its id, and setup commands that cost what the scenario says: the id written to a file (so
// two specs with equal numbers are distinct installs), `sleep <install_s>`, and
// `head -c <size_bytes> /dev/zero > blob` (the install's size on disk, which the node's cache
// charges). The download over the network is not modelled separately.
RuntimeEnv EmulatedRuntimeEnv(const RuntimeEnvSpec& spec);

class HeadDaemon;
class NodeDaemon;

// The scenario's cluster, started in this process on loopback: a head, and one node daemon per
// scenario node (id, resources as logical resources, labels as in the scenario; the driver node
// is the head's node), with the scenario's scheduler options and report period. The destructor
// stops every daemon (and so every worker process) and removes `dir`'s object stores.
class LocalCluster {
 public:
  // `dir`: where the nodes' object stores go (created; removed on destruction).
  static StatusOr<std::unique_ptr<LocalCluster>> Start(const Scenario& scenario,
                                                       const std::filesystem::path& dir);
  ~LocalCluster();
  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }

  // Stops node `id`'s daemon abruptly: its queued lease calls fail, its tasks are killed, it
  // stops heartbeating and serving (the head marks it dead after the heartbeat timeout). Blocks
  // for up to ~3 s. NotFound if no such node; FailedPrecondition if it is already down.
  Status Crash(const std::string& id);
  // Starts node `id` again (same id and resources, a new port): it registers with the head as
  // alive. NotFound if no such node; FailedPrecondition if it is running.
  Status Recover(const std::string& id);

 private:
  LocalCluster() = default;
  std::string address_, token_;
  std::filesystem::path dir_;
  std::unique_ptr<HeadDaemon> head_;
  std::vector<std::string> ids_;                    // scenario order
  std::vector<NodeOptions> node_options_;           // per node, to start it again
  std::vector<std::unique_ptr<NodeDaemon>> nodes_;  // null while crashed
};

struct LiveRunOptions {
  enum class Workload { kSleep, kCpu };
  Workload workload = Workload::kSleep;  // for tasks without an output
  double sample_period_s = 1.0;          // timeseries.csv sampling period (wall seconds)
  // How long to wait for every node to see all the others before the run starts.
  std::chrono::milliseconds view_timeout{10000};
  // How long a task of a placement group waits for its group to be created before it fails.
  std::chrono::milliseconds group_timeout{60000};
  // Progress lines (one per finished task) go here when set.
  std::ostream* progress = nullptr;
  // Injects one of the scenario's failures (crash = true, recover = false) on node `id`; called
  // from the run's failure thread at the failure's time. Unset: crash SIGKILLs the node daemon's
  // pid when it runs on this machine (loopback address, not this process); recover fails.
  std::function<Status(const std::string& id, bool crash)> inject_failure;
  // Record every step of every worker lease at the driver (the record's lease_events,
  // leases.csv; core/results/lease_trace.h).
  bool trace_leases = false;
};

// Policy is a cluster setting: the scheduling a run on the cluster at `address` gets. The
// cluster's (from its view) when the scenario names no policy or policy option, or names exactly
// the cluster's; FailedPrecondition naming both when it asks for another.
StatusOr<SchedulerOptions> ClusterScheduling(const Scenario& scenario,
                                             const std::string& address, const std::string& token);

// `--set` overrides ("scheduler.policy=spread", "scheduler.top_k_fraction=0.2", ...) that make a
// scenario ask for exactly `o` (so a simulator run decides as the cluster does).
std::vector<std::string> SchedulingOverrides(const SchedulerOptions& o);

// Replays `scenario` on the cluster whose head is at `address`. REQUIRES: CheckLiveSupport ok.
// FailedPrecondition if a scenario node is not an alive node of the cluster (by id), or if the
// scenario asks for a policy other than the cluster's (ClusterScheduling). The record's policy is
// the cluster's, the one that ran.
StatusOr<results::RunRecord> RunScenario(const Scenario& scenario, const std::string& address,
                                         const std::string& token, const LiveRunOptions& options);

}  // namespace orrery::live

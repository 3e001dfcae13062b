// One node's control logic (DESIGN sections 2-4), backend-agnostic: what a node does with a lease
// request, a finished task, a report from the head, a runtime-env install, a placement-group
// bundle and a worker. The simulator (sim/model.cc, one agent per simulated node) and the live
// node daemon (live/node/node.cc) both drive a NodeAgent and apply what it decides; neither decides on
// its own. The agent has no clock, no I/O and no threads: time comes in as `now_s`, randomness as
// an Rng&.
//
// It owns:
//   - the LeaseManager (core/lease): the lease queues, one FIFO per scheduling class dispatched in
//     class order, its grant / spill / reject / cancel / queue decisions and the local estimate of
//     the cluster. Created lazily (a simulator with 10k nodes only pays for the nodes that decide);
//   - the lease table: every lease granted here and what it holds (device ids included), whether
//     the manager granted it, the node granted it before it had a manager, or a bundle did;
//   - committed bundles: prepare (all or nothing), commit, cancel, and leases drawn from a bundle;
//   - the runtime-env cache (core/envcache): which env to install, references, eviction (live:
//     live/node/runtime_env_agent.h carries the decisions out on this very cache);
//   - the idle workers per env: whether a task reuses one or starts one, whether a worker stays
//     idle (live: live/node/worker_pool.h only picks which idle process and runs it);
//   - what the node reports: its own resources when they changed since the last report.
//
// Events in -> decisions out (every decision is a plain value the backend carries out):
//   RequestLease(req)          LeaseReply: kGranted{allocation} | kSpillback{node} | kRejected |
//                              kCanceled{reason} | kQueued{wait_reason}
//   SchedulePending()          the replies of queued requests that left the queue, in dispatch
//                              order (classes by id, FIFO within a class); wait-reason changes
//                              through manager()->TakeWaitReasonChanges()
//   CancelLease(task)          kCanceled reply if it was queued here
//   ReturnLease(task)          (task finished / released) its resources return to the node or to
//                              its bundle; the next SchedulePending() may grant queued requests
//   ApplyReport / AddNode /    the head's view of a peer: refreshes the estimate; a peer that died
//   SetNodeState                 makes the next pass cancel requests with hard affinity to it
//   PrepareBundle              true (reserved: resources taken from the node) | false{why}
//   CommitBundle               true: the bundle's pool opens for its group's tasks (and, with
//                              expose, CommittedBundleResources join the node's totals; queued
//                              requests are asked again: their replies come from TakeReplies())
//   CancelBundle               the bundle's resources return to the node
//   GrantFromBundle(task)      the allocation taken from the bundle's pool, or nullptr
//   Envs().Acquire/Report*     envcache::CacheDecisions: StartInstall | EnvReady | EnvFailed | Evict
//   OnTimer(now_s)             the same for install attempts past their deadline
//   AcquireWorker(env, gpu, kind)  WorkerAction: kReuse (an idle worker of the env) | kStart
//                              (an actor always starts its own worker)
//   ReleaseWorker(env, gpu, kind)  true: the worker stays idle for the next task of its env
//                              (never an actor's: its state dies with it)
//   IdleWorkerGone(env)        (an idle worker exited or was retired) the env's idle count follows
//   LocalChange(reported)      the node's resources to report, or nullptr if unchanged
//   Reset()                    (this node died) the requests queued here, in arrival order, to
//                              go back to their owners; everything else is dropped
//
// Without a manager the node's resources live in a *shared* view handed in at construction (the
// simulator's truth view): a grant_or_reject request and a bundle prepare are decided on it
// directly, and the first decision that needs the policy creates the manager from a copy of it,
// adopting every lease and bundle held so far.
//
// Thread safety: none; the backend's event loop owns a NodeAgent.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cluster_view.h"
#include "core/envcache/env_cache.h"
#include "core/lease/lease_manager.h"
#include "core/rng.h"
#include "core/status.h"

namespace orrery::agent {

// Shared by every agent of a backend (a simulator with 10k nodes holds one copy).
struct NodeAgentOptions {
  SchedulerOptions scheduler;
  envcache::EnvCacheOptions env_cache;
  // Idle workers kept per env [1]; a node may override (the simulator keeps one per CPU).
  int max_idle_workers_per_env = 1;
  // GPU work gets a fresh worker that exits afterwards (its CUDA context is not shared) [false].
  bool reuse_gpu_workers = false;
  // Commit adds CommittedBundleResources to the node's totals (live: tasks of the group ask for
  // "CPU_group_0_pg" through the manager) [false: tasks draw from the bundle's pool].
  bool expose_committed_bundles = false;
};

enum class WorkerAction : uint8_t { kReuse, kStart };
// What a worker is for: a task (stateless: reusable) or an actor (its own worker, not reused).
enum class WorkerKind : uint8_t { kTask, kActor };

// The lease key of bundle `index` of `group` in the manager's lease table.
std::string BundleLeaseKey(const std::string& group, int index);

class NodeAgent {
 public:
  // REQUIRES: `options` outlives the agent; `shared`, if given, outlives it and holds `node`.
  NodeAgent(NodeId node, const NodeAgentOptions* options, ClusterView* shared = nullptr);
  NodeAgent(NodeAgent&&) = default;
  NodeAgent& operator=(NodeAgent&&) = default;

  const NodeId& node() const { return node_; }

  // ---- The lease manager.
  bool has_manager() const { return lm_ != nullptr; }
  // Replaces the manager by one deciding on `view` (live: the head's first view). Leases and
  // bundles held so far are adopted. InvalidArgument if the node is not in `view`.
  Status CreateManager(ClusterView view);
  // The manager, created from the shared view if absent. REQUIRES: has_manager() or a shared view.
  LeaseManager& Manager();
  LeaseManager* manager() { return lm_.get(); }
  const LeaseManager* manager() const { return lm_.get(); }

  // ---- Leases.
  // A lease request arrived. Without a manager a grant_or_reject request is granted or rejected on
  // the shared view (it reads only req.sched.resources); anything else, and one that waits here
  // (AnswerSpilled), goes to Manager().
  // O(policy) (see LeaseManager::RequestLease).
  LeaseReply RequestLease(LeaseRequest req, Rng& rng);
  // The same decision for a grant_or_reject request at a node without a manager, without building
  // a request: grants `task` on the shared view if the node is schedulable and `shape` fits now.
  // REQUIRES: !has_manager() and a shared view. O(resources + devices).
  bool GrantHere(const TaskId& task, const ResourceRequest& shape);
  // The answer to a grant_or_reject request of `shape` at a node without a manager, on the
  // shared view: granted (GrantHere), rejected, or it waits here (SchedulerOptions::
  // wait_at_best_node and SpilledRequestWaits: the caller hands it to Manager(), which queues
  // it). REQUIRES: !has_manager() and a shared view. O(resources + devices), plus O(nodes) when
  // it does not fit.
  enum class SpilledAnswer : uint8_t { kGranted, kRejected, kWaits };
  SpilledAnswer AnswerSpilled(const TaskId& task, const ResourceRequest& shape);
  // One pass over the queued requests (nothing without a manager or a queue).
  std::vector<LeaseReply> SchedulePending(Rng& rng);
  // Removes a queued request; nullopt if it was not queued here.
  std::optional<LeaseReply> CancelLease(const TaskId& task, const std::string& reason);
  // The lease of `task` ended (finished, failed, released): its resources go back to the node or
  // to its bundle's pool (if the bundle is still held). False if no lease of `task` is held here.
  bool ReturnLease(const TaskId& task);
  // Leases held here (manager's and the agent's own).
  size_t NumLeases() const;

  // ---- The head's view of the other nodes (ignored without a manager: it is created from the
  // current shared view when needed).
  Status ApplyReport(const NodeId& node, const ResourceSet& available, NodeState state,
                     const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices);
  Status ReplaceNodeResources(const NodeId& node, NodeResources resources);
  Status AddNode(Node node);
  Status SetNodeState(const NodeId& node, NodeState state);

  // ---- Placement-group bundles (the node side of core/placement/two_phase.h).
  // Reserves all of `resources` or nothing (a grant_or_reject lease under BundleLeaseKey).
  // Idempotent for a bundle already held. On false, *why says why.
  bool PrepareBundle(const std::string& group, int index, const ResourceRequest& resources,
                     Rng& rng, std::string* why);
  // Makes a prepared bundle usable: its pool is full again; with expose_committed_bundles its
  // CommittedBundleResources join the node (the manager is rebuilt; queued requests found through
  // SetQueuedRequestLookup are asked again, replies in TakeReplies()). False if not prepared here.
  bool CommitBundle(const std::string& group, int index, Rng& rng, std::string* why);
  // Returns what the bundle holds to the node (prepared or committed). False if not held here.
  bool CancelBundle(const std::string& group, int index, Rng& rng);
  bool HoldsBundle(const std::string& group, int index) const;
  // The bundle is committed and `shape` fits what is left of its pool now. O(log bundles).
  bool BundleFits(const std::string& group, int index, const ResourceRequest& shape) const;
  // Grants `task` a lease drawn from the bundle's pool. nullptr if the bundle is not committed here
  // or `shape` does not fit. The pointer is valid until the lease is returned.
  const Allocation* GrantFromBundle(const TaskId& task, const std::string& group, int index,
                                    const ResourceRequest& shape);
  int NumBundles() const { return static_cast<int>(bundles_.size()); }
  // How the agent finds the full request of a queued task when it must ask the manager again
  // (live keeps them with the held calls). Unset: such requests are dropped from the queue.
  using QueuedRequestLookup = std::function<const LeaseRequest*(const TaskId&)>;
  void SetQueuedRequestLookup(QueuedRequestLookup f) { lookup_ = std::move(f); }
  // Replies produced outside RequestLease/SchedulePending (re-asked requests), in order.
  std::vector<LeaseReply> TakeReplies() { return std::exchange(replies_, {}); }

  // ---- Runtime envs.
  // The cache, created on first use from options.env_cache.
  envcache::EnvCache& Envs();
  bool has_envs() const { return envs_ != nullptr; }
  const envcache::EnvCache* envs() const { return envs_.get(); }
  // Counters of this node's caches since construction, those lost in Reset() included.
  envcache::CacheCounters EnvCounters() const;
  // Timer: install attempts past their deadline count as timed out (the next attempt, or
  // EnvFailed for their waiters). Nothing without a cache. O(cached envs).
  envcache::CacheDecisions OnTimer(double now_s);
  // Bumped by Reset(): an install reported for an older generation is stale.
  uint64_t generation() const { return generation_; }

  // ---- Workers.
  // A task of env `env` (-1: none) needs a worker: an idle one of the same env is reused unless
  // the task uses GPUs (and reuse_gpu_workers is off) or it is an actor (kActor: always kStart,
  // the env's idle workers stay for its tasks). A backend with several worker pools gives each
  // its own env ids, so their idle counts stay apart. O(log envs).
  WorkerAction AcquireWorker(int64_t env, bool gpu, WorkerKind kind = WorkerKind::kTask);
  // The task's worker is free: kept idle (true) unless GPU work, an actor's worker (kActor: it
  // exits) or the env's pool is full.
  bool ReleaseWorker(int64_t env, bool gpu, WorkerKind kind = WorkerKind::kTask);
  // An idle worker of `env` left without being reused (it exited, or the backend retired it:
  // e.g. its install was evicted): the next AcquireWorker of the env does not count on it.
  // False if the agent counted no idle worker of `env`. O(log envs).
  bool IdleWorkerGone(int64_t env);
  int IdleWorkers(int64_t env) const;
  void set_max_idle_workers_per_env(int n) { max_idle_ = n; }

  // ---- Reports.
  // The node's own resources when they differ from `reported` (what the backend published last);
  // nullptr without a manager (the shared view is then the truth) or when equal. O(resources).
  const NodeResources* LocalChange(const NodeResources& reported) const;

  // ---- This node died.
  // Returns the requests queued here (arrival order) and forgets everything: manager, leases,
  // bundles, env cache (its counters are kept), idle workers. Bumps generation().
  std::vector<PendingLease> Reset();
  // The node left the cluster idle (scaled down): only the manager goes; it is created again from
  // the shared view when the node decides next. REQUIRES: no lease held or queued here.
  void DropManager() { lm_.reset(); }

 private:
  struct Bundle {
    ResourceRequest resources;
    Allocation allocation;  // what it took from the node
    bool committed = false;
    ResourceSet exposed;  // expose_committed_bundles: what commit added to the node
    NodeResources pool;   // committed: what is left for its group's tasks
  };
  using BundleKey = std::pair<std::string, int>;
  // Looks bundles up by (string_view, index): no string is built per lookup.
  struct BundleKeyLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const std::string_view ag = a.first, bg = b.first;
      return ag != bg ? ag < bg : a.second < b.second;
    }
  };
  using BundleRef = std::pair<std::string_view, int>;
  // A lease not held by the manager: granted on the shared view, or drawn from a bundle.
  struct OwnLease {
    Allocation allocation;
    bool from_bundle = false;
    BundleKey bundle;  // from_bundle: the bundle it was drawn from
  };

  ClusterView& shared() { return *shared_; }
  void AdoptAll();
  // Adds (or removes) `delta` to the node's totals and availability by rebuilding the manager.
  Status ResizeLocal(const ResourceSet& delta, bool add, Rng& rng);

  NodeId node_;
  const NodeAgentOptions* options_ = nullptr;
  ClusterView* shared_ = nullptr;
  int shared_slot_ = -1;
  int max_idle_ = 1;
  std::unique_ptr<LeaseManager> lm_;
  // A hash libstdc++ treats as fast: with std::hash<std::string> a table of up to 20 entries is
  // searched linearly, node by node (a cache miss each), and a node holds about that many leases.
  struct TaskIdHash {
    size_t operator()(const TaskId& t) const { return std::hash<std::string_view>()(t); }
  };
  std::unordered_map<TaskId, OwnLease, TaskIdHash> own_;
  std::map<BundleKey, Bundle, BundleKeyLess> bundles_;
  std::unique_ptr<envcache::EnvCache> envs_;
  envcache::CacheCounters envs_lost_;
  uint64_t generation_ = 0;
  std::map<int64_t, int> idle_workers_;
  QueuedRequestLookup lookup_;
  std::vector<LeaseReply> replies_;
};

}  // namespace orrery::agent

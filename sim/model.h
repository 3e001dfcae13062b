// The simulated cluster: a discrete-event model of Ray's control plane driven by the core.
//
// Every scheduling decision is made by the core (LeaseManager + policies) exactly as a live node
// daemon would make it. Each deciding node keeps its own stale copy of the cluster view, refreshed
// every report period; spillback hops and grant replies cost control-plane latency; tasks run for
// their duration on granted resources (as timed events, not actors); object arguments move over the
// simulated network through the Platform (SimGrid Comms in sim/simgrid_driver.cc); placement groups
// are reserved with two-phase commit; node crashes fail the attempts running there, which are
// retried per max_retries (every attempt is a row of tasks.csv).
//
// The model owns no clock: the driver hands it the current time with every call. It is therefore
// testable without SimGrid, and the same Scenario + seed gives the same event order.
//
// Thread safety: none; one driver loop.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/agent/head_controller.h"
#include "core/agent/node_agent.h"
#include "core/agent/submitter.h"
#include "core/autoscaler/planner.h"
#include "core/cluster_view.h"
#include "core/envcache/env_cache.h"
#include "core/lease/lease_manager.h"
#include "core/placement/two_phase.h"
#include "core/results/lease_trace.h"
#include "core/results/run_record.h"
#include "core/rng.h"
#include "core/scenario/scenario.h"

namespace orrery::sim {

// What the model needs from the network/host layer.
class Platform {
 public:
  virtual ~Platform() = default;
  // Starts moving `bytes` from node `from` to node `to`. The driver calls
  // Model::OnTransferDone(now, token, ok) when it ends (ok = false if a host failed).
  virtual void StartTransfer(int from, int to, uint64_t bytes, uint64_t token) = 0;
  // A node crashed (up = false) or recovered (up = true).
  virtual void SetNodeUp(int node, bool up) = 0;
};

struct ModelOptions {
  double sample_period_s = 1.0;  // timeseries.csv sampling period (virtual seconds)
  // Per-node resource gauges in timeseries.csv only for clusters up to this many nodes.
  int per_node_metrics_max_nodes = 64;
  // The phases of the timers a live cluster starts at random: the head's broadcast tick against
  // the workload's clock and (view_via_head) each node's heartbeat. Unset: the tick at multiples
  // of the report period and every node half a period before it. Set: each phase is drawn
  // uniformly over the period from this seed (a live cluster's timers line up differently in
  // every run), so runs with different seeds sample the run-to-run spread of a real cluster.
  std::optional<uint64_t> timing_seed;
};

class Model {
 public:
  // REQUIRES: `scenario` and `platform` outlive the model.
  Model(const Scenario& scenario, Platform* platform, ModelOptions options = {});
  ~Model();

  // Event loop interface for the driver.
  bool HasEvents() const;
  // REQUIRES: HasEvents().
  double NextEventTime() const;
  // Processes the events due at or before `now`, at most `max_events` of them (REQUIRES: now >=
  // the last time handed in). Returns true if events due at or before `now` remain (the driver
  // calls again with the same `now`; splitting a batch never changes the order of events).
  bool ProcessUntil(double now, uint64_t max_events = UINT64_MAX);
  // Tasks submitted so far (for progress display).
  uint64_t NumTasksSubmitted() const { return next_arrival_; }
  void OnTransferDone(double now, uint64_t token, bool ok);
  // True when nothing can change any more: every task is final (or infeasible with nothing that
  // could make it feasible) and no transfer is in flight, or max_time was reached.
  bool Done() const;
  uint64_t NumEventsProcessed() const { return events_processed_; }
  // Tasks in a final state / all tasks (for progress display).
  uint64_t NumTasksFinal() const { return tasks_final_; }
  uint64_t NumTasks() const { return scenario_.tasks.size(); }
  // Problems met while running (e.g. an autoscaler round that failed), for the user.
  const std::vector<std::string>& warnings() const { return autoscaler_warnings_; }

  // Builds the run record (call once, after the loop).
  results::RunRecord Finish(double now, double wall_s);

  // Decision log: one line per scheduling decision ("t=... task=... attempt=... decider ->
  // outcome node"), kept only when enabled (golden tests).
  void EnableDecisionLog() { log_decisions_ = true; }
  const std::vector<std::string>& decision_log() const { return decision_log_; }
  // Per-lease trace (core/results/lease_trace.h): the record's lease_events, when enabled.
  void EnableLeaseTrace() { trace_leases_ = true; }

 private:
  friend class SimNodeProvider;  // the autoscaler's actuator (sim/sim_node_provider.h)

  enum class Ev : uint8_t {
    kArrive,        // a = task
    kLeaseRequest,  // a = attempt, b = node, c = grant_or_reject
    kStart,         // a = attempt
    kFinish,        // a = attempt
    kReportTick,
    kSample,
    kFailure,       // a = failure index
    kPgCreate,      // a = pg
    kPgPrepared,    // a = pg, c = generation
    kAutoscale,     // a planning round (periodic)
    kBoot,          // a = node, c = launch generation: a launched node joins
    kEnvInstalled,  // a = node, b = env, c = install attempt (install finished or timed out)
    kNodeReport,    // a = slot: the node's heartbeat carries its resources to the head
    kWorkerBooted,  // c = boot version: the earliest worker start-up in progress may be done
    kEnd,           // max_time reached
  };
  struct Event {
    double t;
    uint64_t seq;
    Ev type;
    int32_t a = 0, b = 0;
    int64_t c = 0;
    bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  enum class AState : uint8_t { kPending, kRunning, kFinished, kFailed, kCanceled };
  struct Attempt {
    uint32_t task;
    uint16_t number;
    AState state = AState::kPending;
    WaitReason wait = WaitReason::kNone;
    WaitReason last_wait = WaitReason::kNone;
    int32_t node = -1;       // where it runs
    int32_t queued_at = -1;  // node whose lease queue holds it (while pending there)
    int32_t bundle_pg = -1;  // placement group whose bundle pool it draws from
    int32_t bundle = -1;
    uint16_t spillbacks = 0;
    uint16_t transfers_left = 0;
    bool env_held = false;   // holds a reference to its runtime env on `node`
    bool env_waiting = false;  // waits for its runtime env to be installed on `node`
    bool has_worker = false;   // holds a worker process on `node`
    bool booting = false;      // its new worker is starting up (in boots_)
    double submit = 0, start = -1, end = -1;
  };
  static_assert(sizeof(Attempt) <= 64, "an attempt per task: keep it compact");
  // A node's life as the autoscaler's provider sees it.
  enum class Life : uint8_t { kStandby, kPending, kRunning };
  struct NodeRt {
    bool up = true;
    Life life = Life::kRunning;
    int type = -1;               // managed node type (index into autoscaler node_types), or -1
    double launch_time = 0;
    int64_t launch_gen = 0;
    double idle_since = 0;       // < 0 while busy
    // The node's control logic (core/agent): lease queues and manager (created on its first
    // decision), lease table, bundles, env cache, idle workers. The model applies its decisions.
    std::unique_ptr<agent::NodeAgent> agent;
    std::vector<uint32_t> running;     // attempts granted here (running or starting)
  };
  // A placement group's model-side state. The head's side (placement, two phases, retries, node
  // death) is head_'s (agent::HeadController); `state` mirrors its reservation's state.
  struct PgRt {
    enum class State : uint8_t { kPending, kPreparing, kCreated } state = State::kPending;
    bool ever_created = false;            // tasks may use held bundles
    bool waiting_node = false;            // infeasible now: retried when a node recovers
    std::vector<TwoPhaseCommand> in_flight;  // the Prepares of the current attempt
    std::vector<int> slots;                  // node per bundle
    std::vector<char> bundle_held;           // bundle b is reserved on its node (the node agent holds it)
    std::deque<uint32_t> waiting;            // attempts waiting for bundle resources
    std::vector<uint32_t> waiting_creation;  // tasks waiting for the group to exist
    int64_t generation = 0;
  };
  struct Transfer {
    uint32_t attempt;
    uint64_t bytes;
    int from;
    bool done = false;
    int to = -1;        // destination node
    int env = -1;       // >= 0: a runtime-env package download (index into runtime_envs)
    int env_attempt = 0;
  };

  void Push(double t, Ev type, int32_t a = 0, int32_t b = 0, int64_t c = 0);
  void Process(const Event& e);
  double Hop(int from, int to) const;
  // One leg of a lease request or of its reply: the hop, at least the calibrated leg.
  double LeaseLeg(int from, int to) const;

  void OnArrive(uint32_t task);
  void NewAttempt(uint32_t task, double submit);
  void NewAttemptNoProceed(uint32_t task, double submit);
  void NewAttemptDelayed(uint32_t task, double delay);
  void Proceed(uint32_t att);
  void BeginRun(uint32_t att);
  int OwnerNode() const;
  void SetWait(uint32_t att, WaitReason w);
  void OnTruthChanged(int slot);
  void MarkDirty(int slot);
  void OnNodeReport(int slot);
  void ReleaseBundle(int pg, int bundle);
  void RequestFromOwner(uint32_t att, double delay);
  // The owner's submitter decides each lease request of an attempt (reuse off: one lease per
  // attempt, bound to it); SubmitFromOwner hands it a ready attempt, ApplyOwnerDecisions carries
  // the decisions in owner_out_ out (`delay`: how far the owner is from the event's source).
  void SubmitFromOwner(uint32_t att, double delay);
  // Applies owner_out_[begin..] (then drops them): requests leave after `delay` (the hop from
  // `node`, which answered, to the owner); a push starts the attempt on `node` (whose agent holds the lease).
  void ApplyOwnerDecisions(size_t begin, double delay, int node);
  void OnLeaseRequest(uint32_t att, int node, bool grant_or_reject);
  // A grant_or_reject request of `lease` (traced for `templ`) reached `node`, which is down:
  // rejected at the owner after the way back plus live's unreachable pause.
  void RejectUnreachable(agent::LeaseHandle lease, uint32_t templ, int node);
  void HandleReply(int node, const LeaseReply& r);
  // --- owner.reuse_leases: a lease request is the owner's, not an attempt's. Its key (the
  // node's task id, and `att` in the lease-request path) is kReqBase + its index in reqs_; the
  // node's allocation stays under that key while tasks of the class run on the lease, and goes
  // back on the owner's kReturnLease (or with the node).
  static constexpr uint32_t kReqBase = 1u << 30;
  static bool IsReq(uint32_t key) { return key >= kReqBase; }
  struct ReqRt {
    agent::LeaseHandle lease = 0;
    uint32_t templ = 0;      // the attempt whose task gave the request its shape and arguments
    uint16_t spillbacks = 0;
    int32_t node = -1;       // granted there
    bool done = false;       // returned, lost, failed or no longer needed
    bool used = false;       // a task ran on it (the first one gets its spillbacks)
    WaitReason wait = WaitReason::kNone;  // while queued at a node (the autoscaler's demand)
  };
  void SetReqWait(uint32_t idx, WaitReason w);
  // Reuse on: the wait reason of each class's latest request that queued at a node. A task
  // waits in the owner's class queue for those requests, so a task that waited takes it as its
  // own wait reason, and one still queued when the run ends is infeasible when its class is.
  std::vector<WaitReason> class_wait_;
  void LogReq(uint32_t idx, int node, const std::string& what);
  uint32_t NewReq(agent::LeaseHandle lease, uint32_t templ);
  void OnReqLeaseRequest(uint32_t key, int node, bool grant_or_reject);
  void HandleReqReply(int node, uint32_t key, const LeaseReply& r);
  // The attempt that ran on owner lease `lease` ended (node down: the lease is lost).
  void EndOnLease(agent::LeaseHandle lease);
  // Granted leases held on `node`, which crashed, are lost.
  void LoseLeasesOn(int node);
  bool reuse_ = false;
  std::vector<int> return_passes_;  // nodes that got a lease back: scheduling passes to run
  bool in_return_passes_ = false;
  std::vector<ReqRt> reqs_;
  std::unordered_map<agent::LeaseHandle, uint32_t> req_of_lease_;
  void OnGranted(uint32_t att, int node);
  void OnStart(uint32_t att);
  void OnFinish(uint32_t att);
  void EndAttempt(uint32_t att, AState state);
  void ReleaseAttempt(uint32_t att);
  void TaskFinal(uint32_t task);
  void OnReportTick();
  void OnSample();
  void OnFailure(const FailureSpec& f);
  void StartArgs(uint32_t att);
  envcache::EnvCache& Envs(int node);
  void ApplyEnvDecisions(int node, const envcache::CacheDecisions& ds);
  void StartEnvInstall(int node, int env, int attempt);
  void OnEnvInstalled(int node, int env, int64_t attempt_and_gen);
  void ReleaseEnv(uint32_t att);
  void OnAutoscale();
  void OnBoot(int node, int64_t gen);
  void TerminateNode(int node);
  bool Periodic(Ev type) const;
  void OnPgCreate(int pg);
  void OnPgPrepared(int pg, int64_t generation);
  void ApplyPlacement(const agent::PlacementDecisions& d);
  void SyncPgState(int pg);
  // The node side of a bundle, one narrow function per step (the node agent's to implement).
  bool PrepareBundleOn(int node, int pg, int bundle);
  void CommitBundleOn(int node, int pg, int bundle);
  void CancelBundleOn(int pg, int bundle);
  void TryPgTasks(int pg);
  void SchedulePendingAt(int node);
  LeaseManager& Lm(int node);
  agent::NodeAgent& Agent(int node) { return *nodes_[node].agent; }
  void MirrorLocal(int node);
  void Accumulate();
  int DeciderFor(uint32_t task) const;
  SchedulingRequest RequestFor(uint32_t task) const;
  void LogDecision(uint32_t att, int node, const std::string& what);

  class TruthObserver;

  const Scenario& scenario_;
  double lease_leg_min_s_ = 0;  // calibrated control plane (constructor); 0 = not given
  double push_min_s_ = 0;
  Platform* platform_;
  ModelOptions options_;
  double now_ = 0;
  uint64_t seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  uint64_t events_processed_ = 0;
  Rng rng_;

  ClusterView truth_;  // authoritative state of nodes without a LeaseManager; mirror of the rest
  std::unique_ptr<TruthObserver> observer_;
  std::vector<int> slot_of_node_;  // node index -> slot in truth_ (and every LM view)
  std::vector<int> node_of_slot_;
  std::vector<NodeRt> nodes_;
  std::vector<int> lm_nodes_;      // nodes that have a LeaseManager, ascending
  std::vector<char> dirty_;        // by slot: the head's copy changed since the last report tick
  std::vector<int> dirty_list_;
  // View propagation through the head (scenario_.scheduler.view_via_head, as live runs it): a
  // node's change reaches the head with the node's next heartbeat (half a period after each
  // tick, see OnTruthChanged), and the deciding nodes with the head's next broadcast tick.
  // head_copy_ is what the head last heard of each node; report_armed_ marks a heartbeat event
  // pending for the slot.
  struct HeadCopy {
    ResourceSet available;
    NodeState state = NodeState::kAlive;
    std::vector<std::pair<std::string, std::vector<Quantity>>> devices;
  };
  std::vector<HeadCopy> head_copy_;
  std::vector<char> report_armed_;
  // control_plane.worker_start_parallel = k: the worker start-ups in progress share k cores
  // (processor sharing): with m of them, each does its start-up work at rate min(1, k / m).
  // `left` is the start-up work (seconds at full rate) still to do as of boots_at_; a
  // kWorkerBooted event carrying boot_version_ is armed for the earliest end.
  struct Boot {
    uint32_t att;
    double left;
  };
  std::vector<Boot> boots_;
  double boots_at_ = 0;
  int64_t boot_version_ = 0;
  double BootRate() const;  // each start-up's rate: min(1, k / m); REQUIRES: boots_ not empty
  void AdvanceBoots();    // brings every `left` up to now_
  void ArmBoots();        // arms the event for the earliest end (a new version)
  void OnWorkerBooted(int64_t version);
  void StartExecuting(uint32_t att);  // its start-up's shared work is done: the task begins
  // The heartbeat phase of `slot` as a fraction of the report period (ModelOptions::timing_seed);
  // slot -1: the phase of the head's broadcast tick.
  double HeartbeatPhase(int slot) const;

  std::vector<Attempt> attempts_;
  // The driver's owner side (core/agent/submitter.h) and its lease per attempt (0 = none).
  agent::Submitter owner_;
  std::vector<agent::SubmitDecision> owner_out_;  // reused: no allocation per decision
  std::vector<uint32_t> class_of_task_;  // SchedulingClasses, when the owner limits per class
  std::vector<agent::LeaseHandle> lease_of_att_;
  std::vector<int32_t> current_attempt_;  // by task
  std::vector<int32_t> deps_left_;        // by task
  std::vector<char> arrived_;             // by task
  std::vector<int32_t> output_node_;      // by task: where its output lives (-1 none yet)
  std::vector<uint32_t> dependents_;      // CSR: dependents of task i
  std::vector<uint32_t> dependents_begin_;
  std::vector<PgRt> pgs_;
  agent::HeadController head_;            // placement groups (group id = index as text)

  uint64_t tasks_final_ = 0;
  size_t next_arrival_ = 0;         // next task to arrive (tasks are sorted by submit time)
  uint64_t nonperiodic_events_ = 0;
  uint64_t pending_ = 0, running_ = 0, finished_ = 0, failed_attempts_ = 0, canceled_ = 0;
  std::array<uint64_t, 7> wait_count_{};   // pending attempts by WaitReason
  std::vector<Transfer> transfers_;        // by token
  uint64_t first_open_transfer_ = 0;       // every token below is done
  uint64_t transfers_in_flight_ = 0;
  bool ended_ = false;
  uint64_t spillbacks_ = 0;
  uint64_t bytes_transferred_ = 0;

  // Utilisation integrals.
  double last_acc_t_ = 0;
  double used_[3] = {0, 0, 0};      // CPU, GPU, memory in use now (cluster)
  double cap_[3] = {0, 0, 0};       // capacity of up nodes now
  double used_int_[3] = {0, 0, 0};
  double cap_int_[3] = {0, 0, 0};
  double node_seconds_ = 0;
  int nodes_up_ = 0;
  std::vector<std::array<double, 3>> node_used_;  // by slot
  std::vector<std::array<double, 3>> node_cap_;   // by slot

  // What every node agent shares (scheduler, env cache and worker options).
  agent::NodeAgentOptions agent_options_;

  // Autoscaler.
  std::unique_ptr<autoscaler::AutoscalerPlanner> planner_;
  std::unique_ptr<autoscaler::NodeProvider> provider_;  // a SimNodeProvider while planner_ is set
  std::vector<int64_t> demand_by_shape_;  // pending attempts waiting for cluster resources
  uint64_t launched_ = 0, terminated_ = 0, peak_nodes_ = 0;
  uint64_t workers_started_ = 0, workers_reused_ = 0;
  int nodes_pending_ = 0;
  std::vector<std::string> autoscaler_warnings_;

  std::vector<results::Sample> samples_;
  bool log_decisions_ = false;
  std::vector<std::string> decision_log_;
  // A lease event of `lease` (for the class of `templ`'s task) at node `node` (-1: none).
  void TraceLease(agent::LeaseHandle lease, const char* event, uint32_t templ, int node,
                  int64_t task_att = -1, std::string_view detail = {}, double view_age_s = -1);
  // How old a decider's report of a remote node is now: since the heartbeat point that the last
  // report tick carried (half a period before it with view_via_head).
  double ViewAge() const;
  double last_report_tick_ = 0;
  bool trace_leases_ = false;
  results::LeaseTraceRecorder lease_trace_;
  double last_activity_ = 0;
};

}  // namespace orrery::sim

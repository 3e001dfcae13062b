#include "sim/model.h"
#include "sim/sim_node_provider.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <sstream>

#include "core/agent/head_controller.h"
#include "core/placement/two_phase.h"
#include "core/results/task_row.h"

namespace orrery::sim {

namespace {
constexpr int kCpu = 0, kGpu = 1, kMem = 2;
constexpr Predefined kTracked[3] = {Predefined::kCPU, Predefined::kGPU, Predefined::kMemory};
constexpr int kNumWaitReasons = 7;

std::string Key(uint32_t att) { return std::to_string(att); }
uint32_t ParseKey(const std::string& k) { return static_cast<uint32_t>(std::stoul(k)); }

std::string Fmt(double x) {
  std::ostringstream os;
  os.precision(9);
  os << x;
  return os.str();
}
}  // namespace


// Keeps the model's bookkeeping in step with every change of the truth view: which nodes must be
// re-reported, and the utilisation integrals.
class Model::TruthObserver : public ClusterViewObserver {
 public:
  explicit TruthObserver(Model* m) : m_(m) {}
  void OnNodeChanged(int slot) override { m_->OnTruthChanged(slot); }
  void OnTopologyChanged() override {}

 private:
  Model* m_;
};

namespace {

// How long live's owner pauses after a lease request found its node unreachable before it asks
// again (live/client/client.h, AcquireOptions::unreachable_pause).
constexpr double kUnreachablePauseS = 0.1;

// The simulator's owner before the scenario's `owner:` settings apply: spillbacks and rejections
// are followed without a limit (the nodes' LeaseManagers bound the spillbacks; each retry costs
// its network hops), and after a rejection the owner pauses before it asks the entry node again
// with the submitter's default backoff, the one live's lease walk uses (5 ms, doubling, at most
// 0.2 s; live/client/client.h, AcquireOptions::rejection_backoff). Without the pause, a request
// whose target saw room elsewhere that the entry node did not yet see would bounce between them at
// network speed until a report arrived.
agent::SubmitterOptions SimOwnerOptions() {
  agent::SubmitterOptions o;
  o.reuse_leases = false;
  o.max_pending_lease_requests_per_class = 0;
  o.max_spillbacks_in_a_row = 0;
  o.max_rejections = 0;
  return o;
}

// The head's options in the simulator: an infeasible group waits for a node (the model knows the
// instant one joins); retries otherwise back off as on the live head.
agent::HeadControllerOptions SimHeadOptions() {
  agent::HeadControllerOptions o;
  o.infeasible_waits_for_node = true;
  return o;
}
}  // namespace

Model::Model(const Scenario& scenario, Platform* platform, ModelOptions options)
    : scenario_(scenario),
      platform_(platform),
      options_(options),
      rng_(scenario.seed),
      owner_(OwnerSubmitterOptions(scenario.owner, SimOwnerOptions())),
      head_(SimHeadOptions()) {
  // Calibrated control plane (scenario `control_plane:`): a leg of a lease request or of its
  // reply costs at least half the measured round trip, also between processes of one node (the
  // driver and its raylet are processes apart); the push of a task costs at least what the
  // measured start (push, start, the started event back) takes beyond one leg.
  const ControlPlaneSpec& cp = scenario_.control_plane;
  lease_leg_min_s_ = cp.lease_request_s / 2;
  push_min_s_ = std::max(0.0, cp.task_start_s - lease_leg_min_s_);
  const size_t n = scenario_.nodes.size();
  nodes_.resize(n);
  slot_of_node_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    Node node;
    node.id = scenario_.nodes[i].id;
    node.labels = scenario_.nodes[i].labels;
    auto res = NodeResources::Create(scenario_.nodes[i].total);
    node.resources = res.ok() ? *res : NodeResources();
    (void)truth_.AddNode(std::move(node));
    slot_of_node_[i] = truth_.FindSlot(scenario_.nodes[i].id);
  }
  node_of_slot_.assign(truth_.slot_capacity(), -1);
  for (size_t i = 0; i < n; ++i) node_of_slot_[slot_of_node_[i]] = static_cast<int>(i);
  dirty_.assign(truth_.slot_capacity(), 0);
  report_armed_.assign(truth_.slot_capacity(), 0);
  head_copy_.resize(truth_.slot_capacity());
  for (int slot : slot_of_node_) {
    const Node& n = truth_.at(slot);
    head_copy_[slot] = {n.resources.available(), n.state, n.resources.all_devices()};
  }
  node_used_.assign(truth_.slot_capacity(), {0, 0, 0});
  node_cap_.assign(truth_.slot_capacity(), {0, 0, 0});
  for (size_t i = 0; i < n; ++i) {
    const int slot = slot_of_node_[i];
    for (int r = 0; r < 3; ++r) {
      node_cap_[slot][r] = truth_.at(slot).resources.total().Get(kTracked[r]).ToDouble();
      cap_[r] += node_cap_[slot][r];
    }
  }
  nodes_up_ = static_cast<int>(n);
  agent_options_.scheduler = scenario_.scheduler.options;
  agent_options_.env_cache.default_limit_bytes = scenario_.env_cache.limit_bytes;
  agent_options_.env_cache.policy = scenario_.env_cache.policy;
  agent_options_.env_cache.setup_timeout_s = scenario_.env_cache.setup_timeout_s;
  agent_options_.env_cache.max_attempts = scenario_.env_cache.max_attempts;
  for (size_t i = 0; i < n; ++i) {
    nodes_[i].agent = std::make_unique<agent::NodeAgent>(scenario_.nodes[i].id, &agent_options_,
                                                         &truth_);
    // Idle workers kept per env: as many as the node has CPUs (at least one).
    nodes_[i].agent->set_max_idle_workers_per_env(
        static_cast<int>(scenario_.nodes[i].total.Get(Predefined::kCPU).ToDouble()));
  }
  observer_ = std::make_unique<TruthObserver>(this);
  truth_.AddObserver(observer_.get());
  // Autoscaler: managed node types; standby nodes are not part of the cluster until launched.
  const AutoscalerSpec& as = scenario_.autoscaler;
  for (size_t i = 0; i < n; ++i) {
    for (size_t t = 0; t < as.node_types.size(); ++t) {
      if (as.node_types[t].name == scenario_.nodes[i].type) nodes_[i].type = static_cast<int>(t);
    }
    if (scenario_.nodes[i].standby) {
      nodes_[i].up = false;
      nodes_[i].life = Life::kStandby;
      --nodes_up_;
      truth_.SetState(slot_of_node_[i], NodeState::kDead);
    }
  }
  peak_nodes_ = static_cast<uint64_t>(nodes_up_);
  demand_by_shape_.assign(scenario_.shapes.size(), 0);
  if (as.enabled) {
    autoscaler::AutoscalerConfig cfg;
    for (const auto& t : as.node_types) {
      autoscaler::NodeTypeConfig tc;
      tc.resources = t.resources;
      tc.labels = t.labels;
      tc.min_workers = t.min_workers;
      tc.max_workers = t.max_workers;
      cfg.node_types[t.name] = tc;
    }
    cfg.max_workers = as.max_workers;
    cfg.upscaling_speed = as.upscaling_speed;
    cfg.idle_timeout_s = as.idle_timeout_s;
    auto planner = autoscaler::AutoscalerPlanner::Create(cfg);
    if (planner.ok()) {
      planner_ = std::make_unique<autoscaler::AutoscalerPlanner>(std::move(planner).value());
      provider_ = std::make_unique<SimNodeProvider>(*this);
      Push(0.0, Ev::kAutoscale);
    } else {
      autoscaler_warnings_.push_back("autoscaler disabled: " + planner.status().message());
    }
  }

  const size_t t = scenario_.tasks.size();
  current_attempt_.assign(t, -1);
  deps_left_.assign(t, 0);
  arrived_.assign(t, 0);
  output_node_.assign(t, -1);
  std::vector<uint32_t> count(t + 1, 0);
  for (size_t i = 0; i < t; ++i) {
    const TaskSpec& ts = scenario_.tasks[i];
    for (uint32_t k = 0; k < ts.args_count; ++k) {
      const ArgSpec& a = scenario_.args[ts.args_begin + k];
      if (a.producer >= 0) {
        ++deps_left_[i];
        ++count[a.producer + 1];
      }
    }
  }
  dependents_begin_.assign(t + 1, 0);
  for (size_t i = 0; i < t; ++i) dependents_begin_[i + 1] = dependents_begin_[i] + count[i + 1];
  dependents_.assign(dependents_begin_[t], 0);
  std::vector<uint32_t> fill(dependents_begin_.begin(), dependents_begin_.end() - 1);
  for (size_t i = 0; i < t; ++i) {
    const TaskSpec& ts = scenario_.tasks[i];
    for (uint32_t k = 0; k < ts.args_count; ++k) {
      const ArgSpec& a = scenario_.args[ts.args_begin + k];
      if (a.producer >= 0) dependents_[fill[a.producer]++] = static_cast<uint32_t>(i);
    }
  }
  attempts_.reserve(t + t / 8);
  lease_of_att_.reserve(t + t / 8);
  // Per-class limits need the classes; otherwise every attempt is class 0 (one lease each).
  reuse_ = owner_.options().reuse_leases;
  if (reuse_ || owner_.options().max_pending_lease_requests_per_class > 0) {
    uint32_t classes = 0;
    class_of_task_ = SchedulingClasses(scenario_, &classes);
    if (reuse_) class_wait_.assign(classes, WaitReason::kNone);
    const auto options = SchedulingClassOptions(scenario_, class_of_task_, classes);
    for (uint32_t c = 0; c < classes; ++c) owner_.SetClassOptions(c, options[c]);
  }

  pgs_.resize(scenario_.placement_groups.size());
  for (size_t i = 0; i < pgs_.size(); ++i) {
    Push(scenario_.placement_groups[i].create_s, Ev::kPgCreate, static_cast<int32_t>(i));
  }
  for (size_t i = 0; i < scenario_.failures.size(); ++i) {
    Push(scenario_.failures[i].at_s, Ev::kFailure, static_cast<int32_t>(i));
  }
  // The head's broadcast tick. A live head starts its timer at its own start, at no particular
  // point of the workload's clock; with a timing seed its phase is drawn too. (At a fixed phase,
  // arrivals on a 100 ms grid -- uniform intervals, traces in whole seconds -- all wait a full
  // period for their first view refresh, where live they wait half a period on average.)
  Push(
      scenario_.scheduler.report_period_s * (options_.timing_seed ? 1.0 - HeartbeatPhase(-1) : 1.0),
      Ev::kReportTick);
  Push(0.0, Ev::kSample);
  if (std::isfinite(scenario_.max_time_s)) Push(scenario_.max_time_s, Ev::kEnd);
}

Model::~Model() { truth_.RemoveObserver(observer_.get()); }

// ---------------------------------------------------------------------------------------------
// Event loop

bool Model::Periodic(Ev type) const {
  return type == Ev::kReportTick || type == Ev::kSample || type == Ev::kEnd ||
         type == Ev::kAutoscale || type == Ev::kNodeReport;
}

void Model::Push(double t, Ev type, int32_t a, int32_t b, int64_t c) {
  events_.push(Event{t, seq_++, type, a, b, c});
  if (!Periodic(type)) ++nonperiodic_events_;
}

bool Model::HasEvents() const {
  return !events_.empty() || next_arrival_ < scenario_.tasks.size();
}

double Model::NextEventTime() const {
  double t = std::numeric_limits<double>::infinity();
  if (!events_.empty()) t = events_.top().t;
  if (next_arrival_ < scenario_.tasks.size()) {
    t = std::min(t, scenario_.tasks[next_arrival_].submit_s);
  }
  return t;
}

bool Model::ProcessUntil(double now, uint64_t max_events) {
  for (uint64_t n = 0; !ended_ && HasEvents() && NextEventTime() <= now; ++n) {
    if (n == max_events) return true;
    // Arrivals come from the sorted task list (no heap entry per task); at equal times they go
    // before queued events.
    const bool arrival =
        next_arrival_ < scenario_.tasks.size() &&
        (events_.empty() || scenario_.tasks[next_arrival_].submit_s <= events_.top().t);
    if (arrival) {
      now_ = std::max(now_, scenario_.tasks[next_arrival_].submit_s);
      ++events_processed_;
      OnArrive(static_cast<uint32_t>(next_arrival_++));
      continue;
    }
    Event e = events_.top();
    events_.pop();
    if (!Periodic(e.type)) --nonperiodic_events_;
    now_ = std::max(now_, e.t);
    ++events_processed_;
    Process(e);
  }
  return false;
}

void Model::Process(const Event& e) {
  switch (e.type) {
    case Ev::kArrive: OnArrive(static_cast<uint32_t>(e.a)); break;
    case Ev::kLeaseRequest:
      OnLeaseRequest(static_cast<uint32_t>(e.a), e.b, e.c != 0);
      break;
    case Ev::kStart: OnStart(static_cast<uint32_t>(e.a)); break;
    case Ev::kFinish: OnFinish(static_cast<uint32_t>(e.a)); break;
    case Ev::kReportTick: OnReportTick(); break;
    case Ev::kNodeReport:
      OnNodeReport(e.a);
      break;
    case Ev::kSample: OnSample(); break;
    case Ev::kFailure: OnFailure(scenario_.failures[e.a]); break;
    case Ev::kPgCreate: OnPgCreate(e.a); break;
    case Ev::kPgPrepared: OnPgPrepared(e.a, e.c); break;
    case Ev::kAutoscale: OnAutoscale(); break;
    case Ev::kBoot: OnBoot(e.a, e.c); break;
    case Ev::kEnvInstalled: OnEnvInstalled(e.a, e.b, e.c); break;
    case Ev::kWorkerBooted: OnWorkerBooted(e.c); break;
    case Ev::kEnd:
      ended_ = true;
      break;
  }
}

bool Model::Done() const {
  if (ended_) return true;
  if (tasks_final_ == scenario_.tasks.size() && transfers_in_flight_ == 0 &&
      nonperiodic_events_ == 0) {
    return true;
  }
  // Stuck: nothing can happen any more except periodic ticks, and enough report periods passed
  // since the last change (a heartbeat and a broadcast, then one more) that every view is fresh
  // and still nothing fits (infeasible work, or a placement group that can never be created).
  double quiet = (scenario_.scheduler.view_via_head ? 3 : 2) * scenario_.scheduler.report_period_s;
  // With an autoscaler, also give it a planning round to launch what the waiting work needs.
  if (planner_) quiet += scenario_.autoscaler.period_s;
  return next_arrival_ >= scenario_.tasks.size() && nonperiodic_events_ == 0 &&
         transfers_in_flight_ == 0 && running_ == 0 && now_ - last_activity_ > quiet + 1e-9;
}

double Model::Hop(int from, int to) const {
  return from == to ? 0.0 : scenario_.network.latency_s;
}

double Model::LeaseLeg(int from, int to) const {
  return std::max(Hop(from, to), lease_leg_min_s_);
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping of the truth view

void Model::Accumulate() {
  const double dt = now_ - last_acc_t_;
  if (dt > 0) {
    for (int r = 0; r < 3; ++r) {
      used_int_[r] += used_[r] * dt;
      cap_int_[r] += cap_[r] * dt;
    }
    node_seconds_ += (nodes_up_ + nodes_pending_) * dt;
    last_acc_t_ = now_;
  }
}

void Model::MarkDirty(int slot) {
  if (!dirty_[slot]) {
    dirty_[slot] = 1;
    dirty_list_.push_back(slot);
  }
}

void Model::OnTruthChanged(int slot) {
  if (!scenario_.scheduler.view_via_head) {
    MarkDirty(slot);
  } else if (!report_armed_[slot]) {
    // The node's next heartbeat. Live nodes and the head run independent timers, so how long a
    // heartbeat waits for the head's next broadcast is uniform over the period and varies from
    // run to run. By default the model takes its mean, half a period (head ticks at k * period,
    // heartbeats at (k + 1/2) * period). With a timing seed each node gets its own phase, drawn
    // uniformly, as one live run does: different seeds sample the spread of live runs (fidelity
    // smoke-3n: an 8-task class's mean wait 0.18-0.38 s by phases, live runs 0.16-0.38 s; on
    // mixed-6n the phases decide which class absorbs the backlog, in sim and live alike).
    const double period = scenario_.scheduler.report_period_s;
    const double phase = HeartbeatPhase(slot);
    double t = (std::ceil(now_ / period - phase) + phase) * period;
    if (t < now_) t += period;
    report_armed_[slot] = 1;
    Push(t, Ev::kNodeReport, slot);
  }
  Accumulate();
  const Node& n = truth_.at(slot);
  const bool up = n.state != NodeState::kDead;
  for (int r = 0; r < 3; ++r) {
    const double total = n.resources.total().Get(kTracked[r]).ToDouble();
    const double used = up ? total - n.resources.available().Get(kTracked[r]).ToDouble() : 0.0;
    const double cap = up ? total : 0.0;
    used_[r] += used - node_used_[slot][r];
    cap_[r] += cap - node_cap_[slot][r];
    node_used_[slot][r] = used;
    node_cap_[slot][r] = cap;
  }
  // Idle = everything free (what Ray's autoscaler calls idle).
  const int node = node_of_slot_[slot];
  if (node >= 0) {
    const bool idle = n.resources.available() == n.resources.total();
    if (!idle) {
      nodes_[node].idle_since = -1;
    } else if (nodes_[node].idle_since < 0) {
      nodes_[node].idle_since = now_;
    }
  }
}

// The agent's own resources, once it decides, are the truth about its node.
void Model::MirrorLocal(int node) {
  const int slot = slot_of_node_[node];
  if (const NodeResources* mine = Agent(node).LocalChange(truth_.at(slot).resources)) {
    truth_.SetResources(slot, *mine);
  }
}

LeaseManager& Model::Lm(int node) {
  agent::NodeAgent& ag = Agent(node);
  if (!ag.has_manager()) {
    // Created from the truth as it is now; the agent adopts the leases and bundles it holds.
    lm_nodes_.insert(std::lower_bound(lm_nodes_.begin(), lm_nodes_.end(), node), node);
  }
  return ag.Manager();
}

void Model::SetWait(uint32_t att, WaitReason w) {
  Attempt& a = attempts_[att];
  if (a.wait == w) return;
  // Demand the autoscaler sees: attempts waiting for cluster resources (not for a group bundle).
  const TaskSpec& ts = scenario_.tasks[a.task];
  const bool in_group = ts.placement_group >= 0;
  const int delta = static_cast<int>(agent::IsAutoscalerDemand(w, in_group)) -
                    static_cast<int>(agent::IsAutoscalerDemand(a.wait, in_group));
  if (delta != 0) demand_by_shape_[ts.shape] += delta;
  --wait_count_[static_cast<int>(a.wait)];
  ++wait_count_[static_cast<int>(w)];
  a.wait = w;
  if (w != WaitReason::kNone) a.last_wait = w;
}

void Model::LogDecision(uint32_t att, int node, const std::string& what) {
  if (!log_decisions_) return;
  const Attempt& a = attempts_[att];
  decision_log_.push_back("t=" + Fmt(now_) + " task=" + std::to_string(a.task) + " attempt=" +
                          std::to_string(a.number) + " at=" + scenario_.nodes[node].id + " " +
                          what);
}

// ---------------------------------------------------------------------------------------------
// Task lifecycle

int Model::OwnerNode() const {
  if (nodes_[scenario_.driver_node].up) return scenario_.driver_node;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].up) return static_cast<int>(i);
  }
  return scenario_.driver_node;
}

int Model::DeciderFor(uint32_t task) const {
  const TaskSpec& ts = scenario_.tasks[task];
  const SchedulingStrategy& st = scenario_.strategies[ts.strategy];
  const int owner = OwnerNode();
  if (st.type == SchedulingStrategy::Type::kNodeAffinity) {
    // The lease request goes straight to the target's raylet when it exists.
    for (size_t i = 0; i < scenario_.nodes.size(); ++i) {
      if (scenario_.nodes[i].id == st.node) return nodes_[i].up ? static_cast<int>(i) : owner;
    }
    return owner;
  }
  if (st.type == SchedulingStrategy::Type::kSpread || ts.args_count == 0) return owner;
  // Data locality: the node holding the most argument bytes (first to reach the max).
  std::map<int, uint64_t> bytes;
  uint64_t best_bytes = 0;
  int best = -1;
  for (uint32_t k = 0; k < ts.args_count; ++k) {
    const ArgSpec& a = scenario_.args[ts.args_begin + k];
    const int where = a.producer >= 0 ? output_node_[a.producer] : a.node;
    if (where < 0) continue;
    uint64_t& b = bytes[where];
    b += a.bytes;
    if (b > best_bytes) {
      best_bytes = b;
      best = where;
    }
  }
  if (best < 0 || !nodes_[best].up) return owner;
  return best;
}

SchedulingRequest Model::RequestFor(uint32_t task) const {
  const TaskSpec& ts = scenario_.tasks[task];
  SchedulingRequest r;
  r.resources = scenario_.shapes[ts.shape];
  r.strategy = scenario_.strategies[ts.strategy];
  r.actor_creation = ts.kind == WorkKind::kActor;
  for (uint32_t k = 0; k < ts.args_count; ++k) {
    const ArgSpec& a = scenario_.args[ts.args_begin + k];
    const int where = a.producer >= 0 ? output_node_[a.producer] : a.node;
    if (where >= 0) r.args.push_back({a.bytes, {scenario_.nodes[where].id}});
  }
  return r;
}

void Model::OnArrive(uint32_t task) {
  arrived_[task] = 1;
  last_activity_ = now_;
  NewAttempt(task, now_);
}

void Model::NewAttempt(uint32_t task, double submit) {
  const uint32_t att = static_cast<uint32_t>(attempts_.size());
  NewAttemptNoProceed(task, submit);
  if (deps_left_[task] > 0) {
    SetWait(att, WaitReason::kWaitingForArgs);
    return;
  }
  Proceed(att);
}

// Dependencies are satisfied: go to the placement group or to a raylet.
void Model::Proceed(uint32_t att) {
  const TaskSpec& ts = scenario_.tasks[attempts_[att].task];
  if (ts.placement_group >= 0) {
    PgRt& pg = pgs_[ts.placement_group];
    if (pg.state != PgRt::State::kCreated) {
      SetWait(att, WaitReason::kWaitingForPlacementGroup);
      pg.waiting_creation.push_back(att);
      return;
    }
    pg.waiting.push_back(att);
    TryPgTasks(ts.placement_group);
    return;
  }
  SetWait(att, WaitReason::kNone);
  SubmitFromOwner(att, 0.0);
}

void Model::SubmitFromOwner(uint32_t att, double delay) {
  const size_t begin = owner_out_.size();
  // Reuse off: the class matters only to the per-class pending limit (owner:).
  const agent::ClassHandle cls =
      class_of_task_.empty() ? 0 : class_of_task_[attempts_[att].task];
  owner_.Submit(att, cls, now_, &owner_out_);
  ApplyOwnerDecisions(begin, delay, -1);
}

void Model::ApplyOwnerDecisions(size_t begin, double delay, int node) {
  // Applying a decision may re-enter (a request to a node at zero hops is handled at once) and
  // append and drop decisions of its own past our end; each decision is copied before use.
  for (size_t i = begin; i < owner_out_.size(); ++i) {
    const agent::SubmitDecision d = owner_out_[i];
    uint32_t att = static_cast<uint32_t>(d.task);
    if (reuse_) {
      switch (d.kind) {
        case agent::SubmitDecision::Kind::kRequestLease:
          att = NewReq(d.lease, att);  // the request's own key
          reqs_[att - kReqBase].spillbacks = static_cast<uint16_t>(d.spillbacks);
          break;
        case agent::SubmitDecision::Kind::kPushTask: {
          // Onto a lease the owner holds: no scheduling decision, the lease's node runs it.
          const uint32_t r = req_of_lease_.at(d.lease);
          if (attempts_[att].state != AState::kPending || attempts_[att].node >= 0) {
            // Ended while it waited in the owner's queue: the lease is free again.
            owner_.OnTaskFinished(d.lease, now_, &owner_out_);
            continue;
          }
          lease_of_att_[att] = d.lease;
          Attempt& a = attempts_[att];
          if (a.last_wait == WaitReason::kNone && now_ > a.submit && !class_wait_.empty()) {
            a.last_wait = class_wait_[class_of_task_[a.task]];  // waited for its class's lease
          }
          if (!reqs_[r].used) a.spillbacks = reqs_[r].spillbacks;  // as live run records it
          reqs_[r].used = true;
          if (log_decisions_) LogReq(r, reqs_[r].node, "-> runs task " + std::to_string(a.task));
          TraceLease(d.lease, "push", reqs_[r].templ, reqs_[r].node, att);
          OnGranted(att, reqs_[r].node);
          continue;
        }
        case agent::SubmitDecision::Kind::kReturnLease: {
          auto it = req_of_lease_.find(d.lease);
          if (it == req_of_lease_.end()) continue;
          const uint32_t r = it->second;
          req_of_lease_.erase(it);
          reqs_[r].done = true;
          const int node_of_lease = reqs_[r].node;
          TraceLease(d.lease, "returned", reqs_[r].templ, node_of_lease);
          if (node_of_lease >= 0 && nodes_[node_of_lease].up &&
              Agent(node_of_lease).ReturnLease(Key(kReqBase + r))) {
            MirrorLocal(node_of_lease);
          }
          // The freed resources may grant requests queued there; a grant nothing needs comes
          // straight back here, so the passes run in a loop, not nested.
          if (node_of_lease >= 0) {
            return_passes_.push_back(node_of_lease);
            if (!in_return_passes_) {
              in_return_passes_ = true;
              while (!return_passes_.empty()) {
                const int n = return_passes_.back();
                return_passes_.pop_back();
                SchedulePendingAt(n);
              }
              in_return_passes_ = false;
            }
          }
          continue;
        }
        case agent::SubmitDecision::Kind::kFailTask:
          break;
      }
    }
    switch (d.kind) {
      case agent::SubmitDecision::Kind::kRequestLease: {
        if (!reuse_) lease_of_att_[att] = d.lease;
        const double wait = d.not_before > now_ ? delay + (d.not_before - now_) : delay;
        if (d.node == agent::kEntryNode) {
          RequestFromOwner(att, wait);
        } else {
          const int owner = OwnerNode();
          Push(now_ + wait + LeaseLeg(owner, d.node), Ev::kLeaseRequest, static_cast<int32_t>(att),
               d.node, d.grant_or_reject ? 1 : 0);
        }
        break;
      }
      case agent::SubmitDecision::Kind::kPushTask:
        TraceLease(d.lease, "push", att, node, att);
        OnGranted(att, node);  // the node's agent holds the lease's allocation
        break;
      case agent::SubmitDecision::Kind::kFailTask: {
        Attempt& a = attempts_[att];
        a.node = node;
        EndAttempt(att, AState::kCanceled);
        TaskFinal(a.task);
        break;
      }
      case agent::SubmitDecision::Kind::kReturnLease:
        break;  // the node releases a lease when its attempt ends (ReleaseAttempt)
    }
  }
  owner_out_.resize(begin);
}

void Model::RequestFromOwner(uint32_t att, double delay) {
  const int decider =
      DeciderFor(attempts_[IsReq(att) ? reqs_[att - kReqBase].templ : att].task);
  const int owner = OwnerNode();
  const double t = now_ + delay + LeaseLeg(owner, decider);
  if (t <= now_) {
    OnLeaseRequest(att, decider, false);
  } else {
    Push(t, Ev::kLeaseRequest, static_cast<int32_t>(att), decider, 0);
  }
}

// A spill target that is gone (the deciding node's view still shows it): as live's owner does,
// an unreachable target counts as a rejection, and the owner pauses before it asks the entry
// node again (which would otherwise send it straight back while its view lasts).
void Model::RejectUnreachable(agent::LeaseHandle lease, uint32_t templ, int node) {
  TraceLease(lease, "unreachable", templ, node);
  const size_t begin = owner_out_.size();
  owner_.OnLeaseRejected(lease, now_, &owner_out_);
  ApplyOwnerDecisions(begin, LeaseLeg(node, OwnerNode()) + kUnreachablePauseS, node);
}

void Model::OnLeaseRequest(uint32_t att, int node, bool grant_or_reject) {
  if (IsReq(att)) return OnReqLeaseRequest(att, node, grant_or_reject);
  Attempt& a = attempts_[att];
  if (a.state != AState::kPending || a.node >= 0) return;  // canceled, failed, or placed
  const int owner = OwnerNode();
  if (!nodes_[node].up && grant_or_reject) {
    LogDecision(att, node, "-> node down, rejected");
    RejectUnreachable(lease_of_att_[att], att, node);
    return;
  }
  if (!nodes_[node].up) {
    // The raylet is gone: the owner notices and asks again.
    LogDecision(att, node, "-> node down, retry");
    RequestFromOwner(att, LeaseLeg(node, owner));
    return;
  }
  const TaskSpec& ts = scenario_.tasks[a.task];
  agent::NodeAgent& ag = Agent(node);
  TraceLease(lease_of_att_[att], "request", att, node);
  const auto answer = grant_or_reject && !ag.has_manager()
                          ? ag.AnswerSpilled(Key(att), scenario_.shapes[ts.shape])
                          : agent::NodeAgent::SpilledAnswer::kWaits;
  if (answer == agent::NodeAgent::SpilledAnswer::kGranted) {
    LogDecision(att, node, "-> granted (spilled here)");
    TraceLease(lease_of_att_[att], "granted", att, node);
    const size_t begin = owner_out_.size();
    owner_.OnLeaseGranted(lease_of_att_[att], node, now_, &owner_out_);
    ApplyOwnerDecisions(begin, 0.0, node);
    return;
  }
  if (answer == agent::NodeAgent::SpilledAnswer::kRejected) {
    LogDecision(att, node, "-> rejected");
    TraceLease(lease_of_att_[att], "rejected", att, node);
    const size_t begin = owner_out_.size();
    owner_.OnLeaseRejected(lease_of_att_[att], now_, &owner_out_);
    ApplyOwnerDecisions(begin, LeaseLeg(node, owner), node);
    return;
  }
  // Otherwise (a node that decides, or a spilled request that waits here: the node starts
  // deciding) the manager answers.
  Lm(node);
  LeaseRequest req;
  req.task_id = Key(att);
  req.sched = RequestFor(a.task);
  req.function = scenario_.names[scenario_.tasks[a.task].name];
  req.grant_or_reject = grant_or_reject;
  req.spillbacks = a.spillbacks;
  LeaseReply r = ag.RequestLease(std::move(req), rng_);
  MirrorLocal(node);
  HandleReply(node, r);
}

void Model::HandleReply(int node, const LeaseReply& r) {
  const uint32_t att = ParseKey(r.task_id);
  if (IsReq(att)) return HandleReqReply(node, att, r);
  Attempt& a = attempts_[att];
  const int owner = OwnerNode();
  switch (r.kind) {
    case LeaseReply::Kind::kGranted: {
      // The reason is explain's text for the same decision (the rule that decided it).
      LogDecision(att, node,
                  "-> granted " + scenario_.nodes[node].id +
                      (r.reason.empty() ? std::string() : " (" + r.reason + ")"));
      TraceLease(lease_of_att_[att], "granted", att, node);
      const size_t begin = owner_out_.size();
      owner_.OnLeaseGranted(lease_of_att_[att], node, now_, &owner_out_);
      ApplyOwnerDecisions(begin, 0.0, node);
      break;
    }
    case LeaseReply::Kind::kSpillback: {
      const int target = node_of_slot_[truth_.FindSlot(r.node)];
      LogDecision(att, node,
                  "-> spillback " + r.node + (r.reason.empty() ? std::string() : " (" + r.reason + ")"));
      a.spillbacks = static_cast<uint16_t>(r.spillbacks);
      TraceLease(lease_of_att_[att], "spilled", att, node, -1, r.node, ViewAge());
      ++spillbacks_;
      last_activity_ = now_;
      const size_t begin = owner_out_.size();
      owner_.OnLeaseSpilled(lease_of_att_[att], target, r.grant_or_reject, now_, &owner_out_);
      ApplyOwnerDecisions(begin, LeaseLeg(node, owner), node);
      break;
    }
    case LeaseReply::Kind::kRejected: {
      LogDecision(att, node, "-> rejected");
      TraceLease(lease_of_att_[att], "rejected", att, node);
      const size_t begin = owner_out_.size();
      owner_.OnLeaseRejected(lease_of_att_[att], now_, &owner_out_);
      ApplyOwnerDecisions(begin, LeaseLeg(node, owner), node);
      break;
    }
    case LeaseReply::Kind::kCanceled: {
      LogDecision(att, node, "-> canceled: " + r.reason);
      TraceLease(lease_of_att_[att], "failed", att, node, -1, r.reason);
      const size_t begin = owner_out_.size();
      owner_.OnLeaseRequestFailed(lease_of_att_[att], r.reason, now_, &owner_out_);
      ApplyOwnerDecisions(begin, 0.0, node);
      break;
    }
    case LeaseReply::Kind::kQueued:
      if (a.wait != r.wait_reason) {
        LogDecision(att, node, std::string("-> queued ") + WaitReasonName(r.wait_reason));
      }
      a.queued_at = node;
      SetWait(att, r.wait_reason);
      break;
  }
}

// --- owner.reuse_leases ----------------------------------------------------------------------

uint32_t Model::NewReq(agent::LeaseHandle lease, uint32_t templ) {
  const uint32_t r = static_cast<uint32_t>(reqs_.size());
  ReqRt q;
  q.lease = lease;
  q.templ = templ;
  reqs_.push_back(q);
  req_of_lease_[lease] = r;
  return kReqBase + r;
}

void Model::OnReqLeaseRequest(uint32_t key, int node, bool grant_or_reject) {
  ReqRt& q = reqs_[key - kReqBase];
  if (q.done || q.node >= 0) return;
  if (!owner_.StillNeeded(q.lease)) {  // its class ran out of tasks meanwhile
    TraceLease(q.lease, "dropped", q.templ, node);
    owner_.CancelLease(q.lease);
    q.done = true;
    req_of_lease_.erase(q.lease);
    return;
  }
  const int owner = OwnerNode();
  if (!nodes_[node].up && grant_or_reject) {
    LogReq(key - kReqBase, node, "-> node down, rejected");
    RejectUnreachable(q.lease, q.templ, node);
    return;
  }
  if (!nodes_[node].up) {
    RequestFromOwner(key, LeaseLeg(node, owner));
    return;
  }
  const uint32_t task = attempts_[q.templ].task;
  agent::NodeAgent& ag = Agent(node);
  TraceLease(q.lease, "request", q.templ, node);
  const auto answer =
      grant_or_reject && !ag.has_manager()
          ? ag.AnswerSpilled(Key(key), scenario_.shapes[scenario_.tasks[task].shape])
          : agent::NodeAgent::SpilledAnswer::kWaits;
  if (answer != agent::NodeAgent::SpilledAnswer::kWaits) {
    // Granted on the shared view, or rejected; one that waits here goes to the manager below.
    LeaseReply r;
    r.task_id = Key(key);
    r.kind = answer == agent::NodeAgent::SpilledAnswer::kGranted ? LeaseReply::Kind::kGranted
                                                                 : LeaseReply::Kind::kRejected;
    HandleReqReply(node, key, r);
    return;
  }
  Lm(node);
  LeaseRequest req;
  req.task_id = Key(key);
  req.sched = RequestFor(task);
  req.function = scenario_.names[scenario_.tasks[task].name];
  req.grant_or_reject = grant_or_reject;
  req.spillbacks = q.spillbacks;
  LeaseReply r = ag.RequestLease(std::move(req), rng_);
  MirrorLocal(node);
  HandleReqReply(node, key, r);
}

void Model::LogReq(uint32_t idx, int node, const std::string& what) {
  if (!log_decisions_) return;
  LogDecision(reqs_[idx].templ, node, "lease=" + std::to_string(idx) + " " + what);
}

void Model::SetReqWait(uint32_t idx, WaitReason w) {
  ReqRt& q = reqs_[idx];
  if (w != WaitReason::kNone && !class_of_task_.empty()) {
    class_wait_[class_of_task_[attempts_[q.templ].task]] = w;
  }
  if (q.wait == w) return;
  const TaskSpec& ts = scenario_.tasks[attempts_[q.templ].task];
  const bool in_group = ts.placement_group >= 0;
  const int delta = static_cast<int>(agent::IsAutoscalerDemand(w, in_group)) -
                    static_cast<int>(agent::IsAutoscalerDemand(q.wait, in_group));
  if (delta != 0) demand_by_shape_[ts.shape] += delta;
  q.wait = w;
}

void Model::HandleReqReply(int node, uint32_t key, const LeaseReply& r) {
  const uint32_t idx = key - kReqBase;
  const int owner = OwnerNode();
  const agent::LeaseHandle lease = reqs_[idx].lease;
  const size_t begin = owner_out_.size();
  if (!log_decisions_) {
    // No decision log: build none of its strings (this runs for every lease request).
  } else if (r.kind == LeaseReply::Kind::kQueued && reqs_[idx].wait != r.wait_reason) {
    LogReq(idx, node, std::string("-> queued ") + WaitReasonName(r.wait_reason));
  } else if (r.kind != LeaseReply::Kind::kQueued) {
    // The same words as an attempt's own request (HandleReply), with the lease it is for.
    const std::string why = r.reason.empty() ? std::string() : " (" + r.reason + ")";
    switch (r.kind) {
      case LeaseReply::Kind::kGranted: LogReq(idx, node, "-> granted " + scenario_.nodes[node].id + why); break;
      case LeaseReply::Kind::kSpillback: LogReq(idx, node, "-> spillback " + r.node + why); break;
      case LeaseReply::Kind::kRejected: LogReq(idx, node, "-> rejected"); break;
      default: LogReq(idx, node, "-> canceled: " + r.reason); break;
    }
  }
  SetReqWait(idx, r.kind == LeaseReply::Kind::kQueued ? r.wait_reason : WaitReason::kNone);
  if (trace_leases_) {
    const uint32_t templ = reqs_[idx].templ;
    switch (r.kind) {
      case LeaseReply::Kind::kGranted:
        TraceLease(lease, "granted", templ, node);
        break;
      case LeaseReply::Kind::kSpillback:
        TraceLease(lease, "spilled", templ, node, -1, r.node, ViewAge());
        break;
      case LeaseReply::Kind::kRejected:
        TraceLease(lease, "rejected", templ, node);
        break;
      case LeaseReply::Kind::kCanceled:
        TraceLease(lease, "failed", templ, node, -1, r.reason);
        break;
      case LeaseReply::Kind::kQueued:
        break;
    }
  }
  switch (r.kind) {
    case LeaseReply::Kind::kGranted:
      reqs_[idx].node = node;
      owner_.OnLeaseGranted(lease, node, now_, &owner_out_);
      ApplyOwnerDecisions(begin, 0.0, node);
      break;
    case LeaseReply::Kind::kSpillback:
      reqs_[idx].spillbacks = static_cast<uint16_t>(r.spillbacks);
      ++spillbacks_;
      last_activity_ = now_;
      owner_.OnLeaseSpilled(lease, node_of_slot_[truth_.FindSlot(r.node)], r.grant_or_reject, now_,
                            &owner_out_);
      ApplyOwnerDecisions(begin, LeaseLeg(node, owner), node);
      break;
    case LeaseReply::Kind::kRejected:
      owner_.OnLeaseRejected(lease, now_, &owner_out_);
      ApplyOwnerDecisions(begin, LeaseLeg(node, owner), node);
      break;
    case LeaseReply::Kind::kCanceled:
      reqs_[idx].done = true;
      req_of_lease_.erase(lease);
      owner_.OnLeaseRequestFailed(lease, r.reason, now_, &owner_out_);
      ApplyOwnerDecisions(begin, 0.0, node);
      break;
    case LeaseReply::Kind::kQueued:
      break;  // the node grants it later (SchedulePending)
  }
}

void Model::EndOnLease(agent::LeaseHandle lease) {
  auto it = req_of_lease_.find(lease);
  if (it == req_of_lease_.end()) return;
  ReqRt& q = reqs_[it->second];
  const int node = q.node;
  const size_t begin = owner_out_.size();
  const bool up = node >= 0 && nodes_[node].up;
  TraceLease(lease, up ? "finished" : "lost", q.templ, node);
  if (up) {
    owner_.OnTaskFinished(lease, now_, &owner_out_);
  } else {
    q.done = true;
    req_of_lease_.erase(it);
    owner_.OnLeaseLost(lease, now_, &owner_out_);
  }
  ApplyOwnerDecisions(begin, 0.0, node);
}

void Model::LoseLeasesOn(int node) {
  std::vector<agent::LeaseHandle> lost;
  for (const auto& [lease, r] : req_of_lease_) {
    if (reqs_[r].node == node) lost.push_back(lease);
  }
  std::sort(lost.begin(), lost.end());  // deterministic order
  for (agent::LeaseHandle lease : lost) {
    auto it = req_of_lease_.find(lease);
    if (it == req_of_lease_.end()) continue;
    reqs_[it->second].done = true;
    TraceLease(lease, "lost", reqs_[it->second].templ, node);
    req_of_lease_.erase(it);
    const size_t begin = owner_out_.size();
    owner_.OnLeaseLost(lease, now_, &owner_out_);
    ApplyOwnerDecisions(begin, 0.0, node);
  }
}

// The node's agent holds the lease (and its allocation); the model runs the task.
void Model::OnGranted(uint32_t att, int node) {
  Attempt& a = attempts_[att];
  a.queued_at = -1;
  a.node = node;
  SetWait(att, WaitReason::kNone);
  nodes_[node].running.push_back(att);
  last_activity_ = now_;
  --pending_;
  ++running_;
  a.state = AState::kRunning;  // leased; start_s is set when it begins executing
  const int owner = OwnerNode();
  // The grant travels back to the owner, which pushes the task to the leased worker (with a
  // calibrated control plane, each at least its measured cost).
  Push(now_ + LeaseLeg(node, owner) + std::max(Hop(owner, node), push_min_s_), Ev::kStart,
       static_cast<int32_t>(att));
}

void Model::OnStart(uint32_t att) {
  Attempt& a = attempts_[att];
  if (a.state != AState::kRunning || a.start >= 0 || a.booting || a.transfers_left > 0 ||
      a.env_waiting) {
    return;
  }
  const TaskSpec& ts = scenario_.tasks[a.task];
  if (ts.env >= 0) {
    // The worker needs its runtime env on this node first: a hit, a new install, or joining an
    // install in flight (deduplicated by the node's cache).
    auto ds = Envs(a.node).Acquire(scenario_.runtime_envs[ts.env].id, "runtime_env", Key(att),
                                   now_);
    a.env_waiting = true;
    SetWait(att, WaitReason::kWaitingForRuntimeEnv);
    if (ds.ok()) ApplyEnvDecisions(a.node, *ds);
    return;
  }
  StartArgs(att);
}

void Model::StartArgs(uint32_t att) {
  Attempt& a = attempts_[att];
  const TaskSpec& ts = scenario_.tasks[a.task];
  // Fetch every argument that is not already on this node.
  for (uint32_t k = 0; k < ts.args_count; ++k) {
    const ArgSpec& arg = scenario_.args[ts.args_begin + k];
    int from = arg.producer >= 0 ? output_node_[arg.producer] : arg.node;
    if (from < 0 || !nodes_[from].up) from = OwnerNode();  // lost: rebuilt at the owner
    if (from == a.node || arg.bytes == 0) continue;
    const uint64_t token = transfers_.size();
    transfers_.push_back({att, arg.bytes, from, false, a.node});
    ++a.transfers_left;
    ++transfers_in_flight_;
    platform_->StartTransfer(from, a.node, arg.bytes, token);
  }
  if (a.transfers_left == 0) BeginRun(att);
}

void Model::OnTransferDone(double now, uint64_t token, bool ok) {
  now_ = std::max(now_, now);
  if (token >= transfers_.size() || transfers_[token].done) return;  // written off in a crash
  transfers_[token].done = true;
  --transfers_in_flight_;
  last_activity_ = now_;
  const Transfer tr = transfers_[token];
  if (tr.env >= 0) {
    // A runtime-env package arrived: install it (or, if the download failed, the attempt fails).
    if (ok) bytes_transferred_ += tr.bytes;
    const double install = scenario_.runtime_envs[tr.env].install_s;
    const double timeout = scenario_.env_cache.setup_timeout_s;
    const int64_t key = (static_cast<int64_t>(Agent(tr.to).generation()) << 20) | tr.env_attempt;
    const double took = ok ? std::min(install, timeout) : 0.0;
    Push(now_ + took, Ev::kEnvInstalled, tr.to, tr.env, ok && install <= timeout ? key : -key - 1);
    return;
  }
  Attempt& a = attempts_[tr.attempt];
  if (a.state != AState::kRunning || a.transfers_left == 0) return;
  if (!ok) {
    // The source died mid-transfer: fetch again from the owner (lineage reconstruction is not
    // modelled; the owner is assumed to rebuild the object).
    const int from = OwnerNode();
    if (from != a.node && nodes_[a.node].up) {
      const uint64_t t2 = transfers_.size();
      transfers_.push_back({tr.attempt, tr.bytes, from, false, a.node});
      ++transfers_in_flight_;
      platform_->StartTransfer(from, a.node, tr.bytes, t2);
      return;
    }
  } else {
    bytes_transferred_ += tr.bytes;
  }
  if (--a.transfers_left == 0) BeginRun(tr.attempt);
}

void Model::BeginRun(uint32_t att) {
  Attempt& a = attempts_[att];
  const TaskSpec& ts = scenario_.tasks[a.task];
  // A worker process for the task's env: an idle one is reused, otherwise one starts.
  double startup = 0;
  if (scenario_.env_cache.worker_startup_s > 0) {
    // GPU work gets a fresh worker that exits afterwards (its CUDA context is not shared).
    const bool gpu = !scenario_.shapes[ts.shape].set().Get(Predefined::kGPU).IsZero();
    if (Agent(a.node).AcquireWorker(ts.env, gpu) == agent::WorkerAction::kReuse) {
      ++workers_reused_;
    } else {
      startup = scenario_.env_cache.worker_startup_s;
      ++workers_started_;
      if (scenario_.control_plane.worker_start_parallel > 0) {
        // The start-up shares the cluster's start-up cores with the others in progress: its
        // task begins when its share of the work is done (OnWorkerBooted).
        a.has_worker = true;
        a.booting = true;
        AdvanceBoots();
        boots_.push_back({att, startup * scenario_.control_plane.worker_start_shared});
        ArmBoots();
        return;
      }
    }
    a.has_worker = true;
  }
  a.start = now_ + startup;
  Push(a.start + ts.duration_s, Ev::kFinish, static_cast<int32_t>(att));
}

void Model::StartExecuting(uint32_t att) {
  Attempt& a = attempts_[att];
  // The start-up's own latency, after its share of the cores.
  a.start = now_ + scenario_.env_cache.worker_startup_s *
                       (1 - scenario_.control_plane.worker_start_shared);
  Push(a.start + scenario_.tasks[a.task].duration_s, Ev::kFinish, static_cast<int32_t>(att));
}

double Model::BootRate() const {
  const double k = scenario_.control_plane.worker_start_parallel;
  return std::min(1.0, k / static_cast<double>(boots_.size()));
}

void Model::AdvanceBoots() {
  if (!boots_.empty()) {
    const double done = (now_ - boots_at_) * BootRate();
    for (Boot& b : boots_) b.left -= done;
  }
  boots_at_ = now_;
}

void Model::ArmBoots() {
  ++boot_version_;
  if (boots_.empty()) return;
  double least = boots_.front().left;
  for (const Boot& b : boots_) least = std::min(least, b.left);
  Push(now_ + std::max(0.0, least) / BootRate(), Ev::kWorkerBooted, 0, 0, boot_version_);
}

void Model::OnWorkerBooted(int64_t version) {
  if (version != boot_version_) return;  // the set changed since: a later event is armed
  AdvanceBoots();
  // Every start-up whose work is done (those that began together end together).
  std::vector<uint32_t> done;
  size_t keep = 0;
  for (const Boot& b : boots_) {
    if (b.left <= 1e-9) {
      done.push_back(b.att);
    } else {
      boots_[keep++] = b;
    }
  }
  boots_.resize(keep);
  ArmBoots();
  for (uint32_t att : done) {
    attempts_[att].booting = false;
    StartExecuting(att);
  }
}

void Model::OnFinish(uint32_t att) {
  Attempt& a = attempts_[att];
  if (a.state != AState::kRunning || a.start < 0) return;
  const int node = a.node;
  if (a.has_worker) {
    // The worker goes back to its env's pool, unless it ran GPU work (not reused by default) or
    // the pool already holds as many idle workers as the node has CPUs (the agent decides).
    const TaskSpec& ts = scenario_.tasks[a.task];
    const bool gpu = !scenario_.shapes[ts.shape].set().Get(Predefined::kGPU).IsZero();
    (void)Agent(node).ReleaseWorker(ts.env, gpu);
    a.has_worker = false;
  }
  EndAttempt(att, AState::kFinished);
  const uint32_t task = a.task;
  output_node_[task] = node;
  TaskFinal(task);
  for (uint32_t k = dependents_begin_[task]; k < dependents_begin_[task + 1]; ++k) {
    const uint32_t d = dependents_[k];
    if (--deps_left_[d] == 0 && arrived_[d] && current_attempt_[d] >= 0) {
      const uint32_t datt = static_cast<uint32_t>(current_attempt_[d]);
      if (attempts_[datt].state == AState::kPending && attempts_[datt].node < 0) Proceed(datt);
    }
  }
  SchedulePendingAt(node);
}

void Model::ReleaseAttempt(uint32_t att) {
  Attempt& a = attempts_[att];
  const int node = a.node;
  auto& run = nodes_[node].running;
  run.erase(std::remove(run.begin(), run.end(), att), run.end());
  if (!nodes_[node].up) return;  // the node's resources were reset when it crashed
  // A reused lease stays held between tasks; the owner's kReturnLease gives it back.
  if (reuse_ && lease_of_att_[att] != 0) return;
  // Back to the node (its manager, or the truth if it never decided) or to its bundle's pool.
  agent::NodeAgent& ag = Agent(node);
  if (ag.ReturnLease(Key(att)) && a.bundle_pg < 0) MirrorLocal(node);
}

void Model::EndAttempt(uint32_t att, AState state) {
  Attempt& a = attempts_[att];
  // The owner forgets the attempt's lease: its node releases what it granted (ReleaseAttempt).
  // With reuse the lease outlives the attempt (EndOnLease below).
  const agent::LeaseHandle lease = lease_of_att_[att];
  if (!reuse_) owner_.CancelLease(lease);
  const bool was_running = a.state == AState::kRunning;
  if (a.booting) {  // its worker never finished starting: the start-up leaves the cores
    AdvanceBoots();
    boots_.erase(std::find_if(boots_.begin(), boots_.end(),
                              [att](const Boot& b) { return b.att == att; }));
    a.booting = false;
    ArmBoots();
  }
  if (was_running) {
    --running_;
    ReleaseAttempt(att);
  } else if (a.state == AState::kPending) {
    --pending_;
  }
  lease_of_att_[att] = 0;
  SetWait(att, WaitReason::kNone);
  ReleaseEnv(att);
  a.state = state;
  a.end = now_;
  last_activity_ = now_;
  if (a.bundle_pg >= 0 && was_running) TryPgTasks(a.bundle_pg);
  if (state == AState::kFinished) ++finished_;
  if (state == AState::kFailed) ++failed_attempts_;
  if (state == AState::kCanceled) ++canceled_;
  if (reuse_ && lease != 0) EndOnLease(lease);
}

void Model::TaskFinal(uint32_t) { ++tasks_final_; }

void Model::SchedulePendingAt(int node) {
  NodeRt& rt = nodes_[node];
  const LeaseManager* lm = rt.agent->manager();
  if (lm == nullptr || lm->NumQueued() == 0 || !rt.up) return;
  std::vector<LeaseReply> out = rt.agent->SchedulePending(rng_);
  MirrorLocal(node);
  for (const auto& r : out) HandleReply(node, r);
}

// ---------------------------------------------------------------------------------------------
// Reports, samples, failures

double Model::HeartbeatPhase(int slot) const {
  if (!options_.timing_seed) return 0.5;
  // One draw per (seed, slot), independent of the order in which nodes first change; slot -1 is
  // the head's broadcast tick.
  Rng r(*options_.timing_seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(slot + 1));
  return r.UniformDouble();
}

void Model::OnNodeReport(int slot) {
  report_armed_[slot] = 0;
  const Node& n = truth_.at(slot);
  HeadCopy& c = head_copy_[slot];
  c.available = n.resources.available();
  c.state = n.state;
  c.devices = n.resources.all_devices();
  MarkDirty(slot);
}

void Model::OnReportTick() {
  last_report_tick_ = now_;
  // Every deciding node learns what the head holds of every node that changed (or that it had
  // charged an estimate to) since the last report: the node's last heartbeat (view_via_head), or
  // its current state.
  for (int node : lm_nodes_) {
    LeaseManager& lm = *Agent(node).manager();
    std::vector<int> slots = dirty_list_;
    for (const NodeId& id : lm.TakeEstimatedNodes()) {
      const int s = truth_.FindSlot(id);
      if (s >= 0 && !dirty_[s]) slots.push_back(s);
    }
    for (int s : slots) {
      if (s == slot_of_node_[node]) continue;
      const Node& n = truth_.at(s);
      if (scenario_.scheduler.view_via_head) {
        const HeadCopy& c = head_copy_[s];
        (void)lm.ApplyReport(n.id, c.available, c.state, c.devices);
      } else {
        (void)lm.ApplyReport(n.id, n.resources.available(), n.state, n.resources.all_devices());
      }
    }
  }
  for (int s : dirty_list_) dirty_[s] = 0;
  dirty_list_.clear();
  const std::vector<int> deciders = lm_nodes_;
  for (int node : deciders) SchedulePendingAt(node);
  if (!Done()) Push(now_ + scenario_.scheduler.report_period_s, Ev::kReportTick);
}

// ---------------------------------------------------------------------------------------------
// Runtime environments: each node's cache (core/envcache) decides; the model downloads packages
// over the network from the owner's node and waits out the install time.

envcache::EnvCache& Model::Envs(int node) { return Agent(node).Envs(); }

void Model::ApplyEnvDecisions(int node, const envcache::CacheDecisions& ds) {
  for (const auto& d : ds) {
    if (const auto* si = std::get_if<envcache::StartInstall>(&d)) {
      int env = -1;
      for (size_t i = 0; i < scenario_.runtime_envs.size(); ++i) {
        if (scenario_.runtime_envs[i].id == si->uri) env = static_cast<int>(i);
      }
      if (env >= 0) StartEnvInstall(node, env, si->attempt);
    } else if (const auto* ready = std::get_if<envcache::EnvReady>(&d)) {
      for (const auto& w : ready->waiters) {
        const uint32_t att = ParseKey(w);
        Attempt& a = attempts_[att];
        a.env_waiting = false;
        a.env_held = true;
        if (a.state != AState::kRunning || a.node != node) continue;
        SetWait(att, WaitReason::kNone);
        StartArgs(att);
      }
    } else if (const auto* failed = std::get_if<envcache::EnvFailed>(&d)) {
      for (const auto& w : failed->waiters) {
        const uint32_t att = ParseKey(w);
        Attempt& a = attempts_[att];
        a.env_waiting = false;
        if (a.state != AState::kRunning) continue;
        LogDecision(att, node, "-> canceled: " + failed->message);
        EndAttempt(att, AState::kCanceled);
        TaskFinal(a.task);
      }
    }
    // Evict: the cache already stopped charging the bytes; nothing to simulate.
  }
}

void Model::StartEnvInstall(int node, int env, int attempt) {
  const RuntimeEnvSpec& spec = scenario_.runtime_envs[env];
  const int from = OwnerNode();
  if (from == node || spec.size_bytes == 0) {
    const int64_t key = (static_cast<int64_t>(Agent(node).generation()) << 20) | attempt;
    const double timeout = scenario_.env_cache.setup_timeout_s;
    Push(now_ + std::min(spec.install_s, timeout), Ev::kEnvInstalled, node, env,
         spec.install_s <= timeout ? key : -key - 1);
    return;
  }
  const uint64_t token = transfers_.size();
  Transfer tr{0, spec.size_bytes, from, false, node, env, attempt};
  transfers_.push_back(tr);
  ++transfers_in_flight_;
  platform_->StartTransfer(from, node, spec.size_bytes, token);
}

void Model::OnEnvInstalled(int node, int env, int64_t encoded) {
  NodeRt& rt = nodes_[node];
  const bool ok = encoded >= 0;
  const int64_t key = ok ? encoded : -(encoded + 1);
  agent::NodeAgent& ag = *rt.agent;
  if (!rt.up || !ag.has_envs() || static_cast<uint64_t>(key >> 20) != ag.generation()) return;
  const int attempt = static_cast<int>(key & ((1 << 20) - 1));
  const RuntimeEnvSpec& spec = scenario_.runtime_envs[env];
  last_activity_ = now_;
  StatusOr<envcache::CacheDecisions> ds =
      ok ? ag.Envs().ReportInstalled(spec.id, attempt, spec.size_bytes, now_)
         : ag.Envs().ReportFailed(spec.id, attempt, /*timed_out=*/true,
                                 "setup of " + spec.id + " did not finish within " +
                                     std::to_string(scenario_.env_cache.setup_timeout_s) + " s",
                                 now_);
  if (ds.ok()) ApplyEnvDecisions(node, *ds);
}

void Model::ReleaseEnv(uint32_t att) {
  Attempt& a = attempts_[att];
  if (a.node < 0) return;
  NodeRt& rt = nodes_[a.node];
  const TaskSpec& ts = scenario_.tasks[a.task];
  if (ts.env < 0 || !rt.agent->has_envs()) {
    a.env_held = a.env_waiting = false;
    return;
  }
  const std::string& uri = scenario_.runtime_envs[ts.env].id;
  if (a.env_held) {
    auto ds = rt.agent->Envs().Release(uri);
    if (ds.ok()) ApplyEnvDecisions(a.node, *ds);
  } else if (a.env_waiting) {
    (void)rt.agent->Envs().Abandon(uri, Key(att));
  }
  a.env_held = a.env_waiting = false;
}

// ---------------------------------------------------------------------------------------------
// Autoscaler: a planning round on a period; the model is its node provider (standby hosts become
// pending, then join after the boot delay; terminated nodes go back to standby).

void Model::OnAutoscale() {
  // The round is core's (agent::BuildAutoscalerInput / RunAutoscalerRound, as on the live head);
  // the members are the running nodes that are up, by node index.
  std::vector<agent::RoundMember> members;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeRt& rt = nodes_[i];
    if (rt.life != Life::kRunning || !rt.up) continue;
    agent::RoundMember m;
    m.node = &truth_.at(slot_of_node_[i]);
    if (rt.idle_since >= 0) m.idle_since_s = rt.idle_since;
    members.push_back(m);
  }
  std::vector<autoscaler::ResourceDemand> demands;
  for (size_t sh = 0; sh < demand_by_shape_.size(); ++sh) {
    if (demand_by_shape_[sh] > 0) {
      demands.push_back({scenario_.shapes[sh].set(), demand_by_shape_[sh]});
    }
  }
  std::vector<autoscaler::GangDemand> gangs;
  for (size_t g = 0; g < pgs_.size(); ++g) {
    const PgRt& pg = pgs_[g];
    if (pg.state == PgRt::State::kPreparing) continue;
    const PlacementGroupSpec& spec = scenario_.placement_groups[g];
    if (spec.create_s > now_) continue;
    autoscaler::GangDemand gang;
    gang.strategy = spec.strategy;
    for (size_t b = 0; b < spec.bundles.size(); ++b) {
      if (b >= pg.bundle_held.size() || !pg.bundle_held[b]) gang.bundles.push_back(spec.bundles[b].set());
    }
    if (!gang.bundles.empty()) gangs.push_back(std::move(gang));
  }
  auto listed = provider_->List();
  const agent::AutoscalerRoundResult round = agent::RunAutoscalerRound(
      *planner_,
      agent::BuildAutoscalerInput(members, *listed, planner_->config(), std::move(demands),
                                  std::move(gangs), now_),
      *provider_);
  if (!round.status.ok()) {
    autoscaler_warnings_.push_back("autoscaler round at t=" + std::to_string(now_) +
                                   " failed: " + round.status.message());
  }
  if (!Done()) Push(now_ + scenario_.autoscaler.period_s, Ev::kAutoscale);
}

void Model::OnBoot(int node, int64_t gen) {
  NodeRt& rt = nodes_[node];
  if (rt.life != Life::kPending || rt.launch_gen != gen) return;
  Accumulate();
  --nodes_pending_;
  rt.life = Life::kRunning;
  rt.up = true;
  rt.idle_since = now_;
  ++nodes_up_;
  peak_nodes_ = std::max<uint64_t>(peak_nodes_, static_cast<uint64_t>(nodes_up_));
  last_activity_ = now_;
  const int slot = slot_of_node_[node];
  truth_.SetResources(slot, *NodeResources::Create(scenario_.nodes[node].total));
  truth_.SetState(slot, NodeState::kAlive);
  for (size_t g = 0; g < pgs_.size(); ++g) {
    if (pgs_[g].waiting_node) {
      pgs_[g].waiting_node = false;
      Push(now_, Ev::kPgCreate, static_cast<int32_t>(g));
    }
  }
}

void Model::TerminateNode(int node) {
  NodeRt& rt = nodes_[node];
  if (rt.life == Life::kStandby) return;
  Accumulate();
  if (rt.life == Life::kPending) {
    --nodes_pending_;
    ++rt.launch_gen;  // its boot is cancelled
  } else {
    // The planner only terminates idle nodes or nodes above max_workers; anything still here is
    // failed like a crash would (and retried).
    const LeaseManager* lm = rt.agent->manager();
    if (!rt.running.empty() || (lm && lm->NumQueued() > 0)) {
      FailureSpec crash{now_, node, FailureSpec::Action::kCrash};
      OnFailure(crash);
    } else if (rt.up) {
      rt.up = false;
      --nodes_up_;
      rt.agent->DropManager();
      lm_nodes_.erase(std::remove(lm_nodes_.begin(), lm_nodes_.end(), node), lm_nodes_.end());
      truth_.SetState(slot_of_node_[node], NodeState::kDead);
    }
  }
  rt.life = Life::kStandby;
  ++terminated_;
  last_activity_ = now_;
}

void Model::OnSample() {
  Accumulate();
  auto add = [&](const char* metric, std::string labels, double v) {
    samples_.push_back({now_, metric, std::move(labels), v});
  };
  const double arrived = static_cast<double>(next_arrival_);
  add("orrery_tasks", "state=pending", static_cast<double>(pending_));
  add("orrery_tasks", "state=running", static_cast<double>(running_));
  add("orrery_tasks", "state=finished", static_cast<double>(finished_));
  add("orrery_tasks", "state=failed", static_cast<double>(failed_attempts_));
  add("orrery_tasks", "state=canceled", static_cast<double>(canceled_));
  add("orrery_tasks", "state=submitted", arrived);
  static const char* kNames[3] = {"CPU", "GPU", "memory"};
  for (int r = 0; r < 3; ++r) {
    add("orrery_resources", std::string("name=") + kNames[r] + ",state=used", used_[r]);
    add("orrery_resources", std::string("name=") + kNames[r] + ",state=available",
        cap_[r] - used_[r]);
  }
  add("orrery_spillbacks_total", "", static_cast<double>(spillbacks_));
  for (int w = 1; w < kNumWaitReasons; ++w) {
    add("orrery_scheduler_unschedulable_tasks",
        std::string("reason=") + WaitReasonName(static_cast<WaitReason>(w)),
        static_cast<double>(wait_count_[w]));
  }
  int created = 0;
  for (const auto& pg : pgs_) created += pg.state == PgRt::State::kCreated ? 1 : 0;
  if (!pgs_.empty()) {
    add("orrery_placement_groups", "state=created", created);
    add("orrery_placement_groups", "state=pending", static_cast<double>(pgs_.size()) - created);
  }
  add("orrery_nodes", "state=alive", nodes_up_);
  if (!scenario_.runtime_envs.empty()) {
    double bytes = 0, evictions = 0;
    for (const NodeRt& rt : nodes_) {
      if (const envcache::EnvCache* envs = rt.agent->envs()) {
        bytes += static_cast<double>(envs->TotalBytes());
      }
      evictions += static_cast<double>(rt.agent->EnvCounters().evictions);  // crashes included
    }
    add("orrery_runtime_env_cache_bytes", "", bytes);
    add("orrery_runtime_env_cache_evictions_total", "", evictions);
  }
  if (planner_) {
    const auto& types = scenario_.autoscaler.node_types;
    std::vector<int> pending(types.size(), 0), active(types.size(), 0);
    for (const NodeRt& rt : nodes_) {
      if (rt.type < 0) continue;
      if (rt.life == Life::kPending) ++pending[rt.type];
      if (rt.life == Life::kRunning && rt.up) ++active[rt.type];
    }
    for (size_t t = 0; t < types.size(); ++t) {
      add("orrery_autoscaler_pending_nodes", "node_type=" + types[t].name, pending[t]);
      add("orrery_autoscaler_active_nodes", "node_type=" + types[t].name, active[t]);
    }
  }
  if (static_cast<int>(nodes_.size()) <= options_.per_node_metrics_max_nodes) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const int slot = slot_of_node_[i];
      const double cap = node_cap_[slot][kCpu];
      add("orrery_node_cpu_utilization", "node=" + scenario_.nodes[i].id,
          cap > 0 ? node_used_[slot][kCpu] / cap : 0.0);
    }
  }
  if (!Done()) Push(now_ + options_.sample_period_s, Ev::kSample);
}

void Model::OnFailure(const FailureSpec& f) {
  const int node = f.node;
  NodeRt& rt = nodes_[node];
  const int slot = slot_of_node_[node];
  last_activity_ = now_;
  if (f.action == FailureSpec::Action::kCrash) {
    if (!rt.up) return;
    rt.up = false;
    platform_->SetNodeUp(node, false);
    Accumulate();
    --nodes_up_;
    const int owner = OwnerNode();
    // Transfers into the node die with it.
    for (uint64_t tok = first_open_transfer_; tok < transfers_.size(); ++tok) {
      Transfer& tr = transfers_[tok];
      if (!tr.done && tr.to == node) {
        tr.done = true;
        --transfers_in_flight_;
      }
    }
    while (first_open_transfer_ < transfers_.size() && transfers_[first_open_transfer_].done) {
      ++first_open_transfer_;
    }
    // Bundles reserved there are lost with it; the head fails their groups over (the others'
    // bundles are given back and the group is placed again as a whole, as on the live head).
    for (size_t g = 0; g < pgs_.size(); ++g) {
      PgRt& pg = pgs_[g];
      for (size_t b = 0; b < pg.bundle_held.size(); ++b) {
        if (pg.bundle_held[b] && pg.slots[b] == slot) pg.bundle_held[b] = 0;
      }
    }
    ApplyPlacement(head_.OnNodeDead(scenario_.nodes[node].id, now_));
    // Attempts running (or starting) there fail; the owner retries them per max_retries.
    const std::vector<uint32_t> running = rt.running;
    for (uint32_t att : running) {
      const uint32_t task = attempts_[att].task;
      LogDecision(att, node, "-> failed: node crashed");
      EndAttempt(att, AState::kFailed);
      if (attempts_[att].number < scenario_.tasks[task].max_retries) {
        NewAttemptDelayed(task, Hop(node, owner));
      } else {
        TaskFinal(task);
      }
    }
    rt.running.clear();
    // The node's agent forgets everything (its manager, leases, bundles, runtime-env cache and
    // idle workers); lease requests queued there go back to their owner (same attempt).
    if (reuse_) LoseLeasesOn(node);
    for (const PendingLease& p : rt.agent->Reset()) {
      const uint32_t att = ParseKey(p.task_id);
      if (IsReq(att)) {
        SetReqWait(att - kReqBase, WaitReason::kNone);
      } else {
        attempts_[att].queued_at = -1;
      }
      RequestFromOwner(att, Hop(node, owner));
    }
    lm_nodes_.erase(std::remove(lm_nodes_.begin(), lm_nodes_.end(), node), lm_nodes_.end());
    // The node restarts empty.
    auto fresh = NodeResources::Create(scenario_.nodes[node].total);
    truth_.SetResources(slot, *fresh);
    truth_.SetState(slot, NodeState::kDead);
  } else {
    if (rt.up || rt.life != Life::kRunning) return;
    rt.up = true;
    platform_->SetNodeUp(node, true);
    Accumulate();
    ++nodes_up_;
    truth_.SetState(slot, NodeState::kAlive);
    // Groups that could not be placed may fit now.
    for (size_t g = 0; g < pgs_.size(); ++g) {
      if (pgs_[g].waiting_node) {
        pgs_[g].waiting_node = false;
        Push(now_, Ev::kPgCreate, static_cast<int32_t>(g));
      }
    }
  }
}

void Model::NewAttemptDelayed(uint32_t task, double delay) {
  // The retry is submitted when the owner learns of the failure; modelled as a new attempt whose
  // lease request leaves after `delay`.
  const uint32_t att = static_cast<uint32_t>(attempts_.size());
  NewAttemptNoProceed(task, now_);
  if (deps_left_[task] > 0) {
    SetWait(att, WaitReason::kWaitingForArgs);
    return;
  }
  const TaskSpec& ts = scenario_.tasks[task];
  if (ts.placement_group >= 0 || delay <= 0) {
    Proceed(att);
  } else {
    SetWait(att, WaitReason::kNone);
    SubmitFromOwner(att, delay);
  }
}

void Model::NewAttemptNoProceed(uint32_t task, double submit) {
  Attempt a;
  a.task = task;
  a.number = static_cast<uint16_t>(current_attempt_[task] < 0
                                       ? 0
                                       : attempts_[current_attempt_[task]].number + 1);
  a.submit = submit;
  current_attempt_[task] = static_cast<int32_t>(attempts_.size());
  attempts_.push_back(a);
  lease_of_att_.push_back(0);
  ++wait_count_[0];
  ++pending_;
}

// ---------------------------------------------------------------------------------------------
// Placement groups: the head's side is agent::HeadController (TwoPhaseReservation: place on the
// current truth, prepare on every bundle's node, commit when all prepared, otherwise cancel and
// retry with backoff; a node's death fails the group over), exactly as on the live head. The model
// supplies the round trip of the prepares and the node side, one narrow function per step
// (PrepareBundleOn, CommitBundleOn, CancelBundleOn). An infeasible group waits for a node to join
// or recover (head_ is told so: infeasible_waits_for_node).

namespace {
std::string PgKey(int g) { return std::to_string(g); }
}  // namespace

void Model::OnPgCreate(int g) {
  PgRt& pg = pgs_[g];
  const PlacementGroupSpec& spec = scenario_.placement_groups[g];
  const size_t n = spec.bundles.size();
  if (pg.bundle_held.size() != n) {
    pg.bundle_held.assign(n, 0);
    pg.slots.assign(n, -1);
    (void)head_.AddPlacementGroup(PgKey(g), spec.strategy, spec.bundles);
  }
  const ReservationState st = head_.groups().at(PgKey(g)).reservation.state();
  if (st != ReservationState::kPending && st != ReservationState::kFailed) return;
  last_activity_ = now_;
  agent::PlacementDecisions d = head_.RetryPlacementGroupOn(PgKey(g), truth_, now_);
  if (d.commands.empty() && d.retries.empty() && head_.groups().at(PgKey(g)).infeasible) {
    pg.waiting_node = true;  // retried when a node joins or recovers
  }
  ApplyPlacement(d);
}

// Carries out the head's decisions: Prepares leave together and are answered after one round
// trip (OnPgPrepared); Cancels are applied at once; retries become kPgCreate events.
void Model::ApplyPlacement(const agent::PlacementDecisions& d) {
  int prepared_group = -1;
  for (const TwoPhaseCommand& cmd : d.commands) {
    const int g = std::stoi(cmd.group);
    if (cmd.kind == TwoPhaseCommand::Kind::kCancel) {
      CancelBundleOn(g, cmd.bundle);
    } else if (cmd.kind == TwoPhaseCommand::Kind::kPrepare) {
      PgRt& pg = pgs_[g];
      if (prepared_group != g) pg.in_flight.clear();
      prepared_group = g;
      pg.slots[cmd.bundle] = truth_.FindSlot(cmd.node);
      pg.in_flight.push_back(cmd);
    }
  }
  for (const agent::RetryAt& r : d.retries) Push(r.at_s, Ev::kPgCreate, std::stoi(r.group));
  if (prepared_group >= 0) {
    PgRt& pg = pgs_[prepared_group];
    ++pg.generation;
    // Prepare requests go out from the head (driver node) and come back: one round trip.
    double rtt = 0;
    const int owner = OwnerNode();
    for (const auto& cmd : pg.in_flight) {
      rtt = std::max(rtt, 2 * Hop(owner, node_of_slot_[pg.slots[cmd.bundle]]));
    }
    Push(now_ + rtt, Ev::kPgPrepared, prepared_group, 0, pg.generation);
  }
  std::vector<char> synced(pgs_.size(), 0);
  for (const TwoPhaseCommand& cmd : d.commands) {
    const int g = std::stoi(cmd.group);
    if (!synced[g]) SyncPgState(g);
    synced[g] = 1;
  }
  for (const agent::RetryAt& r : d.retries) SyncPgState(std::stoi(r.group));
}

void Model::SyncPgState(int g) {
  switch (head_.groups().at(PgKey(g)).reservation.state()) {
    case ReservationState::kPreparing:
    case ReservationState::kCommitting:
      pgs_[g].state = PgRt::State::kPreparing;
      break;
    case ReservationState::kCreated:
      pgs_[g].state = PgRt::State::kCreated;
      break;
    default:
      pgs_[g].state = PgRt::State::kPending;
      break;
  }
}

void Model::OnPgPrepared(int g, int64_t generation) {
  PgRt& pg = pgs_[g];
  if (pg.generation != generation || pg.in_flight.empty()) return;
  const std::vector<TwoPhaseCommand> prepares = std::move(pg.in_flight);
  pg.in_flight.clear();
  // Every node answers its Prepare; the model stops at the first refusal (the bundles after it
  // are answered as refused without reserving anything).
  agent::PlacementDecisions next;
  bool refused = false;
  for (const TwoPhaseCommand& cmd : prepares) {
    const bool ok = !refused && PrepareBundleOn(node_of_slot_[pg.slots[cmd.bundle]], g, cmd.bundle);
    refused = refused || !ok;
    auto d = head_.OnBundleReply(cmd, ok, now_);
    if (!d.ok()) continue;  // stale: the node died meanwhile (OnNodeDead answered for it)
    for (auto& c : d->commands) next.commands.push_back(std::move(c));
    for (auto& r : d->retries) next.retries.push_back(std::move(r));
  }
  // All prepared: every node commits at once and answers.
  bool created = false;
  agent::PlacementDecisions rest;
  for (const TwoPhaseCommand& cmd : next.commands) {
    if (cmd.kind != TwoPhaseCommand::Kind::kCommit) {
      rest.commands.push_back(cmd);
      continue;
    }
    CommitBundleOn(node_of_slot_[pg.slots[cmd.bundle]], g, cmd.bundle);
    auto d = head_.OnBundleReply(cmd, true, now_);
    if (!d.ok()) continue;
    created = created || !d->created.empty();
    for (auto& c : d->commands) rest.commands.push_back(std::move(c));
    for (auto& r : d->retries) rest.retries.push_back(std::move(r));
  }
  for (auto& r : next.retries) rest.retries.push_back(std::move(r));
  ApplyPlacement(rest);
  SyncPgState(g);
  if (!created) return;
  pg.ever_created = true;
  last_activity_ = now_;
  const std::vector<uint32_t> waiting = std::move(pg.waiting_creation);
  pg.waiting_creation.clear();
  for (uint32_t att : waiting) {
    if (attempts_[att].state != AState::kPending) continue;
    pg.waiting.push_back(att);
  }
  TryPgTasks(g);
}

bool Model::PrepareBundleOn(int node, int g, int b) {
  PgRt& pg = pgs_[g];
  if (!nodes_[node].up) return false;
  const PlacementGroupSpec& spec = scenario_.placement_groups[g];
  const bool prepared = Agent(node).PrepareBundle(spec.id, b, spec.bundles[b], rng_, nullptr);
  MirrorLocal(node);
  if (!prepared) return false;
  pg.bundle_held[b] = 1;
  return true;
}

void Model::CommitBundleOn(int node, int g, int b) {
  // The node's agent turns the prepared reservation into a pool tasks of the group draw from.
  (void)Agent(node).CommitBundle(scenario_.placement_groups[g].id, b, rng_, nullptr);
}

void Model::CancelBundleOn(int g, int b) { ReleaseBundle(g, b); }

void Model::ReleaseBundle(int g, int b) {
  PgRt& pg = pgs_[g];
  if (b >= static_cast<int>(pg.bundle_held.size()) || !pg.bundle_held[b]) return;
  pg.bundle_held[b] = 0;
  const int slot = pg.slots[b];
  const int node = node_of_slot_[slot];
  if (!nodes_[node].up) return;
  (void)Agent(node).CancelBundle(scenario_.placement_groups[g].id, b, rng_);
  MirrorLocal(node);
}

void Model::TryPgTasks(int g) {
  PgRt& pg = pgs_[g];
  if (!pg.ever_created) return;
  for (auto it = pg.waiting.begin(); it != pg.waiting.end();) {
    const uint32_t att = *it;
    Attempt& a = attempts_[att];
    if (a.state != AState::kPending) {
      it = pg.waiting.erase(it);
      continue;
    }
    const TaskSpec& ts = scenario_.tasks[a.task];
    const ResourceRequest& shape = scenario_.shapes[ts.shape];
    const std::string& gid = scenario_.placement_groups[g].id;
    int chosen = -1;
    for (int b = 0; b < static_cast<int>(pg.bundle_held.size()); ++b) {
      if (ts.bundle >= 0 && b != ts.bundle) continue;
      if (!pg.bundle_held[b]) continue;
      if (Agent(node_of_slot_[pg.slots[b]]).BundleFits(gid, b, shape)) {
        chosen = b;
        break;
      }
    }
    if (chosen < 0) {
      SetWait(att, WaitReason::kWaitingForResources);
      ++it;
      continue;
    }
    it = pg.waiting.erase(it);
    const int node = node_of_slot_[pg.slots[chosen]];
    (void)Agent(node).GrantFromBundle(Key(att), gid, chosen, shape);
    a.bundle_pg = g;
    a.bundle = chosen;
    LogDecision(att, node_of_slot_[pg.slots[chosen]],
                "-> granted from bundle " + std::to_string(chosen) + " of " +
                    scenario_.placement_groups[g].id);
    OnGranted(att, node);
  }
}

// ---------------------------------------------------------------------------------------------
// Results

double Model::ViewAge() const {
  return now_ - last_report_tick_ +
         (scenario_.scheduler.view_via_head ? 0.5 * scenario_.scheduler.report_period_s : 0.0);
}

void Model::TraceLease(agent::LeaseHandle lease, const char* event, uint32_t templ, int node,
                       int64_t task_att, std::string_view detail, double view_age_s) {
  if (!trace_leases_) return;
  const std::string& name = scenario_.names[scenario_.tasks[attempts_[templ].task].name];
  const std::string_view node_id =
      node >= 0 ? std::string_view(scenario_.nodes[node].id) : std::string_view();
  if (task_att < 0) {
    lease_trace_.Add(now_, lease, event, name, node_id, {}, 0, detail, view_age_s);
    return;
  }
  const Attempt& a = attempts_[static_cast<size_t>(task_att)];
  lease_trace_.Add(now_, lease, event, scenario_.names[scenario_.tasks[a.task].name], node_id,
                   std::to_string(a.task), a.number, detail);
}

results::RunRecord Model::Finish(double now, double wall_s) {
  now_ = std::max(now_, now);
  Accumulate();
  results::RunRecord r = results::ScenarioRunRecord(scenario_, "sim");
  double makespan = 0;
  r.attempts.reserve(attempts_.size());
  for (const Attempt& a : attempts_) {
    results::TaskAttempt row = results::PendingAttemptRow(scenario_, a.task, a.submit);
    row.start_s = a.start;
    row.end_s = a.end;
    int node = a.node;
    if (node < 0) node = a.queued_at;
    row.node_id = node >= 0 ? scenario_.nodes[node].id : "";
    switch (a.state) {
      case AState::kFinished: row.state = "finished"; break;
      case AState::kFailed: row.state = "failed"; break;
      case AState::kCanceled: row.state = "canceled"; break;
      case AState::kRunning: row.state = "running"; break;
      case AState::kPending:
        row.state = a.wait == WaitReason::kInfeasible ? "infeasible" : "pending";
        break;
    }
    row.attempt = a.number;
    row.spillbacks = a.spillbacks;
    row.wait_reason = WaitReasonName(a.last_wait);
    if (a.state == AState::kPending && a.node < 0 && a.queued_at < 0 && !class_wait_.empty() &&
        a.wait == WaitReason::kNone) {
      // Still in the owner's class queue: it waits for what its class's requests wait for.
      const WaitReason w = class_wait_[class_of_task_[a.task]];
      if (w == WaitReason::kInfeasible) row.state = "infeasible";
      if (w != WaitReason::kNone) row.wait_reason = WaitReasonName(w);
    }
    if (a.end >= 0) makespan = std::max(makespan, a.end);
    r.attempts.push_back(std::move(row));
  }
  // A task that never arrived (run stopped early) still gets a row.
  for (size_t t = next_arrival_; t < scenario_.tasks.size(); ++t) {
    if (current_attempt_[t] >= 0) continue;
    r.attempts.push_back(results::PendingAttemptRow(scenario_, t, scenario_.tasks[t].submit_s));
  }
  r.samples = samples_;
  r.lease_events = lease_trace_.Take();
  r.makespan_s = makespan;
  static const char* kNames[3] = {"CPU", "GPU", "memory"};
  for (int i = 0; i < 3; ++i) {
    r.utilization[kNames[i]] = cap_int_[i] > 0 ? used_int_[i] / cap_int_[i] : 0.0;
  }
  r.node_seconds = node_seconds_;
  envcache::CacheCounters ec;
  for (const NodeRt& rt : nodes_) {
    const envcache::CacheCounters c = rt.agent->EnvCounters();  // crashes included
    ec.hits += c.hits;
    ec.misses += c.misses;
    ec.evictions += c.evictions;
    ec.bytes_installed += c.bytes_installed;
  }
  r.env_cache.hits = ec.hits;
  r.env_cache.misses = ec.misses;
  r.env_cache.evictions = ec.evictions;
  r.env_cache.bytes_installed = ec.bytes_installed;
  if (scenario_.env_cache.worker_startup_s > 0) {
    r.extra_json["workers"] = "{\"started\": " + std::to_string(workers_started_) +
                              ", \"reused\": " + std::to_string(workers_reused_) + "}";
  }
  r.spillbacks = spillbacks_;
  r.bytes_transferred = bytes_transferred_;
  uint64_t initial = 0;
  for (const auto& n : scenario_.nodes) initial += n.standby ? 0 : 1;
  r.nodes.initial = initial;
  r.nodes.peak = peak_nodes_;
  r.autoscaler.launched = launched_;
  r.autoscaler.terminated = terminated_;
  r.autoscaler.peak_nodes = peak_nodes_;
  r.wall_s = wall_s;
  return r;
}

}  // namespace orrery::sim

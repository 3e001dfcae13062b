#include "core/agent/submitter.h"

#include <algorithm>

namespace orrery::agent {

int LeaseRequestsToSend(size_t queued, int pending, int granted, int pending_cap, int lease_cap) {
  constexpr int64_t kNoCap = std::numeric_limits<int>::max();
  const int64_t by_pending = (pending_cap > 0 ? pending_cap : kNoCap) - pending;
  const int64_t by_queue = static_cast<int64_t>(std::min<size_t>(queued, kNoCap)) - pending;
  const int64_t by_leases = (lease_cap > 0 ? lease_cap : kNoCap) - pending - granted;
  return static_cast<int>(std::max<int64_t>(0, std::min({by_pending, by_queue, by_leases})));
}

Submitter::Submitter(SubmitterOptions options) : options_(std::move(options)) {}

Submitter::Class& Submitter::ClassOf(ClassHandle cls) {
  if (cls >= classes_.size()) classes_.resize(static_cast<size_t>(cls) + 1);
  return classes_[cls];
}

void Submitter::SetClassOptions(ClassHandle cls, ClassOptions options) {
  ClassOf(cls).options = options;
}

Submitter::Lease* Submitter::Find(LeaseHandle lease) {
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  if (slot >= leases_.size()) return nullptr;
  Lease& l = leases_[slot];
  if (l.state == LeaseState::kFree || l.generation != static_cast<uint32_t>(lease >> 32)) {
    return nullptr;
  }
  return &l;
}

const Submitter::Lease* Submitter::Find(LeaseHandle lease) const {
  return const_cast<Submitter*>(this)->Find(lease);
}

uint32_t Submitter::NewLease(ClassHandle cls) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(leases_.size());
    leases_.emplace_back(Lease{0, LeaseState::kFree, false, 0, 0, 0, 0, 0, 0, 0, 0, false, 0, 0,
                               RetryBackoff(options_.rejection_backoff)});
  }
  Lease& l = leases_[slot];
  ++l.generation;  // a reply to an earlier lease of this slot finds nothing
  l.state = LeaseState::kRequesting;
  l.bound = false;
  l.cls = cls;
  l.task = 0;
  l.spill_chain = 0;
  l.spillbacks = 0;
  l.rejections = 0;
  l.tasks_run = 0;
  l.in_flight = 0;
  l.pushed = 0;
  l.in_open = false;
  l.idle_since = 0;
  l.backoff.Reset();
  ++classes_[cls].pending;
  return slot;
}

void Submitter::FreeLease(uint32_t slot) {
  leases_[slot].state = LeaseState::kFree;
  free_.push_back(slot);
}

int Submitter::PendingCap(const Class& c) const {
  const int cap = c.options.max_pending_lease_requests > 0
                      ? c.options.max_pending_lease_requests
                      : options_.max_pending_lease_requests_per_class;
  return cap > 0 ? cap : std::numeric_limits<int>::max();
}

int Submitter::LeaseCap(const Class& c) const {
  return c.options.max_leases > 0 ? c.options.max_leases : options_.max_leases_per_class;
}

int Submitter::Depth(const Class& c) const {
  if (!options_.reuse_leases) return 1;
  const int own = c.options.max_tasks_in_flight_per_lease;
  const int d = own > 0 ? own : options_.max_tasks_in_flight_per_lease;
  return std::max(1, d);
}

bool Submitter::HasRoom(const Lease& l, const Class& c) const {
  return l.in_flight < Depth(c) &&
         (c.options.max_tasks_per_lease <= 0 || l.pushed < c.options.max_tasks_per_lease);
}

// Gives busy lease `slot` an entry in its class's round robin if it has room and none yet.
// Amortized O(1): stale entries are compacted away once they outnumber the leases.
void Submitter::AddOpen(uint32_t slot) {
  Lease& l = leases_[slot];
  Class& c = classes_[l.cls];
  if (l.in_open || l.bound || !HasRoom(l, c)) return;
  if (c.open.size() > 2 * static_cast<size_t>(c.granted) + 16) {
    std::erase_if(c.open, [this](LeaseHandle h) {
      const Lease* o = Find(h);
      return o == nullptr || !o->in_open;
    });
  }
  l.in_open = true;
  c.open.push_back(HandleOf(slot, l.generation));
}

void Submitter::Request(uint32_t slot, NodeHandle node, double not_before,
                        std::vector<SubmitDecision>* out) {
  const Lease& l = leases_[slot];
  SubmitDecision& d = out->emplace_back();
  d.kind = SubmitDecision::Kind::kRequestLease;
  d.lease = HandleOf(slot, l.generation);
  d.cls = l.cls;
  d.node = node;
  d.spillbacks = l.spillbacks;
  d.not_before = not_before;
  if (l.bound) {
    d.task = l.task;
  } else {
    const Class& c = classes_[l.cls];
    d.task = c.queue.empty() ? 0 : c.queue.front();
  }
}

void Submitter::Push(uint32_t slot, TaskHandle task, std::vector<SubmitDecision>* out) {
  Lease& l = leases_[slot];
  l.state = LeaseState::kBusy;
  l.task = task;
  ++l.in_flight;
  ++l.pushed;
  SubmitDecision& d = out->emplace_back();
  d.kind = SubmitDecision::Kind::kPushTask;
  d.lease = HandleOf(slot, l.generation);
  d.task = task;
  d.cls = l.cls;
  if (!l.in_open && Depth(classes_[l.cls]) > 1) AddOpen(slot);
}

void Submitter::ReturnLease(uint32_t slot, std::vector<SubmitDecision>* out) {
  Lease& l = leases_[slot];
  --classes_[l.cls].granted;
  SubmitDecision& d = out->emplace_back();
  d.kind = SubmitDecision::Kind::kReturnLease;
  d.lease = HandleOf(slot, l.generation);
  d.cls = l.cls;
  FreeLease(slot);
}

void Submitter::EraseIdle(Class& c, uint32_t slot) {
  auto it = std::find(c.idle.begin(), c.idle.end(), slot);
  if (it != c.idle.end()) c.idle.erase(it);
}

void Submitter::Idle(uint32_t slot, double now, std::vector<SubmitDecision>* out) {
  Lease& l = leases_[slot];
  const bool keep = classes_[l.cls].options.keep_idle_leases;
  if (!options_.reuse_leases || (options_.idle_lease_timeout_s <= 0 && !keep)) {
    ReturnLease(slot, out);
    return;
  }
  l.state = LeaseState::kIdle;
  l.idle_since = keep ? std::numeric_limits<double>::infinity() : now;
  classes_[l.cls].idle.push_back(slot);
}

void Submitter::Dispatch(ClassHandle cls, double now, std::vector<SubmitDecision>* out) {
  Class& c = classes_[cls];
  // Idle leases first: no scheduler round trip.
  while (!c.queue.empty() && !c.idle.empty()) {
    const uint32_t slot = c.idle.back();
    c.idle.pop_back();
    const TaskHandle t = c.queue.front();
    c.queue.pop_front();
    Push(slot, t, out);
  }
  // Pipelining: busy leases with room, round robin, under a backlog or at the lease cap.
  const int depth = Depth(c);
  if (depth > 1) {
    const int lease_cap = LeaseCap(c);
    while (!c.queue.empty() && !c.open.empty()) {
      const bool at_cap = lease_cap > 0 && c.granted >= lease_cap;
      if (!at_cap && c.queue.size() < static_cast<size_t>(depth) * static_cast<size_t>(c.granted)) {
        break;
      }
      const LeaseHandle h = c.open.front();
      c.open.pop_front();
      Lease* l = Find(h);
      if (l == nullptr || !l->in_open) continue;  // stale: the lease is gone
      l->in_open = false;
      if (l->state != LeaseState::kBusy || !HasRoom(*l, c)) continue;  // re-added when it has room
      const TaskHandle t = c.queue.front();
      c.queue.pop_front();
      Push(static_cast<uint32_t>(h & 0xffffffffu), t, out);  // back of the round robin
    }
  }
  const int cap = PendingCap(c);
  if (!options_.reuse_leases) {
    while (!c.queue.empty() && c.pending < cap) {
      const TaskHandle t = c.queue.front();
      c.queue.pop_front();
      const uint32_t slot = NewLease(cls);
      leases_[slot].bound = true;
      leases_[slot].task = t;
      Request(slot, kEntryNode, now, out);
    }
    return;
  }
  for (int n = LeaseRequestsToSend(c.queue.size(), c.pending, c.granted, cap,
                                   options_.max_leases_per_class);
       n > 0; --n) {
    Request(NewLease(cls), kEntryNode, now, out);
  }
}

void Submitter::Submit(TaskHandle task, ClassHandle cls, double now,
                       std::vector<SubmitDecision>* out) {
  ClassOf(cls).queue.push_back(task);
  Dispatch(cls, now, out);
}

void Submitter::SubmitFront(const TaskHandle* tasks, size_t n, ClassHandle cls, double now,
                            std::vector<SubmitDecision>* out) {
  Class& c = ClassOf(cls);
  for (size_t i = n; i > 0; --i) c.queue.push_front(tasks[i - 1]);
  Dispatch(cls, now, out);
}

void Submitter::TakeQueued(ClassHandle cls, std::vector<TaskHandle>* tasks) {
  if (cls >= classes_.size()) return;
  Class& c = classes_[cls];
  tasks->insert(tasks->end(), c.queue.begin(), c.queue.end());
  c.queue.clear();
}

void Submitter::OnLeaseGranted(LeaseHandle lease, NodeHandle /*node*/, double now,
                               std::vector<SubmitDecision>* out) {
  Lease* l = Find(lease);
  if (l == nullptr || l->state != LeaseState::kRequesting) return;
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  const ClassHandle cls = l->cls;
  Class& c = classes_[cls];
  --c.pending;
  ++c.granted;
  l->expires_at = options_.lease_timeout_s > 0 && !c.options.keep_idle_leases
                      ? now + options_.lease_timeout_s
                      : std::numeric_limits<double>::infinity();
  if (l->bound) {
    Push(slot, l->task, out);
  } else if (!c.queue.empty()) {
    const TaskHandle t = c.queue.front();
    c.queue.pop_front();
    Push(slot, t, out);
  } else {
    Idle(slot, now, out);
  }
  Dispatch(cls, now, out);
}

void Submitter::OnLeaseSpilled(LeaseHandle lease, NodeHandle target, bool grant_or_reject,
                               double now, std::vector<SubmitDecision>* out) {
  Lease* l = Find(lease);
  if (l == nullptr || l->state != LeaseState::kRequesting) return;
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  ++l->spillbacks;
  if (options_.max_spillbacks_in_a_row > 0 && ++l->spill_chain > options_.max_spillbacks_in_a_row) {
    FailRequest(
        slot,
        "more than " + std::to_string(options_.max_spillbacks_in_a_row) + " spillbacks in a row",
        now, out);
    return;
  }
  if (!StillNeeded(lease)) {
    --classes_[l->cls].pending;
    FreeLease(slot);
    return;
  }
  Request(slot, target, now, out);
  out->back().grant_or_reject = grant_or_reject;
}

void Submitter::OnLeaseRejected(LeaseHandle lease, double now, std::vector<SubmitDecision>* out) {
  Lease* l = Find(lease);
  if (l == nullptr || l->state != LeaseState::kRequesting) return;
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  l->spill_chain = 0;
  if (options_.max_rejections > 0 && ++l->rejections > options_.max_rejections) {
    FailRequest(slot, "rejected " + std::to_string(l->rejections) + " times", now, out);
    return;
  }
  if (!StillNeeded(lease)) {
    --classes_[l->cls].pending;
    FreeLease(slot);
    return;
  }
  const double delay = options_.rejection_backoff.initial_s > 0 ? l->backoff.NextDelay() : 0.0;
  Request(slot, kEntryNode, now + delay, out);
}

void Submitter::OnLeaseRequestFailed(LeaseHandle lease, const std::string& reason, double now,
                                     std::vector<SubmitDecision>* out) {
  Lease* l = Find(lease);
  if (l == nullptr || l->state != LeaseState::kRequesting) return;
  FailRequest(static_cast<uint32_t>(lease & 0xffffffffu), reason, now, out);
}

void Submitter::FailRequest(uint32_t slot, const std::string& reason, double now,
                            std::vector<SubmitDecision>* out) {
  Lease& l = leases_[slot];
  const ClassHandle cls = l.cls;
  Class& c = classes_[cls];
  --c.pending;
  auto fail = [&](TaskHandle t) {
    SubmitDecision& d = out->emplace_back();
    d.kind = SubmitDecision::Kind::kFailTask;
    d.task = t;
    d.cls = cls;
    d.reason = reason;
  };
  if (l.bound) {
    fail(l.task);
    FreeLease(slot);
    Dispatch(cls, now, out);  // a request slot opened for the next queued task
    return;
  }
  FreeLease(slot);
  // Reuse on: no lease for this class now; its queued tasks would only wait for the same end.
  while (!c.queue.empty()) {
    const TaskHandle t = c.queue.front();
    c.queue.pop_front();
    fail(t);
  }
}

void Submitter::OnTaskFinished(LeaseHandle lease, double now, std::vector<SubmitDecision>* out) {
  Lease* l = Find(lease);
  if (l == nullptr || l->state != LeaseState::kBusy) return;
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  const ClassHandle cls = l->cls;
  Class& c = classes_[cls];
  ++l->tasks_run;
  if (l->in_flight > 0) --l->in_flight;
  if (!options_.reuse_leases || l->bound ||
      (c.options.max_tasks_per_lease > 0 && l->pushed >= c.options.max_tasks_per_lease) ||
      now > l->expires_at) {
    if (l->in_flight > 0) return;  // pipelining: the others still run on it
    ReturnLease(slot, out);
    Dispatch(cls, now, out);
    return;
  }
  if (l->in_flight > 0) {  // pipelining: room for one more
    AddOpen(slot);
    Dispatch(cls, now, out);
    return;
  }
  if (!c.queue.empty()) {
    const TaskHandle t = c.queue.front();
    c.queue.pop_front();
    Push(slot, t, out);
    if (Depth(c) > 1) Dispatch(cls, now, out);
    return;
  }
  Idle(slot, now, out);
}

void Submitter::OnLeaseLost(LeaseHandle lease, double now, std::vector<SubmitDecision>* out) {
  Lease* l = Find(lease);
  if (l == nullptr || (l->state != LeaseState::kBusy && l->state != LeaseState::kIdle)) return;
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  const ClassHandle cls = l->cls;
  Class& c = classes_[cls];
  if (l->state == LeaseState::kIdle) EraseIdle(c, slot);
  --c.granted;
  FreeLease(slot);
  Dispatch(cls, now, out);
}

void Submitter::CancelLease(LeaseHandle lease) {
  Lease* l = Find(lease);
  if (l == nullptr) return;
  const uint32_t slot = static_cast<uint32_t>(lease & 0xffffffffu);
  Class& c = classes_[l->cls];
  if (l->state == LeaseState::kRequesting) {
    --c.pending;
  } else {
    if (l->state == LeaseState::kIdle) EraseIdle(c, slot);
    --c.granted;
  }
  FreeLease(slot);
}

void Submitter::Tick(double now, std::vector<SubmitDecision>* out) {
  if (options_.idle_lease_timeout_s <= 0) return;
  for (Class& c : classes_) {
    // Oldest idle first (the front of `idle`); keep the order of the rest.
    size_t kept = 0;
    for (size_t i = 0; i < c.idle.size(); ++i) {
      const uint32_t slot = c.idle[i];
      if (now - leases_[slot].idle_since >= options_.idle_lease_timeout_s) {
        ReturnLease(slot, out);
      } else {
        c.idle[kept++] = slot;
      }
    }
    c.idle.resize(kept);
  }
}

double Submitter::NextIdleDeadline() const {
  double next = std::numeric_limits<double>::infinity();
  if (options_.idle_lease_timeout_s <= 0) return next;
  for (const Class& c : classes_) {
    for (uint32_t slot : c.idle) {
      next = std::min(next, leases_[slot].idle_since + options_.idle_lease_timeout_s);
    }
  }
  return next;
}

bool Submitter::StillNeeded(LeaseHandle lease) const {
  const Lease* l = Find(lease);
  if (l == nullptr) return false;
  if (l->bound || l->state != LeaseState::kRequesting) return true;
  return !classes_[l->cls].queue.empty();
}

size_t Submitter::Queued(ClassHandle cls) const {
  return cls < classes_.size() ? classes_[cls].queue.size() : 0;
}
int Submitter::PendingRequests(ClassHandle cls) const {
  return cls < classes_.size() ? classes_[cls].pending : 0;
}
int Submitter::GrantedLeases(ClassHandle cls) const {
  return cls < classes_.size() ? classes_[cls].granted : 0;
}
int Submitter::IdleLeases(ClassHandle cls) const {
  return cls < classes_.size() ? static_cast<int>(classes_[cls].idle.size()) : 0;
}
int Submitter::InFlight(LeaseHandle lease) const {
  const Lease* l = Find(lease);
  return l == nullptr ? 0 : l->in_flight;
}

}  // namespace orrery::agent

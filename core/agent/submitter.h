// The owner-side task submitter of a driver (DESIGN section 3, "Leases"): the C++ API's runtime,
// `live run` and the simulator's owner all decide through it which lease to ask for, where to
// send it next, which task runs on which granted lease, and when a lease goes back.
//
// Model (as Ray's "normal task submitter"): tasks are grouped by scheduling class (resource
// shape + strategy + runtime env; the caller interns a class into a small dense ClassHandle).
// Each class has a FIFO of tasks waiting for a worker. A lease request is for a class, not for a
// task: the first lease granted takes the task at the front of the queue, and with
// `reuse_leases` a granted lease that finished a task takes the next queued task of its class
// without going back to a scheduler. At most `max_pending_lease_requests_per_class` requests of
// a class are in flight, and never more than the class has waiting tasks. A lease whose class
// queue is empty goes back at once (idle_lease_timeout_s == 0) or after it stayed idle that long.
// With reuse off every task gets its own lease request, bound to it, and the lease goes back when
// the task finishes (scenario replay in both backends by default; the scenario setting
// `owner: {reuse_leases: true}` turns reuse on for the simulator and `live run` alike).
//
// Pipelining (reuse on, max_tasks_in_flight_per_lease > 1; Ray's max_tasks_in_flight_per_worker):
// a granted lease may run several tasks at once. Idle leases take queued tasks first; a busy
// lease with room takes more only under a backlog (the class queue holds at least depth x granted
// leases tasks) or when the class may not get another lease (its granted leases reached its
// lease cap: an actor's one lease takes every call at once). Busy leases with room are served
// round robin. A lease goes back (or idles) only when nothing runs on it.
//
// Following a request (one rule for every caller): a spillback is followed to its target with
// the node's grant_or_reject flag; more than `max_spillbacks_in_a_row` spillbacks since the last
// restart at the entry node fail the request. A rejection (the target's view was stale) restarts
// at the entry node after a backoff (RetryBackoff: initial, x multiplier, capped); more than
// `max_rejections` fail it. A request that fails (canceled by the node, unreachable, over a
// limit) fails its bound task (reuse off) or the tasks queued in its class (reuse on).
//
// Events -> decisions (appended to the caller's vector; the caller applies them in order):
//   Submit(task)                  -> PushTask onto an idle lease of its class (or a busy one with
//                                    room, pipelining), or RequestLease at the entry node (within
//                                    the pending limit), or nothing (queued)
//   SubmitFront(tasks)            -> as Submit, the tasks ahead of the class queue (a retry)
//   TakeQueued(cls)               -> nothing: the caller fails the waiting tasks it gets back
//   OnLeaseGranted(lease, node)   -> PushTask (front of the class queue / the bound task), or
//                                    ReturnLease (nothing waits and idle timeout 0), or nothing
//                                    (kept idle); more RequestLease for the class may follow
//   OnLeaseSpilled(lease, target) -> RequestLease at target; FailTask when over the spill limit;
//                                    nothing when the class no longer needs it (reuse on)
//   OnLeaseRejected(lease)        -> RequestLease at the entry node with not_before = now+backoff;
//                                    FailTask when over the rejection limit
//   OnLeaseRequestFailed(lease)   -> FailTask (the bound task, or every queued task of the class)
//   OnTaskFinished(lease)         -> PushTask (next of the class), or ReturnLease (reuse off, the
//                                    class's tasks-per-lease cap, the lease expired: held longer
//                                    than lease_timeout_s, then RequestLease for what still
//                                    waits; or idle with timeout 0 and the class does not keep
//                                    idle leases); pipelining: nothing while other tasks still
//                                    run on the lease, or more PushTask
//   OnLeaseLost(lease)            -> RequestLease for the class if tasks wait (the caller
//                                    resubmits the task that was running, if it retries)
//   CancelLease(lease)            -> nothing: the caller gave the lease or its request up
//   Tick(now)                     -> ReturnLease for each lease idle longer than the timeout
//
// Lease handles carry a generation: an event for a lease the submitter already forgot (a late
// reply) is ignored. Entry-node choice (data locality, affinity, the driver's raylet) is the
// caller's: RequestLease names kEntryNode, or a node handle the caller passed in with a spillback.
//
// Complexity: every event is O(1) amortized plus O(decisions); Tick and NextIdleDeadline are
// O(idle leases). No allocation per event once the class and lease tables reached their peak
// size (lease slots are recycled), unless a decision carries a failure reason.
// Thread safety: none; one event loop (or one mutex) owns a Submitter. Time is the caller's
// clock in seconds; the submitter reads none.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "core/placement/two_phase.h"

namespace orrery::agent {

using TaskHandle = uint64_t;   // the caller's id of a task (attempt)
using LeaseHandle = uint64_t;  // the submitter's id of a lease: slot | generation << 32
using ClassHandle = uint32_t;  // the caller's dense id of a scheduling class
using NodeHandle = int32_t;    // the caller's id of a node
inline constexpr NodeHandle kEntryNode = -1;  // "where the caller sends first requests"

struct SubmitterOptions {
  // Feed a granted lease the next task of its class (true), or one fresh lease per task (false).
  bool reuse_leases = true;
  // Lease requests of one class in flight at once; <= 0: unlimited.
  int max_pending_lease_requests_per_class = 10;
  // Leases (granted plus requested) of one class at once; <= 0: unlimited. Reuse on only.
  int max_leases_per_class = 0;
  // A granted lease with nothing to run goes back after this long; 0: at once.
  double idle_lease_timeout_s = 0.0;
  // Lease expiry (Ray's worker_lease_timeout_milliseconds, 500 ms): a lease held longer than
  // this since its grant goes back when the task on it finishes, even if its class has queued
  // tasks (they get a new request), so that a busy class cannot keep its workers from the
  // scheduler forever. Classes with keep_idle_leases (an actor) never expire. <= 0: never.
  double lease_timeout_s = 0.0;
  // Tasks running on one granted lease at once (reuse on only); <= 1: one at a time.
  int max_tasks_in_flight_per_lease = 1;
  // Spillbacks followed since the last (re)start at the entry node; <= 0: unlimited.
  int max_spillbacks_in_a_row = 16;
  // Rejections of one request before it fails; <= 0: unlimited.
  int max_rejections = 100;
  // Pause before asking the entry node again after a rejection (initial_s 0: none).
  RetryBackoffOptions rejection_backoff{0.005, 2.0, 0.2};
};

// Per-class settings (SetClassOptions); defaults apply to classes never set.
struct ClassOptions {
  // A lease runs at most this many tasks before it goes back; <= 0: unlimited (a GPU class of
  // the C++ API uses 1: the worker goes, with the GPU memory a task left behind).
  int max_tasks_per_lease = 0;
  // This class's own pending-request cap when > 0 (an actor: 1); else the submitter's.
  int max_pending_lease_requests = 0;
  // This class's own lease cap (granted plus requested) when > 0 (an actor: 1); else the
  // submitter's max_leases_per_class.
  int max_leases = 0;
  // This class's own max tasks in flight per lease when > 0 (an actor: unlimited in effect,
  // INT_MAX); else the submitter's.
  int max_tasks_in_flight_per_lease = 0;
  // Idle leases of this class never go back on their own (an actor's worker); the caller ends
  // them with CancelLease.
  bool keep_idle_leases = false;
};

struct SubmitDecision {
  enum class Kind : uint8_t {
    kRequestLease,  // ask `node` (or the entry node) for a lease `lease` of class `cls`
    kPushTask,      // run `task` on granted lease `lease`
    kReturnLease,   // give granted lease `lease` back to its node
    kFailTask,      // `task` gets no lease: `reason`
  };
  Kind kind = Kind::kRequestLease;
  LeaseHandle lease = 0;
  TaskHandle task = 0;  // kPushTask/kFailTask; kRequestLease: the bound task (reuse off) or the
                        // front of the class queue (reuse on)
  ClassHandle cls = 0;
  NodeHandle node = kEntryNode;  // kRequestLease: where to send it
  bool grant_or_reject = false;  // kRequestLease: the target may only grant or reject
  int spillbacks = 0;            // kRequestLease: spillbacks this request followed so far
  double not_before = 0;         // kRequestLease: do not send before this time (backoff)
  std::string reason;            // kFailTask
};

// The pending-request rule of a class, on its own: how many new lease
// requests to send now so that requests in flight stay below `pending_cap` and below the number
// of `queued` tasks, and granted plus requested leases below `lease_cap` (<= 0: no cap). The
// Submitter applies the same rule. O(1).
int LeaseRequestsToSend(size_t queued, int pending, int granted, int pending_cap, int lease_cap);

class Submitter {
 public:
  explicit Submitter(SubmitterOptions options = {});

  // Sets class `cls`'s options (before or after its first task). O(1) amortized.
  void SetClassOptions(ClassHandle cls, ClassOptions options);

  // A task is ready to run (its dependencies resolved). Tasks of one class run in Submit order.
  void Submit(TaskHandle task, ClassHandle cls, double now, std::vector<SubmitDecision>* out);
  // Tasks to run before the rest of their class, in this order (a retried task goes ahead of
  // newer ones). O(n) plus the dispatch.
  void SubmitFront(const TaskHandle* tasks, size_t n, ClassHandle cls, double now,
                   std::vector<SubmitDecision>* out);
  // Removes the tasks of `cls` waiting for a lease and appends them to `tasks` in queue order
  // (the caller fails them: an actor died, shutdown). Its requests in flight are no longer
  // needed. O(queued).
  void TakeQueued(ClassHandle cls, std::vector<TaskHandle>* tasks);

  // Replies to a kRequestLease. REQUIRES: `lease` came from a kRequestLease not yet answered
  // (otherwise the event is ignored).
  void OnLeaseGranted(LeaseHandle lease, NodeHandle node, double now,
                      std::vector<SubmitDecision>* out);
  void OnLeaseSpilled(LeaseHandle lease, NodeHandle target, bool grant_or_reject, double now,
                      std::vector<SubmitDecision>* out);
  void OnLeaseRejected(LeaseHandle lease, double now, std::vector<SubmitDecision>* out);
  // Canceled by the node, or unreachable: the request ends with `reason`.
  void OnLeaseRequestFailed(LeaseHandle lease, const std::string& reason, double now,
                            std::vector<SubmitDecision>* out);

  // A task pushed onto granted `lease` finished (whatever its result); with pipelining, one of
  // those in flight on it.
  void OnTaskFinished(LeaseHandle lease, double now, std::vector<SubmitDecision>* out);
  // Granted `lease` is gone (its worker or node died); the task it ran is the caller's to
  // resubmit. Queued tasks of its class get a new request when needed.
  void OnLeaseLost(LeaseHandle lease, double now, std::vector<SubmitDecision>* out);
  // The caller gave `lease` (requested or granted) up on its own; forgotten, nothing decided.
  void CancelLease(LeaseHandle lease);

  // Returns the leases idle for idle_lease_timeout_s or longer. O(idle leases).
  void Tick(double now, std::vector<SubmitDecision>* out);
  // The earliest time Tick has something to do; +infinity if none. O(idle leases).
  double NextIdleDeadline() const;

  // False once a requested lease is no longer wanted (reuse on: its class has no queued task;
  // or the submitter forgot it). The acquirer asks between requests to drop unneeded ones.
  bool StillNeeded(LeaseHandle lease) const;
  // Introspection (tests, metrics).
  size_t Queued(ClassHandle cls) const;
  int PendingRequests(ClassHandle cls) const;
  int GrantedLeases(ClassHandle cls) const;  // running or idle
  int IdleLeases(ClassHandle cls) const;
  int InFlight(LeaseHandle lease) const;  // tasks running on a granted lease; 0 if unknown
  const SubmitterOptions& options() const { return options_; }

 private:
  enum class LeaseState : uint8_t { kFree, kRequesting, kBusy, kIdle };
  struct Lease {
    uint32_t generation = 0;
    LeaseState state = LeaseState::kFree;
    bool bound = false;  // reuse off: requested for `task`
    ClassHandle cls = 0;
    TaskHandle task = 0;
    int spill_chain = 0;
    int spillbacks = 0;
    int rejections = 0;
    int tasks_run = 0;
    int in_flight = 0;     // tasks pushed and not finished
    int pushed = 0;        // tasks pushed in all
    bool in_open = false;  // pipelining: this generation has an entry in its class's `open`
    double idle_since = 0;
    double expires_at = 0;  // lease_timeout_s after the grant (+infinity: never)
    RetryBackoff backoff;
  };
  struct Class {
    std::deque<TaskHandle> queue;
    std::vector<uint32_t> idle;  // idle granted leases (slots), most recently idle last
    // Pipelining: busy leases that may have room, served round robin; entries are checked when
    // taken (stale ones, of leases gone or full, are dropped then or compacted away).
    std::deque<LeaseHandle> open;
    int pending = 0;             // lease requests in flight
    int granted = 0;             // granted leases (busy or idle)
    ClassOptions options;
  };

  Class& ClassOf(ClassHandle cls);
  Lease* Find(LeaseHandle lease);
  const Lease* Find(LeaseHandle lease) const;
  static LeaseHandle HandleOf(uint32_t slot, uint32_t generation) {
    return static_cast<uint64_t>(slot) | (static_cast<uint64_t>(generation) << 32);
  }
  uint32_t NewLease(ClassHandle cls);
  void FreeLease(uint32_t slot);
  int PendingCap(const Class& c) const;
  int LeaseCap(const Class& c) const;
  int Depth(const Class& c) const;  // tasks in flight per lease
  bool HasRoom(const Lease& l, const Class& c) const;
  void AddOpen(uint32_t slot);
  // Hands queued tasks to idle leases, then requests leases while the caps allow.
  void Dispatch(ClassHandle cls, double now, std::vector<SubmitDecision>* out);
  void Request(uint32_t slot, NodeHandle node, double not_before, std::vector<SubmitDecision>* out);
  void Push(uint32_t slot, TaskHandle task, std::vector<SubmitDecision>* out);
  // A granted lease with nothing to run: return it or keep it idle.
  void Idle(uint32_t slot, double now, std::vector<SubmitDecision>* out);
  void ReturnLease(uint32_t slot, std::vector<SubmitDecision>* out);
  // The request of `slot` failed: fail its task(s) and forget it.
  void FailRequest(uint32_t slot, const std::string& reason, double now,
                   std::vector<SubmitDecision>* out);
  void EraseIdle(Class& c, uint32_t slot);

  SubmitterOptions options_;
  std::vector<Class> classes_;
  std::vector<Lease> leases_;
  std::vector<uint32_t> free_;
};

}  // namespace orrery::agent

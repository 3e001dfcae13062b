// The per-lease trace of a run (issue 15 item 1): what the driver's owner did with every worker
// lease, in one schema for the simulator and the live cluster, and where each class's queue delay
// goes, sim beside live.
//
// A run asked with --trace records, at the owner (the driver's agent::Submitter and its caller),
// one event per step of each lease, written as leases.csv next to tasks.csv:
//   request   a lease request is sent to `node` (the entry node, or the target of a spillback,
//             or the entry node again after a rejection); simulator: when it reaches the node
//             (the leg there is the modelled lease leg)
//   spilled   `node` answered with a spillback to `detail` (the target's id); view_age_s: how
//             old the deciding node's knowledge of the target was (live: since the head heard
//             the target's heartbeat that the applied view carried; simulator: the modelled
//             age, since the heartbeat point that the last report tick carried)
//   rejected  `node` turned a grant_or_reject request down (its view was stale)
//   unreachable  `node`, a spillback target, could not be reached (live only; back to the entry)
//   granted   `node` granted the lease (for a queued request: when the node granted it)
//   failed    the request ended without a lease (`detail`: why)
//   dropped   the owner gave the request up: its class no longer needed it
//   push      task `task_id` (attempt `attempt`) is pushed onto the granted lease
//   finished  a task on the lease ended and the owner knows it
//   returned  the owner gave the lease back to `node`
//   lost      the lease's worker or node is gone
// Every lease has an id dense from 0 in order of first event; `name` is the class's name (the
// task name of the request's front task). Times are the run's seconds (DESIGN section 6).
//
// ComputeLeaseLegs splits each class's queue delay (start - submit, tasks.csv) into the wait at
// the owner for a lease (submit -> push) and the start on the lease (push -> start: worker,
// runtime env, arguments), and describes the leases: how many, tasks per lease, hops (spillbacks
// and rejections) per grant, the share granted at the first node asked, and the request -> grant
// time (which holds the time a request sat queued at a node).
//
// Pure: value types and functions; no I/O, no clock. LeaseTraceRecorder is not thread-safe (the
// caller's lock).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/results/fidelity.h"
#include "core/results/run_record.h"
#include "core/status.h"

namespace orrery::results {

// Collects events under dense lease ids. O(1) amortized per event.
class LeaseTraceRecorder {
 public:
  // `handle`: the caller's lease id (unique over the run). An empty `name` takes the name the
  // lease was first seen with.
  void Add(double t_s, uint64_t handle, std::string_view event, std::string_view name,
           std::string_view node, std::string_view task_id = {}, int attempt = 0,
           std::string_view detail = {}, double view_age_s = -1);
  const std::vector<LeaseEvent>& events() const { return events_; }
  std::vector<LeaseEvent> Take() { return std::move(events_); }

 private:
  struct Known {
    uint64_t id = 0;
    std::string name;
  };
  std::unordered_map<uint64_t, Known> ids_;
  std::vector<LeaseEvent> events_;
};

// leases.csv: header t_s,lease,name,event,node,task_id,attempt,detail,view_age_s; rows in time
// order (ties in recorded order).
std::string RenderLeasesCsv(std::vector<LeaseEvent> events);
// Parses leases.csv text; InvalidArgument "FILE:LINE: ..." naming what was expected.
StatusOr<std::vector<LeaseEvent>> ParseLeasesCsv(const std::string& text, const std::string& file);

struct ClassLegs {
  std::string name;
  size_t tasks = 0;   // pushes of this class's tasks
  size_t leases = 0;  // granted leases of this class
  double tasks_per_lease = 0;
  double hops_per_lease = 0;     // spillbacks + rejections per granted lease
  double granted_at_entry = 0;   // share of granted leases granted at the first node asked
  size_t returned_busy = 0;      // leases given back while tasks of the class still waited
  Percentiles grant_wait;        // per granted lease: first request -> granted
  Percentiles owner_wait;        // per pushed task: submit -> push
  Percentiles start_after_push;  // per started task: push -> start
  Percentiles queue;             // per started task: start - submit (tasks.csv)
  Percentiles view_age;          // per spillback with a known age: how old the decider's report was
  size_t view_ages = 0;          // spillbacks with a known age (0: view_age means nothing)
};

// Per class name, in name order. Attempts join pushes by (task_id, attempt). O(n log n).
std::vector<ClassLegs> ComputeLeaseLegs(const std::vector<LeaseEvent>& events,
                                        const std::vector<AttemptTimes>& attempts);

// legs.csv: one row per class and run (run = "sim", "live", "live-2", ...).
std::string RenderLegsCsv(const std::vector<std::pair<std::string, std::vector<ClassLegs>>>& runs);
// The "where the queue delay goes" table: per class, the candidate beside the mean of the
// references.
std::string RenderLegsTable(const std::vector<ClassLegs>& candidate,
                            const std::vector<std::vector<ClassLegs>>& references,
                            std::string_view candidate_label, std::string_view reference_label);

}  // namespace orrery::results

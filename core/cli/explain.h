// `orrery explain CASE.json [--json]`: the what-if explainer (DESIGN section 8).
//
// Reads a case file (format: case_json.h), asks the core exactly what a node would decide, and
// prints the answer: a table per decision for people, or with --json
//   schedule:        {"decisions": [{"node": ID|null, "outcome": "granted|spillback|infeasible|
//                     unschedulable|canceled", "reason": str, "policy": str, "devices": [int],
//                     "nodes": [{"id", "feasible", "available", "score"}]}]}
//   placement_group: {"outcome": "placed|failed|infeasible", "placement": [ID per bundle],
//                     "reason": str, "nodes_after": [{"id", "total", "available"}]}
//   autoscale:       {"launch": {TYPE: count} (by type name), "terminate": [ID] (in decision
//                     order), "infeasible": [RES] (gangs first, then demands in input order)}
//   env_cache:       {"total_bytes": int (after the last op, every kind), "evicted": [URI] (in
//                     eviction order; a URI evicted twice is listed twice), "deletes": int (the
//                     number of evictions, each a delete on disk)}
// Schedule requests are decided in order by one Scheduler and one Rng(seed) against one view; a
// request whose chosen node has it available is applied there before the next request. A decision
// row's `nodes` describe the view as it was *before* that request was applied. A placed group is
// reserved bundle by bundle; if a reservation fails everything is returned and the outcome is
// `failed`, so `nodes_after` never shows leaked resources. An autoscale case is one planning
// round (core/autoscaler/planner.h); an env_cache case runs its ops in order through one cache
// (op semantics: case_json.h). The human form shows more than the JSON: why each node is
// launched or terminated, what waits for a later round, the result of every cache op.
//
// Exit codes: 0 the case was explained (whatever its outcome), 1 an internal failure, 2 bad usage
// or bad input (the message names the file, the JSON path of the field, and its line).
//
// Thread safety: reentrant; touches only its arguments and the named file.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace orrery::cli {

// args: everything after "explain".
int RunExplain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace orrery::cli

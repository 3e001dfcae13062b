// `orrery explain CASE.json [--json]`: the what-if explainer (DESIGN section 8).
//
// Reads a case file (format: case_json.h), asks the core exactly what a node would decide, and
// prints the answer: a table per decision for people, or with --json
//   schedule:        {"decisions": [{"node": ID|null, "outcome": "granted|spillback|infeasible|
//                     unschedulable|canceled", "reason": str, "policy": str, "devices": [int],
//                     "nodes": [{"id", "feasible", "available", "score"}]}]}
//   placement_group: {"outcome": "placed|failed|infeasible", "placement": [ID per bundle],
//                     "reason": str, "nodes_after": [{"id", "total", "available"}]}
// Schedule requests are decided in order by one Scheduler and one Rng(seed) against one view; a
// request whose chosen node has it available is applied there before the next request. A decision
// row's `nodes` describe the view as it was *before* that request was applied. A placed group is
// reserved bundle by bundle; if a reservation fails everything is returned and the outcome is
// `failed`, so `nodes_after` never shows leaked resources.
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

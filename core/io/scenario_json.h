// The expanded form of a scenario as JSON (`orrery sim expand`): every node, placement group and
// task after generators ran, with the exact submit times, durations, shapes, strategies and
// argument producers the simulator and `live run` replay. Other systems replay it (bench/
// ray_replay.py replays it on real Ray) so that every backend sees the same workload.
//
// Thread safety: pure function.
#pragma once

#include <string>

#include "core/scenario/scenario.h"

namespace orrery::io {

// {"name", "seed", "driver", "report_period_s", "nodes": [{"id", "resources": {..}}],
//  "placement_groups": [{"id", "create_s", "strategy", "bundles": [{..}]}],
//  "tasks": [{"id", "name", "kind", "submit_s", "duration_s", "resources": {..},
//             "strategy": "DEFAULT"|"SPREAD"|"NODE_AFFINITY", "node", "soft",
//             "args": [task ids], "output_bytes", "placement_group", "bundle",
//             "runtime_env", "max_retries"}]}
// Task ids are indexes into "tasks" (the ids the result files use). Optional fields are left out
// when unset. O(tasks + args).
std::string RenderExpandedScenarioJson(const Scenario& s);

}  // namespace orrery::io

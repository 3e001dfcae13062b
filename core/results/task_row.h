// What both backends' replays of a scenario start their results from (DESIGN section 6).
//
// The tasks.csv row of a scenario task's attempt as both backends start it:
// the task's id, name, job and kind from the scenario, the attempt's submit time, state
// "pending", nothing run yet. The simulator and `live run` fill in the rest as the attempt goes.
#pragma once

#include <cstddef>

#include "core/results/run_record.h"
#include "core/scenario/scenario.h"

namespace orrery::results {

// REQUIRES: task < s.tasks.size(). O(length of the names).
inline TaskAttempt PendingAttemptRow(const Scenario& s, size_t task, double submit_s) {
  const TaskSpec& ts = s.tasks[task];
  TaskAttempt row;
  row.task_id = task;
  row.name = s.names[ts.name];
  row.job_id = s.jobs[ts.job];
  row.kind = WorkKindName(ts.kind);
  row.submit_s = submit_s;
  row.state = "pending";
  return row;
}

// The run record of a replay of `s` by `backend` ("sim" | "live"), before any attempt: the
// scenario's name, the policy that decides and the seed.
inline RunRecord ScenarioRunRecord(const Scenario& s, const char* backend) {
  RunRecord r;
  r.scenario = s.name;
  r.backend = backend;
  r.policy = s.scheduler.options.policy;
  r.seed = s.seed;
  return r;
}

}  // namespace orrery::results

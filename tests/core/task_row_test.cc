#include "core/results/task_row.h"

#include <gtest/gtest.h>

namespace orrery {
namespace {

TEST(PendingAttemptRow, TakesTheTasksNamesAndTheGivenSubmitTime) {
  Scenario s;
  s.names = {"map", "reduce"};
  s.jobs = {"job-a", "job-b"};
  TaskSpec a;
  a.name = 1;
  a.job = 0;
  a.kind = WorkKind::kActor;
  a.submit_s = 3.0;
  TaskSpec b;
  b.name = 0;
  b.job = 1;
  s.tasks = {a, b};
  const results::TaskAttempt r = results::PendingAttemptRow(s, 0, 7.5);
  EXPECT_EQ(r.task_id, 0u);
  EXPECT_EQ(r.name, "reduce");
  EXPECT_EQ(r.job_id, "job-a");
  EXPECT_EQ(r.kind, "actor");
  EXPECT_EQ(r.submit_s, 7.5);  // the attempt's, not the task's
  EXPECT_EQ(r.state, "pending");
  EXPECT_EQ(r.start_s, -1);
  EXPECT_EQ(r.end_s, -1);
  EXPECT_EQ(r.attempt, 0);
  EXPECT_TRUE(r.node_id.empty());
  const results::TaskAttempt q = results::PendingAttemptRow(s, 1, 0.25);
  EXPECT_EQ(q.task_id, 1u);
  EXPECT_EQ(q.name, "map");
  EXPECT_EQ(q.job_id, "job-b");
  EXPECT_EQ(q.kind, "task");
}

}  // namespace
}  // namespace orrery

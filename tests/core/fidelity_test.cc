// Per-class statistics and the fidelity verdict (core/results/fidelity.h).
#include "core/results/fidelity.h"

#include <gtest/gtest.h>

#include <cmath>

namespace orrery::results {
namespace {

AttemptTimes A(std::string id, int attempt, std::string name, double submit, double start,
               double end, bool finished = true) {
  AttemptTimes a;
  a.task_id = std::move(id);
  a.attempt = attempt;
  a.name = std::move(name);
  a.finished = finished;
  a.submit_s = submit;
  a.start_s = start;
  a.end_s = end;
  return a;
}

// A run with two classes whose mean queue delays are `small` and `big` (each 2 tasks).
RunStats TwoClasses(double small, double big, double makespan = 10) {
  return ComputeRunStats({A("1", 0, "small", 0, small, small + 1),
                          A("2", 0, "small", 1, 1 + small, 2 + small),
                          A("3", 0, "big", 0, big, big + 2), A("4", 0, "big", 2, 2 + big, 4 + big)},
                         makespan);
}

TEST(RunStats, PerClassQueueDelayAndJct) {
  // Task 1 failed once and was retried: two queue delays, JCT from the first submit.
  const RunStats s = ComputeRunStats({A("1", 0, "map", 0, 1, 2, false), A("1", 1, "map", 3, 3.5, 5),
                                      A("2", 0, "map", 0, 0.5, 1), A("3", 0, "reduce", 2, 4, 6),
                                      A("4", 0, "reduce", 2, -1, -1, false)},
                                     7);
  ASSERT_EQ(s.classes.size(), 2u);
  const ClassStats* map = s.Find("map");
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->tasks, 2u);
  EXPECT_DOUBLE_EQ(map->queue.mean, (1 + 0.5 + 0.5) / 3);
  EXPECT_DOUBLE_EQ(map->jct.mean, (5 + 1) / 2.0);
  EXPECT_DOUBLE_EQ(map->jct.p95, 5);
  const ClassStats* reduce = s.Find("reduce");
  ASSERT_NE(reduce, nullptr);
  EXPECT_EQ(reduce->tasks, 2u);  // the never-started task counts, without a queue delay
  EXPECT_DOUBLE_EQ(reduce->queue.mean, 2);
  EXPECT_DOUBLE_EQ(reduce->jct.mean, 4);
  EXPECT_EQ(s.Find("nope"), nullptr);
  EXPECT_DOUBLE_EQ(s.queue.p95, 2);  // nearest rank of {0.5, 0.5, 1, 2}
  EXPECT_DOUBLE_EQ(s.makespan_s, 7);
}

TEST(Fidelity, SameRunsPass) {
  const FidelityVerdict v = JudgeFidelity(TwoClasses(1, 3), {TwoClasses(1, 3)});
  EXPECT_TRUE(v.pass) << v.Line();
  EXPECT_EQ(v.checks.size(), 4u);  // makespan, p95, two classes
  EXPECT_EQ(v.Line().rfind("fidelity: PASS (4/4", 0), 0u) << v.Line();
}

TEST(Fidelity, ClassMeanBarIsRelativeOrAbsolute) {
  // big: reference 3 s, allowed 0.45 s (15 %); small: reference 0.2 s, allowed 0.1 s (absolute).
  EXPECT_TRUE(JudgeFidelity(TwoClasses(0.29, 3.4, 10), {TwoClasses(0.2, 3, 10)},
                            FidelityBars{0.05, 10, 0.15, 0.1})
                  .pass);
  const FidelityVerdict v =
      JudgeFidelity(TwoClasses(0.35, 3, 10), {TwoClasses(0.2, 3, 10)}, FidelityBars{0.05, 10, 0.15, 0.1});
  EXPECT_FALSE(v.pass);
  bool small_missed = false;
  for (const auto& c : v.checks) {
    if (c.what == "class small: mean queue delay") {
      small_missed = !c.pass;
      EXPECT_DOUBLE_EQ(c.allowed, 0.1);
    }
  }
  EXPECT_TRUE(small_missed) << v.Line();
  EXPECT_NE(v.Line().find("worst: class small"), std::string::npos) << v.Line();
}

TEST(Fidelity, MakespanBar) {
  EXPECT_TRUE(JudgeFidelity(TwoClasses(1, 3, 10.4), {TwoClasses(1, 3, 10)}).pass);
  EXPECT_FALSE(JudgeFidelity(TwoClasses(1, 3, 10.6), {TwoClasses(1, 3, 10)}).pass);
}

TEST(Fidelity, NoisyReferencesWidenTheClassBar) {
  // Two references of big: 2 and 4 s (mean 3, spread 2 > 10 %): allowed = 1.5 x 2 = 3 s.
  FidelityBars bars;
  bars.makespan_rel = 1;
  bars.queue_p95_rel = 10;
  bars.same_class_order = false;
  const FidelityVerdict v = JudgeFidelity(TwoClasses(1, 5.5), {TwoClasses(1, 2), TwoClasses(1, 4)}, bars);
  EXPECT_TRUE(v.pass) << v.Line();
  const FidelityCheck& big = v.checks[2];
  EXPECT_EQ(big.what, "class big: mean queue delay");
  EXPECT_TRUE(big.widened);
  EXPECT_DOUBLE_EQ(big.reference, 3);
  EXPECT_DOUBLE_EQ(big.spread, 2);
  EXPECT_DOUBLE_EQ(big.allowed, 3);
  // The same sim against one reference of 3 s misses.
  EXPECT_FALSE(JudgeFidelity(TwoClasses(1, 5.5), {TwoClasses(1, 3)}, bars).pass);
}

TEST(Fidelity, ClassesRankedDifferentlyFail) {
  // The reference: small waits 0.1 s, big 3 s. Makespan and p95 bars are wide, so only the class
  // bars and the order check decide.
  FidelityBars bars;
  bars.makespan_rel = 1;
  bars.queue_p95_rel = 10;
  bars.class_mean_rel = 0;
  bars.class_mean_abs_s = 0.5;
  const FidelityVerdict ok = JudgeFidelity(TwoClasses(0.3, 2.8), {TwoClasses(0.1, 3)}, bars);
  EXPECT_TRUE(ok.pass) << ok.Line();
  bars.class_mean_abs_s = 10;  // every class within its bar...
  const FidelityVerdict v = JudgeFidelity(TwoClasses(3, 0.1), {TwoClasses(0.1, 3)}, bars);
  EXPECT_TRUE(v.order_violations.empty()) << "classes within each other's bars are not ordered";
  bars.class_mean_abs_s = 2.5;  // ...separated by more than the bars: the order must hold
  const FidelityVerdict w = JudgeFidelity(TwoClasses(2.0, 1.0), {TwoClasses(0.1, 3)}, bars);
  ASSERT_EQ(w.order_violations.size(), 1u) << w.Line();
  EXPECT_FALSE(w.pass);
  EXPECT_NE(w.order_violations[0].find("small waits less than big"), std::string::npos);
}

TEST(Fidelity, AClassMissingFromTheCandidateFails) {
  const RunStats only_small = ComputeRunStats({A("1", 0, "small", 0, 1, 2)}, 10);
  const FidelityVerdict v = JudgeFidelity(only_small, {TwoClasses(1, 3)});
  EXPECT_FALSE(v.pass);
  bool found = false;
  for (const auto& c : v.checks) found |= c.what.find("big") != std::string::npos && !c.pass;
  EXPECT_TRUE(found) << v.Line();
}

TEST(Fidelity, CsvAndTableNameEveryClass) {
  const RunStats sim = TwoClasses(1, 3);
  const std::vector<RunStats> live = {TwoClasses(1.1, 3.2), TwoClasses(0.9, 3.6)};
  const FidelityVerdict v = JudgeFidelity(sim, live);
  const std::string csv = RenderClassesCsv(sim, live, v);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "class,tasks,sim_queue_mean,sim_queue_p95,ref_queue_mean,ref_queue_p95,"
            "ref_queue_spread,sim_jct_mean,sim_jct_p95,ref_jct_mean,ref_jct_p95,allowed,pass");
  EXPECT_NE(csv.find("\nbig,2,3,3,3.4,3.4,0.4,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nsmall,2,1,1,1,1,0.2,"), std::string::npos) << csv;
  const std::string table = RenderClassesTable(sim, live, v, "sim", "live");
  EXPECT_NE(table.find("mean of 2 runs"), std::string::npos) << table;
  EXPECT_NE(table.find("fidelity: "), std::string::npos) << table;
}

TEST(RayBars, AreWider) {
  EXPECT_DOUBLE_EQ(RayBars().class_mean_rel, 0.25);
  EXPECT_DOUBLE_EQ(RayBars().class_mean_abs_s, 0.2);
}

}  // namespace
}  // namespace orrery::results

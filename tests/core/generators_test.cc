// Generator expansion (core/scenario/generators.h): arrival processes, durations, argument picks
// and the stable sort, on scenarios built in memory (no file).
#include "core/scenario/generators.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orrery {
namespace {

Scenario Empty(uint64_t seed = 7) {
  Scenario s;
  s.seed = seed;
  s.names = {"g"};
  s.jobs = {"job"};
  s.shapes = {ResourceRequest()};
  s.strategies = {SchedulingStrategy()};
  return s;
}

GeneratorPlan Plan(std::string name, uint64_t count) {
  GeneratorPlan g;
  g.name = std::move(name);
  g.count = count;
  return g;
}

Status Expand(std::vector<GeneratorPlan>& plans, Scenario* s, size_t* failed = nullptr) {
  uint64_t n = 0;
  for (const auto& p : plans) n += p.count;
  return ExpandGenerators(plans, n, 0, s, failed);
}

TEST(GeneratorsTest, UniformArrivalsAreEvenlySpacedFromStart) {
  Scenario s = Empty();
  std::vector<GeneratorPlan> plans = {Plan("u", 4)};
  plans[0].process = GeneratorPlan::Process::kUniform;
  plans[0].start = 10;
  plans[0].interval = 2.5;
  plans[0].duration.a = 3;
  ASSERT_TRUE(Expand(plans, &s).ok());
  ASSERT_EQ(s.tasks.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(s.tasks[i].submit_s, 10 + 2.5 * static_cast<double>(i));
    EXPECT_DOUBLE_EQ(s.tasks[i].duration_s, 3);
  }
}

TEST(GeneratorsTest, SameSeedSameTasksAndOtherGeneratorsDoNotShiftDraws) {
  auto run = [](bool with_other) {
    Scenario s = Empty(42);
    std::vector<GeneratorPlan> plans;
    if (with_other) {
      plans.push_back(Plan("other", 3));
      plans.back().process = GeneratorPlan::Process::kPoisson;
      plans.back().rate = 5;
    }
    plans.push_back(Plan("p", 50));
    plans.back().process = GeneratorPlan::Process::kPoisson;
    plans.back().rate = 2;
    plans.back().duration.kind = DurationDist::Kind::kExponential;
    plans.back().duration.a = 1;
    plans.back().name_idx = 7;  // marks its tasks
    EXPECT_TRUE(Expand(plans, &s).ok());
    std::vector<std::pair<double, double>> mine;
    for (const TaskSpec& t : s.tasks) {
      if (t.name == 7) mine.emplace_back(t.submit_s, t.duration_s);
    }
    return mine;
  };
  const auto a = run(false);
  ASSERT_EQ(a.size(), 50u);
  EXPECT_EQ(a, run(false));
  EXPECT_EQ(a, run(true));  // streams are per generator name
  for (size_t i = 1; i < a.size(); ++i) EXPECT_LT(a[i - 1].first, a[i].first);
}

TEST(GeneratorsTest, TasksAreSortedStablyAndProducersRenumbered) {
  Scenario s = Empty();
  std::vector<GeneratorPlan> plans = {Plan("late", 2), Plan("early", 2)};
  plans[0].at = 5;  // burst at 5 s
  plans[0].output = 100;
  plans[0].name_idx = 1;
  plans[1].at = 1;
  plans[1].name_idx = 2;
  // "early" takes one argument from "late": none is submitted before 1 s, so none is found.
  plans[1].args.push_back(ArgPlan{.from_gen = 0, .count = 1});
  ASSERT_TRUE(Expand(plans, &s).ok());
  ASSERT_EQ(s.tasks.size(), 4u);
  EXPECT_EQ(s.tasks[0].name, 2u);
  EXPECT_EQ(s.tasks[1].name, 2u);
  EXPECT_EQ(s.tasks[2].name, 1u);
  EXPECT_EQ(s.tasks[0].args_count, 0u);
  EXPECT_EQ(plans[1].missing_args, 2u);
}

TEST(GeneratorsTest, ArgumentsRoundRobinOverEarlierProducers) {
  Scenario s = Empty();
  std::vector<GeneratorPlan> plans = {Plan("map", 3), Plan("reduce", 2)};
  plans[0].output = 64;
  plans[1].at = 1;
  plans[1].args.push_back(ArgPlan{.from_gen = 0, .count = 2});
  plans[1].args.push_back(ArgPlan{.node = 0, .bytes = 9});
  ASSERT_TRUE(Expand(plans, &s).ok());
  ASSERT_EQ(s.tasks.size(), 5u);
  const TaskSpec& r1 = s.tasks[4];
  ASSERT_EQ(r1.args_count, 3u);
  // Task i takes producers (i * count + j) % 3: the second reduce (i = 1) takes 2 and 0.
  EXPECT_EQ(s.args[r1.args_begin].producer, 2);
  EXPECT_EQ(s.args[r1.args_begin + 1].producer, 0);
  EXPECT_EQ(s.args[r1.args_begin].bytes, 64u);
  EXPECT_EQ(s.args[r1.args_begin + 2].producer, -1);
  EXPECT_EQ(s.args[r1.args_begin + 2].bytes, 9u);
}

TEST(GeneratorsTest, TraceTasksKeepTheirOwnShapesAndDurations) {
  Scenario s = Empty();
  s.shapes.resize(3);
  std::vector<GeneratorPlan> plans = {Plan("trace", 2)};
  plans[0].process = GeneratorPlan::Process::kTrace;
  plans[0].trace_times = {4, 2};
  plans[0].trace_durations = {1.5, 0.5};
  plans[0].trace_shapes = {2, 1};
  plans[0].duration.kind = DurationDist::Kind::kColumn;
  ASSERT_TRUE(Expand(plans, &s).ok());
  ASSERT_EQ(s.tasks.size(), 2u);
  EXPECT_DOUBLE_EQ(s.tasks[0].submit_s, 2);
  EXPECT_EQ(s.tasks[0].shape, 1u);
  EXPECT_DOUBLE_EQ(s.tasks[0].duration_s, 0.5);
  EXPECT_EQ(s.tasks[1].shape, 2u);
}

TEST(GeneratorsTest, AbsurdTimesAreRefusedNamingThePlan) {
  Scenario s = Empty();
  std::vector<GeneratorPlan> plans = {Plan("ok", 1), Plan("typo", 2)};
  plans[1].process = GeneratorPlan::Process::kUniform;
  plans[1].interval = 1e13;
  size_t failed = 99;
  Status st = Expand(plans, &s, &failed);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(failed, 1u);
  EXPECT_NE(st.message().find("task 1 would be submitted at 1e+13 s"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace orrery

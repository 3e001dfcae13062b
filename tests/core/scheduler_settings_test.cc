// The cluster's scheduling setting (core/scheduling/scheduler_settings.h).
#include "core/scheduling/scheduler_settings.h"

#include <gtest/gtest.h>

namespace orrery {
namespace {

TEST(SchedulerSettings, KeysParseAsTheScenarioSchedulerBlockSpellsThem) {
  SchedulerOptions o;
  ASSERT_TRUE(ApplySchedulerSetting("policy", "spread", &o).ok());
  ASSERT_TRUE(ApplySchedulerSetting("spread_threshold", "0.3", &o).ok());
  ASSERT_TRUE(ApplySchedulerSetting("top_k_absolute", "4", &o).ok());
  ASSERT_TRUE(ApplySchedulerSetting("top_k_fraction", "0.5", &o).ok());
  ASSERT_TRUE(ApplySchedulerSetting("avoid_gpu_nodes", "false", &o).ok());
  EXPECT_EQ(o.policy, "spread");
  EXPECT_EQ(o.hybrid.spread_threshold, 0.3);
  EXPECT_EQ(o.hybrid.top_k_absolute, 4);
  EXPECT_EQ(o.hybrid.top_k_fraction, 0.5);
  EXPECT_FALSE(o.hybrid.avoid_gpu_nodes);
}

TEST(SchedulerSettings, BadValuesAreRefusedNamingWhatIsExpected) {
  SchedulerOptions o;
  Status s = ApplySchedulerSetting("policy", "fastest", &o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown policy 'fastest' (known: "), std::string::npos);
  EXPECT_NE(s.message().find("spread"), std::string::npos);
  EXPECT_FALSE(ApplySchedulerSetting("spread_threshold", "1.5", &o).ok());
  EXPECT_FALSE(ApplySchedulerSetting("top_k_absolute", "0", &o).ok());
  EXPECT_FALSE(ApplySchedulerSetting("top_k_absolute", "2.5", &o).ok());
  EXPECT_FALSE(ApplySchedulerSetting("top_k_fraction", "x", &o).ok());
  EXPECT_FALSE(ApplySchedulerSetting("avoid_gpu_nodes", "yes", &o).ok());
  EXPECT_FALSE(ApplySchedulerSetting("report_period", "1s", &o).ok());
  EXPECT_EQ(o.policy, "hybrid") << "a refused value changes nothing";
}

TEST(SchedulerSettings, SameSchedulingComparesHybridOptionsOnlyForHybrid) {
  SchedulerOptions a, b;
  EXPECT_TRUE(SameScheduling(a, b));
  b.hybrid.top_k_fraction = 0.5;
  EXPECT_FALSE(SameScheduling(a, b));
  a.policy = b.policy = "spread";
  EXPECT_TRUE(SameScheduling(a, b)) << "spread ignores the hybrid options";
  b.policy = "random";
  EXPECT_FALSE(SameScheduling(a, b));
}

TEST(SchedulerSettings, DescribeNamesThePolicyAndForHybridItsOptions) {
  SchedulerOptions o;
  EXPECT_EQ(DescribeScheduling(o),
            "hybrid (spread_threshold 0.5, top_k_absolute 1, top_k_fraction 0.2, "
            "avoid_gpu_nodes true)");
  o.policy = "spread";
  EXPECT_EQ(DescribeScheduling(o), "spread");
}

TEST(SchedulerSettings, TheNodeRulesAreSettingsNamedOnlyWhenOff) {
  SchedulerOptions o;
  EXPECT_TRUE(o.wait_at_best_node) << "Ray's raylet is the default";
  ASSERT_TRUE(ApplySchedulerSetting("wait_at_best_node", "false", &o).ok());
  EXPECT_FALSE(o.wait_at_best_node);
  EXPECT_FALSE(ApplySchedulerSetting("wait_at_best_node", "no", &o).ok());
  EXPECT_FALSE(SameScheduling(o, SchedulerOptions{}))
      << "a node-side rule, compared for every policy";
  EXPECT_EQ(DescribeScheduling(o),
            "hybrid (spread_threshold 0.5, top_k_absolute 1, top_k_fraction 0.2, "
            "avoid_gpu_nodes true, wait_at_best_node false)");
  o.policy = "spread";
  o.fair_granting = false;
  EXPECT_EQ(DescribeScheduling(o), "spread (fair_granting false, wait_at_best_node false)");
}

}  // namespace
}  // namespace orrery

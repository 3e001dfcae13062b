// The per-lease trace schema (core/results/lease_trace.h): dense lease ids, leases.csv
// rendering and parsing, and where a class's queue delay goes.
#include "core/results/lease_trace.h"

#include <gtest/gtest.h>

namespace orrery::results {
namespace {

TEST(LeaseTraceTest, RecorderGivesDenseIdsAndKeepsTheFirstName) {
  LeaseTraceRecorder r;
  r.Add(0.0, 1ull << 40, "request", "map", "a");
  r.Add(0.1, 7, "request", "reduce", "b");
  r.Add(0.2, 1ull << 40, "push", "other-name", "a", "3", 1);
  ASSERT_EQ(r.events().size(), 3u);
  EXPECT_EQ(r.events()[0].lease, 0u);
  EXPECT_EQ(r.events()[1].lease, 1u);
  EXPECT_EQ(r.events()[2].lease, 0u);
  EXPECT_EQ(r.events()[2].name, "map");  // the lease's class, not the pushed task's name
  EXPECT_EQ(r.events()[2].task_id, "3");
  EXPECT_EQ(r.events()[2].attempt, 1);
}

TEST(LeaseTraceTest, CsvRoundTripsInTimeOrderWithQuotedFields) {
  std::vector<LeaseEvent> events = {
      {0.25, 1, "b", "spilled", "n,1", "", 0, "n2", 0.0625},
      {0.125, 0, "a \"x\"", "failed", "n2", "", 0, "no, really"},
      {0.25, 1, "b", "push", "n,1", "7", 2, ""},
  };
  const std::string text = RenderLeasesCsv(events);
  auto parsed = ParseLeasesCsv(text, "leases.csv");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].name, "a \"x\"");  // earliest first
  EXPECT_EQ((*parsed)[0].detail, "no, really");
  EXPECT_EQ((*parsed)[1].event, "spilled");  // ties keep their recorded order
  EXPECT_DOUBLE_EQ((*parsed)[1].view_age_s, 0.0625);
  EXPECT_DOUBLE_EQ((*parsed)[0].view_age_s, -1);  // unknown stays unknown
  EXPECT_EQ((*parsed)[2].node, "n,1");
  EXPECT_EQ((*parsed)[2].task_id, "7");
  EXPECT_EQ((*parsed)[2].attempt, 2);
  EXPECT_DOUBLE_EQ((*parsed)[2].t_s, 0.25);
}

TEST(LeaseTraceTest, BadCsvNamesFileLineAndField) {
  const std::string header = "t_s,lease,name,event,node,task_id,attempt,detail,view_age_s\n";
  struct Case {
    std::string text, expect;
  } cases[] = {
      {"", "t.csv: empty"},
      {"time,lease\n", "t.csv:1: expected the header"},
      {header + "0.1,0,a,request,n\n", "t.csv:2: expected 9 fields, got 5"},
      {header + "x,0,a,request,n,,,,\n", "t.csv:2: t_s: expected a number, got 'x'"},
      {header + "0.1,-1,a,request,n,,,,\n", "t.csv:2: lease: expected a non-negative integer"},
      {header + "0.1,0,a,,n,,,,\n", "t.csv:2: event: empty"},
      {header + "0.1,0,a,push,n,4,z,,\n", "t.csv:2: attempt: expected"},
      {header + "0.1,0,a,spilled,n,,,m,-2\n", "t.csv:2: view_age_s: expected a non-negative"},
  };
  for (const auto& c : cases) {
    auto r = ParseLeasesCsv(c.text, "t.csv");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message() << " / expected " << c.expect;
  }
}

TEST(LeaseTraceTest, LegsSplitQueueDelayIntoOwnerWaitAndStart) {
  // Class "a": lease 0 granted at the entry node after 0.5 s, runs tasks 1 and 2; lease 1
  // spilled once, then rejected once, granted after 1.0 s, runs task 3. Class "b": one lease,
  // granted at once, returned while nothing of b waited.
  std::vector<LeaseEvent> ev = {
      {0.0, 0, "a", "request", "n1", "", 0, ""},
      {0.1, 1, "a", "request", "n1", "", 0, ""},
      {0.1, 1, "a", "spilled", "n1", "", 0, "n2", 0.15},
      {0.2, 1, "a", "request", "n2", "", 0, ""},
      {0.3, 1, "a", "rejected", "n2", "", 0, ""},
      {0.5, 0, "a", "granted", "n1", "", 0, ""},
      {0.5, 0, "a", "push", "n1", "1", 0, ""},
      {1.1, 1, "a", "granted", "n1", "", 0, ""},
      {1.1, 1, "a", "push", "n1", "3", 0, ""},
      {1.5, 0, "a", "finished", "n1", "", 0, ""},
      {1.5, 0, "a", "push", "n1", "2", 0, ""},
      {2.0, 2, "b", "request", "n2", "", 0, ""},
      {2.0, 2, "b", "granted", "n2", "", 0, ""},
      {2.0, 2, "b", "push", "n2", "9", 0, ""},
      {3.0, 2, "b", "returned", "n2", "", 0, ""},
      // Lease 0 goes back at 2.5 while task 4 of a (submitted 2.4) waits until 2.6: busy.
      {2.5, 0, "a", "returned", "n1", "", 0, ""},
      {2.6, 3, "a", "request", "n1", "", 0, ""},
      {2.6, 3, "a", "granted", "n1", "", 0, ""},
      {2.6, 3, "a", "push", "n1", "4", 0, ""},
  };
  std::vector<AttemptTimes> at = {
      {"1", 0, "a", true, 0.0, 0.6, 1.5}, {"2", 0, "a", true, 0.2, 1.5, 2.5},
      {"3", 0, "a", true, 0.1, 1.2, 2.2}, {"9", 0, "b", true, 2.0, 2.05, 3.0},
      {"4", 0, "a", true, 2.4, 2.6, 3.6},
  };
  const auto legs = ComputeLeaseLegs(ev, at);
  ASSERT_EQ(legs.size(), 2u);
  const ClassLegs& a = legs[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.tasks, 4u);
  EXPECT_EQ(a.leases, 3u);
  EXPECT_DOUBLE_EQ(a.tasks_per_lease, 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(a.hops_per_lease, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(a.granted_at_entry, 2.0 / 3.0);
  EXPECT_NEAR(a.grant_wait.mean, (0.5 + 1.0 + 0.0) / 3, 1e-12);
  // submit -> push: 0.5, 1.3, 1.0, 0.2; push -> start: 0.1, 0, 0.1, 0.
  EXPECT_NEAR(a.owner_wait.mean, (0.5 + 1.3 + 1.0 + 0.2) / 4, 1e-12);
  EXPECT_NEAR(a.start_after_push.mean, 0.05, 1e-12);
  EXPECT_NEAR(a.queue.mean, (0.6 + 1.3 + 1.1 + 0.2) / 4, 1e-12);
  EXPECT_EQ(a.returned_busy, 1u);
  EXPECT_DOUBLE_EQ(a.view_age.mean, 0.15);
  const ClassLegs& b = legs[1];
  EXPECT_EQ(b.tasks, 1u);
  EXPECT_EQ(b.leases, 1u);
  EXPECT_DOUBLE_EQ(b.granted_at_entry, 1.0);
  EXPECT_EQ(b.returned_busy, 0u);
  EXPECT_NEAR(b.start_after_push.mean, 0.05, 1e-12);

  const std::string csv = RenderLegsCsv({{"sim", legs}, {"live", legs}});
  EXPECT_NE(csv.find("\nsim,a,4,3,1.333,0.667,0.667,1,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nlive,b,1,1,1,0,1,0,"), std::string::npos) << csv;
  const std::string table = RenderLegsTable(legs, {legs, legs}, "sim", "live");
  EXPECT_NE(table.find("mean of 2 runs"), std::string::npos) << table;
  EXPECT_NE(table.find("3 | 3"), std::string::npos) << table;
}

}  // namespace
}  // namespace orrery::results

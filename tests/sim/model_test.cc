// The simulated cluster model, driven without SimGrid by a fake platform: lease flow, spillback
// under a stale view, dependencies and data transfers, placement groups, failures and retries,
// determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "sim/model.h"

namespace orrery::sim {
namespace {

ResourceRequest Req(const std::map<std::string, double>& m) { return *ResourceRequest::Create(m); }

// Builds small scenarios in code.
class ScenarioBuilder {
 public:
  ScenarioBuilder() {
    s_.name = "test";
    s_.names = {"task"};
    s_.jobs = {"job-1"};
    s_.strategies = {SchedulingStrategy::Default()};
    s_.scheduler.options.hybrid.top_k_fraction = 0;
  }
  ScenarioBuilder& Node(const std::string& id, const std::map<std::string, double>& total) {
    NodeSpec n;
    n.id = id;
    n.type = "t";
    for (const auto& [k, v] : total) n.total.Set(k, Quantity::FromDouble(v));
    s_.nodes.push_back(n);
    return *this;
  }
  ScenarioBuilder& Latency(double l) {
    s_.network.latency_s = l;
    return *this;
  }
  ScenarioBuilder& ViewViaHead(bool v) {
    s_.scheduler.view_via_head = v;
    return *this;
  }
  ScenarioBuilder& ReportPeriod(double p) {
    s_.scheduler.report_period_s = p;
    return *this;
  }
  // Adds a task; returns its index.
  int Task(double submit, double duration, const std::map<std::string, double>& res,
           SchedulingStrategy st = {}, std::vector<ArgSpec> args = {}, uint64_t output = 0) {
    TaskSpec t;
    t.submit_s = submit;
    t.duration_s = duration;
    t.shape = Shape(Req(res));
    t.strategy = static_cast<uint32_t>(s_.strategies.size());
    s_.strategies.push_back(st);
    t.args_begin = static_cast<uint32_t>(s_.args.size());
    t.args_count = static_cast<uint32_t>(args.size());
    for (auto& a : args) s_.args.push_back(a);
    t.output_bytes = output;
    s_.tasks.push_back(t);
    return static_cast<int>(s_.tasks.size()) - 1;
  }
  TaskSpec& Last() { return s_.tasks.back(); }
  ScenarioBuilder& Pg(const std::string& id, PlacementStrategy st,
                      std::vector<std::map<std::string, double>> bundles, double at = 0) {
    PlacementGroupSpec pg;
    pg.id = id;
    pg.strategy = st;
    pg.create_s = at;
    for (auto& b : bundles) pg.bundles.push_back(Req(b));
    s_.placement_groups.push_back(pg);
    return *this;
  }
  ScenarioBuilder& Standby(const std::string& type, const std::map<std::string, double>& total,
                          int n) {
    for (int i = 0; i < n; ++i) {
      Node(type + "-" + std::to_string(i), total);
      s_.nodes.back().type = type;
      s_.nodes.back().standby = true;
    }
    return *this;
  }
  ScenarioBuilder& Autoscale(const std::string& type, const std::map<std::string, double>& total,
                             int64_t max_workers, double boot_s, double idle_s) {
    NodeTypeSpec t;
    t.name = type;
    for (const auto& [k, v] : total) t.resources.Set(k, Quantity::FromDouble(v));
    t.max_workers = max_workers;
    s_.autoscaler.enabled = true;
    s_.autoscaler.boot_delay_s = boot_s;
    s_.autoscaler.idle_timeout_s = idle_s;
    s_.autoscaler.period_s = 1;
    s_.autoscaler.node_types.push_back(t);
    return Standby(type, total, static_cast<int>(max_workers));
  }
  ScenarioBuilder& Env(const std::string& id, uint64_t bytes, double install_s) {
    s_.runtime_envs.push_back({id, bytes, install_s});
    return *this;
  }
  ScenarioBuilder& EnvCache(uint64_t limit, const std::string& policy, double timeout = 600) {
    s_.env_cache.limit_bytes = limit;
    s_.env_cache.policy = policy;
    s_.env_cache.setup_timeout_s = timeout;
    return *this;
  }
  ScenarioBuilder& Fail(double at, int node, FailureSpec::Action a) {
    s_.failures.push_back({at, node, a});
    return *this;
  }
  Scenario Build() {
    std::stable_sort(s_.tasks.begin(), s_.tasks.end(),
                     [](const TaskSpec& a, const TaskSpec& b) { return a.submit_s < b.submit_s; });
    return s_;
  }

 private:
  uint32_t Shape(const ResourceRequest& r) {
    for (size_t i = 0; i < s_.shapes.size(); ++i) {
      if (s_.shapes[i] == r) return static_cast<uint32_t>(i);
    }
    s_.shapes.push_back(r);
    return static_cast<uint32_t>(s_.shapes.size()) - 1;
  }
  Scenario s_;
};

// Transfers take bytes / 1e9 s.
class FakePlatform : public Platform {
 public:
  void StartTransfer(int from, int to, uint64_t bytes, uint64_t token) override {
    pending.push_back({now + static_cast<double>(bytes) / 1e9, token, from, to});
    moved += bytes;
  }
  void SetNodeUp(int node, bool up) override { ups.emplace_back(node, up); }
  struct P {
    double done;
    uint64_t token;
    int from, to;
  };
  std::vector<P> pending;
  std::vector<std::pair<int, bool>> ups;
  uint64_t moved = 0;
  double now = 0;
};

results::RunRecord Simulate(const Scenario& s, FakePlatform* p = nullptr,
                       std::vector<std::string>* log = nullptr) {
  FakePlatform local;
  if (p == nullptr) p = &local;
  Model m(s, p);
  if (log) m.EnableDecisionLog();
  for (int guard = 0; guard < 1000000 && !m.Done(); ++guard) {
    double t = m.HasEvents() ? m.NextEventTime() : std::numeric_limits<double>::infinity();
    auto it = std::min_element(p->pending.begin(), p->pending.end(),
                               [](const auto& a, const auto& b) { return a.done < b.done; });
    if (it != p->pending.end() && it->done <= t) {
      auto done = *it;
      p->pending.erase(it);
      p->now = done.done;
      m.OnTransferDone(done.done, done.token, true);
      continue;
    }
    if (!std::isfinite(t)) break;
    p->now = t;
    m.ProcessUntil(t);
  }
  EXPECT_TRUE(m.Done());
  if (log) *log = m.decision_log();
  return m.Finish(p->now, 0);
}

const results::TaskAttempt& Row(const results::RunRecord& r, uint64_t task, int attempt = 0) {
  for (const auto& a : r.attempts) {
    if (a.task_id == task && a.attempt == attempt) return a;
  }
  static results::TaskAttempt none;
  ADD_FAILURE() << "no row for task " << task << " attempt " << attempt;
  return none;
}

TEST(Model, RunsTasksForTheirDurationOnGrantedResources) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 2}});
  b.Task(0, 5, {{"CPU", 1}});
  b.Task(0, 3, {{"CPU", 1}});
  b.Task(0, 1, {{"CPU", 1}});  // waits for a CPU
  auto r = Simulate(b.Build());
  EXPECT_EQ(results::CountTasks(r).finished, 3u);
  EXPECT_DOUBLE_EQ(Row(r, 0).end_s, 5);
  EXPECT_DOUBLE_EQ(Row(r, 2).start_s, 3);
  EXPECT_EQ(Row(r, 2).wait_reason, "waiting_for_resources");
  EXPECT_DOUBLE_EQ(r.makespan_s, 5);
  // 2 CPUs for 5 s = 10 CPU-s available, 9 used.
  EXPECT_NEAR(r.utilization["CPU"], 0.9, 1e-9);
}

TEST(Model, SpillsToRemoteNodesAndPaysControlLatency) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Latency(0.01);
  b.Task(0, 1, {{"CPU", 1}});
  b.Task(0, 1, {{"CPU", 1}});
  auto r = Simulate(b.Build());
  EXPECT_EQ(Row(r, 0).node_id, "n0");
  EXPECT_DOUBLE_EQ(Row(r, 0).start_s, 0);
  EXPECT_EQ(Row(r, 1).node_id, "n1");
  EXPECT_EQ(Row(r, 1).spillbacks, 1);
  // spill decision -> target (1 hop), grant -> owner -> worker (2 hops).
  EXPECT_NEAR(Row(r, 1).start_s, 0.03, 1e-12);
  EXPECT_EQ(r.spillbacks, 1u);
}

TEST(Model, ACalibratedControlPlaneMakesEveryLeaseLegAndPushCostItsMeasuredTime) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Latency(0.01);
  b.Task(0, 1, {{"CPU", 1}});
  b.Task(0, 1, {{"CPU", 1}});
  Scenario s = b.Build();
  s.control_plane.given = true;
  s.control_plane.lease_request_s = 0.03;  // each leg at least 0.015, also on one node
  s.control_plane.task_start_s = 0.025;    // the push: at least 0.025 - 0.015
  auto r = Simulate(s);
  // Same node: request leg 0.015, grant leg 0.015, push 0.01.
  EXPECT_NEAR(Row(r, 0).start_s, 0.04, 1e-12);
  // Request (0.015), spillback reply (0.015), follow-up to n1 (max(0.01, 0.015)), grant back
  // (0.015), push (max(0.01, 0.01)).
  EXPECT_EQ(Row(r, 1).node_id, "n1");
  EXPECT_NEAR(Row(r, 1).start_s, 0.07, 1e-12);
  // A measured leg shorter than the network's keeps the network's on remote legs.
  s.control_plane.lease_request_s = 0.002;
  s.control_plane.task_start_s = 0.001;
  auto fast = Simulate(s);
  EXPECT_NEAR(Row(fast, 0).start_s, 0.002, 1e-12);  // 0.001 + 0.001 + 0
  // 0.001 + 0.001 + 0.01 + 0.01 + 0.01
  EXPECT_NEAR(Row(fast, 1).start_s, 0.032, 1e-12);
}

TEST(Model, StaleViewMakesTheDeciderWaitForTheNextReport) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).ReportPeriod(1.0).Latency(0.001);
  b.ViewViaHead(false);
  b.Task(0, 10, {{"CPU", 1}});   // n0
  b.Task(0, 0.5, {{"CPU", 1}});  // spilled to n1, done at ~0.5
  b.Task(0.1, 1, {{"CPU", 1}});  // n1 still looks busy to n0 until the report at t=1
  auto r = Simulate(b.Build());
  EXPECT_EQ(Row(r, 2).node_id, "n1");
  EXPECT_GE(Row(r, 2).start_s, 1.0);
  EXPECT_LT(Row(r, 2).start_s, 1.01);
}

// Through the head (the default, as live): n1's change reaches the head with n1's next heartbeat
// (at k + 1/2 periods) and n0 with the head's next broadcast (at k periods). A change just before
// a heartbeat is seen at the next tick; one just after it waits for the heartbeat after.
TEST(Model, AChangeReachesOtherNodesWithAHeartbeatThenTheHeadsBroadcast) {
  for (const auto& [first, seen_at] : {std::pair{0.4, 1.0}, std::pair{0.6, 2.0}}) {
    ScenarioBuilder b;
    b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).ReportPeriod(1.0).Latency(0.001);
    b.Task(0, 10, {{"CPU", 1}});     // n0
    b.Task(0, first, {{"CPU", 1}});  // spilled to n1, done at ~first
    b.Task(0.1, 1, {{"CPU", 1}});    // waits at n0 until n0 sees n1 free
    auto r = Simulate(b.Build());
    EXPECT_EQ(Row(r, 2).node_id, "n1") << first;
    EXPECT_GE(Row(r, 2).start_s, seen_at) << first;
    EXPECT_LT(Row(r, 2).start_s, seen_at + 0.01) << first;
  }
}

TEST(Model, ArgumentsMoveOverTheNetworkAndLocalityPicksTheirNode) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Latency(0);
  int producer = b.Task(0, 1, {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n1"), {}, 1000000000);
  b.Task(0, 1, {{"CPU", 1}}, {}, {{producer, -1, 1000000000}});          // locality -> n1
  b.Task(0, 1, {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n0"), {{producer, -1, 1000000000}});
  FakePlatform p;
  auto r = Simulate(b.Build(), &p);
  EXPECT_EQ(Row(r, 1).node_id, "n1");
  EXPECT_DOUBLE_EQ(Row(r, 1).start_s, 1.0);  // no transfer
  EXPECT_EQ(Row(r, 2).node_id, "n0");
  EXPECT_DOUBLE_EQ(Row(r, 2).start_s, 2.0);  // 1 GB at 1 GB/s
  EXPECT_EQ(r.bytes_transferred, 1000000000u);
  EXPECT_EQ(Row(r, 1).wait_reason, "waiting_for_args");
}

TEST(Model, InfeasibleTasksAreReportedAndTheRunEnds) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 2}});
  b.Task(0, 1, {{"GPU", 1}});
  b.Task(0, 1, {{"CPU", 1}});
  auto r = Simulate(b.Build());
  auto c = results::CountTasks(r);
  EXPECT_EQ(c.finished, 1u);
  EXPECT_EQ(c.infeasible, 1u);
  EXPECT_EQ(Row(r, 0).state, "infeasible");
}

TEST(Model, HardAffinityToAMissingNodeIsCanceled) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 2}});
  b.Task(0, 1, {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("ghost"));
  auto r = Simulate(b.Build());
  EXPECT_EQ(Row(r, 0).state, "canceled");
}

TEST(Model, PlacementGroupTasksRunInsideTheirBundles) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 4}}).Node("n1", {{"CPU", 4}}).Latency(0.001);
  b.Pg("pg", PlacementStrategy::kStrictSpread, {{{"CPU", 2}}, {{"CPU", 2}}}, 0);
  for (int i = 0; i < 4; ++i) {
    b.Task(0, 1, {{"CPU", 1}});
    b.Last().placement_group = 0;
    b.Last().bundle = i % 2;
  }
  b.Task(0, 1, {{"CPU", 1}});  // outside the group
  b.Last().placement_group = 0;
  b.Last().bundle = 0;  // third task in bundle 0: waits for a bundle CPU
  auto r = Simulate(b.Build());
  EXPECT_EQ(results::CountTasks(r).finished, 5u);
  EXPECT_NE(Row(r, 0).node_id, Row(r, 1).node_id);
  EXPECT_EQ(Row(r, 0).node_id, Row(r, 2).node_id);
  EXPECT_GT(Row(r, 4).start_s, 1.0);
  EXPECT_EQ(Row(r, 0).wait_reason, "waiting_for_placement_group");
}

TEST(Model, CrashFailsRunningAttemptsAndRetriesThemElsewhere) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Latency(0.001);
  b.Task(0, 10, {{"CPU", 1}});
  b.Task(0, 10, {{"CPU", 1}});
  b.Last().max_retries = 0;
  b.Fail(5, 1, FailureSpec::Action::kCrash).Fail(6, 1, FailureSpec::Action::kRecover);
  FakePlatform p;
  auto r = Simulate(b.Build(), &p);
  // Task 1 ran on n1 (spilled), failed at 5 with no retries left.
  EXPECT_EQ(Row(r, 1).state, "failed");
  EXPECT_DOUBLE_EQ(Row(r, 1).end_s, 5);
  EXPECT_EQ(p.ups, (std::vector<std::pair<int, bool>>{{1, false}, {1, true}}));

  ScenarioBuilder b2;
  b2.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Latency(0.001);
  b2.Task(0, 10, {{"CPU", 1}});
  b2.Task(0, 10, {{"CPU", 1}});
  b2.Fail(5, 1, FailureSpec::Action::kCrash).Fail(6, 1, FailureSpec::Action::kRecover);
  auto r2 = Simulate(b2.Build());
  EXPECT_EQ(Row(r2, 1, 0).state, "failed");
  EXPECT_EQ(Row(r2, 1, 1).state, "finished");
  EXPECT_DOUBLE_EQ(Row(r2, 1, 1).submit_s, 5);
  EXPECT_EQ(results::CountTasks(r2).finished, 2u);
}

// Regression: a node that starts deciding after it granted spilled leases must get those
// resources back when the leases end (they used to leak and the node looked busy forever).
TEST(Model, LeasesGrantedBeforeANodeDecidesReturnToIt) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Latency(0.001);
  b.Task(0, 10, {{"CPU", 1}});                                          // n0
  b.Task(0, 2, {{"CPU", 1}});                                           // spilled to n1
  b.Task(0.5, 1, {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n1"));  // n1 decides, waits
  auto r = Simulate(b.Build());
  EXPECT_EQ(Row(r, 2).state, "finished");
  EXPECT_NEAR(Row(r, 2).start_s, 2.0, 0.01);
}

// Regression: requests used to bounce between busy nodes (a spread cursor or a soft-affinity
// fall-through re-deciding at every node) thousands of times until something freed up.
TEST(Model, RequestsDoNotBounceBetweenBusyNodes) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}}).Node("n2", {{"CPU", 1}}).Latency(0.001);
  for (int i = 0; i < 3; ++i) b.Task(0, 10, {{"CPU", 1}});
  b.Task(1, 1, {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n1", /*soft=*/true,
                                                               /*spill_on_unavailable=*/true));
  b.Task(1, 1, {{"CPU", 1}}, SchedulingStrategy::Spread());
  auto r = Simulate(b.Build());
  EXPECT_EQ(results::CountTasks(r).finished, 5u);
  EXPECT_LE(Row(r, 3).spillbacks, 2);
  EXPECT_LE(Row(r, 4).spillbacks, 2);
  EXPECT_GE(Row(r, 3).start_s, 10.0);
}

TEST(Model, AutoscalerLaunchesOneNodePerGpuTaskAndTheyJoinAfterTheBootDelay) {
  ScenarioBuilder b;
  b.Node("head", {{"CPU", 1}}).Latency(0.001);
  b.Autoscale("gpu", {{"CPU", 4}, {"GPU", 1}}, 3, /*boot_s=*/10, /*idle_s=*/20);
  for (int i = 0; i < 2; ++i) b.Task(0, 5, {{"GPU", 1}});
  auto r = Simulate(b.Build());
  EXPECT_EQ(results::CountTasks(r).finished, 2u);
  EXPECT_EQ(r.autoscaler.launched, 2u);  // one node per GPU task, no more
  EXPECT_GE(Row(r, 0).start_s, 10.0);    // after the boot delay
  EXPECT_EQ(r.nodes.initial, 1u);
  EXPECT_EQ(r.nodes.peak, 3u);
  // Billing covers the pending and running time of launched nodes.
  EXPECT_GT(r.node_seconds, 2 * 15.0);
}

TEST(Model, RuntimeEnvInstallsOncePerNodeAndConcurrentRequestsShareIt) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 4}}).Latency(0);
  b.Env("torch", 0, /*install_s=*/5);
  for (int i = 0; i < 3; ++i) {
    b.Task(0, 1, {{"CPU", 1}});
    b.Last().env = 0;
  }
  b.Task(10, 1, {{"CPU", 1}});
  b.Last().env = 0;
  auto r = Simulate(b.Build());
  EXPECT_EQ(r.env_cache.misses, 3u);  // one install, two joins
  EXPECT_EQ(r.env_cache.hits, 1u);
  EXPECT_DOUBLE_EQ(Row(r, 0).start_s, 5.0);
  EXPECT_DOUBLE_EQ(Row(r, 2).start_s, 5.0);
  EXPECT_DOUBLE_EQ(Row(r, 3).start_s, 10.0);  // cached
  EXPECT_EQ(Row(r, 1).wait_reason, "waiting_for_runtime_env");
}

TEST(Model, RuntimeEnvSetupTimeoutCancelsTheTaskAfterTheRetries) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 4}}).Latency(0);
  b.Env("huge", 0, /*install_s=*/100).EnvCache(10ULL << 30, "lru", /*timeout=*/10);
  b.Task(0, 1, {{"CPU", 1}});
  b.Last().env = 0;
  auto r = Simulate(b.Build());
  EXPECT_EQ(Row(r, 0).state, "canceled");
  EXPECT_NEAR(Row(r, 0).end_s, 30.0, 1e-9);  // 3 attempts x 10 s
}

TEST(Model, WorkersArePooledPerEnvAndGpuWorkersAreNotReused) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 1}, {"GPU", 1}}).Latency(0);
  b.Env("torch", 0, 0);
  Scenario s;
  b.Task(0, 1, {{"CPU", 1}});  // starts a worker: runs 1..2
  b.Task(0, 1, {{"CPU", 1}});  // reuses it: runs 2..3
  b.Task(0, 1, {{"CPU", 1}});  // other env: new worker, 3+1..5
  b.Last().env = 0;
  b.Task(10, 1, {{"GPU", 1}});  // GPU: new worker, not returned to the pool
  b.Task(20, 1, {{"GPU", 1}});  // so another new one
  s = b.Build();
  s.env_cache.worker_startup_s = 1.0;
  auto r = Simulate(s);
  EXPECT_DOUBLE_EQ(Row(r, 0).start_s, 1.0);
  EXPECT_DOUBLE_EQ(Row(r, 1).start_s, 2.0);
  EXPECT_DOUBLE_EQ(Row(r, 2).start_s, 4.0);
  EXPECT_DOUBLE_EQ(Row(r, 3).start_s, 11.0);
  EXPECT_DOUBLE_EQ(Row(r, 4).start_s, 21.0);
  EXPECT_EQ(r.extra_json["workers"], "{\"started\": 4, \"reused\": 1}");
}

TEST(Model, SameScenarioSameDecisions) {
  ScenarioBuilder b;
  for (int i = 0; i < 8; ++i) b.Node("n" + std::to_string(i), {{"CPU", 4}});
  b.Latency(0.002);
  for (int i = 0; i < 300; ++i) b.Task(i * 0.01, 0.5 + (i % 7) * 0.3, {{"CPU", 1.0 + i % 3}});
  Scenario s = b.Build();
  s.scheduler.options.hybrid.top_k_fraction = 0.5;
  std::vector<std::string> a, c;
  auto r1 = Simulate(s, nullptr, &a);
  auto r2 = Simulate(s, nullptr, &c);
  EXPECT_EQ(a, c);
  EXPECT_EQ(results::RenderTasksCsv(r1), results::RenderTasksCsv(r2));
  EXPECT_FALSE(a.empty());
}

}  // namespace
}  // namespace orrery::sim

// --- owner.reuse_leases ------------------------------------------------------------------------

namespace orrery::sim {
namespace {

// A warm burst of 100 x 0.1 s same-class tasks on 3 x 7 CPUs. With one lease per task the
// driver's node refills from its own queue at once while the other nodes get work only after
// their next report (44/28/28); with lease reuse each granted lease runs the next queued task of
// the class on its node without a scheduling decision, so the nodes run about a third each, as
// on a Ray driver (33/33/33 measured).
std::map<std::string, int> BurstPerNode(bool reuse, results::RunRecord* out = nullptr) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 7}}).Node("n1", {{"CPU", 7}}).Node("n2", {{"CPU", 7}});
  b.ReportPeriod(0.1);
  for (int i = 0; i < 100; ++i) {
    b.Task(0, 0.1, {{"CPU", 1}});
    b.Last().strategy = 0;  // one scheduling class
  }
  Scenario s = b.Build();
  s.owner.reuse_leases = reuse;
  s.owner.max_pending_lease_requests_per_class = 10;
  results::RunRecord r = Simulate(s);
  std::map<std::string, int> per_node;
  for (const auto& a : r.attempts) {
    EXPECT_EQ(a.state, "finished");
    ++per_node[a.node_id];
  }
  if (out) *out = r;
  return per_node;
}

TEST(ModelOwner, ReusedLeasesSpreadABurstOfShortSameClassTasks) {
  results::RunRecord reused, fresh;
  auto with = BurstPerNode(true, &reused);
  auto without = BurstPerNode(false, &fresh);
  ASSERT_EQ(with.size(), 3u);
  EXPECT_EQ(reused.attempts.size(), 100u);
  for (const auto& [node, n] : with) {
    EXPECT_GE(n, 28) << node;
    EXPECT_LE(n, 38) << node;
  }
  EXPECT_GE(without["n0"], 40) << "one lease per task: the driver's node takes the most";
  // Reused leases skip a scheduling round trip per task: the burst ends sooner.
  EXPECT_LT(reused.makespan_s, fresh.makespan_s);
}

// A lease held on a node that crashes is lost; its tasks are retried on the others.
TEST(ModelOwner, ReusedLeasesOnACrashedNodeAreLostAndTheirTasksRetried) {
  ScenarioBuilder b;
  b.Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 2}});
  for (int i = 0; i < 20; ++i) {
    b.Task(0, 0.5, {{"CPU", 1}});
    b.Last().strategy = 0;
  }
  b.Fail(0.75, 1, FailureSpec::Action::kCrash);
  Scenario s = b.Build();
  s.owner.reuse_leases = true;
  results::RunRecord r = Simulate(s);
  int finished = 0;
  for (const auto& a : r.attempts) {
    if (a.state == "finished") {
      ++finished;
      EXPECT_TRUE(a.node_id == "n0" || a.start_s < 0.75) << a.task_id;
    }
  }
  EXPECT_EQ(finished, 20);
}

}  // namespace
}  // namespace orrery::sim

// One node's control logic (core/agent): events in, decisions out. Tiny clusters, one intent per
// test: per-class dispatch order, spillback, env install then grant, worker reuse, bundles
// (prepare / commit / cancel, a lease from a bundle, exposed bundle resources), leases returning
// resources, a peer's death canceling affinity requests, the lazy manager and the node's death.
#include <gtest/gtest.h>

#include <variant>

#include "core/agent/node_agent.h"
#include "tests/core/test_util.h"

namespace orrery::agent {
namespace {
using orrery::testing::ClusterBuilder;
using orrery::testing::Req;
using orrery::testing::Res;
using K = LeaseReply::Kind;

NodeAgentOptions Options() {
  NodeAgentOptions o;
  o.scheduler.hybrid.top_k_fraction = 0;
  return o;
}

LeaseRequest Task(const std::string& id, const std::map<std::string, double>& res,
                  SchedulingStrategy st = {}) {
  LeaseRequest r;
  r.task_id = id;
  r.sched.resources = Req(res);
  r.sched.strategy = st;
  return r;
}

double Avail(const NodeAgent& a, const std::string& name) {
  const LeaseManager* lm = a.manager();
  return lm->view().at(lm->local_slot()).resources.available().Get(name).ToDouble();
}

// An agent deciding on `view` from the start (as the live node does).
NodeAgent Live(const NodeAgentOptions& o, ClusterView view, const std::string& id = "n0") {
  NodeAgent a(id, &o);
  EXPECT_TRUE(a.CreateManager(std::move(view)).ok());
  return a;
}

TEST(NodeAgent, DispatchesQueuedRequestsClassByClassFifoWithinAClass) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 2}, {"memory", 4}}).Build());
  Rng rng(1);
  ASSERT_EQ(a.RequestLease(Task("hold", {{"CPU", 2}}), rng).kind, K::kGranted);
  // Arrival order x1, y1, x2; x and y are two scheduling classes (two shapes).
  EXPECT_EQ(a.RequestLease(Task("x1", {{"CPU", 1}}), rng).kind, K::kQueued);
  EXPECT_EQ(a.RequestLease(Task("y1", {{"CPU", 1}, {"memory", 1}}), rng).kind, K::kQueued);
  EXPECT_EQ(a.RequestLease(Task("x2", {{"CPU", 1}}), rng).kind, K::kQueued);
  ASSERT_TRUE(a.ReturnLease("hold"));
  auto out = a.SchedulePending(rng);
  // Class x (first seen first) is served before y: x2 overtakes y1, which keeps waiting.
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].task_id, "x1");
  EXPECT_EQ(out[1].task_id, "x2");
  EXPECT_EQ(out[0].kind, K::kGranted);
  EXPECT_EQ(a.manager()->WaitReasonOf("y1"), WaitReason::kWaitingForResources);
}

TEST(NodeAgent, SpillsToAFreePeerWhenTheLocalNodeIsFull) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 1}}).Used({{"CPU", 1}})
                            .Node("n1", {{"CPU", 1}}).Build());
  Rng rng(1);
  LeaseReply r = a.RequestLease(Task("t", {{"CPU", 1}}), rng);
  ASSERT_EQ(r.kind, K::kSpillback);
  EXPECT_EQ(r.node, "n1");
  EXPECT_TRUE(r.grant_or_reject);
  EXPECT_EQ(a.NumLeases(), 0u);
}

TEST(NodeAgent, ReturningALeaseGivesItsResourcesBackAndGrantsTheNextRequest) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 1}, {"GPU", 1}}).Build());
  Rng rng(1);
  LeaseReply g = a.RequestLease(Task("t1", {{"CPU", 1}, {"GPU", 1}}), rng);
  ASSERT_EQ(g.kind, K::kGranted);
  EXPECT_EQ(g.allocation.DeviceIds(), std::vector<int>{0});
  EXPECT_EQ(a.RequestLease(Task("t2", {{"CPU", 1}}), rng).kind, K::kQueued);
  EXPECT_TRUE(a.SchedulePending(rng).empty());  // nothing changed
  EXPECT_EQ(a.NumLeases(), 1u);
  ASSERT_TRUE(a.ReturnLease("t1"));
  EXPECT_FALSE(a.ReturnLease("t1"));  // once
  EXPECT_EQ(Avail(a, "GPU"), 1.0);
  auto out = a.SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_id, "t2");
  EXPECT_EQ(out[0].kind, K::kGranted);
}

TEST(NodeAgent, InstallsTheRuntimeEnvThenGrantsTheLeaseWaitingForIt) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 1}}).Build());
  Rng rng(1);
  LeaseRequest t = Task("t", {{"CPU", 1}});
  t.blocked_on = WaitReason::kWaitingForRuntimeEnv;
  LeaseReply q = a.RequestLease(t, rng);
  ASSERT_EQ(q.kind, K::kQueued);
  EXPECT_EQ(q.wait_reason, WaitReason::kWaitingForRuntimeEnv);
  auto start = a.Envs().Acquire("env1", "pip", "t", /*now_s=*/0);
  ASSERT_TRUE(start.ok());
  ASSERT_EQ(start->size(), 1u);
  ASSERT_TRUE(std::holds_alternative<envcache::StartInstall>((*start)[0]));
  EXPECT_TRUE(a.SchedulePending(rng).empty());  // still blocked on the env
  auto done = a.Envs().ReportInstalled("env1", 1, 100, /*now_s=*/5);
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 1u);
  const auto& ready = std::get<envcache::EnvReady>((*done)[0]);
  EXPECT_EQ(ready.waiters, std::vector<std::string>{"t"});
  ASSERT_TRUE(a.manager()->Unblock("t").ok());
  auto out = a.SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, K::kGranted);
  EXPECT_EQ(a.EnvCounters().misses, 1u);
}

TEST(NodeAgent, ATimerRetriesAnOverdueInstallThenFailsItsWaiters) {
  auto o = Options();
  o.env_cache.setup_timeout_s = 10;
  o.env_cache.max_attempts = 2;
  NodeAgent a("n0", &o);
  EXPECT_TRUE(a.OnTimer(100).empty());  // no cache yet
  ASSERT_TRUE(a.Envs().Acquire("env1", "pip", "t", /*now_s=*/0).ok());
  EXPECT_TRUE(a.OnTimer(5).empty());  // not overdue
  auto retry = a.OnTimer(10);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(std::get<envcache::StartInstall>(retry[0]).attempt, 2);
  auto failed = a.OnTimer(20);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(std::get<envcache::EnvFailed>(failed[0]).waiters, std::vector<std::string>{"t"});
}

TEST(NodeAgent, ReusesAnIdleWorkerOfTheSameEnvButNotForGpuWork) {
  auto o = Options();
  NodeAgent a("n0", &o);
  a.set_max_idle_workers_per_env(1);
  EXPECT_EQ(a.AcquireWorker(7, /*gpu=*/false), WorkerAction::kStart);
  EXPECT_TRUE(a.ReleaseWorker(7, false));
  EXPECT_EQ(a.AcquireWorker(8, false), WorkerAction::kStart);  // another env
  EXPECT_EQ(a.AcquireWorker(7, true), WorkerAction::kStart);   // GPU: a fresh worker
  EXPECT_FALSE(a.ReleaseWorker(7, true));                      // ...that exits afterwards
  EXPECT_EQ(a.AcquireWorker(7, false), WorkerAction::kReuse);
  EXPECT_TRUE(a.ReleaseWorker(7, false));
  EXPECT_FALSE(a.ReleaseWorker(7, false));  // the env's pool is full
  EXPECT_EQ(a.IdleWorkers(7), 1);
}

TEST(NodeAgent, AnActorNeverReusesAWorkerNorLeavesOneIdle) {
  auto o = Options();
  NodeAgent a("n0", &o);
  a.set_max_idle_workers_per_env(2);
  EXPECT_EQ(a.AcquireWorker(5, false), WorkerAction::kStart);
  EXPECT_TRUE(a.ReleaseWorker(5, false));
  ASSERT_EQ(a.IdleWorkers(5), 1);
  // An actor of the env starts its own worker: the idle one stays for the env's tasks.
  EXPECT_EQ(a.AcquireWorker(5, false, WorkerKind::kActor), WorkerAction::kStart);
  EXPECT_EQ(a.IdleWorkers(5), 1);
  // The actor's worker exits when the actor ends, though the env's pool has room.
  EXPECT_FALSE(a.ReleaseWorker(5, false, WorkerKind::kActor));
  EXPECT_EQ(a.IdleWorkers(5), 1);
  EXPECT_EQ(a.AcquireWorker(5, true, WorkerKind::kActor), WorkerAction::kStart);
  EXPECT_FALSE(a.ReleaseWorker(5, true, WorkerKind::kActor));
  // Explicit kTask is the default: the task reuses the idle worker.
  EXPECT_EQ(a.AcquireWorker(5, false, WorkerKind::kTask), WorkerAction::kReuse);
  EXPECT_EQ(a.IdleWorkers(5), 0);
  EXPECT_TRUE(a.ReleaseWorker(5, false, WorkerKind::kTask));
  EXPECT_EQ(a.IdleWorkers(5), 1);
}

TEST(NodeAgent, AnIdleWorkerThatLeftIsNotReused) {
  auto o = Options();
  NodeAgent a("n0", &o);
  a.set_max_idle_workers_per_env(2);
  EXPECT_EQ(a.AcquireWorker(3, false), WorkerAction::kStart);
  EXPECT_EQ(a.AcquireWorker(3, false), WorkerAction::kStart);
  EXPECT_TRUE(a.ReleaseWorker(3, false));
  EXPECT_TRUE(a.ReleaseWorker(3, false));
  EXPECT_EQ(a.IdleWorkers(3), 2);
  // One idle worker exits (its install was evicted, or it died): only the other is reused.
  EXPECT_TRUE(a.IdleWorkerGone(3));
  EXPECT_EQ(a.IdleWorkers(3), 1);
  EXPECT_EQ(a.AcquireWorker(3, false), WorkerAction::kReuse);
  EXPECT_EQ(a.AcquireWorker(3, false), WorkerAction::kStart);
  EXPECT_FALSE(a.IdleWorkerGone(3));  // none idle: nothing to forget
  EXPECT_FALSE(a.IdleWorkerGone(4));  // an env never seen
  EXPECT_EQ(a.IdleWorkers(3), 0);
  // The pool has room again for both.
  EXPECT_TRUE(a.ReleaseWorker(3, false));
  EXPECT_TRUE(a.ReleaseWorker(3, false));
}

TEST(NodeAgent, BundlePrepareCommitLeaseAndCancel) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 4}}).Build());
  Rng rng(1);
  std::string why;
  ASSERT_TRUE(a.PrepareBundle("pg", 0, Req({{"CPU", 2}}), rng, &why)) << why;
  EXPECT_TRUE(a.PrepareBundle("pg", 0, Req({{"CPU", 2}}), rng, &why));  // idempotent
  EXPECT_EQ(Avail(a, "CPU"), 2.0);
  EXPECT_FALSE(a.PrepareBundle("pg", 1, Req({{"CPU", 3}}), rng, &why));  // all or nothing
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(Avail(a, "CPU"), 2.0);
  // Prepared, not committed: no task may use it yet.
  EXPECT_FALSE(a.BundleFits("pg", 0, Req({{"CPU", 1}})));
  ASSERT_TRUE(a.CommitBundle("pg", 0, rng, &why)) << why;
  EXPECT_TRUE(a.BundleFits("pg", 0, Req({{"CPU", 2}})));
  ASSERT_NE(a.GrantFromBundle("t1", "pg", 0, Req({{"CPU", 2}})), nullptr);
  EXPECT_EQ(a.GrantFromBundle("t2", "pg", 0, Req({{"CPU", 1}})), nullptr);  // pool empty
  EXPECT_EQ(Avail(a, "CPU"), 2.0);  // bundle leases come from the pool, not the node
  ASSERT_TRUE(a.ReturnLease("t1"));
  EXPECT_TRUE(a.BundleFits("pg", 0, Req({{"CPU", 2}})));
  ASSERT_TRUE(a.CancelBundle("pg", 0, rng));
  EXPECT_FALSE(a.HoldsBundle("pg", 0));
  EXPECT_EQ(Avail(a, "CPU"), 4.0);
  EXPECT_FALSE(a.CommitBundle("pg", 0, rng, &why));  // not prepared any more
}

TEST(NodeAgent, CommittingAnExposedBundleAddsItsResourcesAndGrantsWaitingRequests) {
  auto o = Options();
  o.expose_committed_bundles = true;
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 4}}).Build());
  Rng rng(1);
  std::map<TaskId, LeaseRequest> held;  // the backend keeps queued requests (live: held calls)
  a.SetQueuedRequestLookup([&](const TaskId& t) -> const LeaseRequest* {
    auto it = held.find(t);
    return it == held.end() ? nullptr : &it->second;
  });
  std::string why;
  ASSERT_TRUE(a.PrepareBundle("pg", 0, Req({{"CPU", 2}}), rng, &why)) << why;
  ASSERT_EQ(a.RequestLease(Task("other", {{"CPU", 2}}), rng).kind, K::kGranted);
  // A task of the group asks for the bundle's resources before they exist: infeasible, queued.
  LeaseRequest t = Task("t", {{"CPU_group_0_pg", 1}});
  held["t"] = t;
  ASSERT_EQ(a.RequestLease(t, rng).kind, K::kQueued);
  ASSERT_TRUE(a.CommitBundle("pg", 0, rng, &why)) << why;
  EXPECT_EQ(Avail(a, "CPU_group_0_pg"), 1.0);
  EXPECT_EQ(Avail(a, "CPU"), 0.0);  // the leases survive the manager's rebuild
  auto replies = a.TakeReplies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].task_id, "t");
  EXPECT_EQ(replies[0].kind, K::kGranted);
  ASSERT_TRUE(a.ReturnLease("other"));
  EXPECT_EQ(Avail(a, "CPU"), 2.0);
  ASSERT_TRUE(a.CancelBundle("pg", 0, rng));
  EXPECT_EQ(Avail(a, "CPU"), 4.0);
  EXPECT_EQ(a.manager()->view().at(0).resources.total().Get("CPU_group_0_pg").ToDouble(), 0.0);
}

TEST(NodeAgent, APeersDeathCancelsRequestsWithHardAffinityToIt) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 1}}).Node("n1", {{"CPU", 1}})
                            .Build());
  Rng rng(1);
  LeaseRequest t = Task("t", {{"CPU", 1}}, SchedulingStrategy::NodeAffinity("n1"));
  t.blocked_on = WaitReason::kWaitingForArgs;
  ASSERT_EQ(a.RequestLease(t, rng).kind, K::kQueued);
  ASSERT_TRUE(a.SetNodeState("n1", NodeState::kDead).ok());
  ASSERT_TRUE(a.manager()->Unblock("t").ok());
  auto out = a.SchedulePending(rng);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, K::kCanceled);
  EXPECT_NE(out[0].reason.find("n1"), std::string::npos) << out[0].reason;
  EXPECT_EQ(a.manager()->NumQueued(), 0u);
}

TEST(NodeAgent, WithoutAManagerDecidesSpilledRequestsOnTheSharedViewAndAdoptsThemLater) {
  const auto o = Options();
  ClusterView truth = ClusterBuilder().Node("n0", {{"CPU", 2}}).Node("n1", {{"CPU", 2}}).Build();
  NodeAgent a("n1", &o, &truth);
  Rng rng(1);
  EXPECT_TRUE(a.GrantHere("s1", Req({{"CPU", 1}})));
  EXPECT_FALSE(a.has_manager());
  EXPECT_EQ(truth.at(1).resources.available().Get("CPU").ToDouble(), 1.0);
  std::string why;
  ASSERT_TRUE(a.PrepareBundle("pg", 0, Req({{"CPU", 1}}), rng, &why)) << why;
  LeaseRequest spilled = Task("s2", {{"CPU", 1}});
  spilled.grant_or_reject = true;
  EXPECT_EQ(a.RequestLease(spilled, rng).kind, K::kRejected);  // full now
  // The first request that needs the policy creates the manager from the truth, which adopts
  // the lease and the bundle: returning them frees the manager's view of the node.
  EXPECT_EQ(a.RequestLease(Task("t", {{"CPU", 1}}), rng).kind, K::kSpillback);
  ASSERT_TRUE(a.has_manager());
  EXPECT_EQ(a.NumLeases(), 1u);
  ASSERT_TRUE(a.ReturnLease("s1"));
  ASSERT_TRUE(a.CancelBundle("pg", 0, rng));
  EXPECT_EQ(Avail(a, "CPU"), 2.0);
  ASSERT_NE(a.LocalChange(truth.at(1).resources), nullptr);  // the truth must learn it
  EXPECT_EQ(a.LocalChange(a.manager()->view().at(1).resources), nullptr);
}

TEST(NodeAgent, ItsOwnDeathHandsBackQueuedRequestsAndForgetsEverything) {
  const auto o = Options();
  NodeAgent a = Live(o, ClusterBuilder().Node("n0", {{"CPU", 1}}).Build());
  Rng rng(1);
  ASSERT_EQ(a.RequestLease(Task("a", {{"CPU", 1}}), rng).kind, K::kGranted);
  ASSERT_EQ(a.RequestLease(Task("b", {{"CPU", 1}}), rng).kind, K::kQueued);
  ASSERT_EQ(a.RequestLease(Task("c", {{"CPU", 1}}), rng).kind, K::kQueued);
  ASSERT_TRUE(a.Envs().Acquire("e", "pip", "a", 0).ok());
  EXPECT_TRUE(a.ReleaseWorker(1, false));
  const uint64_t gen = a.generation();
  auto queued = a.Reset();
  ASSERT_EQ(queued.size(), 2u);
  EXPECT_EQ(queued[0].task_id, "b");
  EXPECT_EQ(queued[1].task_id, "c");
  EXPECT_FALSE(a.has_manager());
  EXPECT_FALSE(a.has_envs());
  EXPECT_EQ(a.IdleWorkers(1), 0);
  EXPECT_EQ(a.generation(), gen + 1);
  EXPECT_EQ(a.EnvCounters().misses, 1u);  // counters outlive the cache
}

}  // namespace
}  // namespace orrery::agent

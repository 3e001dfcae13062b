// Fault tolerance and the actor directory of the live backend, end to end (Ray's semantics):
// actor restarts (max_restarts) after a worker or node dies, task retries (max_retries) of the
// C++ API and of `orrery task run`, workers dying with their node daemon, placement groups from
// the API and from `task run`, and `orrery list actors`. Real daemons on loopback (LiveCluster);
// every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <set>
#include <string>
#include <vector>

#include "live/head/actor_directory.h"
#include "live/api/orrery_api.h"
#include "live/client/client.h"
#include "tests/live/api_test_lib.h"
#include "tests/live/api_session.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture
namespace api = orrery::api;
using api_test::Accumulator;
using std::chrono::seconds;

// `list actors --format json`, parsed; the entry of `actor_id` (null if absent).
json ActorEntry(LiveCluster& c, const std::string& actor_id) {
  auto r = c.Orrery({"list", "actors", "--format", "json", "--temp-dir", c.root()});
  if (r.exit_code != 0) return json();
  json all = json::parse(r.out, nullptr, false);
  if (!all.is_array()) return json();
  for (const auto& a : all) {
    if (a.value("actor_id", "") == actor_id) return a;
  }
  return json();
}

bool ActorIs(LiveCluster& c, const std::string& id, const std::string& state, int restarts) {
  json a = ActorEntry(c, id);
  return a.is_object() && a.value("state", "") == state && a.value("num_restarts", -1) == restarts;
}

// A worker killed under an actor with max_restarts=1: the actor is created again (its factory
// runs again, so its state is reset), later calls succeed, and the directory shows one restart.
// The second death exhausts the restarts: every later call fails naming the actor and cause.
TEST(LiveActorTest, ActorRestartsAfterItsWorkerIsKilledThenDies) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto a = api::Actor(Accumulator::Create).SetMaxRestarts(1).Remote(10);
  auto first = api::Get(a.Task(&Accumulator::Add).Remote(5), seconds(20));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, 15);
  auto pid = api::Get(a.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  ASSERT_TRUE(Eventually([&] { return ActorIs(c, a.actor_id(), "alive", 0); }));
  json entry = ActorEntry(c, a.actor_id());
  EXPECT_EQ(entry.value("class_name", ""), "Accumulator");
  EXPECT_EQ(entry.value("node_id", ""), "head");
  EXPECT_EQ(entry.value("worker_pid", 0), *pid);
  EXPECT_EQ(entry.value("max_restarts", 0), 1);
  EXPECT_EQ(entry.value("death_cause", "x"), "");
  auto status = c.Orrery({"status", "--temp-dir", c.root()});
  EXPECT_NE(status.out.find("Actors:\n  alive: 1"), std::string::npos) << status.out;

  ASSERT_EQ(::kill(static_cast<pid_t>(*pid), SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return ActorIs(c, a.actor_id(), "alive", 1); }, milliseconds(15000)))
      << ActorEntry(c, a.actor_id()).dump();
  EXPECT_NE(ActorEntry(c, a.actor_id()).value("death_cause", "").find("died"), std::string::npos);
  auto after = api::Get(a.Task(&Accumulator::Add).Remote(1), seconds(20));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, 11) << "a restarted actor starts from its factory again (10 + 1)";
  auto pid2 = api::Get(a.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(pid2.ok());
  EXPECT_NE(*pid2, *pid);

  // Out of restarts: DEAD, and calls fail with the actor and the cause in the message.
  ASSERT_EQ(::kill(static_cast<pid_t>(*pid2), SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return ActorIs(c, a.actor_id(), "dead", 1); }, milliseconds(15000)))
      << ActorEntry(c, a.actor_id()).dump();
  auto dead = api::Get(a.Task(&Accumulator::Add).Remote(1), seconds(20));
  ASSERT_FALSE(dead.ok());
  EXPECT_EQ(dead.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(dead.status().message().find(a.actor_id()), std::string::npos)
      << dead.status().ToString();
  EXPECT_NE(dead.status().message().find("out of restarts"), std::string::npos)
      << dead.status().ToString();
  EXPECT_NE(ActorEntry(c, a.actor_id()).value("death_cause", "").find("out of restarts"),
            std::string::npos);

  // Default max_restarts=0: the first death is final.
  auto b = api::Actor(Accumulator::Create).Remote(0);
  auto bpid = api::Get(b.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(bpid.ok()) << bpid.status().ToString();
  ASSERT_EQ(::kill(static_cast<pid_t>(*bpid), SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return ActorIs(c, b.actor_id(), "dead", 0); }, milliseconds(15000)));
  auto none = api::Get(b.Task(&Accumulator::Add).Remote(1), seconds(20));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("max_restarts=0"), std::string::npos)
      << none.status().ToString();
}

// A node daemon SIGKILLed under a running task and an actor: its workers die with it within a
// couple of seconds, the task is retried on the surviving node (max_retries, default 3), and the
// actor is restarted there (max_restarts); calls made meanwhile wait for the new incarnation.
TEST(LiveActorTest, KilledNodeRestartsActorAndRetriesTaskElsewhere) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto actor = api::Actor(Accumulator::Create)
                   .SetStrategy(api::Strategy::NodeAffinity("b", /*soft=*/true))
                   .SetMaxRestarts(2)
                   .Remote(1);
  auto where = api::Get(actor.Task(&Accumulator::Node).Remote(), seconds(20));
  ASSERT_TRUE(where.ok()) << where.status().ToString();
  ASSERT_EQ(*where, "b");
  auto worker = api::Get(actor.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(worker.ok());
  auto task = api::Task(api_test::SleepThenNodeId)
                  .SetStrategy(api::Strategy::NodeAffinity("b", /*soft=*/true))
                  .Remote(3000);
  // The task is running on b once b's lease table shows it.
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()});
        json t = json::parse(r.out, nullptr, false);
        if (!t.is_array()) return false;
        for (const auto& x : t) {
          if (x.value("name", "") == "api:SleepThenNodeId" && x.value("node_id", "") == "b" &&
              x.value("state", "") == "RUNNING") {
            return true;
          }
        }
        return false;
      },
      milliseconds(10000)));

  const int b_pid = c.Node("b").value("pid", 0);
  ASSERT_GT(b_pid, 0);
  ASSERT_EQ(::kill(b_pid, SIGKILL), 0);
  EXPECT_TRUE(
      Eventually([&] { return !IsProcessAlive(static_cast<pid_t>(*worker)); }, milliseconds(2000)))
      << "the actor's worker outlived its node daemon";

  auto retried = api::Get(task, seconds(30));
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(*retried, "a");
  auto sum = api::Get(actor.Task(&Accumulator::Add).Remote(4), seconds(30));
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(*sum, 5) << "restarted from its factory (1 + 4)";
  auto moved = api::Get(actor.Task(&Accumulator::Node).Remote(), seconds(20));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, "a");
  ASSERT_TRUE(Eventually([&] { return ActorIs(c, actor.actor_id(), "alive", 1); }))
      << ActorEntry(c, actor.actor_id()).dump();
  EXPECT_EQ(ActorEntry(c, actor.actor_id()).value("node_id", ""), "a");
  EXPECT_EQ(ActorEntry(c, actor.actor_id()).value("death_cause", ""), "node b died");
  // The task's first lease failed with its node; the retry is a new lease, attempt 1, on a.
  auto l = c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()});
  json leases = json::parse(l.out, nullptr, false);
  bool lost = false, retry = false;
  for (const auto& t : leases) {
    if (t.value("name", "") != "api:SleepThenNodeId") continue;
    lost = lost || (t.value("node_id", "") == "b" && t.value("state", "") == "FAILED" &&
                    t.value("error", "") == "node b died");
    retry = retry || (t.value("node_id", "") == "a" && t.value("attempt", 0) == 1);
  }
  EXPECT_TRUE(lost && retry) << leases.dump();
  auto table = c.Orrery({"list", "tasks", "--temp-dir", c.root()});
  EXPECT_NE(table.out.find("api:SleepThenNodeId (attempt 1)"), std::string::npos) << table.out;
}

// `task run --max-retries 1`: the node running the command is SIGKILLed; the command runs again
// on the other node, and both attempts are in `list tasks` (the first failed with the node).
TEST(LiveActorTest, TaskRunRetriesAcrossAKilledNode) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  auto run = std::async(std::launch::async, [&] {
    return c.Orrery({"task", "run", "--temp-dir", c.root(), "--max-retries", "1", "--strategy",
                     "node:b:soft", "--", "sh", "-c", "sleep 2; echo ran on $ORRERY_NODE_ID"},
                    milliseconds(40000));
  });
  json tasks;
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()});
        tasks = json::parse(r.out, nullptr, false);
        return tasks.is_array() && tasks.size() == 1 && tasks[0].value("state", "") == "RUNNING" &&
               tasks[0].value("node_id", "") == "b";
      },
      milliseconds(10000)))
      << tasks.dump();
  ASSERT_EQ(::kill(c.Node("b").value("pid", 0), SIGKILL), 0);
  auto r = run.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ran on a\n") << r.err;
  EXPECT_NE(r.err.find("retrying"), std::string::npos) << r.err;
  ASSERT_TRUE(Eventually([&] {
    auto l = c.Orrery({"list", "tasks", "--format", "json", "--temp-dir", c.root()});
    tasks = json::parse(l.out, nullptr, false);
    return tasks.is_array() && tasks.size() == 2 && tasks[1].value("state", "") == "FINISHED";
  })) << tasks.dump();
  std::map<int, json> by_attempt;
  for (const auto& t : tasks) by_attempt[t.value("attempt", -1)] = t;
  ASSERT_EQ(by_attempt.count(0), 1u) << tasks.dump();
  ASSERT_EQ(by_attempt.count(1), 1u) << tasks.dump();
  EXPECT_EQ(by_attempt[0].value("state", ""), "FAILED");
  EXPECT_EQ(by_attempt[0].value("node_id", ""), "b");
  EXPECT_NE(by_attempt[0].value("error", "").find("node b died"), std::string::npos);
  EXPECT_EQ(by_attempt[1].value("node_id", ""), "a");

  // Without retries the same loss fails the command (exit 1), and a non-zero exit is never
  // retried.
  auto exit3 = c.Orrery(
      {"task", "run", "--temp-dir", c.root(), "--max-retries", "2", "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(exit3.exit_code, 3) << exit3.err;
  EXPECT_EQ(exit3.err.find("retrying"), std::string::npos) << exit3.err;
}

// Placement groups from the API: STRICT_SPREAD puts bundles 0 and 1 on two nodes; tasks and an
// actor in a bundle run on its node, although they are submitted to the head's node (the other
// node's bundle resources reach it through the view, so it spills there). A bad bundle index
// is refused; Remove returns everything and Wait then says so.
TEST(LiveActorTest, PlacementGroupFromTheApi) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  auto pg = api::CreatePlacementGroup({{{"CPU", 1}}, {{"CPU", 1}}},
                                      api::PlacementStrategy::kStrictSpread, "pg1");
  ASSERT_TRUE(pg.status().ok()) << pg.status().ToString();
  ASSERT_TRUE(pg.Wait(seconds(15)).ok());
  auto nodes = pg.BundleNodes();
  ASSERT_TRUE(nodes.ok() && nodes->size() == 2u);
  EXPECT_NE((*nodes)[0], (*nodes)[1]);
  for (int i = 0; i < 2; ++i) {
    auto n = api::Get(api::Task(api_test::NodeId).SetPlacementGroup(pg, i).Remote(), seconds(20));
    ASSERT_TRUE(n.ok()) << "bundle " << i << ": " << n.status().ToString();
    EXPECT_EQ(*n, (*nodes)[i]) << "bundle " << i;
  }
  auto actor = api::Actor(Accumulator::Create).SetPlacementGroup(pg, 1).Remote(0);
  auto at = api::Get(actor.Task(&Accumulator::Node).Remote(), seconds(20));
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_EQ(*at, (*nodes)[1]);
  auto any = api::Get(api::Task(api_test::NodeId).SetPlacementGroup(pg).Remote(), seconds(20));
  ASSERT_TRUE(any.ok()) << any.status().ToString();
  EXPECT_TRUE(*any == (*nodes)[0] || *any == (*nodes)[1]);

  auto bad = api::Get(api::Task(api_test::NodeId).SetPlacementGroup(pg, 2).Remote(), seconds(5));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("bundle_index"), std::string::npos);
  auto dup = api::CreatePlacementGroup({{{"CPU", 1}}}, api::PlacementStrategy::kPack, "pg1");
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);

  actor.Kill();
  ASSERT_TRUE(pg.Remove().ok());
  EXPECT_EQ(pg.Wait(seconds(5)).code(), StatusCode::kCancelled);
  EXPECT_TRUE(Eventually([&] {
    for (const auto& n : c.Nodes()) {
      for (const auto& [k, v] : n["total"].items()) {
        if (k.find("_group_") != std::string::npos) return false;
      }
    }
    return true;
  })) << c.Nodes().dump();
  // Regression (issue 11.14): a removed group's name is free again, as in Ray.
  auto again = api::CreatePlacementGroup({{{"CPU", 1}}}, api::PlacementStrategy::kPack, "pg1");
  ASSERT_TRUE(again.status().ok()) << again.status().ToString();
  EXPECT_TRUE(again.Wait(seconds(15)).ok());
}

// Regression (issue 11.14): a group lives as long as the driver that created it, so rerunning
// a driver that names its group works (it failed with ALREADY_EXISTS for the head's lifetime).
TEST(LiveActorTest, GroupNameIsFreedWhenItsDriverShutsDown) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  for (int run = 0; run < 2; ++run) {
    ApiSession session(c);
    ASSERT_TRUE(session.status().ok()) << session.status().ToString();
    auto pg = api::CreatePlacementGroup({{{"CPU", 2}}}, api::PlacementStrategy::kPack, "trainer");
    ASSERT_TRUE(pg.status().ok()) << "run " << run << ": " << pg.status().ToString();
    ASSERT_TRUE(pg.Wait(seconds(15)).ok()) << "run " << run;
  }
}

// `task run --placement-group G --bundle-index I` runs the command on bundle I's node (the
// request goes to the head's node, which spills it); bad group or index: exit 2.
TEST(LiveActorTest, TaskRunInAPlacementGroup) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("a", 2));
  HeadClient head(c.address(), c.Token());
  v1::CreatePlacementGroupRequest req;
  req.set_group_id("g");
  req.set_strategy("STRICT_SPREAD");
  for (int i = 0; i < 2; ++i) (*req.add_bundles()->mutable_raw())["CPU"] = 10000;
  ASSERT_TRUE(head.CreatePlacementGroup(req).ok());
  v1::PlacementGroupInfo info;
  ASSERT_TRUE(Eventually(
      [&] {
        auto g = head.GetPlacementGroup("g");
        if (g.ok()) info = *g;
        return g.ok() && g->state() == v1::PLACEMENT_GROUP_STATE_CREATED;
      },
      milliseconds(15000)));
  for (int i = 0; i < 2; ++i) {
    auto r =
        c.Orrery({"task", "run", "--temp-dir", c.root(), "--placement-group", "g", "--bundle-index",
                  std::to_string(i), "--", "sh", "-c", "echo $ORRERY_NODE_ID"},
                 milliseconds(30000));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, info.bundle_nodes(i) + "\n") << "bundle " << i << ": " << r.err;
  }
  auto bad_index = c.Orrery({"task", "run", "--temp-dir", c.root(), "--placement-group", "g",
                             "--bundle-index", "2", "--", "true"});
  EXPECT_EQ(bad_index.exit_code, 2);
  EXPECT_NE(bad_index.err.find("--bundle-index"), std::string::npos) << bad_index.err;
  auto bad_group =
      c.Orrery({"task", "run", "--temp-dir", c.root(), "--placement-group", "nope", "--", "true"});
  EXPECT_EQ(bad_group.exit_code, 2);
  EXPECT_NE(bad_group.err.find("nope"), std::string::npos) << bad_group.err;
}

// A method call in flight when the actor's worker dies is sent to the restarted actor when
// max_task_retries allows (it then runs on the fresh state), and fails naming the actor when not.
TEST(LiveActorTest, InFlightCallsFollowMaxTaskRetries) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "2"}).exit_code, 0);
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  auto keep = api::Actor(Accumulator::Create).SetMaxRestarts(1).SetMaxTaskRetries(1).Remote(10);
  auto lose = api::Actor(Accumulator::Create).SetMaxRestarts(1).Remote(10);
  auto keep_pid = api::Get(keep.Task(&Accumulator::Pid).Remote(), seconds(20));
  auto lose_pid = api::Get(lose.Task(&Accumulator::Pid).Remote(), seconds(20));
  ASSERT_TRUE(keep_pid.ok() && lose_pid.ok());
  ASSERT_TRUE(api::Get(keep.Task(&Accumulator::Add).Remote(100), seconds(20)).ok());
  auto kept = keep.Task(&Accumulator::SlowAdd).Remote(5, 1500);
  auto lost = lose.Task(&Accumulator::SlowAdd).Remote(5, 1500);
  std::this_thread::sleep_for(milliseconds(500));  // both calls are running now
  ASSERT_EQ(::kill(static_cast<pid_t>(*keep_pid), SIGKILL), 0);
  ASSERT_EQ(::kill(static_cast<pid_t>(*lose_pid), SIGKILL), 0);
  auto k = api::Get(kept, seconds(30));
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(*k, 15) << "resubmitted to the restarted actor (10 + 5, the +100 is gone)";
  auto l = api::Get(lost, seconds(30));
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(l.status().message().find("died while the call was in flight"), std::string::npos)
      << l.status().ToString();
  EXPECT_NE(l.status().message().find(lose.actor_id()), std::string::npos);
  auto after = api::Get(lose.Task(&Accumulator::Add).Remote(1), seconds(20));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, 11);
}

// Exceptions are not retried by default; with SetRetryExceptions(true) they are (within
// max_retries), and SetMaxRetries(0) turns retries off.
TEST(LiveActorTest, ExceptionsAreRetriedOnlyWhenAsked) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "1"}).exit_code, 0);
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  const std::string once = (fs::path(c.root()).parent_path() / "fail_once_a").string();
  auto plain = api::Get(api::Task(api_test::FailOnce).Remote(once), seconds(20));
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.status().message().find("first run"), std::string::npos);
  const std::string twice = (fs::path(c.root()).parent_path() / "fail_once_b").string();
  auto retried =
      api::Get(api::Task(api_test::FailOnce).SetRetryExceptions(true).Remote(twice), seconds(20));
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(*retried, "ok");
  const std::string never = (fs::path(c.root()).parent_path() / "fail_once_c").string();
  auto off = api::Get(
      api::Task(api_test::FailOnce).SetRetryExceptions(true).SetMaxRetries(0).Remote(never),
      seconds(20));
  EXPECT_FALSE(off.ok());
}

// The head's directory alone (no daemons): a node's death makes its actors restarting (restarts
// left) or dead; a restarting actor nobody reports on becomes dead after the grace period; a
// driver's report overrides what the head marked, but a DEAD the driver reported is final; bad
// reports are refused.
TEST(ActorDirectoryTest, NodeDeathAndDriverSilence) {
  ActorDirectory d;
  auto info = [](const std::string& id, const std::string& node, int max_restarts) {
    v1::ActorInfo a;
    a.set_actor_id(id);
    a.set_node_id(node);
    a.set_state(v1::ACTOR_STATE_ALIVE);
    a.set_max_restarts(max_restarts);
    return a;
  };
  ASSERT_TRUE(d.Report(info("r", "n1", 1), 1000).ok());
  ASSERT_TRUE(d.Report(info("z", "n1", 0), 1000).ok());
  ASSERT_TRUE(d.Report(info("inf", "n1", -1), 1000).ok());
  ASSERT_TRUE(d.Report(info("other", "n2", 0), 1000).ok());
  EXPECT_EQ(d.Report(info("", "n1", 0), 1000).code(), StatusCode::kInvalidArgument);
  d.OnNodeDead("n1", 2000);
  auto states = [&] {
    v1::ListActorsReply r;
    d.List(&r);
    std::map<std::string, std::string> out;
    for (const auto& a : r.actors()) out[a.actor_id()] = ActorStateText(a.state());
    return out;
  };
  EXPECT_EQ(states(),
            (std::map<std::string, std::string>{
                {"inf", "restarting"}, {"other", "alive"}, {"r", "restarting"}, {"z", "dead"}}));
  // The driver of "r" reports the restart; "inf" stays silent past the grace period.
  v1::ActorInfo back = info("r", "n2", 1);
  back.set_num_restarts(1);
  ASSERT_TRUE(d.Report(back, 2500).ok());
  d.Expire(3000, milliseconds(5000));
  EXPECT_EQ(states()["inf"], "restarting");
  d.Expire(7001, milliseconds(5000));
  EXPECT_EQ(states()["inf"], "dead");
  EXPECT_EQ(states()["r"], "alive");
  // What the head marked yields to the driver's word; a DEAD the driver reported is final.
  v1::ActorInfo gone = info("other", "n2", 0);
  gone.set_state(v1::ACTOR_STATE_DEAD);
  ASSERT_TRUE(d.Report(gone, 8000).ok());
  ASSERT_TRUE(d.Report(info("other", "n2", 0), 8001).ok());
  EXPECT_EQ(states()["other"], "dead");
  ASSERT_TRUE(d.Report(info("inf", "n3", -1), 8002).ok());
  EXPECT_EQ(states()["inf"], "alive");
  EXPECT_EQ(d.CountByState().at(v1::ACTOR_STATE_DEAD), 2);
}

}  // namespace
}  // namespace orrery::live

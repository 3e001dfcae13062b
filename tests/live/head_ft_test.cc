// Head fault tolerance end to end (DESIGN section 12, live/head/head_store.h): the head process
// is SIGKILLed in the middle of a workload and started again with the same store, session and
// port; nodes, actors (their state), placement groups and the workload survive. Real daemons on
// loopback (LiveCluster); every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "live/api/orrery_api.h"
#include "live/client/client.h"
#include "live/common/session.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"
#include "tests/live/api_session.h"
#include "tests/live/api_test_lib.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture
namespace api = orrery::api;
using api_test::Accumulator;
using std::chrono::seconds;

json ListJson(LiveCluster& c, const std::string& what) {
  auto r = c.Orrery({"list", what, "--format", "json", "--temp-dir", c.root()});
  if (r.exit_code != 0) return json::array();
  json j = json::parse(r.out, nullptr, false);
  return j.is_array() ? j : json::array();
}

// The running head's pid and command line (from the session): the one killed, and the one
// `orrery start --head --resume` started again.
struct HeadProcess {
  pid_t pid = -1;
  std::vector<std::string> argv;
  fs::path session;
};

HeadProcess FindHead(LiveCluster& c) {
  HeadProcess h;
  auto s = LatestSession(c.root());
  if (!s.ok()) return h;
  h.session = *s;
  auto pid = ReadFileTrimmed(*s / "pids" / "head.pid");
  if (!pid.ok()) return h;
  h.pid = static_cast<pid_t>(std::stol(*pid));
  const std::string cmdline = ReadAll("/proc/" + *pid + "/cmdline");
  std::string arg;
  for (char ch : cmdline) {
    if (ch == '\0') {
      h.argv.push_back(arg);
      arg.clear();
    } else {
      arg += ch;
    }
  }
  return h;
}

// 2,000 tasks, 10 counters and 2 placement groups; the head is SIGKILLed with a batch of tasks
// in flight after half of them and started again two batches later. Every task runs exactly once (each creates its own
// marker file exclusively) and returns its index; every counter counts on (its worker, pid and
// state are the same: not restarted); the groups keep their bundles on the same nodes;
// `orrery list` agrees; new work (a group, an actor) is placed after the restart.
TEST(HeadFaultToleranceTest, HeadKilledMidWorkloadRestartsAndTheClusterCarriesOn) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "4"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("n1", {"--num-cpus", "8"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("n2", {"--num-cpus", "8"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("head", 3));
  const fs::path marks = fs::path(c.root()) / "marks";
  fs::create_directories(marks);
  ApiSession session(c);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();

  // Placement groups: one spread over two nodes, one packed.
  auto pg_a = api::CreatePlacementGroup({{{"CPU", 1}}, {{"CPU", 1}}},
                                        api::PlacementStrategy::kStrictSpread, "ft_a");
  auto pg_b = api::CreatePlacementGroup({{{"CPU", 1}}}, api::PlacementStrategy::kPack, "ft_b");
  ASSERT_TRUE(pg_a.Wait(milliseconds(20000)).ok());
  ASSERT_TRUE(pg_b.Wait(milliseconds(20000)).ok());
  auto nodes_a = pg_a.BundleNodes();
  auto nodes_b = pg_b.BundleNodes();
  ASSERT_TRUE(nodes_a.ok() && nodes_b.ok());

  // Ten counters (Accumulator from 0), a tenth of a CPU each.
  constexpr int kActors = 10;
  std::vector<api::ActorHandle<Accumulator>> counters;
  std::vector<int> counts(kActors, 0);
  std::vector<int64_t> pids;
  for (int i = 0; i < kActors; ++i) {
    counters.push_back(api::Actor(Accumulator::Create).SetResources({{"CPU", 0.1}}).Remote(0));
  }
  for (int i = 0; i < kActors; ++i) {
    auto pid = api::Get(counters[i].Task(&Accumulator::Pid).Remote(), seconds(30));
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pids.push_back(*pid);
  }
  auto count_all = [&] {
    std::vector<api::ObjectRef<int>> refs;
    for (int i = 0; i < kActors; ++i) refs.push_back(counters[i].Task(&Accumulator::Add).Remote(1));
    for (int i = 0; i < kActors; ++i) {
      auto v = api::Get(refs[i], seconds(30));
      ASSERT_TRUE(v.ok()) << "counter " << i << ": " << v.status().ToString();
      ++counts[i];
      ASSERT_EQ(*v, counts[i]) << "counter " << i << " did not count on (restarted?)";
    }
  };
  count_all();
  ASSERT_TRUE(Eventually(
      [&] {
        int alive = 0;
        for (const auto& a : ListJson(c, "actors")) alive += a.value("state", "") == "alive";
        return alive == kActors;
      },
      milliseconds(10000)));
  const HeadProcess head = FindHead(c);
  ASSERT_GT(head.pid, 0);
  ASSERT_FALSE(head.argv.empty());
  ASSERT_NE(std::find(head.argv.begin(), head.argv.end(), "__head"), head.argv.end());

  // The workload: 20 batches of 100 tasks, each batch with one call per counter and one task per
  // bundle; the head is killed while batch 11's tasks are in flight and started again while
  // batch 13's are (batches 11 and 12 run without a head).
  constexpr int kTasks = 2000, kBatch = 100;
  std::set<int> results;
  Clock::time_point restarted_at;
  for (int b = 0; b < kTasks / kBatch; ++b) {
    std::vector<api::ObjectRef<int>> refs;
    for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
      refs.push_back(api::Task(api_test::MarkOnce).Remote(marks.string(), i));
    }
    auto in_a = api::Task(api_test::NodeId).SetPlacementGroup(pg_a, b % 2).Remote();
    auto in_b = api::Task(api_test::NodeId).SetPlacementGroup(pg_b, 0).Remote();
    if (b == 10) {  // with this batch in flight
      ASSERT_EQ(::kill(head.pid, SIGKILL), 0);
      ASSERT_TRUE(Eventually([&] { return !IsProcessAlive(head.pid); }, milliseconds(5000)));
    }
    if (b == 12) {  // as a user would: the latest session's head, started again
      auto r = c.Orrery({"start", "--head", "--resume", "--temp-dir", c.root()});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
      EXPECT_NE(r.out.find("Resumed the Orrery head"), std::string::npos) << r.out;
      restarted_at = Clock::now();
    }
    count_all();
    for (auto& r : refs) {
      auto v = api::Get(r, seconds(60));
      ASSERT_TRUE(v.ok()) << "batch " << b << ": " << v.status().ToString();
      EXPECT_TRUE(results.insert(*v).second) << "task " << *v << " returned twice";
    }
    auto na = api::Get(in_a, seconds(60));
    auto nb = api::Get(in_b, seconds(60));
    ASSERT_TRUE(na.ok() && nb.ok()) << (na.ok() ? nb.status() : na.status()).ToString();
    EXPECT_EQ(*na, (*nodes_a)[b % 2]);
    EXPECT_EQ(*nb, (*nodes_b)[0]);
  }
  EXPECT_EQ(results.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(*results.begin(), 0);
  EXPECT_EQ(*results.rbegin(), kTasks - 1);
  size_t marked = 0;
  for (const auto& e : fs::directory_iterator(marks)) marked += e.is_regular_file();
  EXPECT_EQ(marked, static_cast<size_t>(kTasks)) << "a task ran twice or not at all";

  // The restarted head: same nodes, all alive and reporting; the same actors, alive where they
  // were (not restarted); the groups created on the same nodes.
  const HeadProcess again = FindHead(c);
  ASSERT_GT(again.pid, 0);
  EXPECT_NE(again.pid, head.pid);
  ASSERT_TRUE(Eventually(
      [&] {
        json nodes = ListJson(c, "nodes");
        std::set<std::string> alive;
        for (const auto& n : nodes) {
          if (n.value("state", "") == "alive" && n.value("ms_since_heartbeat", 1 << 30) < 2000) {
            alive.insert(n.value("node_id", ""));
          }
        }
        return nodes.size() == 3 && alive == std::set<std::string>{"head", "n1", "n2"};
      },
      milliseconds(15000)))
      << ListJson(c, "nodes").dump();
  const std::string log = ReadAll(head.session / "logs" / "head.log");
  EXPECT_NE(log.find("restored from the head store"), std::string::npos) << log;
  EXPECT_NE(log.find("every restored node reported again"), std::string::npos) << log;
  json actors = ListJson(c, "actors");
  ASSERT_EQ(actors.size(), static_cast<size_t>(kActors)) << actors.dump();
  for (int i = 0; i < kActors; ++i) {
    bool found = false;
    for (const auto& a : actors) {
      if (a.value("actor_id", "") != counters[i].actor_id()) continue;
      found = true;
      EXPECT_EQ(a.value("state", ""), "alive") << a.dump();
      EXPECT_EQ(a.value("worker_pid", 0), pids[i]) << a.dump();
      EXPECT_EQ(a.value("num_restarts", -1), 0) << a.dump();
    }
    EXPECT_TRUE(found) << counters[i].actor_id();
    auto pid = api::Get(counters[i].Task(&Accumulator::Pid).Remote(), seconds(30));
    ASSERT_TRUE(pid.ok());
    EXPECT_EQ(*pid, pids[i]) << "counter " << i << " was restarted";
  }
  count_all();  // and they count on
  json groups = ListJson(c, "placement-groups");
  std::map<std::string, json> by_id;
  for (const auto& g : groups) by_id[g.value("group_id", "")] = g;
  ASSERT_TRUE(by_id.count("ft_a") && by_id.count("ft_b")) << groups.dump();
  EXPECT_EQ(by_id["ft_a"].value("state", ""), "created");
  EXPECT_EQ(by_id["ft_b"].value("state", ""), "created");
  EXPECT_EQ(by_id["ft_a"]["bundle_nodes"].get<std::vector<std::string>>(), *nodes_a);
  EXPECT_EQ(by_id["ft_b"]["bundle_nodes"].get<std::vector<std::string>>(), *nodes_b);

  // New work after the restart: a group and an actor are placed.
  auto pg_c = api::CreatePlacementGroup({{{"CPU", 1}}}, api::PlacementStrategy::kPack, "ft_c");
  EXPECT_TRUE(pg_c.Wait(milliseconds(20000)).ok());
  auto fresh = api::Actor(Accumulator::Create).SetResources({{"CPU", 0.1}}).Remote(41);
  auto v = api::Get(fresh.Task(&Accumulator::Add).Remote(1), seconds(30));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 42);
  std::cerr << "head restarted "
            << std::chrono::duration_cast<milliseconds>(Clock::now() - restarted_at).count()
            << " ms before the checks ended\n";
}

// The node side of a job's driver outliving its head (live/node/task_stream.h), on raw calls:
// a detachable task runs on when its RunTask caller goes away; ReattachTask replays from the
// asked byte (no byte lost or doubled, offsets continuous), a later reattach replaces an earlier
// one, StopTask ends it and the exit reaches the attached caller, and the exit stays readable
// after the end. Output beyond the 4 MiB kept while nobody reads is named in a marker.
TEST(HeadFaultToleranceTest, DetachableTaskOutlivesItsCallerAndReplaysFromAnOffset) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  const std::string address = c.NodeAddress("a"), token = c.Token();
  auto stub =
      v1::NodeService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto lease = [&](const std::string& id) {
    v1::RequestWorkerLeaseRequest r;
    r.set_task_id(id);
    (*r.mutable_resources()->mutable_raw())["CPU"] = 10000;
    return AcquireLease(address, token, r);
  };
  auto context = [&] {
    auto ctx = std::make_unique<grpc::ClientContext>();
    AttachToken(ctx.get(), token);
    ctx->set_deadline(std::chrono::system_clock::now() + seconds(60));
    return ctx;
  };
  // Reads a stream into `got` until it ends or `until` says stop (then cancels it).
  struct Read {
    int pid = 0;
    std::string out;              // output chunks with offsets, in order
    uint64_t next = 0;            // the offset the next chunk must have
    bool contiguous = true;       // each chunk starts where the one before ended
    uint64_t first = UINT64_MAX;  // the first chunk's offset
    std::string markers;          // chunks without an offset
    bool exited = false;
    int signal = 0;
    grpc::Status status;
  };
  auto read = [&](grpc::ClientReader<v1::RunTaskReply>* r, grpc::ClientContext* ctx, Read& got,
                  uint64_t from, const std::function<bool(const Read&)>& until) {
    got.next = from;
    v1::RunTaskReply m;
    while (r->Read(&m)) {
      if (m.has_started_pid()) got.pid = m.started_pid();
      if (m.has_stdout_chunk() || m.has_stderr_chunk()) {
        const std::string& d = m.has_stdout_chunk() ? m.stdout_chunk() : m.stderr_chunk();
        if (!m.has_output_offset()) {
          got.markers += d;
        } else {
          if (got.first == UINT64_MAX) got.first = m.output_offset();
          got.contiguous &= got.out.empty() || m.output_offset() == got.next;
          got.next = m.output_offset() + d.size();
          got.out += d;
        }
      }
      if (m.has_exit()) {
        got.exited = true;
        got.signal = m.exit().signal();
      }
      if (until && until(got)) {
        ctx->TryCancel();
        while (r->Read(&m)) {
        }
        break;
      }
    }
    got.status = r->Finish();
  };

  // Leases `id` and starts `script` detachable; reads its stream until `until`, then goes away.
  auto start = [&](const std::string& id, const std::string& script,
                   const std::function<bool(const Read&)>& until) {
    Read got;
    EXPECT_TRUE(lease(id).ok());
    v1::RunTaskRequest run;
    run.set_task_id(id);
    run.set_detachable(true);
    for (const std::string& a : {std::string("/bin/sh"), std::string("-c"), script}) {
      run.add_argv(a);
    }
    auto ctx = context();
    auto r = stub->RunTask(ctx.get(), run);
    read(r.get(), ctx.get(), got, 0, until);
    return got;
  };

  // 1. Started, first output read, caller gone: the task runs on.
  const Read first = start("drv", "printf aaaa; sleep 0.5; echo bbbb; exec sleep 60",
                           [](const Read& g) { return g.out == "aaaa"; });
  ASSERT_GT(first.pid, 0);
  ASSERT_EQ(first.out, "aaaa");
  std::this_thread::sleep_for(milliseconds(1000));  // "bbbb" is printed while nobody reads
  ASSERT_TRUE(IsProcessAlive(first.pid)) << "a detachable task died with its caller";

  // 2. Reattach from byte 2; then a second caller from 0 replaces it.
  v1::ReattachTaskRequest again;
  again.set_task_id("drv");
  again.set_output_offset(2);
  Read second, third;
  auto ctx2 = context();
  auto r2 = stub->ReattachTask(ctx2.get(), again);
  std::thread t2([&] { read(r2.get(), ctx2.get(), second, 2, nullptr); });
  std::this_thread::sleep_for(milliseconds(300));
  again.set_output_offset(0);
  auto ctx3 = context();
  auto r3 = stub->ReattachTask(ctx3.get(), again);
  std::thread t3([&] { read(r3.get(), ctx3.get(), third, 0, nullptr); });
  t2.join();
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::ABORTED) << second.status.error_message();
  EXPECT_EQ(second.pid, first.pid);
  EXPECT_EQ(second.out, "aabbbb\n");
  EXPECT_TRUE(second.contiguous);
  EXPECT_EQ(second.first, 2u);

  // 3. StopTask ends it; the attached caller gets the exit.
  {
    auto ctx = context();
    v1::StopTaskRequest stop;
    stop.set_task_id("drv");
    v1::StopTaskReply reply;
    ASSERT_TRUE(stub->StopTask(ctx.get(), stop, &reply).ok());
    EXPECT_TRUE(reply.found());
  }
  t3.join();
  EXPECT_TRUE(third.status.ok()) << third.status.error_message();
  EXPECT_EQ(third.out, "aaaabbbb\n");
  EXPECT_TRUE(third.contiguous);
  EXPECT_EQ(third.first, 0u);
  EXPECT_TRUE(third.exited);
  EXPECT_EQ(third.signal, SIGTERM);
  EXPECT_FALSE(IsProcessAlive(first.pid));

  // 4. The exit stays readable after the end.
  {
    Read after;
    again.set_output_offset(9);
    auto ctx = context();
    auto r = stub->ReattachTask(ctx.get(), again);
    read(r.get(), ctx.get(), after, 9, nullptr);
    EXPECT_TRUE(after.status.ok()) << after.status.error_message();
    EXPECT_TRUE(after.exited);
    EXPECT_EQ(after.out, "");
    EXPECT_EQ(after.pid, first.pid);
  }

  // 5. 5,000,000 bytes while nobody reads: the last 4 MiB are kept, the rest is named.
  ASSERT_GT(start("big", "sleep 0.3; head -c 5000000 /dev/zero | tr '\\0' x",
                  [](const Read& g) { return g.pid > 0; })
                .pid,
            0);
  std::this_thread::sleep_for(milliseconds(2000));
  Read rest;
  v1::ReattachTaskRequest from0;
  from0.set_task_id("big");
  auto ctx5 = context();
  auto r5 = stub->ReattachTask(ctx5.get(), from0);
  read(r5.get(), ctx5.get(), rest, 0, nullptr);
  ASSERT_TRUE(rest.exited) << rest.status.error_message();
  const size_t at = rest.markers.find("[orrery: ");
  ASSERT_NE(at, std::string::npos) << rest.markers;
  const uint64_t not_kept = std::stoull(rest.markers.substr(at + 9));
  EXPECT_EQ(not_kept + rest.out.size(), 5000000u) << rest.markers;
  EXPECT_LE(rest.out.size(), 4u << 20);
  EXPECT_TRUE(rest.contiguous);
  EXPECT_EQ(rest.first, not_kept);
  EXPECT_EQ(rest.out.find_first_not_of('x'), std::string::npos);
}

// Running jobs survive a head crash (issue 18.1): their drivers run on in their node
// (detachable RunTask) and the restarted head reattaches to them. A job printing 3,000 numbered
// lines without pause keeps printing through the crash: its log holds every line exactly once,
// in order (the node replays from the byte the log holds). A job that ends while no head runs is
// reported with its exit and full output; a job still running keeps its driver (same pid) and
// can be stopped by the new head; a job waiting for a driver slot runs once the head is back.
TEST(HeadFaultToleranceTest, RunningJobsKeepRunningAndTheirLogsContinue) {
  LiveCluster c;
  ASSERT_EQ(
      c.StartHead("head", {"--num-cpus", "4", "--dashboard-port", "0", "--max-running-jobs", "3"})
          .exit_code,
      0);
  auto job = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "job");
    args.insert(args.begin() + 2, {"--temp-dir", c.root()});
    return c.Orrery(args, milliseconds(30000));
  };
  auto status = [&](const std::string& id) {
    auto r = job({"status", id, "--format", "json"});
    json j = r.exit_code == 0 ? json::parse(r.out, nullptr, false) : json::object();
    return j.is_object() ? j : json::object();
  };
  constexpr int kLines = 3000;
  std::string expected;
  for (int i = 1; i <= kLines; ++i) expected += "line " + std::to_string(i) + "\n";
  ASSERT_EQ(job({"submit", "--no-wait", "--submission-id", "counter", "--",
                 "for i in $(seq 1 " + std::to_string(kLines) +
                     "); do echo \"line $i\"; case $i in *0) sleep 0.02;; esac; done"})
                .exit_code,
            0);
  ASSERT_EQ(job({"submit", "--no-wait", "--submission-id", "quick", "--",
                 "echo quick start; sleep 1.5; echo quick end; exit 7"})
                .exit_code,
            0);
  ASSERT_EQ(job({"submit", "--no-wait", "--submission-id", "sleeper", "--",
                 "echo sleeping; exec sleep 120"})
                .exit_code,
            0);
  ASSERT_EQ(job({"submit", "--no-wait", "--submission-id", "later", "--", "echo later"}).exit_code,
            0);
  int sleeper_pid = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        const json q = status("quick"), s = status("sleeper");
        sleeper_pid = s.value("driver_pid", 0);
        return q.value("status", "") == "RUNNING" && q.value("driver_pid", 0) > 0 &&
               status("later").value("status", "") == "PENDING" && sleeper_pid > 0 &&
               job({"logs", "counter"}).out.size() > 200;
      },
      milliseconds(15000)));

  const HeadProcess head = FindHead(c);
  ASSERT_GT(head.pid, 0);
  ASSERT_EQ(::kill(head.pid, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return !IsProcessAlive(head.pid); }, milliseconds(5000)));
  std::this_thread::sleep_for(milliseconds(2500));  // "quick" ends while no head runs
  auto r = c.Orrery({"start", "--head", "--resume", "--temp-dir", c.root()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  json counter;
  ASSERT_TRUE(Eventually(
      [&] {
        counter = status("counter");
        return counter.value("status", "") == "SUCCEEDED";
      },
      milliseconds(60000)))
      << counter.dump();
  const std::string log = job({"logs", "counter"}).out;
  if (log != expected) {
    size_t at = 0;
    while (at < log.size() && at < expected.size() && log[at] == expected[at]) ++at;
    const size_t from = expected.rfind('\n', at == 0 ? 0 : at - 1);
    FAIL() << "the log of a job that printed through the head's crash differs from line "
           << std::count(expected.begin(), expected.begin() + at, '\n') + 1 << ": expected '"
           << expected.substr(from == std::string::npos ? 0 : from + 1, 40) << "...', got '"
           << log.substr(from == std::string::npos ? 0 : from + 1, 80) << "...' (" << log.size()
           << " of " << expected.size() << " bytes)";
  }

  const json quick = status("quick");
  EXPECT_EQ(quick.value("status", ""), "FAILED") << quick.dump();
  EXPECT_EQ(quick.value("driver_exit_code", -1), 7) << quick.dump();
  EXPECT_EQ(job({"logs", "quick"}).out, "quick start\nquick end\n");
  json later;
  EXPECT_TRUE(Eventually(
      [&] {
        later = status("later");
        return later.value("status", "") == "SUCCEEDED";
      },
      milliseconds(20000)))
      << "a job that waited for a slot through the restart: " << later.dump();
  EXPECT_EQ(job({"logs", "later"}).out, "later\n");

  const json sleeper = status("sleeper");
  EXPECT_EQ(sleeper.value("status", ""), "RUNNING") << sleeper.dump();
  EXPECT_EQ(sleeper.value("driver_pid", 0), sleeper_pid) << "the driver was restarted";
  EXPECT_TRUE(IsProcessAlive(sleeper_pid));
  auto stop = job({"stop", "sleeper"});
  ASSERT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  EXPECT_EQ(status("sleeper").value("status", ""), "STOPPED");
  EXPECT_TRUE(Eventually([&] { return ::kill(-sleeper_pid, 0) != 0; }, milliseconds(10000)))
      << "the stopped driver's process group still exists";
  EXPECT_EQ(job({"logs", "sleeper"}).out, "sleeping\n");
}

// A node whose daemon died while no head ran (e.g. with the head's machine) is declared dead
// as soon as the resumed head finds nothing listening at its address, not after the 60 s
// reconnect grace; the nodes that live keep theirs and report again.
TEST(HeadFaultToleranceTest, ANodeGoneWhileTheHeadWasDownIsDeclaredDeadAtOnce) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("gone", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(c.NodeKnows("head", 2));
  const int gone_pid = c.Node("gone").value("pid", 0);
  ASSERT_GT(gone_pid, 0);
  const HeadProcess head = FindHead(c);
  ASSERT_GT(head.pid, 0);
  ASSERT_EQ(::kill(head.pid, SIGKILL), 0);
  ASSERT_EQ(::kill(gone_pid, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return !IsProcessAlive(head.pid) && !IsProcessAlive(gone_pid); },
                         milliseconds(5000)));
  const auto resumed = Clock::now();
  auto r = c.Orrery({"start", "--head", "--resume", "--temp-dir", c.root()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto state = [&](const std::string& id) {
    for (const auto& n : ListJson(c, "nodes")) {
      if (n.value("node_id", "") == id) return n.value("state", "");
    }
    return std::string();
  };
  ASSERT_TRUE(Eventually([&] { return state("gone") == "dead"; }, milliseconds(15000)))
      << "still " << state("gone") << " (the grace window is 60 s)";
  EXPECT_LT(Clock::now() - resumed, seconds(15));
  EXPECT_EQ(state("head"), "alive");
  // Recovery ends without waiting for the dead one (it never reports).
  const fs::path log = head.session / "logs" / "head.log";
  EXPECT_TRUE(Eventually([&] {
    return ReadAll(log).find("(1 declared dead instead)") != std::string::npos;
  })) << ReadAll(log);
}

// A clean stop clears the state: the next head of the same temp dir (a new session) starts
// empty instead of waiting for the old nodes.
TEST(HeadFaultToleranceTest, CleanStopStartsTheNextHeadEmpty) {
  LiveCluster c;
  ASSERT_EQ(c.StartHead("first", {"--num-cpus", "1"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return ListJson(c, "nodes").size() == 1; }));
  ASSERT_EQ(c.Orrery({"stop", "--temp-dir", c.root()}, milliseconds(15000)).exit_code, 0);
  auto r = c.Orrery({"start", "--head", "--port", std::to_string(FreePort()), "--temp-dir",
                     c.root(), "--node-name", "second", "--num-cpus", "1", "--dashboard-port",
                     "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] { return ListJson(c, "nodes").size() == 1; }));
  json nodes = ListJson(c, "nodes");
  ASSERT_EQ(nodes.size(), 1u) << nodes.dump();
  EXPECT_EQ(nodes[0].value("node_id", ""), "second");
}

}  // namespace
}  // namespace orrery::live

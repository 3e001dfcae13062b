// Logging pieces without daemons: the deduplicator (pure, time passed in), the tailer (partial
// lines, rotation, truncation), worker log file names, markers and rotation, the node's
// monitor over a directory, and the head's hub (bounded buffer for a slow subscriber) on an
// in-process head.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "live/common/log_dedup.h"
#include "live/head/log_hub.h"
#include "live/node/log_monitor.h"
#include "live/rpc/rpc_util.h"
#include "live/node/worker_log.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;

LogRecord Rec(const std::string& node, int pid, const std::string& text) {
  LogRecord r;
  r.node_id = node;
  r.pid = pid;
  r.name = "f";
  r.text = text;
  return r;
}

std::vector<std::string> Texts(const std::vector<LogRecord>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.text);
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::path(::testing::TempDir()) / "orrery_logs_XXXXXX").string();
    if (::mkdtemp(t.data()) != nullptr) path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void Append(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::app | std::ios::binary);
  f << s;
}

// ---- dedup -------------------------------------------------------------------------------

// Numbers are masked and blanks collapsed, so lines differing only there compare equal.
TEST(LogDedupTest, CanonicalFormMasksNumbers) {
  EXPECT_EQ(CanonicalLogLine("step 12 took 3.5 ms"), CanonicalLogLine("step 7 took  40.25 ms"));
  EXPECT_EQ(CanonicalLogLine("  a\t b  "), "a b");
  EXPECT_NE(CanonicalLogLine("loss up"), CanonicalLogLine("loss down"));
  EXPECT_EQ(CanonicalLogLine("   "), "");
}

// Ray's example: four workers print the same line -> the first at once, the other three held and
// printed once as "[repeated 3x across cluster]" when the window closes.
TEST(LogDedupTest, FourWorkersOneLinePrintOnceThenRepeatedCount) {
  LogDeduplicator d;
  EXPECT_EQ(Texts(d.Add(Rec("n1", 1, "hello"), 0.0)), std::vector<std::string>{"hello"});
  EXPECT_TRUE(d.Add(Rec("n1", 2, "hello"), 0.1).empty());
  EXPECT_TRUE(d.Add(Rec("n2", 1, "hello"), 0.2).empty());  // same pid, other node: other source
  EXPECT_TRUE(d.Add(Rec("n2", 4, "hello"), 0.3).empty());
  EXPECT_TRUE(d.Flush(4.9).empty());  // the window is still open
  const auto out = d.Flush(5.0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "hello [repeated 3x across cluster]");
  EXPECT_EQ(out[0].node_id, "n2");  // the last occurrence's source
  EXPECT_EQ(out[0].pid, 4);
  EXPECT_EQ(d.open_windows(), 0u);
}

// One worker repeating itself is not a cross-cluster repeat: every line prints.
TEST(LogDedupTest, SameWorkerRepeatsAreAllPrinted) {
  LogDeduplicator d;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(d.Add(Rec("n1", 7, "tick " + std::to_string(i)), i * 0.1).size(), 1u);
  }
  EXPECT_TRUE(d.Flush(100, true).empty());
}

// A line held once is printed as it was (no "[repeated 1x]"); with numbers masked, the held text
// is the last occurrence's.
TEST(LogDedupTest, SingleHeldLinePrintsAsItWas) {
  LogDeduplicator d;
  EXPECT_EQ(d.Add(Rec("n1", 1, "took 10 ms"), 0).size(), 1u);
  EXPECT_TRUE(d.Add(Rec("n1", 2, "took 12 ms"), 1).empty());
  EXPECT_EQ(Texts(d.Flush(0, /*all=*/true)), std::vector<std::string>{"took 12 ms"});
}

// After the window, the same line opens a new window and prints at once again; windows close in
// the order they opened.
TEST(LogDedupTest, WindowsExpireInOrder) {
  LogDeduplicator d(LogDedupOptions{.window_s = 1.0});
  d.Add(Rec("n", 1, "a"), 0.0);
  d.Add(Rec("n", 2, "a"), 0.1);
  d.Add(Rec("n", 3, "a"), 0.2);
  d.Add(Rec("n", 1, "b"), 0.5);
  d.Add(Rec("n", 2, "b"), 0.6);
  d.Add(Rec("n", 3, "b"), 0.7);
  // At 1.2 a's window is over: its summary comes before the new "a".
  EXPECT_EQ(Texts(d.Add(Rec("n", 9, "a"), 1.2)),
            (std::vector<std::string>{"a [repeated 2x across cluster]", "a"}));
  EXPECT_EQ(Texts(d.Flush(10)), std::vector<std::string>{"b [repeated 2x across cluster]"});
}

// Blank lines are never held.
TEST(LogDedupTest, BlankLinesAreNotDeduplicated) {
  LogDeduplicator d;
  EXPECT_EQ(d.Add(Rec("n", 1, ""), 0).size(), 1u);
  EXPECT_EQ(d.Add(Rec("n", 2, ""), 0).size(), 1u);
}

TEST(LogDedupTest, PrefixLeavesOutTheLocalNode) {
  LogRecord r = Rec("n2", 42, "hi");
  r.name = "Counter";
  EXPECT_EQ(FormatLogLine(r, "n1"), "(Counter pid=42, node=n2) hi");
  EXPECT_EQ(FormatLogLine(r, "n2"), "(Counter pid=42) hi");
  r.name.clear();
  EXPECT_EQ(FormatLogLine(r, "n2"), "(pid=42) hi");
}

// ---- tailer ------------------------------------------------------------------------------

// A partial last line waits for its newline; Finish hands it out.
TEST(LogTailerTest, PartialLinesWaitForTheirNewline) {
  TempDir t;
  const fs::path p = t.path() / "f.out";
  LogTailer tail(p.string());
  std::vector<std::string> lines;
  tail.Poll(&lines);  // no file yet: nothing
  EXPECT_TRUE(lines.empty());
  Append(p, "one\ntw");
  tail.Poll(&lines);
  EXPECT_EQ(lines, std::vector<std::string>{"one"});
  Append(p, "o\nthr");
  tail.Poll(&lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
  tail.Finish(&lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "thr"}));
}

// Rotation by rename: the old file's rest (even a write that raced the switch) comes before the
// new file's lines; nothing is read twice.
TEST(LogTailerTest, FollowsRotationWithoutLossOrRepeat) {
  TempDir t;
  const fs::path p = t.path() / "f.out";
  LogTailer tail(p.string());
  std::vector<std::string> lines;
  Append(p, "a1\na2\n");
  tail.Poll(&lines);
  Append(p, "a3\n");
  fs::rename(p, t.path() / "f.out.1");
  Append(t.path() / "f.out.1", "a4 late\n");  // raced the writer's switch
  Append(p, "b1\n");
  for (int i = 0; i < 4; ++i) tail.Poll(&lines);
  Append(t.path() / "f.out.1", "lost\n");  // after the old file was done: not followed
  Append(p, "b2\n");
  tail.Poll(&lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"a1", "a2", "a3", "a4 late", "b1", "b2"}));
}

// The writer rotating through LogRotator and the tailer together: every line exactly once.
TEST(LogTailerTest, WithLogRotatorEveryLineOnce) {
  TempDir t;
  const std::string p = (t.path() / "w.out").string();
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  LogRotator rot(p, fd, /*max_bytes=*/100, /*backups=*/2);
  LogTailer tail(p);
  std::vector<std::string> lines;
  int rotations = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string s = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
    if (i % 7 == 0) tail.Poll(&lines);
    auto r = rot.MaybeRotate();
    ASSERT_TRUE(r.ok());
    rotations += *r ? 1 : 0;
  }
  for (int i = 0; i < 3; ++i) tail.Poll(&lines);
  ::close(fd);
  EXPECT_GT(rotations, 10);
  ASSERT_EQ(lines.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(lines[i], "line " + std::to_string(i));
  // Two backups kept, the oldest dropped.
  EXPECT_TRUE(fs::exists(p + ".1"));
  EXPECT_TRUE(fs::exists(p + ".2"));
  EXPECT_FALSE(fs::exists(p + ".3"));
  EXPECT_LE(fs::file_size(p), 100u);
}

// Truncation in place (copytruncate) restarts from the beginning.
TEST(LogTailerTest, TruncatedFileIsReadFromTheStart) {
  TempDir t;
  const fs::path p = t.path() / "f.out";
  LogTailer tail(p.string());
  std::vector<std::string> lines;
  Append(p, "first line\n");
  tail.Poll(&lines);
  fs::resize_file(p, 0);
  Append(p, "new\n");
  tail.Poll(&lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"first line", "new"}));
}

// A line longer than the limit is cut into pieces; a poll reads at most max_bytes.
TEST(LogTailerTest, LongLinesAreCutAndReadsAreBounded) {
  TempDir t;
  const fs::path p = t.path() / "f.out";
  LogTailer tail(p.string(), /*max_line_bytes=*/4);
  std::vector<std::string> lines;
  Append(p, "abcdefghij\n");
  tail.Poll(&lines, /*max_bytes=*/6);
  EXPECT_TRUE(tail.backlog());
  tail.Poll(&lines);
  EXPECT_FALSE(tail.backlog());
  EXPECT_EQ(lines, (std::vector<std::string>{"abcd", "efgh", "ij"}));
}

// ---- worker log files ------------------------------------------------------------------------

TEST(WorkerLogTest, FileNamesRoundTrip) {
  const std::string n = WorkerLogFileName("0123abcd89abcdef", "job/1", 4242, false);
  EXPECT_EQ(n, "worker-0123abcd89abcdef-job_1-4242.out");
  auto info = ParseWorkerLogFileName(n);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->worker_id, "0123abcd89abcdef");
  EXPECT_EQ(info->job_id, "job_1");
  EXPECT_EQ(info->pid, 4242);
  EXPECT_FALSE(info->is_err);
  auto e = ParseWorkerLogFileName(WorkerLogFileName("ab", "driver-1f", 7, true));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->job_id, "driver-1f");
  EXPECT_TRUE(e->is_err);
  EXPECT_EQ(ParseWorkerLogFileName("worker-ab-none-7"), std::nullopt);
  EXPECT_EQ(ParseWorkerLogFileName("worker-ab-none-7.out.1"), std::nullopt);
  EXPECT_EQ(ParseWorkerLogFileName("worker-XY-none-7.out"), std::nullopt);
  EXPECT_EQ(ParseWorkerLogFileName("head.log"), std::nullopt);
  EXPECT_EQ(WorkerLogFileName("ab", "", 1, false), "worker-ab-none-1.out");
}

TEST(WorkerLogTest, MarkersParse) {
  std::string line = LogMarkerLine(LogMarker::Kind::kActorName, "Counter");
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  auto m = ParseLogMarker(line);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->kind, LogMarker::Kind::kActorName);
  EXPECT_EQ(m->value, "Counter");
  EXPECT_EQ(ParseLogMarker("task_name:x"), std::nullopt);
}

TEST(WorkerLogTest, BadSizeVariableIsAClearError) {
  ::setenv("ORRERY_TEST_LOG_BYTES", "12k", 1);
  auto r = LogBytesFromEnv("ORRERY_TEST_LOG_BYTES", 5);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ORRERY_TEST_LOG_BYTES"), std::string::npos);
  ::setenv("ORRERY_TEST_LOG_BYTES", "1024", 1);
  EXPECT_EQ(*LogBytesFromEnv("ORRERY_TEST_LOG_BYTES", 5), 1024u);
  ::unsetenv("ORRERY_TEST_LOG_BYTES");
  EXPECT_EQ(*LogBytesFromEnv("ORRERY_TEST_LOG_BYTES", 5), 5u);
}

// ---- monitor -------------------------------------------------------------------------------

// The monitor tails only its own tag's files, applies markers, and finishes the files of
// exited workers (flushing their partial last line).
TEST(LogMonitorTest, PublishesOwnWorkersLinesWithMarkers) {
  TempDir t;
  std::mutex mu;
  std::vector<LogBatchData> got;
  LogMonitorOptions o;
  o.dir = t.path().string();
  o.node_id = "n1";
  o.tag = "0000abcd";
  o.period = std::chrono::milliseconds(10000);  // driven by RunOnce below
  o.publish = [&](std::vector<LogBatchData> b) {
    std::lock_guard<std::mutex> l(mu);
    for (auto& x : b) got.push_back(std::move(x));
  };
  auto m = LogMonitor::Start(o);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const fs::path mine = t.path() / WorkerLogFileName("0000abcd00000001", "j/1", ::getpid(), false);
  const fs::path gone = t.path() / WorkerLogFileName("0000abcd00000002", "none", dead, true);
  const fs::path other = t.path() / WorkerLogFileName("ffff000000000003", "j1", ::getpid(), false);
  // The job marker carries the job id as given (the file name has it sanitised: j/1 -> j_1).
  Append(mine, ":job_id:j/1\nbefore\n:task_name:f\nin f\n:actor_name:Counter\nin Counter\n");
  Append(gone, "last words");
  Append(other, "not mine\n");
  (*m)->RunOnce();
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(got.size(), 4u);
  std::map<std::string, LogBatchData> by_line;
  for (auto& b : got) {
    ASSERT_EQ(b.lines.size(), 1u);
    EXPECT_EQ(b.node_id, "n1");
    by_line[b.lines[0]] = b;
  }
  EXPECT_EQ(by_line["before"].name, "");
  EXPECT_EQ(by_line["before"].job_id, "j/1");
  EXPECT_EQ(by_line["in f"].name, "f");
  EXPECT_EQ(by_line["in Counter"].name, "Counter");
  EXPECT_EQ(by_line["in Counter"].pid, ::getpid());
  EXPECT_EQ(by_line["last words"].pid, dead);
  EXPECT_TRUE(by_line["last words"].is_err);
  EXPECT_EQ(by_line["last words"].job_id, "");
  EXPECT_EQ(by_line.count("not mine"), 0u);
}

// ---- hub -----------------------------------------------------------------------------------

// The head's two logging rpcs over a hub with a small buffer (the head itself uses the defaults).
class HubService final : public v1::HeadService::CallbackService {
 public:
  explicit HubService(LogHubOptions o) : hub_(o) {}
  grpc::ServerUnaryReactor* PublishLogs(grpc::CallbackServerContext* ctx,
                                        const v1::PublishLogsRequest* req,
                                        v1::PublishLogsReply*) override {
    hub_.Publish(*req);
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerWriteReactor<v1::LogBatch>* SubscribeLogs(
      grpc::CallbackServerContext*, const v1::SubscribeLogsRequest* req) override {
    return hub_.Subscribe(req->job_id());
  }
  LogHub& hub() { return hub_; }

 private:
  LogHub hub_;
};

// A subscriber that does not read never stalls publishing; once it reads, it gets its job's
// lines, in order, the newest kept, plus a count of the oldest that were dropped.
TEST(LogHubTest, SlowSubscriberDropsOldestWithACount) {
  HubService service(LogHubOptions{.max_buffered_lines = 1000, .max_buffered_bytes = 1 << 20});
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  ASSERT_TRUE(server && port > 0);
  auto stub = v1::HeadService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext sub_ctx;
  sub_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::SubscribeLogsRequest sreq;
  sreq.set_job_id("j");
  auto reader = stub->SubscribeLogs(&sub_ctx, sreq);
  v1::LogBatch first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.lines_size(), 0);
  EXPECT_EQ(service.hub().num_subscriptions(), 1u);

  const std::string payload(200, 'x');
  const int kBatches = 500, kLines = 100;  // 50000 lines, 10 MB: beyond any transport window
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < kBatches; ++i) {
    v1::PublishLogsRequest req;
    for (const char* job : {"j", "other"}) {
      auto* batch = req.add_batches();
      batch->set_job_id(job);
      batch->set_pid(1);
      for (int k = 0; k < kLines; ++k) batch->add_lines(payload + std::to_string(i * kLines + k));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::PublishLogsReply rep;
    ASSERT_TRUE(stub->PublishLogs(&ctx, req, &rep).ok());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(20));

  int64_t lines = 0, dropped = 0, last = -1;
  bool ordered = true;
  v1::LogBatch batch;
  while (lines + dropped < kBatches * kLines && reader->Read(&batch)) {
    EXPECT_EQ(batch.job_id(), "j");
    dropped += batch.dropped_lines();
    for (const auto& l : batch.lines()) {
      const int64_t n = std::stoll(l.substr(payload.size()));
      ordered = ordered && n > last;
      last = n;
    }
    lines += batch.lines_size();
  }
  EXPECT_EQ(lines + dropped, kBatches * kLines);
  EXPECT_GT(dropped, 0);
  EXPECT_TRUE(ordered);
  EXPECT_EQ(last, kBatches * kLines - 1);  // the newest lines survive
  sub_ctx.TryCancel();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

// Limits in bytes count too: one batch bigger than the buffer keeps only its newest lines.
TEST(LogHubTest, OversizedBatchKeepsItsNewestLines) {
  HubService service(LogHubOptions{.max_buffered_lines = 1000, .max_buffered_bytes = 10});
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  ASSERT_TRUE(server && port > 0);
  auto stub = v1::HeadService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext sub_ctx;
  sub_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub->SubscribeLogs(&sub_ctx, v1::SubscribeLogsRequest());  // every job
  v1::LogBatch batch;
  ASSERT_TRUE(reader->Read(&batch));
  v1::PublishLogsRequest req;
  auto* pub = req.add_batches();
  pub->set_job_id("any");
  for (const char* l : {"aaaa", "bbbb", "cccc", "dddd"}) pub->add_lines(l);
  grpc::ClientContext ctx;
  v1::PublishLogsReply rep;
  ASSERT_TRUE(stub->PublishLogs(&ctx, req, &rep).ok());
  ASSERT_TRUE(reader->Read(&batch));
  EXPECT_EQ(batch.dropped_lines(), 2);
  ASSERT_EQ(batch.lines_size(), 2);
  EXPECT_EQ(batch.lines(0), "cccc");
  EXPECT_EQ(batch.lines(1), "dddd");
  sub_ctx.TryCancel();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace
}  // namespace orrery::live

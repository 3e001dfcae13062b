// The dashboard server (live/dashboard/http_server.h) and the live head's JSON API
// (live/dashboard/API.md): the server's auth flow, keep-alive, streams and assets against a
// server with a test handler; then every endpoint on a small live cluster (real daemons on
// 127.0.0.1) with a task, a job, an actor, a placement group, published log lines and events.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "live/client/client.h"
#include "live/dashboard/assets.h"
#include "live/dashboard/http_server.h"
#include "live/head/actor_directory.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using std::chrono::milliseconds;
using namespace test;

struct Reply {
  int status = -1;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
};

// A tiny HTTP/1.1 client over one TCP connection (keep-alive), for the tests.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    port_ = port;
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

  void Send(const std::string& method, const std::string& target,
            const std::vector<std::string>& headers = {}, const std::string& body = "") {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                      std::to_string(port_) + "\r\n";
    for (const auto& h : headers) req += h + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)::send(fd_, req.data(), req.size(), MSG_NOSIGNAL);
  }

  // Reads one reply with a Content-Length (or, for a stream, just its header).
  Reply Read(bool head_only = false) {
    Reply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    r.status = std::stoi(head.substr(head.find(' ') + 1, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos < head.size()) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos
                                                                               : next - pos - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      pos = next;
    }
    if (head_only) return r;
    const size_t len = r.headers.count("content-length")
                           ? std::stoul(r.headers["content-length"])
                           : 0;
    while (buf_.size() < len) {
      if (!Fill()) break;
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, std::min(len, buf_.size()));
    return r;
  }

  // Reads stream bytes until `needle` shows up (true) or `timeout` passes.
  bool ReadUntil(const std::string& needle, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    timeval tv{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (buf_.find(needle) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      char b[4096];
      const ssize_t n = ::recv(fd_, b, sizeof(b), 0);
      if (n == 0) return false;
      if (n > 0) buf_.append(b, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& buffered() const { return buf_; }

 private:
  bool Fill() {
    char b[65536];
    const ssize_t n = ::recv(fd_, b, sizeof(b), 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  int port_ = 0;
  std::string buf_;
};

Reply Once(int port, const std::string& method, const std::string& target,
           const std::vector<std::string>& headers = {}, const std::string& body = "") {
  Conn c(port);
  if (!c.ok()) return {};
  c.Send(method, target, headers, body);
  return c.Read();
}

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- the server alone ------------------------------------------------------------------------

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(bool read_only = false) {
    http::HttpServerOptions o;
    o.port = 0;
    o.token = "s3cret";
    o.read_only = read_only;
    o.login_hint = "run `orrery status` for the address";
    o.stream = [this](const http::Request& r, std::shared_ptr<http::EventSink> sink)
        -> std::optional<http::Response> {
      if (r.path != "/api/things/stream") return http::ErrorResponse(404, "no stream");
      sink_ = sink;
      return std::nullopt;
    };
    auto s = http::HttpServer::Start(o, [](const http::Request& r) {
      http::Response resp;
      resp.body = nlohmann::json{{"method", r.method}, {"path", r.path}, {"query", r.query},
                                 {"body", r.body}}
                      .dump();
      return resp;
    });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    port_ = server_->port();
  }
  std::unique_ptr<http::HttpServer> server_;
  std::shared_ptr<http::EventSink> sink_;
  int port_ = 0;
};

TEST_F(ServerTest, AuthFlow) {
  StartServer();
  // No token: JSON 401 for the API, an HTML page that says how to get in for pages.
  Reply api = Once(port_, "GET", "/api/x");
  EXPECT_EQ(api.status, 401);
  EXPECT_EQ(api.headers["content-type"], "application/json");
  EXPECT_TRUE(Has(api.body, "\"error\"")) << api.body;
  Reply page = Once(port_, "GET", "/jobs");
  EXPECT_EQ(page.status, 401);
  EXPECT_TRUE(Has(page.headers["content-type"], "text/html"));
  EXPECT_TRUE(Has(page.body, "orrery status")) << "the login hint is on the page";
  // Bearer.
  Reply bearer = Once(port_, "GET", "/api/x?a=1&b=%2F+c", {"Authorization: Bearer s3cret"});
  EXPECT_EQ(bearer.status, 200);
  auto j = nlohmann::json::parse(bearer.body);
  EXPECT_EQ(j["path"], "/api/x");
  EXPECT_EQ(j["query"]["b"], "/ c");
  // Wrong token.
  EXPECT_EQ(Once(port_, "GET", "/api/x", {"Authorization: Bearer nope"}).status, 401);
  EXPECT_EQ(Once(port_, "GET", "/api/x", {"Cookie: orrery_token=nope"}).status, 401);
  // ?token= on a page: 303 to the same address without it, the token as an HttpOnly cookie.
  Reply ex = Once(port_, "GET", "/jobs/abc?x=1&token=s3cret&y=2");
  EXPECT_EQ(ex.status, 303);
  EXPECT_EQ(ex.headers["location"], "/jobs/abc?x=1&y=2");
  const std::string cookie = ex.headers["set-cookie"];
  EXPECT_TRUE(Has(cookie, "orrery_token=s3cret")) << cookie;
  EXPECT_TRUE(Has(cookie, "HttpOnly"));
  EXPECT_TRUE(Has(cookie, "SameSite=Strict"));
  EXPECT_TRUE(Has(cookie, "Path=/"));
  EXPECT_FALSE(Has(cookie, "Secure")) << "plain HTTP: no Secure flag";
  EXPECT_EQ(Once(port_, "GET", "/?token=wrong").status, 401);
  // The cookie works for pages and the API.
  EXPECT_EQ(Once(port_, "GET", "/api/x", {"Cookie: a=b; orrery_token=s3cret"}).status, 200);
  Reply index = Once(port_, "GET", "/jobs/abc", {"Cookie: orrery_token=s3cret"});
  EXPECT_EQ(index.status, 200);
  EXPECT_TRUE(Has(index.headers["content-type"], "text/html"));
  // A state-changing request from another site's page: 403; from the dashboard's own: fine.
  Reply foreign = Once(port_, "POST", "/api/x",
                       {"Cookie: orrery_token=s3cret", "Origin: http://evil.example"}, "{}");
  EXPECT_EQ(foreign.status, 403);
  EXPECT_TRUE(Has(foreign.body, "evil.example"));
  Reply own = Once(port_, "POST", "/api/x",
                   {"Cookie: orrery_token=s3cret",
                    "Origin: http://127.0.0.1:" + std::to_string(port_)},
                   "{\"a\":1}");
  EXPECT_EQ(own.status, 200);
  EXPECT_TRUE(Has(own.body, "POST"));
  EXPECT_EQ(Once(port_, "PUT", "/api/x", {"Authorization: Bearer s3cret"}).status, 405);
  // Probes need no token.
  Reply health = Once(port_, "GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
}

TEST_F(ServerTest, KeepAliveAnswersTwoRequestsOnOneConnection) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.ok());
  c.Send("GET", "/api/one", {"Authorization: Bearer s3cret"});
  Reply a = c.Read();
  c.Send("GET", "/api/two", {"Authorization: Bearer s3cret"});
  Reply b = c.Read();
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(b.status, 200);
  EXPECT_TRUE(Has(a.body, "/api/one"));
  EXPECT_TRUE(Has(b.body, "/api/two"));
}

TEST_F(ServerTest, AssetsAndReadOnly) {
  StartServer(/*read_only=*/true);
  Reply html = Once(port_, "GET", "/assets/index.html", {"Authorization: Bearer s3cret"});
  EXPECT_EQ(html.status, 200);
  EXPECT_EQ(html.headers["content-type"], "text/html; charset=utf-8");
  for (const auto& a : dashboard::AllAssets()) {  // each with its type
    Reply r = Once(port_, "GET", "/assets/" + std::string(a.path), {"Authorization: Bearer s3cret"});
    EXPECT_EQ(r.status, 200) << a.path;
    EXPECT_EQ(r.headers["content-type"], a.content_type) << a.path;
    EXPECT_EQ(r.body.size(), a.body.size()) << a.path;
  }
  EXPECT_EQ(Once(port_, "GET", "/assets/nothing.js", {"Authorization: Bearer s3cret"}).status, 404);
  EXPECT_EQ(Once(port_, "GET", "/assets/index.html").status, 401);
  EXPECT_EQ(Once(port_, "GET", "/assets/../x", {"Authorization: Bearer s3cret"}).status, 400);
  // read_only: nothing but GET/HEAD.
  EXPECT_EQ(Once(port_, "POST", "/api/x", {"Authorization: Bearer s3cret"}, "{}").status, 405);
  EXPECT_EQ(Once(port_, "DELETE", "/api/x", {"Authorization: Bearer s3cret"}).status, 405);
  EXPECT_EQ(Once(port_, "GET", "/api/x", {"Authorization: Bearer s3cret"}).status, 200);
}

TEST_F(ServerTest, StreamDeliversEventsAndEndsOnStop) {
  StartServer();
  EXPECT_EQ(Once(port_, "GET", "/api/other/stream", {"Authorization: Bearer s3cret"}).status, 404);
  Conn c(port_);
  c.Send("GET", "/api/things/stream", {"Authorization: Bearer s3cret"});
  Reply head = c.Read(/*head_only=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "text/event-stream");
  for (int i = 0; i < 100 && !sink_; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(sink_);
  EXPECT_TRUE(sink_->Send("thing", "{\"n\": 1}"));
  EXPECT_TRUE(c.ReadUntil("event: thing\ndata: {\"n\": 1}\n\n", milliseconds(5000)))
      << c.buffered();
  server_->Stop();
  EXPECT_FALSE(sink_->Send("thing", "{}")) << "a stopped server's streams are closed";
  EXPECT_TRUE(sink_->closed());
}

// ---- the live head -----------------------------------------------------------------------------

class DashboardLiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new LiveCluster();
    auto r = cluster_->StartHead("head", {"--num-cpus", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Has(r.out, "Dashboard: http://")) << r.out;
    EXPECT_TRUE(Has(r.out, "/?token=" + cluster_->Token())) << r.out;
    auto s = LatestSession(cluster_->root());
    ASSERT_TRUE(s.ok());
    auto addr = ReadFileTrimmed(*s / "dashboard_address");
    ASSERT_TRUE(addr.ok());
    port_ = std::stoi(addr->substr(addr->rfind(':') + 1));
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static Reply Get(const std::string& target) {
    return Once(port_, "GET", target, {"Authorization: Bearer " + cluster_->Token()});
  }
  static nlohmann::json GetJson(const std::string& target, int want = 200) {
    Reply r = Get(target);
    EXPECT_EQ(r.status, want) << target << ": " << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << target << ": " << r.body;
    return j;
  }
  static void ExpectKeys(const nlohmann::json& j, const std::vector<std::string>& keys,
                         const std::string& what) {
    for (const auto& k : keys) EXPECT_TRUE(j.contains(k)) << what << " lacks " << k << ": " << j;
  }
  static void ExpectList(const nlohmann::json& j, const std::string& what) {
    ExpectKeys(j, {"total", "offset", "limit", "items"}, what);
    EXPECT_TRUE(j["items"].is_array()) << what;
  }
  static LiveCluster* cluster_;
  static int port_;
};
LiveCluster* DashboardLiveTest::cluster_ = nullptr;
int DashboardLiveTest::port_ = 0;

TEST_F(DashboardLiveTest, EveryEndpointOnASmallCluster) {
  const std::string token = cluster_->Token();
  // A task, a job (whose entrypoint runs a task of its own), an actor, a placement group.
  auto task = cluster_->Orrery({"task", "run", "--temp-dir", cluster_->root(), "--", "echo", "hi"});
  ASSERT_EQ(task.exit_code, 0) << task.err;
  Reply sub = Once(port_, "POST", "/api/jobs/", {"Authorization: Bearer " + token},
                   nlohmann::json{{"entrypoint", std::string(ORRERY_BINARY) +
                                                     " task run -- echo from-the-job"},
                                  {"submission_id", "dash-job"}}
                       .dump());
  ASSERT_EQ(sub.status, 200) << sub.body;
  v1::ActorInfo actor;
  actor.set_actor_id("dash-actor");
  actor.set_class_name("Counter::Create");
  actor.set_job_id("dash-job");
  actor.set_state(v1::ACTOR_STATE_ALIVE);
  actor.set_max_restarts(1);
  ASSERT_TRUE(ReportActor(cluster_->address(), token, actor).ok());
  v1::CreatePlacementGroupRequest pg;
  pg.set_group_id("dash-pg");
  pg.set_strategy("PACK");
  (*pg.add_bundles()->mutable_raw())["CPU"] = 10000;
  ASSERT_TRUE(HeadClient(cluster_->address(), token).CreatePlacementGroup(pg).ok());
  ASSERT_TRUE(Eventually(
      [&] { return GetJson("/api/jobs/dash-job").value("status", "") == "SUCCEEDED"; },
      milliseconds(30000)));

  auto mode = GetJson("/api/mode");
  EXPECT_EQ(mode["mode"], "live");
  EXPECT_EQ(mode["head_address"], cluster_->address());
  EXPECT_EQ(mode["read_only"], false);

  nlohmann::json ov;
  ASSERT_TRUE(Eventually(
      [&] {
        ov = GetJson("/api/overview");
        return ov["tasks"].value("finished", 0) >= 2 && ov["placement_groups"].value("CREATED", 0) == 1;
      },
      milliseconds(10000)))
      << ov;
  ExpectKeys(ov, {"nodes", "resources", "tasks", "jobs", "actors", "placement_groups", "autoscaler",
                  "events"},
             "overview");
  EXPECT_EQ(ov["nodes"]["alive"], 1);
  EXPECT_EQ(ov["resources"]["CPU"]["total"], 2.0);
  EXPECT_EQ(ov["jobs"]["succeeded"], 1);
  EXPECT_EQ(ov["actors"]["ALIVE"], 1);
  EXPECT_EQ(ov["autoscaler"]["enabled"], false);

  auto nodes = GetJson("/api/nodes");
  ExpectList(nodes, "nodes");
  ASSERT_EQ(nodes["total"], 1);
  const auto& n = nodes["items"][0];
  ExpectKeys(n, {"node_id", "address", "state", "is_head_node", "labels", "pid", "resources", "gpus",
                 "workers", "envs_cached", "ms_since_heartbeat", "metrics_address"},
             "node row");
  EXPECT_EQ(n["node_id"], "head");
  EXPECT_EQ(n["state"], "ALIVE");
  auto node = GetJson("/api/nodes/head");
  ExpectKeys(node, {"workers", "envs", "log_files"}, "node detail");
  EXPECT_TRUE(node["workers"].is_array()) << node;
  EXPECT_FALSE(node.contains("detail_error")) << node;
  EXPECT_FALSE(node["log_files"].empty()) << "the node's own daemon log: " << node;
  GetJson("/api/nodes/nope", 404);

  auto tasks = GetJson("/api/tasks");
  ExpectList(tasks, "tasks");
  EXPECT_GE(tasks["total"].get<int>(), 3) << "the task, the job's driver lease and its task";
  ExpectKeys(tasks["items"][0], {"task_id", "name", "job_id", "node_id", "state", "wait_reason",
                                 "wait_detail", "attempt", "spillbacks", "resources", "submit_ms",
                                 "start_ms", "end_ms", "exit_code", "error"},
             "task row");
  EXPECT_GE(tasks["by_state"]["finished"].get<int>(), 2);
  auto job_tasks = GetJson("/api/tasks?job_id=dash-job");
  EXPECT_GE(job_tasks["total"].get<int>(), 1) << "the job's own task carries its job id";
  for (const auto& t : job_tasks["items"]) EXPECT_EQ(t["job_id"], "dash-job");
  // Newest first, and pages.
  auto page1 = GetJson("/api/tasks?limit=1");
  auto page2 = GetJson("/api/tasks?limit=1&offset=1");
  ASSERT_EQ(page1["items"].size(), 1u);
  ASSERT_EQ(page2["items"].size(), 1u);
  EXPECT_NE(page1["items"][0]["task_id"], page2["items"][0]["task_id"]);
  EXPECT_GE(page1["items"][0]["submit_ms"].get<int64_t>(),
            page2["items"][0]["submit_ms"].get<int64_t>());

  auto actors = GetJson("/api/actors?state=ALIVE");
  ExpectList(actors, "actors");
  ASSERT_EQ(actors["total"], 1);
  ExpectKeys(actors["items"][0], {"actor_id", "class_name", "job_id", "node_id", "worker_pid",
                                  "state", "num_restarts", "max_restarts", "death_cause", "driver",
                                  "update_ms"},
             "actor row");
  auto groups = GetJson("/api/placement_groups?q=DASH");
  ExpectList(groups, "groups");
  ASSERT_EQ(groups["total"], 1);
  EXPECT_EQ(groups["items"][0]["state"], "CREATED");
  EXPECT_EQ(groups["items"][0]["bundles"][0]["node_id"], "head");
  auto jobs = GetJson("/api/job_list?status=SUCCEEDED");
  ExpectList(jobs, "job_list");
  ASSERT_EQ(jobs["total"], 1);
  EXPECT_EQ(jobs["items"][0]["submission_id"], "dash-job");
  EXPECT_TRUE(GetJson("/api/jobs/").is_array()) << "Ray's list stays a plain array";

  nlohmann::json events;
  ASSERT_TRUE(Eventually(
      [&] {
        events = GetJson("/api/events?limit=1000");
        std::set<std::string> kinds;
        for (const auto& e : events["items"]) kinds.insert(e["kind"]);
        return kinds.count("node_joined") && kinds.count("job_submitted") &&
               kinds.count("job_finished") && kinds.count("placement_group_created");
      },
      milliseconds(10000)))
      << events;
  ExpectKeys(events["items"][0], {"seq", "time_ms", "severity", "kind", "message"}, "event");
  EXPECT_EQ(GetJson("/api/events?kind=node_joined")["total"], 1);

  nlohmann::json metrics;
  ASSERT_TRUE(Eventually(
      [&] {
        metrics = GetJson("/api/metrics?names=orrery_nodes,orrery_node_utilization");
        return metrics["series"].size() >= 4;  // three node states and the head node's CPU
      },
      milliseconds(10000)))
      << metrics;
  ExpectKeys(metrics, {"interval_s", "series", "histograms"}, "metrics");
  for (const auto& s : metrics["series"]) {
    EXPECT_TRUE(s["metric"] == "orrery_nodes" || s["metric"] == "orrery_node_utilization") << s;
    EXPECT_FALSE(s["points"].empty());
  }

  // The nodes' scheduling latency, added up from their heartbeats (leases were granted above),
  // and each node's runtime-env cache bytes.
  nlohmann::json lat;
  ASSERT_TRUE(Eventually(
      [&] {
        lat = GetJson(
            "/api/metrics?names=orrery_scheduling_latency_seconds,orrery_runtime_env_cache_bytes");
        return lat["histograms"].size() == 1 &&
               lat["histograms"][0]["count"].get<uint64_t>() >= 1 && !lat["series"].empty();
      },
      milliseconds(10000)))
      << lat;
  const auto& hist = lat["histograms"][0];
  EXPECT_EQ(hist["metric"], "orrery_scheduling_latency_seconds");
  EXPECT_EQ(hist["buckets"].back()["le"], "+Inf") << hist;
  EXPECT_EQ(hist["buckets"].back()["count"], hist["count"]) << hist;
  for (const auto& s : lat["series"]) EXPECT_EQ(s["metric"], "orrery_runtime_env_cache_bytes");

  // Log files: the node's own, read back; a path is refused.
  auto files = GetJson("/api/logs/files?node_id=head");
  ExpectList(files, "log files");
  std::string daemon_log;
  for (const auto& f : files["items"]) {
    if (f["kind"] == "daemon") daemon_log = f["name"];
  }
  ASSERT_FALSE(daemon_log.empty()) << files;
  auto text = GetJson("/api/logs/file?node_id=head&name=" + daemon_log + "&tail=5");
  ExpectKeys(text, {"text", "offset", "next_offset", "size", "truncated"}, "log file");
  EXPECT_FALSE(text["text"].get<std::string>().empty());
  auto grep = GetJson("/api/logs/file?node_id=head&name=" + daemon_log + "&q=registered");
  EXPECT_TRUE(Has(grep["text"], "registered")) << grep;
  auto trav = GetJson("/api/logs/file?node_id=head&name=..%2Ftoken", 400);
  EXPECT_TRUE(Has(trav.value("error", ""), "name")) << trav;
  GetJson("/api/logs/file?node_id=head&name=head.log", 404);  // not the node's file
  // The head's own log, read by the head.
  auto head_files = GetJson("/api/logs/files?node_id=_head");
  ASSERT_EQ(head_files["total"], 1) << head_files;
  EXPECT_EQ(head_files["items"][0]["name"], "head.log");
  auto head_log = GetJson("/api/logs/file?node_id=_head&name=head.log&q=dashboard");
  EXPECT_TRUE(Has(head_log["text"], "dashboard and jobs API at")) << head_log;
  GetJson("/api/logs/file?node_id=_head&name=token", 404);
  // A finished job's log as a stream: all of it, then the end.
  Conn job_log(port_);
  job_log.Send("GET", "/api/jobs/dash-job/logs/stream", {"Authorization: Bearer " + token});
  EXPECT_EQ(job_log.Read(true).status, 200);
  EXPECT_TRUE(job_log.ReadUntil("\"complete\":true", milliseconds(5000))) << job_log.buffered();
  EXPECT_TRUE(Has(job_log.buffered(), "from-the-job")) << job_log.buffered();
  // An actor's death is an event.
  actor.set_state(v1::ACTOR_STATE_DEAD);
  actor.set_death_cause("killed by the test");
  ASSERT_TRUE(ReportActor(cluster_->address(), token, actor).ok());
  nlohmann::json died;
  EXPECT_TRUE(Eventually(
      [&] {
        died = GetJson("/api/events?kind=actor_died");
        return died["total"] == 1;
      },
      milliseconds(5000)))
      << died;
  if (died["total"] == 1) {
    EXPECT_EQ(died["items"][0]["actor_id"], "dash-actor");
    EXPECT_EQ(died["items"][0]["severity"], "ERROR");
    EXPECT_TRUE(Has(died["items"][0]["message"], "killed by the test"));
  }
  auto driver = GetJson("/api/logs/files?job_id=dash-job");
  bool has_driver = false;
  for (const auto& f : driver["items"]) has_driver |= f["kind"] == "driver";
  EXPECT_TRUE(has_driver) << driver;
}

TEST_F(DashboardLiveTest, BadParametersAndUnknownIds) {
  struct Case {
    std::string target;
    int status;
    std::string names;
  };
  for (const Case& c : std::vector<Case>{
           {"/api/tasks?limit=0", 400, "limit"},
           {"/api/tasks?limit=1001", 400, "limit"},
           {"/api/tasks?offset=-1", 400, "offset"},
           {"/api/tasks?offset=abc", 400, "offset"},
           {"/api/tasks?state=sleeping", 400, "state"},
           {"/api/tasks?colour=red", 400, "colour"},
           {"/api/nodes?state=alive", 400, "state"},
           {"/api/actors?state=GONE", 400, "state"},
           {"/api/placement_groups?state=x", 400, "state"},
           {"/api/job_list?status=DONE", 400, "status"},
           {"/api/events?kind=party", 400, "kind"},
           {"/api/events?after=x", 400, "after"},
           {"/api/metrics?names=orrery_bogus", 400, "names"},
           {"/api/metrics?since=yesterday", 400, "since"},
           {"/api/logs/file?node_id=head", 400, "name"},
           {"/api/logs/file?name=x", 400, "node_id"},
           {"/api/logs/file?node_id=head&name=x&limit=0", 400, "limit"},
           {"/api/logs/files?node_id=nope", 404, "nope"},
           {"/api/logs/file?node_id=nope&name=x", 404, "nope"},
           {"/api/logs/files?job_id=nope", 404, "nope"},
           {"/api/jobs/nope", 404, "nope"},
           {"/api/nodes/nope", 404, "nope"},
           {"/api/nothing", 404, "nothing"},
       }) {
    Reply r = Get(c.target);
    EXPECT_EQ(r.status, c.status) << c.target << ": " << r.body;
    EXPECT_TRUE(Has(r.body, c.names)) << c.target << " should name " << c.names << ": " << r.body;
  }
  Reply post = Once(port_, "POST", "/api/tasks", {"Authorization: Bearer " + cluster_->Token()});
  EXPECT_EQ(post.status, 405);
}

TEST_F(DashboardLiveTest, StreamsDeliverAPublishedLogLineAndANodeJoinedEvent) {
  const std::string token = cluster_->Token();
  Conn logs(port_);
  logs.Send("GET", "/api/logs/stream?job_id=stream-job", {"Authorization: Bearer " + token});
  EXPECT_EQ(logs.Read(true).status, 200);
  Conn events(port_);
  events.Send("GET", "/api/events/stream", {"Authorization: Bearer " + token});
  EXPECT_EQ(events.Read(true).status, 200);
  // A line as a node's log monitor publishes it.
  auto stub = v1::HeadService::NewStub(OpenChannel(cluster_->address()));
  grpc::ClientContext ctx;
  AttachToken(&ctx, token);
  v1::PublishLogsRequest req;
  auto* b = req.add_batches();
  b->set_node_id("head");
  b->set_pid(4242);
  b->set_job_id("stream-job");
  b->add_lines("hello from a worker of stream-job");
  v1::PublishLogsReply rep;
  ASSERT_TRUE(stub->PublishLogs(&ctx, req, &rep).ok());
  EXPECT_TRUE(logs.ReadUntil("hello from a worker of stream-job", milliseconds(2000)))
      << "published lines reach the stream within 2 s: " << logs.buffered();
  EXPECT_TRUE(Has(logs.buffered(), "event: log"));
  // A node joins.
  auto node = cluster_->AddNode("joiner", {"--num-cpus", "1"});
  ASSERT_EQ(node.exit_code, 0) << node.err;
  EXPECT_TRUE(events.ReadUntil("\"node_id\":\"joiner\"", milliseconds(5000)))
      << events.buffered();
  EXPECT_TRUE(Has(events.buffered(), "event: event"));
  EXPECT_TRUE(Has(events.buffered(), "node_joined"));
  // Bad stream parameters are answered before the stream opens.
  EXPECT_EQ(Get("/api/logs/stream?color=1").status, 400);
  EXPECT_EQ(Get("/api/jobs/nope/logs/stream").status, 404);
  EXPECT_EQ(Get("/api/events/streams").status, 404);
  Reply job_named_stream = Get("/api/jobs/stream");  // a job id, not a stream
  EXPECT_EQ(job_named_stream.status, 404);
  EXPECT_TRUE(Has(job_named_stream.body, "stream")) << job_named_stream.body;
}

TEST_F(DashboardLiveTest, StatusPrintsTheDashboardAddressWithoutTheToken) {
  auto r = cluster_->Orrery({"status", "--temp-dir", cluster_->root()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "Dashboard: http://127.0.0.1:" + std::to_string(port_) + "/")) << r.out;
  EXPECT_FALSE(Has(r.out, cluster_->Token())) << r.out;
}

}  // namespace
}  // namespace orrery::live

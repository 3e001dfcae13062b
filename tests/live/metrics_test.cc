// Prometheus metrics of the live daemons (live/common/metrics.h, DESIGN section 7): the endpoint and
// target-list pieces on their own, a live two-node cluster scraped over HTTP by this test, and
// the real `prometheus` server (Debian package) scraping the cluster through the head's file_sd
// target list. Every wait is bounded; daemons and prometheus are always stopped.
#include "live/common/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/live/live_cluster.h"

extern char** environ;

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;

// ---- small HTTP and Prometheus-text helpers -----------------------------------------------------

// GET http://HOST:PORT/PATH with HTTP/1.0 (the server closes the connection); the body, or
// nullopt on any failure or a non-200 status. Bounded by `timeout` per socket operation.
std::optional<std::string> HttpGet(const std::string& address, const std::string& path,
                                   milliseconds timeout = milliseconds(3000)) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string host = address.substr(0, colon);
  const int port = std::atoi(address.c_str() + colon + 1);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &a.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string resp;
  char buf[8192];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const auto body = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12 || resp.substr(9, 3) != "200" ||
      body == std::string::npos) {
    return std::nullopt;
  }
  return resp.substr(body + 4);
}

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// One sample of the Prometheus text format.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> ParseText(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) continue;
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        const size_t q1 = line.find('"', eq);
        const size_t q2 = line.find('"', q1 + 1);  // our values have no escaped quotes
        if (eq == std::string::npos || q1 == std::string::npos || q2 == std::string::npos) break;
        s.labels[line.substr(i, eq - i)] = line.substr(q1 + 1, q2 - q1 - 1);
        i = q2 + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      i = line.find(' ', i);
    }
    if (i == std::string::npos) continue;
    s.value = std::strtod(line.c_str() + i + 1, nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

// Sum of the samples named `name` whose labels include all of `match`; nullopt if none.
std::optional<double> Sum(const std::vector<Sample>& samples, const std::string& name,
                          const std::map<std::string, std::string>& match = {}) {
  std::optional<double> total;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok = ok && it != s.labels.end() && it->second == v;
    }
    if (ok) total = total.value_or(0) + s.value;
  }
  return total;
}

std::vector<Sample> Scrape(const std::string& address) {
  auto body = HttpGet(address, "/metrics");
  return body ? ParseText(*body) : std::vector<Sample>();
}

// The head's target list, parsed; an empty array if unreadable.
json Targets(LiveCluster& c) {
  auto s = LatestSession(c.root());
  if (!s.ok()) return json::array();
  auto text = ReadFileTrimmed(*s / "metrics" / "prometheus_targets.json");
  if (!text.ok()) return json::array();
  json j = json::parse(*text, nullptr, false);
  return j.is_array() ? j : json::array();
}

// address of the target labelled orrery_role=`role` (and orrery_node=`node` if given).
std::string TargetOf(const json& targets, const std::string& role, const std::string& node = "") {
  for (const auto& t : targets) {
    const json& l = t.value("labels", json::object());
    if (l.value("orrery_role", "") == role &&
        (node.empty() || l.value("orrery_node", "") == node)) {
      return t["targets"][0].get<std::string>();
    }
  }
  return "";
}

// ---- the pieces on their own --------------------------------------------------------------------

// Port 0 gets a real port; a second endpoint on a taken port fails with a clear error.
TEST(MetricsEndpointTest, OsChosenPortAndTakenPortIsAnError) {
  auto a = MetricsEndpoint::Start("127.0.0.1", 0, "127.0.0.1");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_GT((*a)->port(), 0);
  EXPECT_EQ((*a)->address(), "127.0.0.1:" + std::to_string((*a)->port()));
  auto b = MetricsEndpoint::Start("127.0.0.1", (*a)->port(), "127.0.0.1");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(b.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos)
      << b.status().ToString();
  EXPECT_FALSE(MetricsEndpoint::Start("127.0.0.1", 70000, "x").ok());
}

// Node families carry node="<id>"; replacing a set drops series that went away; the eviction
// counter only moves forward.
TEST(MetricsEndpointTest, NodeFamiliesServeTheDesignNames) {
  auto e = MetricsEndpoint::Start("127.0.0.1", 0, "127.0.0.1");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  NodeMetrics m((*e)->registry(), "n1");
  m.SetTasks({{"finished", 3}, {"running", 1}});
  m.SetResources({{"CPU", {1, 3}}, {"special", {0, 1}}});
  m.SetResources({{"CPU", {2, 2}}});
  m.SetGpuUtilization({0.5, 0});
  m.AddSpillbacks(2);
  m.ObserveSchedulingLatency(0.002);
  m.SetRuntimeEnvCache(100, 4);
  m.SetRuntimeEnvCache(50, 3);  // a stale count never moves the counter back
  const auto s = Scrape((*e)->address());
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(Sum(s, "orrery_tasks", {{"node", "n1"}, {"state", "finished"}}), 3.0);
  EXPECT_EQ(Sum(s, "orrery_resources", {{"node", "n1"}, {"name", "CPU"}, {"state", "used"}}), 2.0);
  EXPECT_EQ(Sum(s, "orrery_resources", {{"name", "CPU"}, {"state", "available"}}), 2.0);
  EXPECT_EQ(Sum(s, "orrery_resources", {{"name", "special"}}), std::nullopt);
  EXPECT_EQ(Sum(s, "orrery_node_gpus_utilization", {{"gpu", "0"}}), 0.5);
  EXPECT_EQ(Sum(s, "orrery_spillbacks_total", {{"node", "n1"}}), 2.0);
  EXPECT_EQ(Sum(s, "orrery_scheduling_latency_seconds_count"), 1.0);
  EXPECT_EQ(Sum(s, "orrery_scheduling_latency_seconds_bucket", {{"le", "+Inf"}}), 1.0);
  EXPECT_EQ(Sum(s, "orrery_runtime_env_cache_bytes"), 50.0);
  EXPECT_EQ(Sum(s, "orrery_runtime_env_cache_evictions_total"), 4.0);
  for (const auto& x : s) {
    if (x.name.rfind("orrery_", 0) == 0) {
      EXPECT_EQ(x.labels.count("node"), 1u) << x.name;
    }
  }
}

// The file_sd list: the documented JSON shape, rewritten atomically; a private dir when there is
// no session dir, removed with the writer.
TEST(MetricsTargetsWriterTest, WritesFileSdJson) {
  EXPECT_EQ(json::parse(MetricsTargetsWriter::Render(
                {{"127.0.0.1:1", {{"orrery_role", "head"}}},
                 {"127.0.0.1:2", {{"orrery_role", "node"}, {"orrery_node", "b"}}}})),
            json::parse(R"([{"targets": ["127.0.0.1:1"], "labels": {"orrery_role": "head"}},
                            {"targets": ["127.0.0.1:2"],
                             "labels": {"orrery_node": "b", "orrery_role": "node"}}])"));
  fs::path path;
  {
    auto w = MetricsTargetsWriter::Open("");
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    path = (*w)->path();
    EXPECT_EQ(path.filename(), "prometheus_targets.json");
    EXPECT_EQ(path.parent_path().filename(), "metrics");
    (*w)->Update({{"127.0.0.1:9", {}}});
    ASSERT_TRUE(Eventually([&] { return fs::exists(path); }));
    EXPECT_EQ(json::parse(*ReadFileTrimmed(path))[0]["targets"][0], "127.0.0.1:9");
  }
  EXPECT_FALSE(fs::exists(path.parent_path().parent_path()));
}

// ---- a live cluster, scraped by this test -------------------------------------------------------

// Two nodes run tasks: the node endpoints count them (finished, failed, spillbacks, latency),
// resources are all available once idle, the head counts nodes by state and type, and a node
// that dies leaves the target list.
TEST(LiveMetricsTest, TwoNodeClusterServesDesignNamesAndTargets) {
  LiveCluster c;
  auto h = c.StartHead("a", {"--num-cpus", "2"});
  ASSERT_EQ(h.exit_code, 0) << h.out << h.err;
  EXPECT_NE(h.out.find("metrics: http://127.0.0.1:"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("prometheus_targets.json"), std::string::npos) << h.out;
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "2", "--num-gpus", "2", "--resources",
                            R"({"special": 1})", "--labels", R"({"node_type": "big"})"})
                .exit_code,
            0);
  ASSERT_TRUE(Eventually([&] { return Targets(c).size() == 3; }, milliseconds(5000)))
      << Targets(c).dump();
  const json targets = Targets(c);
  const std::string head = TargetOf(targets, "head");
  const std::string a = TargetOf(targets, "node", "a");
  const std::string b = TargetOf(targets, "node", "b");
  ASSERT_FALSE(head.empty() || a.empty() || b.empty()) << targets.dump();
  EXPECT_EQ(c.Node("b").value("metrics_address", ""), b);
  auto status = c.Orrery({"status", "--temp-dir", c.root()});
  // The head's own endpoint first (issue 11.14: it was printed nowhere), then each node's.
  EXPECT_NE(status.out.find("Metrics (Prometheus):\n  head: http://" + head + "/metrics\n  a: http://" +
                            a + "/metrics\n  b: http://" + b + "/metrics\n"),
            std::string::npos)
      << status.out;

  // Idle: everything available, nothing used.
  for (const auto& [node, addr] : {std::pair{"a", a}, std::pair{"b", b}}) {
    ASSERT_TRUE(Eventually([&] {
      return Sum(Scrape(addr), "orrery_resources",
                 {{"node", node}, {"name", "CPU"}, {"state", "available"}}) == 2.0;
    })) << Scrape(addr).size();
    const auto s = Scrape(addr);
    EXPECT_EQ(Sum(s, "orrery_resources", {{"name", "CPU"}, {"state", "used"}}), 0.0);
    EXPECT_EQ(Sum(s, "orrery_node_cpu_utilization", {{"node", node}}), 0.0);
  }
  // One series per GPU device of b (none on a), idle.
  EXPECT_EQ(Sum(Scrape(b), "orrery_node_gpus_utilization", {{"gpu", "0"}}), 0.0);
  EXPECT_EQ(Sum(Scrape(b), "orrery_node_gpus_utilization", {{"gpu", "1"}}), 0.0);
  EXPECT_EQ(Sum(Scrape(b), "orrery_node_gpus_utilization", {{"gpu", "2"}}), std::nullopt);
  EXPECT_EQ(Sum(Scrape(a), "orrery_node_gpus_utilization"), std::nullopt);

  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "true"}).exit_code, 0);
  }
  EXPECT_EQ(c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "false"}).exit_code, 1);
  // Only b has `special`: entered at a, spilled to b.
  ASSERT_EQ(c.Orrery({"task", "run", "--temp-dir", c.root(), "--resources", R"({"special": 1})",
                      "--", "true"})
                .exit_code,
            0);

  auto both = [&](const std::string& name, const std::map<std::string, std::string>& m) {
    return Sum(Scrape(a), name, m).value_or(0) + Sum(Scrape(b), name, m).value_or(0);
  };
  EXPECT_TRUE(Eventually([&] {
    return both("orrery_tasks", {{"state", "finished"}}) == 4.0;
  })) << both("orrery_tasks", {{"state", "finished"}});
  EXPECT_TRUE(Eventually([&] { return both("orrery_tasks", {{"state", "failed"}}) == 1.0; }));
  EXPECT_EQ(Sum(Scrape(b), "orrery_tasks", {{"node", "b"}, {"state", "finished"}}), 1.0);
  EXPECT_EQ(Sum(Scrape(a), "orrery_spillbacks_total", {{"node", "a"}}), 1.0);
  EXPECT_EQ(both("orrery_scheduling_latency_seconds_count", {}), 5.0);
  EXPECT_EQ(both("orrery_tasks", {{"state", "running"}}), 0.0);
  EXPECT_EQ(Sum(Scrape(b), "orrery_resources", {{"name", "special"}, {"state", "available"}}), 1.0);
  EXPECT_EQ(Sum(Scrape(a), "orrery_runtime_env_cache_bytes"), 0.0);
  EXPECT_EQ(Sum(Scrape(a), "orrery_scheduler_unschedulable_tasks", {{"reason", "infeasible"}}),
            0.0);

  const auto hs = Scrape(head);
  EXPECT_EQ(Sum(hs, "orrery_nodes", {{"state", "alive"}}), 2.0);
  EXPECT_EQ(Sum(hs, "orrery_autoscaler_active_nodes", {{"node_type", "default"}}), 1.0);
  EXPECT_EQ(Sum(hs, "orrery_autoscaler_active_nodes", {{"node_type", "big"}}), 1.0);
  EXPECT_EQ(Sum(hs, "orrery_autoscaler_pending_nodes", {{"node_type", "big"}}), 0.0);
  EXPECT_EQ(Sum(hs, "orrery_placement_groups", {{"state", "created"}}), 0.0);

  // A placement group: counted by state on the head; its bundles show up as resources on the
  // nodes, and leave them again when the group is removed.
  HeadClient client(c.address(), c.Token());
  v1::CreatePlacementGroupRequest g;
  g.set_group_id("g1");
  g.set_strategy("STRICT_SPREAD");
  for (int i = 0; i < 2; ++i) (*g.add_bundles()->mutable_raw())["CPU"] = 10000;
  ASSERT_TRUE(client.CreatePlacementGroup(g).ok());
  EXPECT_TRUE(Eventually([&] {
    return Sum(Scrape(head), "orrery_placement_groups", {{"state", "created"}}) == 1.0;
  })) << Sum(Scrape(head), "orrery_placement_groups", {{"state", "pending"}}).value_or(-1);
  EXPECT_TRUE(Eventually([&] {
    return both("orrery_resources", {{"name", "CPU"}, {"state", "used"}}) == 2.0 &&
           both("orrery_resources", {{"name", "CPU_group_g1"}, {"state", "available"}}) == 2.0;
  })) << both("orrery_resources", {{"name", "CPU"}, {"state", "used"}});
  ASSERT_TRUE(client.RemovePlacementGroup("g1").ok());
  EXPECT_TRUE(Eventually([&] {
    return Sum(Scrape(head), "orrery_placement_groups", {{"state", "removed"}}) == 1.0 &&
           Sum(Scrape(a), "orrery_resources", {{"name", "CPU_group_g1"}}) == std::nullopt &&
           Sum(Scrape(b), "orrery_resources", {{"name", "CPU_group_g1"}}) == std::nullopt &&
           both("orrery_resources", {{"name", "CPU"}, {"state", "used"}}) == 0.0;
  }));

  // b dies: the head marks it dead and drops it from the target list.
  const int pid_b = c.Node("b").value("pid", 0);
  ASSERT_GT(pid_b, 0);
  ASSERT_EQ(::kill(pid_b, SIGKILL), 0);
  EXPECT_TRUE(Eventually([&] { return Targets(c).size() == 2; }, milliseconds(5000)))
      << Targets(c).dump();
  EXPECT_EQ(TargetOf(Targets(c), "node", "b"), "");
  EXPECT_TRUE(Eventually([&] {
    return Sum(Scrape(head), "orrery_nodes", {{"state", "dead"}}) == 1.0;
  }));
}

// Bad flags exit 2 naming the flag; a metrics port already taken fails the start with the reason;
// -1 serves no endpoint.
TEST(LiveMetricsTest, MetricsPortFlags) {
  LiveCluster c;
  auto bad = c.StartHead("a", {"--metrics-port", "-5"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--metrics-port: expected -1 (none) or 0..65535, got -5"),
            std::string::npos)
      << bad.err;
  auto bad2 = c.StartHead("a", {"--head-metrics-port", "70000"});
  EXPECT_EQ(bad2.exit_code, 2);
  EXPECT_NE(bad2.err.find("--head-metrics-port"), std::string::npos) << bad2.err;

  auto h = c.StartHead("a", {"--num-cpus", "1", "--metrics-port", "-1"});
  ASSERT_EQ(h.exit_code, 0) << h.out << h.err;
  ASSERT_TRUE(Eventually([&] { return Targets(c).size() == 1; })) << Targets(c).dump();
  EXPECT_EQ(c.Node("a").value("metrics_address", "x"), "");
  const std::string head = TargetOf(Targets(c), "head");
  const std::string head_port = head.substr(head.rfind(':') + 1);
  auto taken = c.AddNode("b", {"--num-cpus", "1", "--metrics-port", head_port});
  // Refused before the node starts, naming the port and who holds it (issue 11.6).
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_NE(taken.err.find("metrics port " + head_port + " on 127.0.0.1 is in use by pid"),
            std::string::npos)
      << taken.err;
  EXPECT_NE(taken.err.find("--metrics-port"), std::string::npos) << taken.err;
}

// ---- the real Prometheus server -----------------------------------------------------------------

// A child process (stdout/stderr to `log`), SIGTERM then SIGKILL on destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv_s, const fs::path& log) {
    std::vector<std::string> args = argv_s;
    std::vector<char*> argv;
    for (auto& x : args) argv.push_back(x.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + milliseconds(5000);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  pid_t pid() const { return pid_; }
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

std::string FindPrometheus() {
  if (const char* p = std::getenv("ORRERY_PROMETHEUS"); p && *p) {
    return ::access(p, X_OK) == 0 ? p : "";
  }
  for (const char* p : {"/usr/bin/prometheus", "/usr/local/bin/prometheus"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

// `query` through Prometheus's HTTP API: the result vector, or an empty array.
json Query(const std::string& prom, const std::string& query) {
  auto body = HttpGet(prom, "/api/v1/query?query=" + UrlEncode(query));
  if (!body) return json::array();
  json j = json::parse(*body, nullptr, false);
  if (!j.is_object() || j.value("status", "") != "success") return json::array();
  return j["data"]["result"];
}

// The value of a one-element result vector; nullopt otherwise.
std::optional<double> Scalar(const json& result) {
  if (!result.is_array() || result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

// The integration test of the issue: prometheus scrapes a live two-node cluster through the
// head's file_sd target list; values are asserted through Prometheus's query API.
TEST(PrometheusIntegrationTest, ScrapesTwoNodeClusterThroughFileSd) {
  const std::string prometheus = FindPrometheus();
  // Not a skip: CI installs the Debian package (bootstrap.sh), so a missing binary is a failure.
  ASSERT_FALSE(prometheus.empty())
      << "the prometheus server is not installed: apt-get install -y --no-install-recommends "
         "prometheus (bootstrap.sh installs it), or set ORRERY_PROMETHEUS=/path/to/prometheus";

  LiveCluster c;
  ASSERT_EQ(c.StartHead("a", {"--num-cpus", "2"}).exit_code, 0);
  ASSERT_EQ(c.AddNode("b", {"--num-cpus", "3"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Targets(c).size() == 3; })) << Targets(c).dump();
  auto session = LatestSession(c.root());
  ASSERT_TRUE(session.ok());
  const fs::path targets = *session / "metrics" / "prometheus_targets.json";

  std::string tmpl = (fs::path(::testing::TempDir()) / "orrery_prom_XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  struct RemoveDir {
    fs::path p;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{dir};
  {
    std::ofstream cfg(dir / "prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n  - job_name: orrery\n    file_sd_configs:\n"
        << "      - files: ['" << targets.string() << "']\n        refresh_interval: 1s\n";
  }
  const int port = FreePort();
  ASSERT_GT(port, 0);
  const std::string prom = "127.0.0.1:" + std::to_string(port);
  Child server({prometheus, "--config.file=" + (dir / "prometheus.yml").string(),
                "--storage.tsdb.path=" + (dir / "data").string(), "--web.listen-address=" + prom},
               dir / "prometheus.log");
  ASSERT_GT(server.pid(), 0);
  ASSERT_TRUE(Eventually([&] { return HttpGet(prom, "/-/ready").has_value() || !server.alive(); },
                         milliseconds(30000)) &&
              server.alive())
      << ReadAll(dir / "prometheus.log");

  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(c.Orrery({"task", "run", "--temp-dir", c.root(), "--", "true"}).exit_code, 0);
  }
  ASSERT_EQ(c.Orrery({"task", "run", "--temp-dir", c.root(), "--strategy", "node:b", "--", "true"})
                .exit_code,
            0);

  // All three targets (head, a, b) up.
  json active;
  EXPECT_TRUE(Eventually(
      [&] {
        auto body = HttpGet(prom, "/api/v1/targets");
        if (!body) return false;
        json j = json::parse(*body, nullptr, false);
        if (!j.is_object()) return false;
        active = j["data"]["activeTargets"];
        int up = 0;
        for (const auto& t : active) up += t.value("health", "") == "up" ? 1 : 0;
        return up == 3;
      },
      milliseconds(30000)))
      << active.dump() << "\n"
      << ReadAll(dir / "prometheus.log");

  // The values, as Prometheus scraped them.
  EXPECT_TRUE(Eventually(
      [&] { return Scalar(Query(prom, R"(sum(orrery_tasks{state="finished"}))")) == 5.0; },
      milliseconds(30000)))
      << Query(prom, R"(orrery_tasks{state="finished"})").dump();
  EXPECT_EQ(Scalar(Query(prom, R"(orrery_tasks{state="finished",node="b"})")), 1.0)
      << Query(prom, R"(orrery_tasks{state="finished"})").dump();
  std::map<std::string, double> available;
  for (const auto& s : Query(prom, R"(orrery_resources{name="CPU",state="available"})")) {
    available[s["metric"].value("node", "")] = std::stod(s["value"][1].get<std::string>());
  }
  EXPECT_EQ(available, (std::map<std::string, double>{{"a", 2.0}, {"b", 3.0}}));
  EXPECT_EQ(Scalar(Query(prom, R"(orrery_nodes{state="alive"})")), 2.0);
  EXPECT_EQ(Scalar(Query(prom, "sum(orrery_scheduling_latency_seconds_count)")), 5.0);
  // file_sd labels came along, and did not displace the series' own node label.
  EXPECT_EQ(Scalar(Query(prom, R"(orrery_node_cpu_utilization{orrery_node="b",node="b"})")), 0.0);
}

}  // namespace
}  // namespace orrery::live

// dashboard_load: the live dashboard's server-side cost at scale (issue 16 item 6, server side).
//
// Starts a real head (`orrery start --head`, which also starts one real node), then builds its
// state over gRPC as real daemons and drivers would: NODES fake nodes register and heartbeat
// (every 500 ms) and report TASKS task records between them (mixed states, 10 jobs, the pending
// ones with their demand), ACTORS actors are reported with ReportActor. Then:
//   1. latency: every JSON endpoint of live/dashboard/API.md, first page and a deep page, REPS
//      requests each over one keep-alive connection: p50 / p95 / max in ms;
//   2. CPU: the head's CPU time (utime + stime of its process) over BASE seconds with no client
//      (the heartbeats alone), then over SECONDS seconds while a client polls like the pages
//      do (every view's endpoints every 2 s) with one event stream open.
// Prints a Markdown report.
//
//   dashboard_load ORRERY_BINARY [--nodes 100] [--tasks 10000] [--actors 1000] [--reps 50]
//                  [--seconds 60] [--base 30]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "live/head/actor_directory.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace fs = std::filesystem;
using namespace orrery::live;
namespace v1 = orrery::v1;
using Clock = std::chrono::steady_clock;

namespace {

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  std::string out = s.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// One keep-alive HTTP/1.1 connection.
class Http {
 public:
  Http(int port, std::string token) : port_(port), token_(std::move(token)) { Connect(); }
  ~Http() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Connect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::cerr << "cannot connect to the dashboard\n";
      std::exit(1);
    }
    buf_.clear();
  }
  // Sends a GET and reads the reply; the status, the body in *body.
  int Get(const std::string& target, std::string* body = nullptr) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                            token_ + "\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) < 0) {
      Connect();
      return Get(target, body);
    }
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return -1;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    const int status = std::stoi(head.substr(head.find(' ') + 1, 3));
    size_t len = 0;
    if (auto p = head.find("Content-Length: "); p != std::string::npos) {
      len = std::stoul(head.substr(p + 16));
    }
    while (buf_.size() < len) {
      if (!Fill()) return -1;
    }
    if (body) *body = buf_.substr(0, len);
    buf_.erase(0, len);
    return status;
  }
  // Opens an event stream on this connection and drains it on a thread until `stop`.
  std::thread Stream(const std::string& target, std::atomic<bool>* stop, std::atomic<long>* bytes) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                            token_ + "\r\n\r\n";
    (void)::send(fd_, req.data(), req.size(), MSG_NOSIGNAL);
    timeval tv{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return std::thread([this, stop, bytes] {
      char b[65536];
      while (!*stop) {
        const ssize_t n = ::recv(fd_, b, sizeof(b), 0);
        if (n == 0) break;
        if (n > 0) *bytes += n;
      }
    });
  }

 private:
  bool Fill() {
    char b[1 << 16];
    const ssize_t n = ::recv(fd_, b, sizeof(b), 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  int port_;
  std::string token_;
  int fd_ = -1;
  std::string buf_;
};

double CpuSeconds(const std::string& pid) {
  std::string stat = ReadFile("/proc/" + pid + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: dashboard_load ORRERY_BINARY [--nodes N] [--tasks N] [--actors N] "
                 "[--reps N] [--seconds S] [--base S]\n";
    return 2;
  }
  const std::string orrery = argv[1];
  std::map<std::string, int> opt = {{"--nodes", 100}, {"--tasks", 10000}, {"--actors", 1000},
                                    {"--reps", 50},   {"--seconds", 60},  {"--base", 30}};
  for (int i = 2; i + 1 < argc; i += 2) opt[argv[i]] = std::atoi(argv[i + 1]);
  const int nodes = opt["--nodes"], tasks = opt["--tasks"], actors = opt["--actors"];

  const fs::path root = fs::temp_directory_path() / ("dashboard_load_" + std::to_string(getpid()));
  fs::create_directories(root);
  const std::string start = orrery + " start --head --temp-dir " + root.string() +
                            " --port 0 --dashboard-port 0 --num-cpus 2 --node-name real > " +
                            (root / "start.out").string() + " 2>&1";
  if (std::system(start.c_str()) != 0) {
    std::cerr << "orrery start failed:\n" << ReadFile(root / "start.out") << "\n";
    return 1;
  }
  fs::path session;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.path().filename().string().rfind("session_2", 0) == 0) session = e.path();
  }
  const std::string token = ReadFile(session / "token");
  const std::string address = ReadFile(session / "address");
  const std::string dash = ReadFile(session / "dashboard_address");
  const int port = std::stoi(dash.substr(dash.rfind(':') + 1));
  const std::string head_pid = ReadFile(session / "pids" / "head.pid");
  auto stop_cluster = [&] {
    (void)std::system((orrery + " stop --temp-dir " + root.string() + " > /dev/null 2>&1").c_str());
    fs::remove_all(root);
  };

  // ---- the state: fake nodes, their tasks, actors
  auto stub = v1::HeadService::NewStub(OpenChannel(address));
  auto call = [&](auto method, const auto& req, auto* reply) {
    grpc::ClientContext ctx;
    AttachToken(&ctx, token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub.get()->*method)(&ctx, req, reply);
  };
  std::vector<std::string> ids;
  for (int i = 0; i < nodes; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "fake-%03d", i);
    ids.push_back(id);
    v1::RegisterNodeRequest r;
    r.set_node_id(id);
    r.set_address("127.0.0.1:1");  // nothing listens: node detail answers "did not answer"
    (*r.mutable_total()->mutable_raw())["CPU"] = 8 * 10000;
    (*r.mutable_total()->mutable_raw())["memory"] = 16LL * 1000 * 1000 * 1000 * 10000;
    (*r.mutable_labels())["node_type"] = i % 2 ? "cpu" : "big";
    r.set_pid(100000 + i);
    v1::RegisterNodeReply rep;
    if (auto s = call(&v1::HeadService::Stub::RegisterNode, r, &rep); !s.ok()) {
      std::cerr << "register " << id << ": " << s.error_message() << "\n";
      stop_cluster();
      return 1;
    }
  }
  // Each node's first heartbeat carries its share of the tasks.
  std::vector<v1::HeartbeatRequest> beats(static_cast<size_t>(nodes));
  const int64_t t0 = UnixMs() - 3600 * 1000;
  for (int i = 0; i < nodes; ++i) {
    auto& hb = beats[static_cast<size_t>(i)];
    hb.set_node_id(ids[static_cast<size_t>(i)]);
    int busy = 0;
    for (int k = i; k < tasks; k += nodes) {
      auto* t = hb.add_task_updates();
      char tid[32];
      std::snprintf(tid, sizeof(tid), "task-%05d", k);
      t->set_task_id(tid);
      t->set_name("python train.py --shard " + std::to_string(k));
      t->set_node_id(hb.node_id());
      t->set_job_id("job-" + std::to_string(k % 10));
      (*t->mutable_resources()->mutable_raw())["CPU"] = 10000;
      t->set_submit_unix_ms(t0 + k * 300);
      const int m = k % 20;
      if (m < 14) {
        t->set_state(v1::TASK_STATE_FINISHED);
        t->set_start_unix_ms(t0 + k * 300 + 50);
        t->set_end_unix_ms(t0 + k * 300 + 5000);
      } else if (m < 16) {
        t->set_state(v1::TASK_STATE_RUNNING);
        t->set_start_unix_ms(t0 + k * 300 + 50);
        ++busy;
      } else if (m < 18) {
        t->set_state(v1::TASK_STATE_PENDING);
        t->set_wait_reason(v1::WAIT_REASON_WAITING_FOR_RESOURCES);
      } else if (m < 19) {
        t->set_state(v1::TASK_STATE_FAILED);
        t->set_exit_code(1);
        t->set_error("exit code 1");
      } else {
        t->set_state(v1::TASK_STATE_LEASED);
        ++busy;
      }
    }
    busy = std::min(busy, 8);
    (*hb.mutable_available()->mutable_raw())["CPU"] = (8 - busy) * 10000;
    (*hb.mutable_available()->mutable_raw())["memory"] = 8LL * 1000 * 1000 * 1000 * 10000;
    auto* d = hb.add_pending();
    (*d->mutable_shape()->mutable_raw())["CPU"] = 10000;
    d->set_count(tasks / nodes / 10);
    d->set_wait_reason(v1::WAIT_REASON_WAITING_FOR_RESOURCES);
    hb.set_num_workers(busy);
  }
  std::atomic<bool> stop{false};
  std::thread heartbeats([&] {
    bool first = true;
    while (!stop) {
      for (auto& hb : beats) {
        v1::HeartbeatReply rep;
        (void)call(&v1::HeadService::Stub::Heartbeat, hb, &rep);
        if (first) hb.clear_task_updates();
      }
      first = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  for (int a = 0; a < actors; ++a) {
    v1::ActorInfo info;
    info.set_actor_id("actor-" + std::to_string(a));
    info.set_class_name(a % 3 ? "Counter::Create" : "ParameterServer::Create");
    info.set_job_id("job-" + std::to_string(a % 10));
    info.set_node_id(ids[static_cast<size_t>(a % nodes)]);
    info.set_worker_pid(200000 + a);
    info.set_state(a % 50 == 0 ? v1::ACTOR_STATE_DEAD : v1::ACTOR_STATE_ALIVE);
    info.set_max_restarts(3);
    if (!ReportActor(address, token, info).ok()) {
      std::cerr << "ReportActor failed\n";
      stop = true;
      heartbeats.join();
      stop_cluster();
      return 1;
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));  // heartbeats landed, a few samples

  Http http(port, token);
  std::string body;
  http.Get("/api/overview", &body);
  std::cout << "# dashboard_load\n\nState: " << nodes << " fake nodes + 1 real, " << tasks
            << " tasks, " << actors << " actors. Overview: " << body.substr(0, 400) << "...\n\n";
  http.Get("/api/tasks?state=pending&limit=1", &body);
  std::cout << "A pending task: " << body << "\n\n";

  // ---- 1. latency per endpoint
  const std::vector<std::string> targets = {
      "/api/mode",
      "/api/overview",
      "/api/nodes",
      "/api/nodes?offset=90&limit=100",
      "/api/nodes/real",
      "/api/nodes/fake-042",
      "/api/tasks",
      "/api/tasks?offset=9000",
      "/api/tasks?state=pending",
      "/api/tasks?job_id=job-3&offset=500",
      "/api/tasks?q=shard%2077",
      "/api/actors",
      "/api/actors?offset=900",
      "/api/placement_groups",
      "/api/job_list",
      "/api/jobs/",
      "/api/events",
      "/api/events?offset=50",
      "/api/metrics",
      "/api/metrics?names=orrery_node_utilization",
      "/api/logs/files?node_id=real",
      "/api/logs/files",
  };
  std::cout << "## Latency (ms, " << opt["--reps"] << " requests each, one keep-alive connection)\n\n"
            << "| endpoint | status | bytes | p50 | p95 | max |\n|---|---|---|---|---|---|\n";
  double worst_p95 = 0;
  for (const auto& t : targets) {
    std::vector<double> ms;
    int status = 0;
    size_t bytes = 0;
    for (int i = 0; i < opt["--reps"]; ++i) {
      const auto a = Clock::now();
      status = http.Get(t, &body);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
      bytes = body.size();
    }
    std::sort(ms.begin(), ms.end());
    const double p50 = ms[ms.size() / 2], p95 = ms[ms.size() * 95 / 100], mx = ms.back();
    worst_p95 = std::max(worst_p95, p95);
    char line[512];
    std::snprintf(line, sizeof(line), "| `%s` | %d | %zu | %.2f | %.2f | %.2f |\n", t.c_str(),
                  status, bytes, p50, p95, mx);
    std::cout << line;
  }
  std::cout << "\nWorst p95: " << worst_p95 << " ms (target <= 50 ms)\n\n";

  // ---- 2. CPU: idle baseline, then a polling client
  const double c0 = CpuSeconds(head_pid);
  std::this_thread::sleep_for(std::chrono::seconds(opt["--base"]));
  const double c1 = CpuSeconds(head_pid);
  const double base = (c1 - c0) / opt["--base"];
  std::atomic<bool> stream_stop{false};
  std::atomic<long> stream_bytes{0};
  Http sse(port, token);
  std::thread stream = sse.Stream("/api/events/stream", &stream_stop, &stream_bytes);
  const std::vector<std::vector<std::string>> views = {
      {"/api/overview"},                                     // /overview
      {"/api/job_list"},                                     // /jobs
      {"/api/nodes"},                                        // /cluster
      {"/api/actors"},                                       // /actors
      {"/api/tasks", "/api/placement_groups"},               // /tasks
      {"/api/metrics?since="},                               // /metrics (new points only)
      {"/api/logs/files?node_id=real"},                      // /logs
  };
  const auto poll_start = Clock::now();
  const double c2 = CpuSeconds(head_pid);
  int64_t since = UnixMs() - 60000;
  int requests = 0;
  while (Clock::now() - poll_start < std::chrono::seconds(opt["--seconds"])) {
    const auto round = Clock::now();
    for (const auto& v : views) {
      for (auto t : v) {
        if (t.ends_with("since=")) t += std::to_string(since);
        http.Get(t, &body);
        ++requests;
      }
    }
    since = UnixMs() - 2000;
    std::this_thread::sleep_until(round + std::chrono::seconds(2));
  }
  const double c3 = CpuSeconds(head_pid);
  const double polled = (c3 - c2) / opt["--seconds"];
  stream_stop = true;
  stream.join();
  std::cout << "## Head CPU (one core = 100 %)\n\n"
            << "| phase | seconds | CPU |\n|---|---|---|\n";
  char line[256];
  std::snprintf(line, sizeof(line), "| heartbeats only (no client) | %d | %.2f %% |\n",
                opt["--base"], base * 100);
  std::cout << line;
  std::snprintf(line, sizeof(line),
                "| + pages polling every 2 s (%d requests) + 1 event stream | %d | %.2f %% |\n",
                requests, opt["--seconds"], polled * 100);
  std::cout << line;
  std::snprintf(line, sizeof(line), "\nThe dashboard's share: %.2f %% of one core (target <= 2 %%)\n",
                (polled - base) * 100);
  std::cout << line;
  stop = true;
  heartbeats.join();
  stop_cluster();
  return 0;
}

// Orrery's side of bench/live_vs_ray_dask.sh: no-op task throughput and round-trip latency
// through the C++ client API, and the raw gRPC unary ping that is the latency baseline.
//
//   live_api_bench tasks N          submit N no-op tasks, then Get them all   -> tasks_per_s
//   live_api_bench latency N        N sequential Remote+Get round trips       -> p50/p99 us
//   live_api_bench ping-server      serve PingService on 127.0.0.1, print the port, until stdin EOF
//   live_api_bench ping ADDR N      N sequential unary pings (sync stub)      -> p50/p99, calls/s
// The Orrery modes connect like any driver ($ORRERY_ADDRESS, token from the session) and warm
// up first (leases and workers exist, as for the Ray and Dask sides). One JSON object on stdout.
// Every mode speaks mutual TLS when ORRERY_TLS_DIR (or _CERT/_KEY/_CA) is set, like any driver
// (bench/live_tls_bench.sh measures the difference).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::bench {
void Noop();
}

namespace {

namespace api = orrery::api;
using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

std::string Percentiles(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))]; };
  char buf[160];
  std::snprintf(buf, sizeof(buf), "\"p50_us\": %.1f, \"p99_us\": %.1f, \"n\": %zu", at(0.5),
                at(0.99), us.size());
  return buf;
}

int Fail(const std::string& what, const orrery::Status& s) {
  std::cerr << "live_api_bench: " << what << ": " << s.ToString() << "\n";
  api::Shutdown();
  return 1;
}

int RunTasks(size_t n) {
  std::vector<api::ObjectRef<void>> refs;
  refs.reserve(n);
  for (int i = 0; i < 200; ++i) refs.push_back(api::Task(orrery::bench::Noop).Remote());
  for (auto& r : refs) {
    if (auto s = api::Get(r, std::chrono::seconds(60)); !s.ok()) return Fail("warm-up", s);
  }
  refs.clear();
  const auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) refs.push_back(api::Task(orrery::bench::Noop).Remote());
  for (auto& r : refs) {
    if (auto s = api::Get(r, std::chrono::seconds(120)); !s.ok()) return Fail("task", s);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("{\"tasks\": %zu, \"seconds\": %.4f, \"tasks_per_s\": %.1f}\n", n, secs, n / secs);
  return 0;
}

int RunLatency(size_t n) {
  std::vector<double> us;
  for (size_t i = 0; i < n + 100; ++i) {
    const auto t0 = Clock::now();
    if (auto s = api::Get(api::Task(orrery::bench::Noop).Remote(), std::chrono::seconds(60));
        !s.ok()) {
      return Fail("task", s);
    }
    if (i >= 100) us.push_back(Micros(Clock::now() - t0));  // the first 100 warm up
  }
  std::printf("{%s}\n", Percentiles(us).c_str());
  return 0;
}

class PingImpl final : public orrery::v1::PingService::Service {
  grpc::Status Ping(grpc::ServerContext*, const orrery::v1::PingRequest* req,
                    orrery::v1::PingReply* reply) override {
    reply->set_seq(req->seq());
    return grpc::Status::OK;
  }
};

int RunPingServer() {
  PingImpl service;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", orrery::live::ServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  if (!server) return 1;
  std::printf("%d\n", port);
  std::fflush(stdout);
  char buf[64];
  while (::read(0, buf, sizeof(buf)) > 0) {
  }
  server->Shutdown();
  return 0;
}

int RunPing(const std::string& address, size_t n) {
  auto stub = orrery::v1::PingService::NewStub(orrery::live::OpenChannel(address));
  std::vector<double> us;
  const auto start = Clock::now();
  Clock::time_point measured_from = start;
  for (size_t i = 0; i < n + 100; ++i) {
    if (i == 100) measured_from = Clock::now();
    grpc::ClientContext ctx;
    orrery::v1::PingRequest req;
    req.set_seq(i);
    orrery::v1::PingReply reply;
    const auto t0 = Clock::now();
    if (!stub->Ping(&ctx, req, &reply).ok()) {
      std::cerr << "live_api_bench: ping failed\n";
      return 1;
    }
    if (i >= 100) us.push_back(Micros(Clock::now() - t0));
  }
  const double secs = std::chrono::duration<double>(Clock::now() - measured_from).count();
  std::printf("{%s, \"calls_per_s\": %.1f}\n", Percentiles(us).c_str(), n / secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] == "ping-server") return RunPingServer();
  if (args.size() == 3 && args[0] == "ping") return RunPing(args[1], std::stoul(args[2]));
  if (args.size() == 2 && (args[0] == "tasks" || args[0] == "latency")) {
    if (auto s = api::Init(); !s.ok()) return Fail("init", s);
    const int rc = args[0] == "tasks" ? RunTasks(std::stoul(args[1]))
                                      : RunLatency(std::stoul(args[1]));
    api::Shutdown();
    return rc;
  }
  std::cerr << "usage: live_api_bench tasks N | latency N | ping-server | ping ADDR N\n";
  return 2;
}

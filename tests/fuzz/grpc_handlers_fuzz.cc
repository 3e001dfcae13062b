// libFuzzer: the daemons' gRPC handlers (issue 18 item 4, "each gRPC handler's request"). A real
// head and a real node daemon run in this process on 127.0.0.1 (ephemeral ports, a scratch
// session dir); each input's first byte picks a HeadService or NodeService method and the rest is
// its request message in protobuf wire format, decoded as gRPC would and sent with the cluster
// token through a real channel, so the bytes go through gRPC's decoding into the handler's
// validation and, if accepted, its loop half. Whatever the input, the daemons must not crash,
// report a sanitizer error, or stop answering: after every call both must answer Ready within
// 5 s (a wedged loop aborts).
//
// Left out, because a valid request would run code named by the input rather than validate it:
// Shutdown (both), SubmitJob (a shell entrypoint: its validation, ValidateSubmitJob, is fuzzed
// directly here instead), RunTask (a command line: ValidateWorkload is fuzzed directly) and
// AttachWorker (dlopen of a path). PutObject's size is capped at 1 MiB (it writes that many bytes)
// and package uploads at one chunk. ReadNodeLog must never return a file outside the node's log
// dir: sentinel files beside it must never show up in a reply (else abort).
//
// Seeds: ORRERY_FUZZ_WRITE_SEEDS=DIR writes one valid request per method into DIR and exits
// (tests/fuzz/corpus/grpc_handlers was made so).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "live/head/head.h"
#include "live/head/jobs/job_manager.h"
#include "live/node/node.h"
#include "live/node/node_impl.h"
#include "orrery.grpc.pb.h"

namespace {

using namespace orrery;
using namespace orrery::live;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr const char* kToken = "fuzz-token";
// Written beside the node's log dir (in its session dir and above it): no log read may show it.
constexpr const char* kSentinel = "orrery-fuzz-sentinel-3f9c";

struct Cluster {
  fs::path dir;
  std::unique_ptr<HeadDaemon> head;
  std::unique_ptr<NodeDaemon> node;
  std::unique_ptr<v1::HeadService::Stub> head_stub;
  std::unique_ptr<v1::NodeService::Stub> node_stub;
};

Cluster* Get() {
  static Cluster* c = [] {
    auto* c = new Cluster;
    const char* tmp = std::getenv("TMPDIR");
    c->dir = fs::path(tmp && *tmp ? tmp : "/tmp") / ("orrery-grpc-fuzz-" + std::to_string(getpid()));
    fs::create_directories(c->dir);
    HeadOptions ho;
    ho.port = 0;
    ho.token = kToken;
    ho.session_dir = (c->dir / "head").string();
    fs::create_directories(ho.session_dir);
    ho.dashboard_port = -1;
    ho.metrics_port = -1;
    ho.max_tasks = 1000;
    auto head = HeadDaemon::Start(ho);
    if (!head.ok()) {
      std::fprintf(stderr, "grpc_handlers_fuzz: head: %s\n", head.status().ToString().c_str());
      std::abort();
    }
    c->head = std::move(*head);
    const std::string head_address = "127.0.0.1:" + std::to_string(c->head->port());
    NodeOptions no;
    no.head_address = head_address;
    no.token = kToken;
    no.node_id = "fuzz-node";
    no.total.Set(Predefined::kCPU, Quantity::Whole(2));
    no.session_dir = (c->dir / "node").string();
    no.object_dir = (c->dir / "objects").string();
    fs::create_directories(no.session_dir);
    for (const fs::path& p : {fs::path(no.session_dir) / "secret.txt", c->dir / "secret.txt"}) {
      std::ofstream(p) << kSentinel << "\n";
    }
    no.metrics_port = -1;
    auto node = NodeDaemon::Start(no);
    if (!node.ok()) {
      std::fprintf(stderr, "grpc_handlers_fuzz: node: %s\n", node.status().ToString().c_str());
      std::abort();
    }
    c->node = std::move(*node);
    c->head_stub = v1::HeadService::NewStub(
        grpc::CreateChannel(head_address, grpc::InsecureChannelCredentials()));
    c->node_stub = v1::NodeService::NewStub(
        grpc::CreateChannel(c->node->address(), grpc::InsecureChannelCredentials()));
    // Stop both before gRPC's own statics go at exit (registered after they were made, so this
    // runs first), then remove the scratch dir.
    std::atexit([] {
      Cluster* c = Get();
      c->node->Stop();
      c->head->Stop();
      std::error_code ec;
      fs::remove_all(c->dir, ec);
    });
    return c;
  }();
  return c;
}

void Prepare(grpc::ClientContext* ctx, milliseconds timeout = milliseconds(300)) {
  ctx->AddMetadata("authorization", std::string("Bearer ") + kToken);
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
}

// Decodes `bytes` as Req (as gRPC's server would) and calls the unary method with it.
template <typename Stub, typename Req, typename Rep>
void Unary(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Rep*),
           const std::string& bytes, const std::function<void(Req*)>& fix = nullptr) {
  Req req;
  if (!req.ParseFromString(bytes)) return;
  if (fix) fix(&req);
  grpc::ClientContext ctx;
  Prepare(&ctx);
  Rep rep;
  (void)(stub->*method)(&ctx, req, &rep);
}

// The same for a server-streaming method: reads up to 4 messages, then cancels.
template <typename Stub, typename Req, typename Rep>
void Streaming(Stub* stub,
               std::unique_ptr<grpc::ClientReader<Rep>> (Stub::*method)(grpc::ClientContext*,
                                                                         const Req&),
               const std::string& bytes) {
  Req req;
  if (!req.ParseFromString(bytes)) return;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto reader = (stub->*method)(&ctx, req);
  Rep rep;
  for (int i = 0; i < 4 && reader->Read(&rep); ++i) {
  }
  ctx.TryCancel();
  (void)reader->Finish();
}

using Call = std::function<void(Cluster*, const std::string&)>;

const std::vector<std::pair<std::string, Call>>& Calls() {
  using H = v1::HeadService::Stub;
  using N = v1::NodeService::Stub;
  static const std::vector<std::pair<std::string, Call>> calls = {
      {"head.Ready", [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::Ready, b); }},
      {"head.RegisterNode",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::RegisterNode, b); }},
      {"head.Heartbeat",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::Heartbeat, b); }},
      {"head.GetClusterView",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::GetClusterView, b); }},
      {"head.WatchClusterView",
       [](Cluster* c, const std::string& b) {
         Streaming(c->head_stub.get(), &H::WatchClusterView, b);
       }},
      {"head.ListNodes",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::ListNodes, b); }},
      {"head.ListTasks",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::ListTasks, b); }},
      {"head.CreatePlacementGroup",
       [](Cluster* c, const std::string& b) {
         Unary(c->head_stub.get(), &H::CreatePlacementGroup, b);
       }},
      {"head.GetPlacementGroup",
       [](Cluster* c, const std::string& b) {
         Unary(c->head_stub.get(), &H::GetPlacementGroup, b);
       }},
      {"head.RemovePlacementGroup",
       [](Cluster* c, const std::string& b) {
         Unary(c->head_stub.get(), &H::RemovePlacementGroup, b);
       }},
      {"head.ListPlacementGroups",
       [](Cluster* c, const std::string& b) {
         Unary(c->head_stub.get(), &H::ListPlacementGroups, b);
       }},
      {"head.UploadPackage",
       [](Cluster* c, const std::string& b) {
         v1::PackageChunk chunk;
         if (!chunk.ParseFromString(b)) return;
         grpc::ClientContext ctx;
         Prepare(&ctx);
         v1::UploadPackageReply rep;
         auto w = c->head_stub->UploadPackage(&ctx, &rep);
         (void)w->Write(chunk);
         (void)w->WritesDone();
         (void)w->Finish();
       }},
      {"head.HasPackage",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::HasPackage, b); }},
      {"head.DownloadPackage",
       [](Cluster* c, const std::string& b) {
         Streaming(c->head_stub.get(), &H::DownloadPackage, b);
       }},
      {"head.PublishLogs",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::PublishLogs, b); }},
      {"head.SubscribeLogs",
       [](Cluster* c, const std::string& b) { Streaming(c->head_stub.get(), &H::SubscribeLogs, b); }},
      {"head.ReportActor",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::ReportActor, b); }},
      {"head.ListActors",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::ListActors, b); }},
      {"head.GetJob", [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::GetJob, b); }},
      {"head.ListJobs",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::ListJobs, b); }},
      {"head.StopJob",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::StopJob, b); }},
      {"head.DeleteJob",
       [](Cluster* c, const std::string& b) { Unary(c->head_stub.get(), &H::DeleteJob, b); }},
      {"head.JobLogs",
       [](Cluster* c, const std::string& b) { Streaming(c->head_stub.get(), &H::JobLogs, b); }},
      {"head.GetAutoscalerStatus",
       [](Cluster* c, const std::string& b) {
         Unary(c->head_stub.get(), &H::GetAutoscalerStatus, b);
       }},
      {"node.Ready", [](Cluster* c, const std::string& b) { Unary(c->node_stub.get(), &N::Ready, b); }},
      {"node.PrepareBundle",
       [](Cluster* c, const std::string& b) { Unary(c->node_stub.get(), &N::PrepareBundle, b); }},
      {"node.CommitBundle",
       [](Cluster* c, const std::string& b) { Unary(c->node_stub.get(), &N::CommitBundle, b); }},
      {"node.CancelBundle",
       [](Cluster* c, const std::string& b) { Unary(c->node_stub.get(), &N::CancelBundle, b); }},
      {"node.RequestWorkerLease",
       [](Cluster* c, const std::string& b) {
         Unary(c->node_stub.get(), &N::RequestWorkerLease, b);
       }},
      {"node.ReturnWorkerLease",
       [](Cluster* c, const std::string& b) {
         Unary(c->node_stub.get(), &N::ReturnWorkerLease, b);
       }},
      {"node.CancelWorkerLease",
       [](Cluster* c, const std::string& b) {
         Unary(c->node_stub.get(), &N::CancelWorkerLease, b);
       }},
      {"node.FetchObject",
       [](Cluster* c, const std::string& b) { Streaming(c->node_stub.get(), &N::FetchObject, b); }},
      {"node.PutObject",
       [](Cluster* c, const std::string& b) {
         Unary<N, v1::PutObjectRequest, v1::PutObjectReply>(
             c->node_stub.get(), &N::PutObject, b,
             [](v1::PutObjectRequest* r) { r->set_bytes(r->bytes() % (1u << 20)); });
       }},
      {"node.GetRuntimeEnvCacheStats",
       [](Cluster* c, const std::string& b) {
         Unary(c->node_stub.get(), &N::GetRuntimeEnvCacheStats, b);
       }},
      {"node.GetNodeDetail",
       [](Cluster* c, const std::string& b) { Unary(c->node_stub.get(), &N::GetNodeDetail, b); }},
      // A log read must never return a file outside the node's log dir (the sentinels).
      {"node.ReadNodeLog",
       [](Cluster* c, const std::string& b) {
         v1::ReadNodeLogRequest req;
         if (!req.ParseFromString(b)) return;
         grpc::ClientContext ctx;
         Prepare(&ctx);
         v1::ReadNodeLogReply rep;
         if (c->node_stub->ReadNodeLog(&ctx, req, &rep).ok() &&
             rep.text().find(kSentinel) != std::string::npos) {
           std::fprintf(stderr, "grpc_handlers_fuzz: ReadNodeLog('%s') read a file outside "
                        "the log dir\n", req.name().c_str());
           std::abort();
         }
       }},
      // Validation only (these requests would run what they name, see the top).
      {"validate.SubmitJob",
       [](Cluster*, const std::string& b) {
         v1::SubmitJobRequest r;
         if (r.ParseFromString(b)) (void)ValidateSubmitJob(r);
       }},
      {"validate.RunTask",
       [](Cluster*, const std::string& b) {
         v1::RunTaskRequest r;
         if (r.ParseFromString(b)) (void)NodeDaemon::Impl::ValidateWorkload(r);
       }},
      // --- head fault tolerance (appended: the corpus keeps its first bytes' meaning).
      {"node.ReattachTask",
       [](Cluster* c, const std::string& b) {
         Streaming(c->node_stub.get(), &N::ReattachTask, b);
       }},
      {"node.StopTask",
       [](Cluster* c, const std::string& b) { Unary(c->node_stub.get(), &N::StopTask, b); }},
  };
  return calls;
}

// Both daemons answer Ready (their loops are not wedged); aborts otherwise.
void CheckAlive(Cluster* c) {
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    Prepare(&ctx, milliseconds(5000));
    v1::ReadyRequest req;
    v1::ReadyReply rep;
    grpc::Status s = i == 0 ? c->head_stub->Ready(&ctx, req, &rep)
                            : c->node_stub->Ready(&ctx, req, &rep);
    if (!s.ok()) {
      std::fprintf(stderr, "grpc_handlers_fuzz: the %s stopped answering: %s\n",
                   i == 0 ? "head" : "node", s.error_message().c_str());
      std::abort();
    }
  }
}

void WriteSeeds(const fs::path& out) {
  fs::create_directories(out);
  auto write = [&](const std::string& method, const google::protobuf::Message& m,
                   const std::string& suffix = "") {
    const auto& calls = Calls();
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].first != method) continue;
      std::ofstream f(out / (method + suffix + ".bin"), std::ios::binary);
      f.put(static_cast<char>(i));
      f << m.SerializeAsString();
      return;
    }
    std::fprintf(stderr, "no method %s\n", method.c_str());
    std::abort();
  };
  v1::RegisterNodeRequest reg;
  reg.set_node_id("n9");
  reg.set_address("127.0.0.1:1");
  (*reg.mutable_total()->mutable_raw())["CPU"] = 40000;
  write("head.RegisterNode", reg);
  v1::HeartbeatRequest hb;
  hb.set_node_id("fuzz-node");
  write("head.Heartbeat", hb);
  v1::CreatePlacementGroupRequest pg;
  pg.set_group_id("g1");
  pg.set_strategy("SPREAD");
  (*pg.add_bundles()->mutable_raw())["CPU"] = 10000;
  write("head.CreatePlacementGroup", pg);
  v1::GetPlacementGroupRequest gpg;
  gpg.set_group_id("g1");
  write("head.GetPlacementGroup", gpg);
  v1::PublishLogsRequest logs;
  auto* batch = logs.add_batches();
  batch->set_node_id("fuzz-node");
  batch->set_job_id("j1");
  batch->add_lines("hello");
  write("head.PublishLogs", logs);
  v1::ReportActorRequest actor;
  actor.mutable_actor()->set_actor_id("a1");
  actor.mutable_actor()->set_class_name("Counter::Create");
  actor.mutable_actor()->set_state(v1::ACTOR_STATE_ALIVE);
  write("head.ReportActor", actor);
  v1::GetJobRequest job;
  job.set_submission_id("j1");
  write("head.GetJob", job);
  v1::JobLogsRequest jl;
  jl.set_submission_id("j1");
  write("head.JobLogs", jl);
  v1::PackageChunk chunk;
  chunk.set_data("PK");
  write("head.UploadPackage", chunk);
  v1::BundleRequest b;
  b.set_group_id("g2");
  (*b.mutable_resources()->mutable_raw())["CPU"] = 10000;
  write("node.PrepareBundle", b);
  write("node.CommitBundle", b);
  write("node.CancelBundle", b);
  v1::RequestWorkerLeaseRequest lease;
  lease.set_task_id("t1");
  lease.set_name("f");
  (*lease.mutable_resources()->mutable_raw())["CPU"] = 10000;
  lease.set_queue_timeout_ms(10);
  write("node.RequestWorkerLease", lease);
  v1::ReturnWorkerLeaseRequest ret;
  ret.set_task_id("t1");
  write("node.ReturnWorkerLease", ret);
  v1::PutObjectRequest put;
  put.set_object_id("o1");
  put.set_bytes(100);
  write("node.PutObject", put);
  v1::FetchObjectRequest fetch;
  fetch.set_object_id("o1");
  write("node.FetchObject", fetch);
  v1::ReadNodeLogRequest log;
  log.set_name("../secret.txt");
  log.set_limit(4096);
  write("node.ReadNodeLog", log);
  log.set_name("node-fuzz-node.log");
  log.set_tail(5);
  log.set_search("registered");
  write("node.ReadNodeLog", log, ".own");
  v1::SubmitJobRequest submit;
  submit.set_entrypoint("echo hi");
  submit.set_runtime_env_json(R"({"env_vars": {"A": "1"}})");
  write("validate.SubmitJob", submit);
  v1::RunTaskRequest run;
  run.set_task_id("t1");
  write("validate.RunTask", run);
  v1::ReattachTaskRequest reattach;
  reattach.set_task_id("t1");
  reattach.set_output_offset(7);
  write("node.ReattachTask", reattach);
  v1::StopTaskRequest stop;
  stop.set_task_id("t1");
  stop.set_reason("fuzz");
  write("node.StopTask", stop);
  for (const char* m : {"head.Ready", "head.ListNodes", "head.ListTasks", "head.ListActors",
                        "head.ListJobs", "head.ListPlacementGroups", "head.GetClusterView",
                        "head.GetAutoscalerStatus", "node.Ready", "node.GetRuntimeEnvCacheStats",
                        "node.GetNodeDetail",
                        "head.WatchClusterView", "head.SubscribeLogs"}) {
    v1::ReadyRequest empty;
    write(m, empty);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* out = std::getenv("ORRERY_FUZZ_WRITE_SEEDS"); out && *out) {
    WriteSeeds(out);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& calls = Calls();
  Cluster* c = Get();
  const auto& call = calls[data[0] % calls.size()];
  call.second(c, std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  CheckAlive(c);
  return 0;
}

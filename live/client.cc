#include "live/client.h"

#include <grpcpp/grpcpp.h>

#include <thread>

#include "live/convert.h"
#include "live/rpc_util.h"

namespace orrery::live {

namespace {

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  grpc::ChannelArguments args;
  // A node that dies without closing its socket is noticed within ~15 s on a streaming call.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void Prepare(grpc::ClientContext* ctx, const std::string& token, milliseconds timeout) {
  AttachToken(ctx, token);
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
}

template <typename Reply, typename Call>
StatusOr<Reply> Unary(const std::string& token, milliseconds timeout, Call&& call) {
  grpc::ClientContext ctx;
  Prepare(&ctx, token, timeout);
  Reply reply;
  grpc::Status s = call(&ctx, &reply);
  if (!s.ok()) return FromGrpc(s);
  return reply;
}

}  // namespace

HeadClient::HeadClient(const std::string& address, std::string token, milliseconds timeout)
    : stub_(v1::HeadService::NewStub(Channel(address))),
      token_(std::move(token)),
      timeout_(timeout) {}

StatusOr<v1::ReadyReply> HeadClient::Ready() {
  return Unary<v1::ReadyReply>(token_, timeout_, [&](auto* ctx, auto* r) {
    return stub_->Ready(ctx, v1::ReadyRequest(), r);
  });
}
StatusOr<v1::ListNodesReply> HeadClient::ListNodes() {
  return Unary<v1::ListNodesReply>(token_, timeout_, [&](auto* ctx, auto* r) {
    return stub_->ListNodes(ctx, v1::ListNodesRequest(), r);
  });
}
StatusOr<v1::ListTasksReply> HeadClient::ListTasks() {
  return Unary<v1::ListTasksReply>(token_, timeout_, [&](auto* ctx, auto* r) {
    return stub_->ListTasks(ctx, v1::ListTasksRequest(), r);
  });
}
StatusOr<v1::ClusterView> HeadClient::GetClusterView() {
  return Unary<v1::ClusterView>(token_, timeout_, [&](auto* ctx, auto* r) {
    return stub_->GetClusterView(ctx, v1::GetClusterViewRequest(), r);
  });
}
StatusOr<v1::PlacementGroupInfo> HeadClient::CreatePlacementGroup(
    const v1::CreatePlacementGroupRequest& req) {
  auto r = Unary<v1::CreatePlacementGroupReply>(token_, timeout_, [&](auto* ctx, auto* out) {
    return stub_->CreatePlacementGroup(ctx, req, out);
  });
  if (!r.ok()) return r.status();
  return r->group();
}
StatusOr<v1::PlacementGroupInfo> HeadClient::GetPlacementGroup(const std::string& group_id) {
  v1::GetPlacementGroupRequest req;
  req.set_group_id(group_id);
  return Unary<v1::PlacementGroupInfo>(token_, timeout_, [&](auto* ctx, auto* out) {
    return stub_->GetPlacementGroup(ctx, req, out);
  });
}
Status HeadClient::RemovePlacementGroup(const std::string& group_id) {
  v1::RemovePlacementGroupRequest req;
  req.set_group_id(group_id);
  return Unary<v1::RemovePlacementGroupReply>(
             token_, timeout_,
             [&](auto* ctx, auto* out) { return stub_->RemovePlacementGroup(ctx, req, out); })
      .status();
}
StatusOr<v1::ListPlacementGroupsReply> HeadClient::ListPlacementGroups() {
  return Unary<v1::ListPlacementGroupsReply>(token_, timeout_, [&](auto* ctx, auto* out) {
    return stub_->ListPlacementGroups(ctx, v1::ListPlacementGroupsRequest(), out);
  });
}
Status HeadClient::Shutdown() {
  return Unary<v1::ShutdownReply>(
             token_, timeout_,
             [&](auto* ctx, auto* r) { return stub_->Shutdown(ctx, v1::ShutdownRequest(), r); })
      .status();
}

NodeClient::NodeClient(const std::string& address, std::string token, milliseconds timeout)
    : stub_(v1::NodeService::NewStub(Channel(address))),
      token_(std::move(token)),
      timeout_(timeout) {}

StatusOr<v1::ReadyReply> NodeClient::Ready() {
  return Unary<v1::ReadyReply>(token_, timeout_, [&](auto* ctx, auto* r) {
    return stub_->Ready(ctx, v1::ReadyRequest(), r);
  });
}

StatusOr<v1::RequestWorkerLeaseReply> NodeClient::RequestWorkerLease(
    const v1::RequestWorkerLeaseRequest& req, milliseconds hold) {
  const milliseconds wait =
      req.queue_timeout_ms() > 0 ? milliseconds(req.queue_timeout_ms()) : hold;
  return Unary<v1::RequestWorkerLeaseReply>(token_, timeout_ + wait, [&](auto* ctx, auto* r) {
    return stub_->RequestWorkerLease(ctx, req, r);
  });
}

Status NodeClient::ReturnWorkerLease(const std::string& task_id) {
  v1::ReturnWorkerLeaseRequest req;
  req.set_task_id(task_id);
  return Unary<v1::ReturnWorkerLeaseReply>(
             token_, timeout_,
             [&](auto* ctx, auto* r) { return stub_->ReturnWorkerLease(ctx, req, r); })
      .status();
}

StatusOr<bool> NodeClient::CancelWorkerLease(const std::string& task_id,
                                             const std::string& reason) {
  v1::CancelWorkerLeaseRequest req;
  req.set_task_id(task_id);
  req.set_reason(reason);
  auto r = Unary<v1::CancelWorkerLeaseReply>(token_, timeout_, [&](auto* ctx, auto* rep) {
    return stub_->CancelWorkerLease(ctx, req, rep);
  });
  if (!r.ok()) return r.status();
  return r->canceled();
}

StatusOr<v1::TaskExit> NodeClient::RunTask(
    const v1::RunTaskRequest& req, const std::function<void(const v1::RunTaskReply&)>& on_event,
    milliseconds deadline) {
  grpc::ClientContext ctx;
  AttachToken(&ctx, token_);
  if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  auto reader = stub_->RunTask(&ctx, req);
  v1::RunTaskReply m;
  std::optional<v1::TaskExit> exit;
  while (reader->Read(&m)) {
    if (on_event) on_event(m);
    if (m.has_exit()) exit = m.exit();
  }
  grpc::Status s = reader->Finish();
  if (exit) return *exit;
  if (!s.ok()) return FromGrpc(s);
  return Status(StatusCode::kUnknown, "the task's stream ended without an exit status");
}

Status NodeClient::PutObject(const std::string& object_id, uint64_t bytes) {
  v1::PutObjectRequest req;
  req.set_object_id(object_id);
  req.set_bytes(bytes);
  // Writing a big object takes a while: 1 s per 50 MB on top of the timeout.
  return Unary<v1::PutObjectReply>(token_, timeout_ + milliseconds(bytes / 50000),
                                   [&](auto* ctx, auto* r) { return stub_->PutObject(ctx, req, r); })
      .status();
}

StatusOr<std::string> NodeClient::FetchObject(const std::string& object_id) {
  grpc::ClientContext ctx;
  Prepare(&ctx, token_, timeout_);
  v1::FetchObjectRequest req;
  req.set_object_id(object_id);
  auto reader = stub_->FetchObject(&ctx, req);
  std::string data;
  v1::ObjectChunk c;
  while (reader->Read(&c)) data += c.data();
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  return data;
}

Status NodeClient::Shutdown() {
  return Unary<v1::ShutdownReply>(
             token_, timeout_,
             [&](auto* ctx, auto* r) { return stub_->Shutdown(ctx, v1::ShutdownRequest(), r); })
      .status();
}

StatusOr<AcquiredLease> AcquireLease(const std::string& entry_address, const std::string& token,
                                     v1::RequestWorkerLeaseRequest req,
                                     const AcquireOptions& options) {
  std::string address = entry_address;
  req.set_grant_or_reject(false);
  req.set_queue_timeout_ms(options.first_queue_timeout.count());
  int rejections = 0;
  while (true) {
    NodeClient node(address, token);
    auto reply = node.RequestWorkerLease(req, options.hold);
    if (!reply.ok()) return reply.status().WithContext("lease request to " + address);
    switch (reply->outcome_case()) {
      case v1::RequestWorkerLeaseReply::kGranted: {
        AcquiredLease l;
        l.node_id = reply->granted().node_id();
        l.address = address;
        for (const auto& g : reply->granted().devices()) {
          if (g.name() == "GPU") l.gpu_ids.assign(g.ids().begin(), g.ids().end());
        }
        l.spillbacks = req.spillbacks();
        l.reason = reply->reason();
        return l;
      }
      case v1::RequestWorkerLeaseReply::kSpillback: {
        const auto& s = reply->spillback();
        if (s.spillbacks() > options.max_spillbacks) {
          return Status(StatusCode::kAborted,
                        "more than " + std::to_string(options.max_spillbacks) + " spillbacks");
        }
        if (s.address().empty()) {
          return Status(StatusCode::kUnavailable,
                        "spilled to " + s.node_id() + " whose address is unknown");
        }
        address = s.address();
        req.set_grant_or_reject(s.grant_or_reject());
        req.set_spillbacks(s.spillbacks());
        continue;
      }
      case v1::RequestWorkerLeaseReply::kRejected:
        // The target's availability changed since the spilling node's view: decide again at
        // the entry node, with a short pause so its view can catch up.
        if (++rejections > options.max_rejections) {
          return Status(StatusCode::kAborted, "rejected " + std::to_string(rejections) +
                                                  " times: " + reply->rejected().reason());
        }
        address = entry_address;
        req.set_grant_or_reject(false);
        std::this_thread::sleep_for(milliseconds(std::min(20 * rejections, 200)));
        continue;
      case v1::RequestWorkerLeaseReply::kCanceled:
        return Status(StatusCode::kCancelled, reply->canceled().reason());
      case v1::RequestWorkerLeaseReply::kQueued:
        if (options.on_queued) options.on_queued(reply->queued().wait_reason());
        req.set_queue_timeout_ms(0);  // wait there until decided (within `hold`)
        continue;
      default:
        return Status(StatusCode::kInternal, "lease reply without an outcome");
    }
  }
}

}  // namespace orrery::live

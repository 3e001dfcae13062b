#include "live/client/client.h"

#include <grpcpp/grpcpp.h>

#include <thread>

#include "core/agent/submitter.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"

namespace orrery::live {

std::shared_ptr<grpc::Channel> ClientChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // A node that dies without closing its socket is noticed within ~15 s on a streaming call.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // A restarted head (or node) is connected to within a second, not after gRPC's default
  // reconnect backoff (1 s, x1.6, up to 120 s): drivers ride out a head restart on one channel.
  // (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: that is each attempt's connect timeout, default 20 s.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return OpenChannel(address, args);
}

namespace {
using HeadStub = v1::HeadService::Stub;
using NodeStub = v1::NodeService::Stub;
}  // namespace

HeadClient::HeadClient(const std::string& address, std::string token, milliseconds timeout)
    : stub_(v1::HeadService::NewStub(ClientChannel(address))),
      token_(std::move(token)),
      timeout_(timeout) {}

StatusOr<v1::ReadyReply> HeadClient::Ready() {
  return CallUnary(*stub_, token_, timeout_, &HeadStub::Ready, v1::ReadyRequest());
}
StatusOr<v1::ListNodesReply> HeadClient::ListNodes() {
  return CallUnary(*stub_, token_, timeout_, &HeadStub::ListNodes, v1::ListNodesRequest());
}
StatusOr<v1::ListTasksReply> HeadClient::ListTasks() {
  return CallUnary(*stub_, token_, timeout_, &HeadStub::ListTasks, v1::ListTasksRequest());
}
StatusOr<v1::ClusterView> HeadClient::GetClusterView() {
  return CallUnary(*stub_, token_, timeout_, &HeadStub::GetClusterView,
                   v1::GetClusterViewRequest());
}
StatusOr<v1::PlacementGroupInfo> HeadClient::CreatePlacementGroup(
    const v1::CreatePlacementGroupRequest& req) {
  auto r = CallUnary(*stub_, token_, timeout_, &HeadStub::CreatePlacementGroup, req);
  if (!r.ok()) return r.status();
  return r->group();
}
StatusOr<v1::PlacementGroupInfo> HeadClient::GetPlacementGroup(const std::string& group_id) {
  v1::GetPlacementGroupRequest req;
  req.set_group_id(group_id);
  return CallUnary(*stub_, token_, timeout_, &HeadStub::GetPlacementGroup, req);
}
Status HeadClient::RemovePlacementGroup(const std::string& group_id) {
  v1::RemovePlacementGroupRequest req;
  req.set_group_id(group_id);
  return CallUnary(*stub_, token_, timeout_, &HeadStub::RemovePlacementGroup, req).status();
}
StatusOr<v1::ListPlacementGroupsReply> HeadClient::ListPlacementGroups() {
  return CallUnary(*stub_, token_, timeout_, &HeadStub::ListPlacementGroups,
                   v1::ListPlacementGroupsRequest());
}
Status HeadClient::Shutdown() {
  return CallUnary(*stub_, token_, timeout_, &HeadStub::Shutdown, v1::ShutdownRequest()).status();
}

NodeClient::NodeClient(const std::string& address, std::string token, milliseconds timeout)
    : stub_(v1::NodeService::NewStub(ClientChannel(address))),
      token_(std::move(token)),
      timeout_(timeout) {}

StatusOr<v1::ReadyReply> NodeClient::Ready() {
  return CallUnary(*stub_, token_, timeout_, &NodeStub::Ready, v1::ReadyRequest());
}

StatusOr<v1::RequestWorkerLeaseReply> NodeClient::RequestWorkerLease(
    const v1::RequestWorkerLeaseRequest& req, milliseconds hold) {
  const milliseconds wait =
      req.queue_timeout_ms() > 0 ? milliseconds(req.queue_timeout_ms()) : hold;
  return CallUnary(*stub_, token_, timeout_ + wait, &NodeStub::RequestWorkerLease, req);
}

Status NodeClient::ReturnWorkerLease(const std::string& task_id) {
  v1::ReturnWorkerLeaseRequest req;
  req.set_task_id(task_id);
  return CallUnary(*stub_, token_, timeout_, &NodeStub::ReturnWorkerLease, req).status();
}

StatusOr<bool> NodeClient::CancelWorkerLease(const std::string& task_id,
                                             const std::string& reason) {
  v1::CancelWorkerLeaseRequest req;
  req.set_task_id(task_id);
  req.set_reason(reason);
  auto r = CallUnary(*stub_, token_, timeout_, &NodeStub::CancelWorkerLease, req);
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
  return CallUnary(*stub_, token_, timeout_ + milliseconds(bytes / 50000), &NodeStub::PutObject,
                   req)
      .status();
}

StatusOr<std::string> NodeClient::FetchObject(const std::string& object_id) {
  grpc::ClientContext ctx;
  AttachToken(&ctx, token_);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
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
  return CallUnary(*stub_, token_, timeout_, &NodeStub::Shutdown, v1::ShutdownRequest()).status();
}

namespace {

AcquiredLease GrantOf(const v1::RequestWorkerLeaseReply& reply, const std::string& address,
                      int spillbacks) {
  AcquiredLease l;
  l.node_id = reply.granted().node_id();
  l.address = address;
  for (const auto& g : reply.granted().devices()) {
    if (g.name() == "GPU") l.gpu_ids.assign(g.ids().begin(), g.ids().end());
  }
  l.spillbacks = spillbacks;
  l.reason = reply.reason();
  return l;
}

}  // namespace

StatusOr<AcquiredLease> AcquireLease(const std::string& entry_address, const std::string& token,
                                     v1::RequestWorkerLeaseRequest req,
                                     const AcquireOptions& options) {
  // One request of one task, reuse off: the submitter decides where each request goes and when
  // the walk gives up; this loop carries its decisions out over RPCs.
  agent::SubmitterOptions so;
  so.reuse_leases = false;
  so.max_pending_lease_requests_per_class = 0;
  so.max_spillbacks_in_a_row = options.max_spillbacks_in_a_row;
  so.max_rejections = options.max_rejections;
  so.rejection_backoff = options.rejection_backoff;
  agent::Submitter submitter(so);
  const auto t0 = std::chrono::steady_clock::now();
  auto now = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<std::string> targets;  // node handle -> address of a spillback target
  std::vector<agent::SubmitDecision> ds;
  submitter.Submit(0, 0, 0.0, &ds);
  std::string entry = entry_address;
  int unreachable = 0;
  // Until a node answers `queued`, requests wait first_queue_timeout; then requeue_timeout.
  milliseconds queue_timeout = options.first_queue_timeout;
  while (true) {
    if (ds.empty()) return Status(StatusCode::kInternal, "the lease walk has no next step");
    const agent::SubmitDecision d = ds.back();
    ds.clear();
    if (d.kind == agent::SubmitDecision::Kind::kFailTask) {
      return Status(StatusCode::kAborted, d.reason);
    }
    const double wait_s = d.not_before - now();
    if (wait_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
    std::string address = d.node == agent::kEntryNode ? entry : targets[d.node];
    req.set_grant_or_reject(d.grant_or_reject);
    req.set_spillbacks(d.spillbacks);
    if (d.node != agent::kEntryNode && options.refuse_target && options.refuse_target(address)) {
      if (options.on_step) options.on_step("refused", address, std::string(), -1);
      submitter.OnLeaseRejected(d.lease, now(), &ds);
      if (!ds.empty() && ds.back().kind == agent::SubmitDecision::Kind::kFailTask) {
        ds.back().reason += ": spilled to " + address + ", which is gone";
      }
      continue;
    }
    bool announced = false;  // on_step("request") told for this hop's node
    // Ask `address` until it answers something other than `queued` (or cannot be reached).
    while (true) {
      if (options.still_needed && !options.still_needed()) {
        return Status(StatusCode::kAborted, "no longer needed");
      }
      if (!announced && options.on_step) options.on_step("request", address, std::string(), -1);
      announced = true;
      req.set_queue_timeout_ms(queue_timeout.count());
      StatusOr<v1::RequestWorkerLeaseReply> reply =
          address.empty()
              ? StatusOr<v1::RequestWorkerLeaseReply>(
                    Status(StatusCode::kUnavailable, "spilled to a node whose address is unknown"))
              : NodeClient(address, token, options.rpc_timeout)
                    .RequestWorkerLease(req, options.hold);
      if (!reply.ok()) {
        if (++unreachable > options.max_unreachable) {
          return reply.status().WithContext("lease request to " + address);
        }
        if (d.node != agent::kEntryNode) {
          // A spillback target that cannot be reached (it died; the head has not declared it
          // dead yet) did not take the request: the submitter's rule for a target that turned
          // it down applies (back to the entry node after a backoff; the rejection limit, not
          // the spillback limit, bounds it). Counted as spillbacks in a row, an entry node whose
          // view still showed the dead node free failed the request after 16 quick hops
          // (live.chaos.head, 432 calls lost).
          if (options.on_step) options.on_step("unreachable", address, std::string(), -1);
          submitter.OnLeaseRejected(d.lease, now(), &ds);
          if (!ds.empty() && ds.back().kind == agent::SubmitDecision::Kind::kFailTask) {
            ds.back().reason += ": " + std::string(reply.status().message());
          }
          if (options.entry) entry = options.entry(unreachable);
          std::this_thread::sleep_for(options.unreachable_pause);
          break;
        }
        // Same request, asked again at the entry node (which may be another one by now).
        std::this_thread::sleep_for(options.unreachable_pause);
        if (options.entry) entry = options.entry(unreachable);
        if (address != entry) announced = false;
        address = entry;
        req.set_grant_or_reject(false);
        continue;
      }
      if (reply->outcome_case() == v1::RequestWorkerLeaseReply::kQueued) {
        if (options.on_queued) options.on_queued(reply->queued().wait_reason());
        queue_timeout = options.requeue_timeout;
        continue;
      }
      const agent::LeaseHandle lease = d.lease;
      switch (reply->outcome_case()) {
        case v1::RequestWorkerLeaseReply::kGranted:
          return GrantOf(*reply, address, req.spillbacks());
        case v1::RequestWorkerLeaseReply::kSpillback: {
          const auto& s = reply->spillback();
          if (options.on_step)
            options.on_step("spilled", address, s.address(),
                            s.view_age_us() > 0 ? s.view_age_us() / 1e6 : -1.0);
          targets.push_back(s.address());
          submitter.OnLeaseSpilled(lease, static_cast<agent::NodeHandle>(targets.size() - 1),
                                   s.grant_or_reject(), now(), &ds);
          break;
        }
        case v1::RequestWorkerLeaseReply::kRejected:
          // The target's availability changed since the spilling node's view: decide again at
          // the entry node, after a pause so its view can catch up.
          if (options.on_step) options.on_step("rejected", address, std::string(), -1);
          submitter.OnLeaseRejected(lease, now(), &ds);
          if (!ds.empty() && ds.back().kind == agent::SubmitDecision::Kind::kFailTask) {
            ds.back().reason += ": " + reply->rejected().reason();
          }
          break;
        case v1::RequestWorkerLeaseReply::kCanceled:
          return Status(StatusCode::kCancelled, reply->canceled().reason());
        default:
          return Status(StatusCode::kInternal, "lease reply without an outcome");
      }
      break;
    }
  }
}

std::thread AcquireLeaseAsync(std::string entry_address, std::string token,
                              v1::RequestWorkerLeaseRequest req, AcquireOptions options,
                              std::function<void(StatusOr<AcquiredLease>)> done) {
  return std::thread([entry_address = std::move(entry_address), token = std::move(token),
                      req = std::move(req), options = std::move(options),
                      done = std::move(done)]() mutable {
    done(AcquireLease(entry_address, token, std::move(req), options));
  });
}

}  // namespace orrery::live

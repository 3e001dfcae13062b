// Client side of the live cluster: thin blocking stubs for the head and node services (every
// call carries the token and a deadline), and AcquireLease (blocking and callback forms), the one
// implementation in live/ of the lease protocol from an entry node through spillbacks to a grant,
// used by `live run`, the CLI and the C++ API.
//
// Used by the CLI and the tests; never by the daemons' handlers (it blocks).
// Thread safety: a client may be used from one thread at a time.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/placement/two_phase.h"
#include "core/status.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

using std::chrono::milliseconds;

// The channel every client of live/ opens to a daemon (keepalive on, so a streaming call notices
// a node that died without closing its socket within ~15 s).
std::shared_ptr<grpc::Channel> ClientChannel(const std::string& address);

// One blocking unary call of `method` on `stub` with the cluster token and a deadline `timeout`
// from now; a gRPC error becomes its Status (FromGrpc). The one shape of every unary client call:
//   CallUnary(*stub, token, timeout, &v1::NodeService::Stub::Ready, v1::ReadyRequest())
// Blocks the calling thread; thread-safe as the stub is.
template <typename Stub, typename Request, typename Reply>
StatusOr<Reply> CallUnary(Stub& stub, const std::string& token, milliseconds timeout,
                          grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                       Reply*),
                          const Request& req);

// CallUnary on a channel of its own to the head at `address`: the one-shot helpers of the tools
// (`orrery status`, `orrery list actors`, an actor's report):
//   CallHead(address, token, timeout, &v1::HeadService::Stub::ListActors, v1::ListActorsRequest())
template <typename Request, typename Reply>
StatusOr<Reply> CallHead(const std::string& address, const std::string& token, milliseconds timeout,
                         grpc::Status (v1::HeadService::Stub::*method)(grpc::ClientContext*,
                                                                       const Request&, Reply*),
                         const Request& req) {
  auto stub = v1::HeadService::NewStub(ClientChannel(address));
  return CallUnary(*stub, token, timeout, method, req);
}

class HeadClient {
 public:
  HeadClient(const std::string& address, std::string token,
             milliseconds timeout = milliseconds(5000));
  StatusOr<v1::ReadyReply> Ready();
  StatusOr<v1::ListNodesReply> ListNodes();
  StatusOr<v1::ListTasksReply> ListTasks();
  StatusOr<v1::ClusterView> GetClusterView();
  // Placement groups (see HeadService in proto/orrery.proto).
  StatusOr<v1::PlacementGroupInfo> CreatePlacementGroup(const v1::CreatePlacementGroupRequest& r);
  StatusOr<v1::PlacementGroupInfo> GetPlacementGroup(const std::string& group_id);
  Status RemovePlacementGroup(const std::string& group_id);
  StatusOr<v1::ListPlacementGroupsReply> ListPlacementGroups();
  Status Shutdown();

 private:
  std::unique_ptr<v1::HeadService::Stub> stub_;
  std::string token_;
  milliseconds timeout_;
};

class NodeClient {
 public:
  NodeClient(const std::string& address, std::string token,
             milliseconds timeout = milliseconds(5000));
  StatusOr<v1::ReadyReply> Ready();
  // The deadline is `timeout` plus the request's queue_timeout_ms (or `hold` when that is 0).
  StatusOr<v1::RequestWorkerLeaseReply> RequestWorkerLease(const v1::RequestWorkerLeaseRequest& r,
                                                           milliseconds hold = milliseconds(0));
  Status ReturnWorkerLease(const std::string& task_id);
  StatusOr<bool> CancelWorkerLease(const std::string& task_id, const std::string& reason);
  // Runs the task and calls `on_event` for every streamed message (output chunks, then the exit).
  // Returns the exit, or the call's error if the stream ended without one. `deadline` 0 = none
  // (the channel's keepalive notices a dead node).
  StatusOr<v1::TaskExit> RunTask(const v1::RunTaskRequest& r,
                                 const std::function<void(const v1::RunTaskReply&)>& on_event,
                                 milliseconds deadline = milliseconds(0));
  // Creates an object of `bytes` in the node's store.
  Status PutObject(const std::string& object_id, uint64_t bytes);
  // The whole object (NotFound if the node does not hold it). For tests and tools; nodes fetch
  // task arguments among themselves.
  StatusOr<std::string> FetchObject(const std::string& object_id);
  Status Shutdown();

 private:
  std::unique_ptr<v1::NodeService::Stub> stub_;
  std::string token_;
  milliseconds timeout_;
};

struct AcquiredLease {
  std::string node_id;
  std::string address;
  std::vector<int> gpu_ids;
  int spillbacks = 0;
  std::string reason;  // the deciding policy's sentence
};

// How one lease request is followed. The rules for spillbacks and rejections (one limit, one
// backoff) are the core Submitter's (core/agent/submitter.h), which decides every step; the rest
// is transport: deadlines, how long a request may wait queued at a node, unreachable nodes.
struct AcquireOptions {
  // The first request waits this long in a queue before the node answers `queued`; later ones
  // wait `requeue_timeout` (0 = until decided, within `hold`).
  milliseconds first_queue_timeout{2000};
  milliseconds requeue_timeout{0};
  milliseconds hold{std::chrono::hours(1)};
  milliseconds rpc_timeout{5000};
  // Spillbacks followed since the last restart at the entry node; rejections in all.
  int max_spillbacks_in_a_row = 16;
  int max_rejections = 100;
  // Pause before asking the entry node again after a rejection: 5 ms, doubling, at most 200 ms.
  RetryBackoffOptions rejection_backoff{0.005, 2.0, 0.2};
  // A node that cannot be reached: asked again at the entry node up to this many times, after
  // `unreachable_pause` (0: the call fails at once).
  int max_unreachable = 0;
  milliseconds unreachable_pause{100};
  // The entry node's address for a restart, given the number of unreachable answers so far
  // (unset: the entry address passed in). Lets a caller pick another entry when it is gone.
  std::function<std::string(int unreachable)> entry;
  // Asked before a spillback target is: true (the caller knows the target is gone, e.g. the head
  // declared it dead while the spilling node's view still listed it) treats the spillback as a
  // rejection: back to the entry node after the backoff, the target never asked. A node cut off
  // by a partition would otherwise get the request once the link healed, and grant it before it
  // learned it was dead.
  std::function<bool(const std::string& address)> refuse_target;
  // Asked before every request; false ends the walk with kAborted "no longer needed".
  std::function<bool()> still_needed;
  // Called with the wait reason each time a node answers `queued` (the request is sent again).
  std::function<void(v1::WaitReason)> on_queued;
  // Tracing (live run --trace): called before the first request of each hop ("request", the
  // node's address) and for each answer that moves the walk on ("spilled", with the target's
  // address and how old the deciding node's report of the target was, seconds, -1 if unknown;
  // "rejected"; "unreachable"; "refused", a target refuse_target turned down). Called on the
  // walking thread.
  std::function<void(std::string_view step, const std::string& address, const std::string& target,
                     double view_age_s)>
      on_step;
};

// The one lease acquirer of live/ (blocking form). Requests a worker lease for `req` at
// `entry_address` and follows it to a grant: spillbacks to their target with the node's
// grant_or_reject flag, a rejection back at the entry node after the backoff, `queued` answers
// by asking the same node again. `req.task_id` is the lease id.
// Returns the grant; kCancelled with the node's reason if the lease was canceled for good;
// kUnavailable/kDeadlineExceeded if a node cannot be reached (past max_unreachable); kAborted if
// spillbacks or rejections exceed the limits, or it is no longer needed.
// Blocks the calling thread (sleeps during backoffs); thread-safe (shares nothing).
StatusOr<AcquiredLease> AcquireLease(const std::string& entry_address, const std::string& token,
                                     v1::RequestWorkerLeaseRequest req,
                                     const AcquireOptions& options = {});

// The callback form: follows the request on a new thread and calls `done` with the outcome on
// that thread, which the caller owns (join it after `done` ran, or detach it).
std::thread AcquireLeaseAsync(std::string entry_address, std::string token,
                              v1::RequestWorkerLeaseRequest req, AcquireOptions options,
                              std::function<void(StatusOr<AcquiredLease>)> done);

// --- implementation

template <typename Stub, typename Request, typename Reply>
StatusOr<Reply> CallUnary(Stub& stub, const std::string& token, milliseconds timeout,
                          grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                       Reply*),
                          const Request& req) {
  grpc::ClientContext ctx;
  AttachToken(&ctx, token);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  Reply reply;
  grpc::Status s = (stub.*method)(&ctx, req, &reply);
  if (!s.ok()) return FromGrpc(s);
  return reply;
}

}  // namespace orrery::live

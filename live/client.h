// Client side of the live cluster: thin blocking stubs for the head and node services (every
// call carries the token and a deadline), and AcquireLease, which follows the lease protocol
// from an entry node through spillbacks to a grant.
//
// Used by the CLI and the tests; never by the daemons' handlers (it blocks).
// Thread safety: a client may be used from one thread at a time.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

using std::chrono::milliseconds;

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

struct AcquireOptions {
  // The first request waits this long in a queue before the node answers `queued`; later ones
  // wait `hold` (0 = until decided).
  milliseconds first_queue_timeout{2000};
  milliseconds hold{std::chrono::hours(1)};
  int max_spillbacks = 16;
  int max_rejections = 100;
  // Called with the wait reason each time a node answers `queued` (the request is sent again).
  std::function<void(v1::WaitReason)> on_queued;
};

// Requests a worker lease for `req` at `entry_address`, following spillbacks (retrying at the
// target with grant_or_reject, and going back to the entry node when the target rejects).
// kCancelled with the node's reason if the lease was canceled for good; kUnavailable/
// kDeadlineExceeded if a node cannot be reached; kAborted if spillbacks or rejections exceed the
// limits.
StatusOr<AcquiredLease> AcquireLease(const std::string& entry_address, const std::string& token,
                                     v1::RequestWorkerLeaseRequest req,
                                     const AcquireOptions& options = {});

}  // namespace orrery::live

// The one place where proto (orrery.v1) and core types meet (DESIGN rule 8).
//
// Incoming messages are validated here: a conversion that can fail returns StatusOr with an
// INVALID_ARGUMENT naming the field, which handlers send back as the gRPC status. Quantities
// travel in core's fixed point (raw 1e-4 units), so conversions are exact.
//
// Thread safety: free functions over values.
#pragma once

#include <grpcpp/support/status.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/cluster_view.h"
#include "core/lease/lease_manager.h"
#include "core/resources.h"
#include "core/scheduling/policy.h"
#include "core/scheduling/scheduler.h"
#include "core/status.h"
#include "orrery.pb.h"

namespace orrery::live {

using DeviceAvail = std::vector<std::pair<std::string, std::vector<Quantity>>>;

// A task record's state is final: FINISHED, FAILED or CANCELED.
inline bool IsTerminal(v1::TaskState s) {
  return s == v1::TASK_STATE_FINISHED || s == v1::TASK_STATE_FAILED || s == v1::TASK_STATE_CANCELED;
}

// Status <-> grpc::Status: the codes are aligned one to one.
grpc::Status ToGrpc(const Status& s);
Status FromGrpc(const grpc::Status& s);

// Resources. FromProto rejects negative quantities and empty names.
void ToProto(const ResourceSet& set, v1::Resources* out);
StatusOr<ResourceSet> FromProto(const v1::Resources& r, const std::string& field);
// A resource map as a user writes it (name -> amount, e.g. the C++ API's {{"CPU", 2}}): the one
// conversion from amounts in doubles to the wire's fixed point in live/. Amounts round to the
// nearest 1e-4 (Quantity::FromDouble); zero amounts are left out. InvalidArgument
// "<field>: bad quantity for '<name>'" for an empty name or a negative or non-finite amount.
StatusOr<v1::Resources> AmountsToProto(const std::map<std::string, double>& amounts,
                                       const std::string& field);
// A request: non-negative, unit-instance quantities below 1 or whole (core's ResourceRequest).
StatusOr<ResourceRequest> RequestFromProto(const v1::Resources& r, const std::string& field);

// Per-device availability.
void ToProto(const DeviceAvail& devices,
             google::protobuf::RepeatedPtrField<v1::DeviceAvailability>* out);
StatusOr<DeviceAvail> FromProto(
    const google::protobuf::RepeatedPtrField<v1::DeviceAvailability>& devices,
    const std::string& field);
// Device ids granted by an allocation (GPU -> CUDA_VISIBLE_DEVICES).
void ToProto(const Allocation& a, google::protobuf::RepeatedPtrField<v1::DeviceGrant>* out);

v1::NodeState ToProto(NodeState s);
NodeState FromProto(v1::NodeState s);  // UNSPECIFIED -> alive
v1::WaitReason ToProto(WaitReason r);
WaitReason FromProto(v1::WaitReason r);

void ToProto(const SchedulingStrategy& s, v1::SchedulingStrategy* out);
StatusOr<SchedulingStrategy> FromProto(const v1::SchedulingStrategy& s);

// A node's identity and resources as a core Node (state, labels, totals and availability,
// devices). InvalidArgument on a bad field.
StatusOr<Node> NodeFromProto(const v1::NodeInfo& info);
// Fills node_id, state, labels, total, available and devices of `out` from a core Node.
void ToProto(const Node& node, v1::NodeInfo* out);

// A validated lease request from its message (task id non-empty, resources a valid request,
// strategy valid).
StatusOr<LeaseRequest> FromProto(const v1::RequestWorkerLeaseRequest& req);
// The core's lease reply as a message. `spill_address` is the target's NodeService address
// (kSpillback only).
void ToProto(const LeaseReply& reply, const std::string& spill_address,
             v1::RequestWorkerLeaseReply* out);

// The cluster's scheduling setting (ClusterView.scheduler). FromProto: InvalidArgument for an
// unknown policy or an option out of range; an unset message (no policy) is the default.
void ToProto(const SchedulerOptions& o, v1::SchedulerSettings* out);
StatusOr<SchedulerOptions> SchedulerFromProto(const v1::SchedulerSettings& s);

}  // namespace orrery::live

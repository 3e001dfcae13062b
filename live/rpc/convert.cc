#include "live/rpc/convert.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/scheduling/scheduler_settings.h"

namespace orrery::live {

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())), s.message());
}

Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return Status::Ok();
  const int code = static_cast<int>(s.error_code());
  const StatusCode c =
      (code >= 0 && code <= 16) ? static_cast<StatusCode>(code) : StatusCode::kUnknown;
  return Status(c, s.error_message());
}

void ToProto(const ResourceSet& set, v1::Resources* out) {
  out->clear_raw();
  auto& m = *out->mutable_raw();
  set.ForEach([&](std::string_view name, Quantity q) { m[std::string(name)] = q.raw(); });
}

StatusOr<ResourceSet> FromProto(const v1::Resources& r, const std::string& field) {
  // Sort through std::map so the result does not depend on the proto map's order.
  std::map<std::string, Quantity> m;
  for (const auto& [name, raw] : r.raw()) {
    if (name.empty()) return InvalidArgument(field + ": empty resource name");
    if (raw < 0) return InvalidArgument(field + "." + name + ": negative quantity");
    m[name] = Quantity::FromRaw(raw);
  }
  return ResourceSet::FromMap(m);
}

StatusOr<v1::Resources> AmountsToProto(const std::map<std::string, double>& amounts,
                                       const std::string& field) {
  v1::Resources out;
  for (const auto& [name, v] : amounts) {
    if (name.empty() || !(v >= 0) || !std::isfinite(v)) {
      return InvalidArgument(field + ": bad quantity for '" + name + "'");
    }
    const int64_t raw = Quantity::FromDouble(v).raw();
    if (raw > 0) (*out.mutable_raw())[name] = raw;
  }
  return out;
}

StatusOr<ResourceRequest> RequestFromProto(const v1::Resources& r, const std::string& field) {
  std::map<std::string, double> m;
  for (const auto& [name, raw] : r.raw()) {
    // raw / 1e4 rounds back to the same raw value in Quantity::FromDouble: exact.
    m[name] = static_cast<double>(raw) / static_cast<double>(Quantity::kScale);
  }
  return ResourceRequest::Create(m, UnitInstanceNames(), field);
}

void ToProto(const DeviceAvail& devices,
             google::protobuf::RepeatedPtrField<v1::DeviceAvailability>* out) {
  out->Clear();
  for (const auto& [name, qs] : devices) {
    auto* d = out->Add();
    d->set_name(name);
    for (Quantity q : qs) d->add_raw(q.raw());
  }
}

StatusOr<DeviceAvail> FromProto(
    const google::protobuf::RepeatedPtrField<v1::DeviceAvailability>& devices,
    const std::string& field) {
  DeviceAvail out;
  for (const auto& d : devices) {
    if (d.name().empty()) return InvalidArgument(field + ": empty device resource name");
    std::vector<Quantity> qs;
    for (int64_t raw : d.raw()) {
      if (raw < 0 || raw > kOneUnit.raw()) {
        return InvalidArgument(field + "." + d.name() + ": device availability out of [0, 1]");
      }
      qs.push_back(Quantity::FromRaw(raw));
    }
    out.emplace_back(d.name(), std::move(qs));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void ToProto(const Allocation& a, google::protobuf::RepeatedPtrField<v1::DeviceGrant>* out) {
  out->Clear();
  for (const auto& [name, shares] : a.devices) {
    auto* g = out->Add();
    g->set_name(name);
    for (int id : a.DeviceIds(name)) g->add_ids(id);
  }
}

v1::NodeState ToProto(NodeState s) {
  switch (s) {
    case NodeState::kAlive:
      return v1::NODE_STATE_ALIVE;
    case NodeState::kDraining:
      return v1::NODE_STATE_DRAINING;
    case NodeState::kDead:
      return v1::NODE_STATE_DEAD;
  }
  return v1::NODE_STATE_ALIVE;
}

NodeState FromProto(v1::NodeState s) {
  switch (s) {
    case v1::NODE_STATE_DRAINING:
      return NodeState::kDraining;
    case v1::NODE_STATE_DEAD:
      return NodeState::kDead;
    default:
      return NodeState::kAlive;
  }
}

v1::WaitReason ToProto(WaitReason r) {
  switch (r) {
    case WaitReason::kNone:
      return v1::WAIT_REASON_NONE;
    case WaitReason::kInfeasible:
      return v1::WAIT_REASON_INFEASIBLE;
    case WaitReason::kWaitingForResources:
      return v1::WAIT_REASON_WAITING_FOR_RESOURCES;
    case WaitReason::kWaitingForRuntimeEnv:
      return v1::WAIT_REASON_WAITING_FOR_RUNTIME_ENV;
    case WaitReason::kWaitingForArgs:
      return v1::WAIT_REASON_WAITING_FOR_ARGS;
    case WaitReason::kWaitingForPlacementGroup:
      return v1::WAIT_REASON_WAITING_FOR_PLACEMENT_GROUP;
    case WaitReason::kWaitingForNode:
      return v1::WAIT_REASON_WAITING_FOR_NODE;
  }
  return v1::WAIT_REASON_NONE;
}

WaitReason FromProto(v1::WaitReason r) {
  switch (r) {
    case v1::WAIT_REASON_INFEASIBLE:
      return WaitReason::kInfeasible;
    case v1::WAIT_REASON_WAITING_FOR_RESOURCES:
      return WaitReason::kWaitingForResources;
    case v1::WAIT_REASON_WAITING_FOR_RUNTIME_ENV:
      return WaitReason::kWaitingForRuntimeEnv;
    case v1::WAIT_REASON_WAITING_FOR_ARGS:
      return WaitReason::kWaitingForArgs;
    case v1::WAIT_REASON_WAITING_FOR_PLACEMENT_GROUP:
      return WaitReason::kWaitingForPlacementGroup;
    case v1::WAIT_REASON_WAITING_FOR_NODE:
      return WaitReason::kWaitingForNode;
    default:
      return WaitReason::kNone;
  }
}

void ToProto(const SchedulingStrategy& s, v1::SchedulingStrategy* out) {
  switch (s.type) {
    case SchedulingStrategy::Type::kDefault:
      out->set_type(v1::SchedulingStrategy::DEFAULT);
      break;
    case SchedulingStrategy::Type::kSpread:
      out->set_type(v1::SchedulingStrategy::SPREAD);
      break;
    case SchedulingStrategy::Type::kNodeAffinity:
      out->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
      break;
  }
  out->set_node_id(s.node);
  out->set_soft(s.soft);
  out->set_spill_on_unavailable(s.spill_on_unavailable);
  out->set_fail_on_unavailable(s.fail_on_unavailable);
}

StatusOr<SchedulingStrategy> FromProto(const v1::SchedulingStrategy& s) {
  switch (s.type()) {
    case v1::SchedulingStrategy::DEFAULT:
      return SchedulingStrategy::Default();
    case v1::SchedulingStrategy::SPREAD:
      return SchedulingStrategy::Spread();
    case v1::SchedulingStrategy::NODE_AFFINITY:
      if (s.node_id().empty()) return InvalidArgument("strategy.node_id: empty for NODE_AFFINITY");
      return SchedulingStrategy::NodeAffinity(s.node_id(), s.soft(), s.spill_on_unavailable(),
                                              s.fail_on_unavailable());
    default:
      return InvalidArgument("strategy.type: unknown value " + std::to_string(s.type()));
  }
}

StatusOr<Node> NodeFromProto(const v1::NodeInfo& info) {
  const std::string f = "nodes[" + info.node_id() + "]";
  if (info.node_id().empty()) return InvalidArgument("node_id: empty");
  auto total = FromProto(info.total(), f + ".total");
  if (!total.ok()) return total.status();
  auto available = FromProto(info.available(), f + ".available");
  if (!available.ok()) return available.status();
  auto devices = FromProto(info.devices(), f + ".devices");
  if (!devices.ok()) return devices.status();
  auto res = NodeResources::Create(*total);
  if (!res.ok()) return res.status().WithContext(f + ".total");
  if (!available->IsSubsetOf(*total)) {
    return InvalidArgument(f + ".available: exceeds the node's total");
  }
  res->SetAvailable(*available, *devices);
  Node n;
  n.id = info.node_id();
  n.state = FromProto(info.state());
  n.labels = Labels(info.labels().begin(), info.labels().end());
  n.resources = std::move(*res);
  return n;
}

void ToProto(const Node& node, v1::NodeInfo* out) {
  out->set_node_id(node.id);
  out->set_state(ToProto(node.state));
  out->mutable_labels()->clear();
  for (const auto& [k, v] : node.labels) (*out->mutable_labels())[k] = v;
  ToProto(node.resources.total(), out->mutable_total());
  ToProto(node.resources.available(), out->mutable_available());
  ToProto(node.resources.all_devices(), out->mutable_devices());
}

StatusOr<LeaseRequest> FromProto(const v1::RequestWorkerLeaseRequest& req) {
  if (req.task_id().empty()) return InvalidArgument("task_id: empty");
  if (req.spillbacks() < 0) return InvalidArgument("spillbacks: negative");
  if (req.queue_timeout_ms() < 0) return InvalidArgument("queue_timeout_ms: negative");
  auto resources = RequestFromProto(req.resources(), "resources");
  if (!resources.ok()) return resources.status();
  auto strategy = FromProto(req.strategy());
  if (!strategy.ok()) return strategy.status();
  LeaseRequest out;
  out.task_id = req.task_id();
  out.function = req.name();  // the task's function: part of its scheduling class at the node
  out.sched.resources = std::move(*resources);
  out.sched.strategy = std::move(*strategy);
  out.grant_or_reject = req.grant_or_reject();
  out.spillbacks = req.spillbacks();
  out.sched.actor_creation = req.actor_creation();  // --- live run
  for (int i = 0; i < req.args_size(); ++i) {
    const auto& a = req.args(i);
    ObjectArg arg;
    arg.bytes = a.bytes();
    for (const auto& n : a.node_ids()) {
      if (n.empty()) return InvalidArgument("args[" + std::to_string(i) + "].node_ids: empty id");
      arg.nodes.push_back(n);
    }
    out.sched.args.push_back(std::move(arg));
  }
  return out;
}

void ToProto(const LeaseReply& reply, const std::string& spill_address,
             v1::RequestWorkerLeaseReply* out) {
  out->Clear();
  out->set_reason(reply.reason);
  switch (reply.kind) {
    case LeaseReply::Kind::kGranted: {
      auto* g = out->mutable_granted();
      g->set_node_id(reply.node);
      ToProto(reply.allocation, g->mutable_devices());
      break;
    }
    case LeaseReply::Kind::kSpillback: {
      auto* s = out->mutable_spillback();
      s->set_node_id(reply.node);
      s->set_address(spill_address);
      s->set_grant_or_reject(reply.grant_or_reject);
      s->set_spillbacks(reply.spillbacks);
      break;
    }
    case LeaseReply::Kind::kRejected:
      out->mutable_rejected()->set_reason(reply.reason);
      break;
    case LeaseReply::Kind::kCanceled:
      out->mutable_canceled()->set_reason(reply.reason);
      break;
    case LeaseReply::Kind::kQueued:
      out->mutable_queued()->set_wait_reason(ToProto(reply.wait_reason));
      break;
  }
}

void ToProto(const SchedulerOptions& o, v1::SchedulerSettings* out) {
  out->set_policy(o.policy);
  out->set_spread_threshold(o.hybrid.spread_threshold);
  out->set_top_k_absolute(o.hybrid.top_k_absolute);
  out->set_top_k_fraction(o.hybrid.top_k_fraction);
  out->set_avoid_gpu_nodes(o.hybrid.avoid_gpu_nodes);
  out->set_no_fair_granting(!o.fair_granting);
  out->set_no_wait_at_best_node(!o.wait_at_best_node);
}

StatusOr<SchedulerOptions> SchedulerFromProto(const v1::SchedulerSettings& s) {
  SchedulerOptions o;
  if (s.policy().empty()) return o;
  ORRERY_RETURN_IF_ERROR(ApplySchedulerSetting("policy", s.policy(), &o));
  if (!(s.spread_threshold() >= 0 && s.spread_threshold() <= 1) ||
      !(s.top_k_fraction() >= 0 && s.top_k_fraction() <= 1) || s.top_k_absolute() < 1) {
    return InvalidArgument("scheduler: options out of range");
  }
  o.hybrid.spread_threshold = s.spread_threshold();
  o.hybrid.top_k_absolute = s.top_k_absolute();
  o.hybrid.top_k_fraction = s.top_k_fraction();
  o.hybrid.avoid_gpu_nodes = s.avoid_gpu_nodes();
  o.fair_granting = !s.no_fair_granting();
  o.wait_at_best_node = !s.no_wait_at_best_node();
  return o;
}

}  // namespace orrery::live

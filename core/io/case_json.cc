#include "core/io/case_json.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "core/io/json_fields.h"
#include "core/scheduling/policy_registry.h"

namespace orrery::io {
namespace {

using nlohmann::json;

#define CASE_CONCAT_INNER(a, b) a##b
#define CASE_CONCAT(a, b) CASE_CONCAT_INNER(a, b)
// Evaluates `expr` (a StatusOr); returns its Status from the enclosing function if not OK,
// otherwise moves the value into `lhs`.
#define CASE_ASSIGN_OR_RETURN(lhs, expr)             \
  auto CASE_CONCAT(case_or_, __LINE__) = (expr);     \
  if (!CASE_CONCAT(case_or_, __LINE__).ok()) {       \
    return CASE_CONCAT(case_or_, __LINE__).status(); \
  }                                                  \
  lhs = std::move(CASE_CONCAT(case_or_, __LINE__)).value()

std::string Quote(std::string_view s) { return DescribeJson(json(std::string(s))); }

// The field-reader kit's JSON getters (json_fields.h).
using Reader = JsonFields;

// nodes[] and an index from id to where it was declared (for reference checks).
struct NodesRead {
  ClusterView view;
  std::map<NodeId, JsonPath> declared_at;
};

// `autoscale`: the node may also carry the autoscale fields (read by ReadAutoscaleCase).
StatusOr<Node> ReadNode(const Reader& r, const json& v, const JsonPath& p, bool autoscale) {
  if (autoscale) {
    ORRERY_RETURN_IF_ERROR(r.Object(v, p,
                                    {"id", "total", "available", "devices", "labels", "state",
                                     "type", "status", "idle_s", "launch_time_s"}));
  } else {
    ORRERY_RETURN_IF_ERROR(
        r.Object(v, p, {"id", "total", "available", "devices", "labels", "state"}));
  }
  const UnitInstanceNames units;
  Node node;
  CASE_ASSIGN_OR_RETURN(const json* id, r.Required(v, p, "id"));
  CASE_ASSIGN_OR_RETURN(node.id, r.NodeIdValue(*id, p.Key("id")));

  if (const json* s = Reader::Optional(v, "state")) {
    CASE_ASSIGN_OR_RETURN(auto state, r.Enum(*s, p.Key("state"), {"alive", "draining", "dead"}));
    node.state = state == "alive"      ? NodeState::kAlive
                 : state == "draining" ? NodeState::kDraining
                                       : NodeState::kDead;
  }

  if (const json* l = Reader::Optional(v, "labels")) {
    const JsonPath lp = p.Key("labels");
    if (!l->is_object())
      return r.Fail(lp, "expected an object of strings, got " + DescribeJson(*l));
    for (const auto& [key, value] : l->items()) {
      if (key.empty()) return r.Fail(lp.Key(key), "a label key must not be empty");
      CASE_ASSIGN_OR_RETURN(node.labels[key], r.String(value, lp.Key(key)));
    }
  }

  CASE_ASSIGN_OR_RETURN(const json* t, r.Required(v, p, "total"));
  const JsonPath tp = p.Key("total");
  CASE_ASSIGN_OR_RETURN(auto total_map, r.Resources(*t, tp));
  for (const auto& [name, q] : total_map) {
    if (units.Contains(name) && !q.IsWhole()) {
      return r.Fail(tp.Key(name), name +
                                      " is counted per device: the total must be a whole "
                                      "number, got " +
                                      q.ToString());
    }
  }
  const ResourceSet total = ResourceSet::FromMap(total_map);
  auto created = NodeResources::Create(total, units);
  if (!created.ok()) return r.Fail(tp, created.status().message());
  node.resources = std::move(created).value();

  // Availability: `available` (default: total) and per-device detail from `devices`.
  ResourceSet available = total;
  const json* a = Reader::Optional(v, "available");
  const JsonPath ap = p.Key("available");
  if (a != nullptr) {
    CASE_ASSIGN_OR_RETURN(auto avail_map, r.Resources(*a, ap));
    for (const auto& [name, q] : avail_map) {
      if (q.IsZero()) continue;
      if (total.Get(name).IsZero()) {
        return r.Fail(ap.Key(name), "the node has no " + name + " in its total");
      }
      if (q > total.Get(name)) {
        return r.Fail(ap.Key(name),
                      q.ToString() + " is above the total " + total.Get(name).ToString());
      }
    }
    available = ResourceSet::FromMap(avail_map);
  }
  std::vector<std::pair<std::string, std::vector<Quantity>>> devices;
  if (const json* d = Reader::Optional(v, "devices")) {
    const JsonPath dp = p.Key("devices");
    if (!d->is_object()) {
      return r.Fail(dp, "expected an object of per-device lists, got " + DescribeJson(*d));
    }
    for (const auto& [name, list] : d->items()) {
      const JsonPath np = dp.Key(name);
      if (!units.Contains(name)) return r.Fail(np, "only GPU is tracked per device");
      const auto count = static_cast<size_t>(total.Get(name).raw() / Quantity::kScale);
      if (!list.is_array()) {
        return r.Fail(np,
                      "expected an array of per-device availability, got " + DescribeJson(list));
      }
      if (list.size() != count) {
        return r.Fail(np, "expected " + std::to_string(count) +
                              " entries (one per device in total." + name + "), got " +
                              std::to_string(list.size()));
      }
      std::vector<Quantity> shares;
      Quantity sum;
      for (size_t i = 0; i < list.size(); ++i) {
        CASE_ASSIGN_OR_RETURN(Quantity q, r.QuantityValue(list[i], np.Index(i)));
        if (q > kOneUnit) {
          return r.Fail(np.Index(i), "a device has capacity 1, got " + q.ToString());
        }
        shares.push_back(q);
        sum += q;
      }
      if (a != nullptr && a->contains(name) && available.Get(name) != sum) {
        return r.Fail(np, "the devices add up to " + sum.ToString() + " but available." + name +
                              " is " + available.Get(name).ToString());
      }
      available.Set(name, sum);
      devices.emplace_back(name, std::move(shares));
    }
  }
  node.resources.SetAvailable(available, devices);
  return node;
}

StatusOr<NodesRead> ReadNodes(const Reader& r, const json& root, bool autoscale = false) {
  NodesRead out;
  CASE_ASSIGN_OR_RETURN(const json* nodes, r.Required(root, JsonPath(), "nodes"));
  const JsonPath np = JsonPath().Key("nodes");
  if (!nodes->is_array())
    return r.Fail(np, "expected an array of nodes, got " + DescribeJson(*nodes));
  for (size_t i = 0; i < nodes->size(); ++i) {
    const JsonPath p = np.Index(i);
    CASE_ASSIGN_OR_RETURN(Node node, ReadNode(r, (*nodes)[i], p, autoscale));
    auto [it, inserted] = out.declared_at.emplace(node.id, p.Key("id"));
    if (!inserted) {
      return r.Fail(p.Key("id"), "duplicate node id " + Quote(node.id) + " (also " +
                                     it->second.ToString() + ")");
    }
    Status added = out.view.AddNode(std::move(node));
    if (!added.ok()) return r.Fail(p, added.message());
  }
  return out;
}

// A node id that must name a node in `nodes`.
StatusOr<NodeId> KnownNode(const Reader& r, const NodesRead& nodes, const json& v,
                           const JsonPath& p) {
  CASE_ASSIGN_OR_RETURN(NodeId id, r.NodeIdValue(v, p));
  if (nodes.declared_at.count(id) == 0) {
    return r.Fail(p, Quote(id) + " is not the id of a node in nodes");
  }
  return id;
}

struct RequestDefaults {
  bool force_spillback = false;
  bool require_available = false;
};

StatusOr<SchedulingStrategy> ReadStrategy(const Reader& r, const json& v, const JsonPath& p) {
  ORRERY_RETURN_IF_ERROR(
      r.Object(v, p, {"type", "node", "soft", "spill_on_unavailable", "fail_on_unavailable"}));
  SchedulingStrategy s;
  CASE_ASSIGN_OR_RETURN(const json* t, r.Required(v, p, "type"));
  CASE_ASSIGN_OR_RETURN(auto type,
                        r.Enum(*t, p.Key("type"), {"DEFAULT", "SPREAD", "NODE_AFFINITY"}));
  if (type != "NODE_AFFINITY") {
    for (const char* key : {"node", "soft", "spill_on_unavailable", "fail_on_unavailable"}) {
      if (v.contains(key)) return r.Fail(p.Key(key), "only valid with type NODE_AFFINITY");
    }
    s.type =
        type == "SPREAD" ? SchedulingStrategy::Type::kSpread : SchedulingStrategy::Type::kDefault;
    return s;
  }
  s.type = SchedulingStrategy::Type::kNodeAffinity;
  // The target may be absent from `nodes`: that models a node that left the cluster.
  CASE_ASSIGN_OR_RETURN(const json* node, r.Required(v, p, "node"));
  CASE_ASSIGN_OR_RETURN(s.node, r.NodeIdValue(*node, p.Key("node")));
  if (const json* b = Reader::Optional(v, "soft")) {
    CASE_ASSIGN_OR_RETURN(s.soft, r.Bool(*b, p.Key("soft")));
  }
  if (const json* b = Reader::Optional(v, "spill_on_unavailable")) {
    CASE_ASSIGN_OR_RETURN(s.spill_on_unavailable, r.Bool(*b, p.Key("spill_on_unavailable")));
  }
  if (const json* b = Reader::Optional(v, "fail_on_unavailable")) {
    CASE_ASSIGN_OR_RETURN(s.fail_on_unavailable, r.Bool(*b, p.Key("fail_on_unavailable")));
  }
  if (s.spill_on_unavailable && s.fail_on_unavailable) {
    return r.Fail(p.Key("fail_on_unavailable"),
                  "spill_on_unavailable and fail_on_unavailable cannot both be true");
  }
  return s;
}

StatusOr<SchedulingRequest> ReadRequest(const Reader& r, const NodesRead& nodes, const json& v,
                                        const JsonPath& p, const RequestDefaults& defaults) {
  ORRERY_RETURN_IF_ERROR(r.Object(v, p,
                                  {"resources", "strategy", "preferred", "args", "actor",
                                   "force_spillback", "require_available"}));
  SchedulingRequest req;
  CASE_ASSIGN_OR_RETURN(const json* res, r.Required(v, p, "resources"));
  CASE_ASSIGN_OR_RETURN(req.resources, r.Request(*res, p.Key("resources")));
  if (const json* s = Reader::Optional(v, "strategy")) {
    CASE_ASSIGN_OR_RETURN(req.strategy, ReadStrategy(r, *s, p.Key("strategy")));
  }
  if (const json* pref = Reader::Optional(v, "preferred")) {
    CASE_ASSIGN_OR_RETURN(req.preferred, KnownNode(r, nodes, *pref, p.Key("preferred")));
  }
  if (const json* args = Reader::Optional(v, "args")) {
    const JsonPath ap = p.Key("args");
    if (!args->is_array())
      return r.Fail(ap, "expected an array of arguments, got " + DescribeJson(*args));
    for (size_t i = 0; i < args->size(); ++i) {
      const JsonPath ip = ap.Index(i);
      const json& arg = (*args)[i];
      ORRERY_RETURN_IF_ERROR(r.Object(arg, ip, {"bytes", "nodes"}));
      ObjectArg oa;
      CASE_ASSIGN_OR_RETURN(const json* bytes, r.Required(arg, ip, "bytes"));
      CASE_ASSIGN_OR_RETURN(oa.bytes, r.Unsigned(*bytes, ip.Key("bytes")));
      CASE_ASSIGN_OR_RETURN(const json* locs, r.Required(arg, ip, "nodes"));
      const JsonPath lp = ip.Key("nodes");
      if (!locs->is_array())
        return r.Fail(lp, "expected an array of node ids, got " + DescribeJson(*locs));
      for (size_t j = 0; j < locs->size(); ++j) {
        CASE_ASSIGN_OR_RETURN(NodeId id, KnownNode(r, nodes, (*locs)[j], lp.Index(j)));
        oa.nodes.push_back(std::move(id));
      }
      req.args.push_back(std::move(oa));
    }
  }
  if (const json* b = Reader::Optional(v, "actor")) {
    CASE_ASSIGN_OR_RETURN(req.actor_creation, r.Bool(*b, p.Key("actor")));
  }
  req.force_spillback = defaults.force_spillback;
  if (const json* b = Reader::Optional(v, "force_spillback")) {
    CASE_ASSIGN_OR_RETURN(req.force_spillback, r.Bool(*b, p.Key("force_spillback")));
  }
  req.require_available = defaults.require_available;
  if (const json* b = Reader::Optional(v, "require_available")) {
    CASE_ASSIGN_OR_RETURN(req.require_available, r.Bool(*b, p.Key("require_available")));
  }
  return req;
}

StatusOr<ScheduleCase> ReadScheduleCase(const Reader& r, const json& root) {
  ORRERY_RETURN_IF_ERROR(
      r.Object(root, JsonPath(), {"kind", "nodes", "local", "options", "requests"}));
  CASE_ASSIGN_OR_RETURN(NodesRead nodes, ReadNodes(r, root));
  ScheduleCase c;

  CASE_ASSIGN_OR_RETURN(const json* local, r.Required(root, JsonPath(), "local"));
  CASE_ASSIGN_OR_RETURN(c.local, KnownNode(r, nodes, *local, JsonPath().Key("local")));

  RequestDefaults defaults;
  if (const json* o = Reader::Optional(root, "options")) {
    const JsonPath op = JsonPath().Key("options");
    ORRERY_RETURN_IF_ERROR(
        r.Object(*o, op,
                 {"policy", "spread_threshold", "top_k_absolute", "top_k_fraction",
                  "avoid_gpu_nodes", "force_spillback", "require_available", "seed"}));
    HybridOptions& h = c.scheduler.hybrid;
    if (const json* v = Reader::Optional(*o, "policy")) {
      const JsonPath pp = op.Key("policy");
      CASE_ASSIGN_OR_RETURN(c.scheduler.policy, r.String(*v, pp));
      const auto& registry = PolicyRegistry::Builtin();
      if (!registry.Contains(c.scheduler.policy)) {
        std::string known;
        for (const auto& e : registry.entries()) known += (known.empty() ? "" : "|") + e.name;
        return r.Fail(pp, "expected one of " + known + ", got " + DescribeJson(*v));
      }
    }
    if (const json* v = Reader::Optional(*o, "spread_threshold")) {
      CASE_ASSIGN_OR_RETURN(h.spread_threshold, r.Number(*v, op.Key("spread_threshold"), 0, 1));
    }
    if (const json* v = Reader::Optional(*o, "top_k_absolute")) {
      const JsonPath kp = op.Key("top_k_absolute");
      CASE_ASSIGN_OR_RETURN(uint64_t k, r.Unsigned(*v, kp));
      if (k < 1 || k > 1'000'000) {
        return r.Fail(kp, "expected an integer between 1 and 1000000, got " + DescribeJson(*v));
      }
      h.top_k_absolute = static_cast<int>(k);
    }
    if (const json* v = Reader::Optional(*o, "top_k_fraction")) {
      CASE_ASSIGN_OR_RETURN(h.top_k_fraction, r.Number(*v, op.Key("top_k_fraction"), 0, 1));
    }
    if (const json* v = Reader::Optional(*o, "avoid_gpu_nodes")) {
      CASE_ASSIGN_OR_RETURN(h.avoid_gpu_nodes, r.Bool(*v, op.Key("avoid_gpu_nodes")));
    }
    if (const json* v = Reader::Optional(*o, "force_spillback")) {
      CASE_ASSIGN_OR_RETURN(defaults.force_spillback, r.Bool(*v, op.Key("force_spillback")));
    }
    if (const json* v = Reader::Optional(*o, "require_available")) {
      CASE_ASSIGN_OR_RETURN(defaults.require_available, r.Bool(*v, op.Key("require_available")));
    }
    if (const json* v = Reader::Optional(*o, "seed")) {
      CASE_ASSIGN_OR_RETURN(c.seed, r.Unsigned(*v, op.Key("seed")));
    }
  }

  CASE_ASSIGN_OR_RETURN(const json* requests, r.Required(root, JsonPath(), "requests"));
  const JsonPath rp = JsonPath().Key("requests");
  if (!requests->is_array() || requests->empty()) {
    return r.Fail(rp, "expected a non-empty array of requests, got " + DescribeJson(*requests));
  }
  for (size_t i = 0; i < requests->size(); ++i) {
    CASE_ASSIGN_OR_RETURN(SchedulingRequest req,
                          ReadRequest(r, nodes, (*requests)[i], rp.Index(i), defaults));
    c.requests.push_back(std::move(req));
  }
  c.view = std::move(nodes.view);
  return c;
}

StatusOr<PlacementCase> ReadPlacementCase(const Reader& r, const json& root) {
  ORRERY_RETURN_IF_ERROR(
      r.Object(root, JsonPath(), {"kind", "nodes", "bundles", "strategy", "soft_target"}));
  CASE_ASSIGN_OR_RETURN(NodesRead nodes, ReadNodes(r, root));
  PlacementCase c;

  CASE_ASSIGN_OR_RETURN(const json* bundles, r.Required(root, JsonPath(), "bundles"));
  const JsonPath bp = JsonPath().Key("bundles");
  if (!bundles->is_array() || bundles->empty()) {
    return r.Fail(bp, "expected a non-empty array of bundles, got " + DescribeJson(*bundles));
  }
  for (size_t i = 0; i < bundles->size(); ++i) {
    CASE_ASSIGN_OR_RETURN(ResourceRequest b, r.Request((*bundles)[i], bp.Index(i)));
    if (b.IsEmpty()) return r.Fail(bp.Index(i), "a bundle must request at least one resource");
    c.bundles.push_back(std::move(b));
  }

  if (const json* s = Reader::Optional(root, "strategy")) {
    CASE_ASSIGN_OR_RETURN(auto name, r.Enum(*s, JsonPath().Key("strategy"),
                                            {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}));
    c.strategy = name == "PACK"          ? PlacementStrategy::kPack
                 : name == "SPREAD"      ? PlacementStrategy::kSpread
                 : name == "STRICT_PACK" ? PlacementStrategy::kStrictPack
                                         : PlacementStrategy::kStrictSpread;
  }
  if (const json* t = Reader::Optional(root, "soft_target")) {
    const JsonPath tp = JsonPath().Key("soft_target");
    if (c.strategy != PlacementStrategy::kStrictPack) {
      return r.Fail(tp, "only used with strategy STRICT_PACK");
    }
    CASE_ASSIGN_OR_RETURN(c.soft_target, KnownNode(r, nodes, *t, tp));
  }
  c.view = std::move(nodes.view);
  return c;
}

// ---------------------------------------------------------------------------------------------
// kind "autoscale"

// Node type names follow the node-id rules: non-empty, no white space or control characters.
Status CheckTypeName(const Reader& r, const std::string& name, const JsonPath& p) {
  bool ok = !name.empty() && name.size() <= kMaxNodeIdBytes;
  for (char c : name) ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
  if (!ok) {
    return r.Fail(p, "a node type name must be non-empty, without spaces or control characters");
  }
  return Status::Ok();
}

// An integer count in [lo, hi].
StatusOr<int64_t> Count(const Reader& r, const json& v, const JsonPath& p, uint64_t lo,
                        uint64_t hi) {
  CASE_ASSIGN_OR_RETURN(uint64_t n, r.Unsigned(v, p));
  if (n < lo || n > hi) {
    return r.Fail(p, "expected an integer between " + std::to_string(lo) + " and " +
                         std::to_string(hi) + ", got " + DescribeJson(v));
  }
  return static_cast<int64_t>(n);
}

constexpr uint64_t kMaxWorkersValue = static_cast<uint64_t>(autoscaler::kUnlimitedWorkers);
constexpr uint64_t kMaxMinWorkersValue = 1'000'000;
constexpr uint64_t kMaxDemandCount = 1'000'000'000;

// A request that asks for something: a demand or a bundle.
StatusOr<ResourceSet> NonEmptyRequest(const Reader& r, const json& v, const JsonPath& p,
                                      const char* what) {
  CASE_ASSIGN_OR_RETURN(ResourceRequest req, r.Request(v, p));
  if (req.IsEmpty()) {
    return r.Fail(p, std::string("a ") + what + " must request at least one resource");
  }
  return req.set();
}

StatusOr<autoscaler::NodeTypeConfig> ReadNodeType(const Reader& r, const json& v,
                                                  const JsonPath& p) {
  ORRERY_RETURN_IF_ERROR(r.Object(v, p, {"resources", "min_workers", "max_workers", "labels"}));
  const UnitInstanceNames units;
  autoscaler::NodeTypeConfig t;
  CASE_ASSIGN_OR_RETURN(const json* res, r.Required(v, p, "resources"));
  const JsonPath rp = p.Key("resources");
  CASE_ASSIGN_OR_RETURN(auto quantities, r.Resources(*res, rp));
  for (const auto& [name, q] : quantities) {
    if (units.Contains(name) && !q.IsWhole()) {
      return r.Fail(rp.Key(name), name +
                                      " is counted per device: the total must be a whole "
                                      "number, got " +
                                      q.ToString());
    }
  }
  t.resources = ResourceSet::FromMap(quantities);
  if (const json* m = Reader::Optional(v, "min_workers")) {
    CASE_ASSIGN_OR_RETURN(t.min_workers,
                          Count(r, *m, p.Key("min_workers"), 0, kMaxMinWorkersValue));
  }
  if (const json* m = Reader::Optional(v, "max_workers")) {
    CASE_ASSIGN_OR_RETURN(t.max_workers, Count(r, *m, p.Key("max_workers"), 0, kMaxWorkersValue));
  }
  if (t.max_workers < t.min_workers) {
    return r.Fail(p.Key("max_workers"), "max_workers " + std::to_string(t.max_workers) +
                                            " is below min_workers " +
                                            std::to_string(t.min_workers));
  }
  if (const json* l = Reader::Optional(v, "labels")) {
    const JsonPath lp = p.Key("labels");
    if (!l->is_object()) {
      return r.Fail(lp, "expected an object of strings, got " + DescribeJson(*l));
    }
    for (const auto& [key, value] : l->items()) {
      if (key.empty()) return r.Fail(lp.Key(key), "a label key must not be empty");
      CASE_ASSIGN_OR_RETURN(t.labels[key], r.String(value, lp.Key(key)));
    }
  }
  return t;
}

// The autoscale fields of nodes[i]; the node itself was read by ReadNodes.
StatusOr<autoscaler::SnapshotNode> ReadSnapshotNode(const Reader& r, const json& v,
                                                    const JsonPath& p, const Node& node,
                                                    const autoscaler::AutoscalerConfig& config,
                                                    double now_s) {
  using autoscaler::ProviderNodeState;
  autoscaler::SnapshotNode s;
  s.id = node.id;
  s.total = node.resources.total();
  s.available = node.resources.available();
  if (const json* t = Reader::Optional(v, "type")) {
    const JsonPath tp = p.Key("type");
    CASE_ASSIGN_OR_RETURN(s.type, r.String(*t, tp));
    if (config.node_types.count(s.type) == 0) {
      return r.Fail(tp, Quote(s.type) + " is not a node type in node_types");
    }
  }
  if (const json* st = Reader::Optional(v, "status")) {
    CASE_ASSIGN_OR_RETURN(auto status,
                          r.Enum(*st, p.Key("status"), {"pending", "running", "terminating"}));
    s.state = status == "pending"   ? ProviderNodeState::kPending
              : status == "running" ? ProviderNodeState::kRunning
                                    : ProviderNodeState::kTerminating;
  }
  if (const json* idle = Reader::Optional(v, "idle_s")) {
    const JsonPath ip = p.Key("idle_s");
    if (s.state != ProviderNodeState::kRunning) {
      return r.Fail(ip, "only a running node can be idle");
    }
    CASE_ASSIGN_OR_RETURN(double idle_s, r.Number(*idle, ip, 0, 1e12));
    s.idle_since_s = now_s - idle_s;
  }
  if (const json* lt = Reader::Optional(v, "launch_time_s")) {
    CASE_ASSIGN_OR_RETURN(s.launch_time_s, r.Number(*lt, p.Key("launch_time_s"), 0, 1e12));
  }
  if (node.state == NodeState::kDraining) s.state = ProviderNodeState::kTerminating;
  return s;
}

StatusOr<AutoscaleCase> ReadAutoscaleCase(const Reader& r, const json& root) {
  const JsonPath top;
  ORRERY_RETURN_IF_ERROR(r.Object(root, top,
                                  {"kind", "node_types", "max_workers", "upscaling_speed",
                                   "idle_timeout_s", "now_s", "nodes", "demands", "gangs"}));
  AutoscaleCase c;
  autoscaler::AutoscalerConfig& cfg = c.config;

  CASE_ASSIGN_OR_RETURN(const json* types, r.Required(root, top, "node_types"));
  const JsonPath tp = top.Key("node_types");
  if (!types->is_object() || types->empty()) {
    return r.Fail(tp, "expected a non-empty object of node types, got " + DescribeJson(*types));
  }
  int64_t min_sum = 0;
  for (const auto& [name, value] : types->items()) {
    ORRERY_RETURN_IF_ERROR(CheckTypeName(r, name, tp.Key(name)));
    CASE_ASSIGN_OR_RETURN(cfg.node_types[name], ReadNodeType(r, value, tp.Key(name)));
    min_sum += cfg.node_types[name].min_workers;
  }
  if (const json* m = Reader::Optional(root, "max_workers")) {
    const JsonPath mp = top.Key("max_workers");
    CASE_ASSIGN_OR_RETURN(cfg.max_workers, Count(r, *m, mp, 0, kMaxWorkersValue));
    if (cfg.max_workers < min_sum) {
      return r.Fail(mp, "max_workers " + std::to_string(cfg.max_workers) +
                            " is below the sum of the node types' min_workers (" +
                            std::to_string(min_sum) + ")");
    }
  }
  if (const json* v = Reader::Optional(root, "upscaling_speed")) {
    CASE_ASSIGN_OR_RETURN(cfg.upscaling_speed, r.Number(*v, top.Key("upscaling_speed"), 0, 1e6));
  }
  if (const json* v = Reader::Optional(root, "idle_timeout_s")) {
    CASE_ASSIGN_OR_RETURN(cfg.idle_timeout_s, r.Number(*v, top.Key("idle_timeout_s"), 0, 1e9));
  }
  if (const json* v = Reader::Optional(root, "now_s")) {
    CASE_ASSIGN_OR_RETURN(c.input.now_s, r.Number(*v, top.Key("now_s"), 0, 1e12));
  }

  if (root.contains("nodes")) {
    CASE_ASSIGN_OR_RETURN(NodesRead nodes, ReadNodes(r, root, /*autoscale=*/true));
    const json& list = root.at("nodes");
    for (size_t i = 0; i < list.size(); ++i) {
      const JsonPath p = top.Key("nodes").Index(i);
      CASE_ASSIGN_OR_RETURN(const json* id, r.Required(list[i], p, "id"));
      const Node& node = *nodes.view.Find(id->get<std::string>());
      CASE_ASSIGN_OR_RETURN(autoscaler::SnapshotNode s,
                            ReadSnapshotNode(r, list[i], p, node, cfg, c.input.now_s));
      if (node.state == NodeState::kDead) continue;  // gone: not part of the snapshot
      c.input.nodes.push_back(std::move(s));
    }
  }

  if (const json* demands = Reader::Optional(root, "demands")) {
    const JsonPath dp = top.Key("demands");
    if (!demands->is_array()) {
      return r.Fail(dp, "expected an array of demands, got " + DescribeJson(*demands));
    }
    for (size_t i = 0; i < demands->size(); ++i) {
      const JsonPath p = dp.Index(i);
      const json& d = (*demands)[i];
      autoscaler::ResourceDemand demand;
      // The long form {"resources": {...}, "count": n}; a resource map never holds an object.
      if (d.is_object() && d.contains("resources") && d.at("resources").is_object()) {
        ORRERY_RETURN_IF_ERROR(r.Object(d, p, {"resources", "count"}));
        CASE_ASSIGN_OR_RETURN(demand.shape,
                              NonEmptyRequest(r, d.at("resources"), p.Key("resources"), "demand"));
        CASE_ASSIGN_OR_RETURN(const json* count, r.Required(d, p, "count"));
        CASE_ASSIGN_OR_RETURN(demand.count, Count(r, *count, p.Key("count"), 1, kMaxDemandCount));
      } else {
        CASE_ASSIGN_OR_RETURN(demand.shape, NonEmptyRequest(r, d, p, "demand"));
      }
      c.input.demands.push_back(std::move(demand));
    }
  }

  if (const json* gangs = Reader::Optional(root, "gangs")) {
    const JsonPath gp = top.Key("gangs");
    if (!gangs->is_array()) {
      return r.Fail(gp, "expected an array of gangs, got " + DescribeJson(*gangs));
    }
    for (size_t i = 0; i < gangs->size(); ++i) {
      const JsonPath p = gp.Index(i);
      const json& g = (*gangs)[i];
      ORRERY_RETURN_IF_ERROR(r.Object(g, p, {"strategy", "bundles"}));
      autoscaler::GangDemand gang;
      if (const json* s = Reader::Optional(g, "strategy")) {
        CASE_ASSIGN_OR_RETURN(
            auto name,
            r.Enum(*s, p.Key("strategy"), {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}));
        gang.strategy = name == "PACK"          ? PlacementStrategy::kPack
                        : name == "SPREAD"      ? PlacementStrategy::kSpread
                        : name == "STRICT_PACK" ? PlacementStrategy::kStrictPack
                                                : PlacementStrategy::kStrictSpread;
      }
      CASE_ASSIGN_OR_RETURN(const json* bundles, r.Required(g, p, "bundles"));
      const JsonPath bp = p.Key("bundles");
      if (!bundles->is_array() || bundles->empty()) {
        return r.Fail(bp, "expected a non-empty array of bundles, got " + DescribeJson(*bundles));
      }
      for (size_t b = 0; b < bundles->size(); ++b) {
        CASE_ASSIGN_OR_RETURN(ResourceSet bundle,
                              NonEmptyRequest(r, (*bundles)[b], bp.Index(b), "bundle"));
        gang.bundles.push_back(std::move(bundle));
      }
      c.input.gangs.push_back(std::move(gang));
    }
  }

  // Everything the planner checks was checked above with a path; this cannot fail.
  auto planner = autoscaler::AutoscalerPlanner::Create(cfg);
  if (!planner.ok()) return r.Fail(top, planner.status().message());
  return c;
}

// ---------------------------------------------------------------------------------------------
// kind "env_cache"

constexpr uint64_t kMaxEnvBytes = 1'000'000'000'000'000;  // 1e15: totals stay exact
constexpr size_t kMaxUriBytes = 4096;
constexpr const char* kDefaultEnvKind = "default";

StatusOr<uint64_t> EnvBytes(const Reader& r, const json& v, const JsonPath& p) {
  CASE_ASSIGN_OR_RETURN(uint64_t n, r.Unsigned(v, p));
  if (n > kMaxEnvBytes) {
    return r.Fail(p, "expected an integer between 0 and 1000000000000000, got " + DescribeJson(v));
  }
  return n;
}

// A URI or kind: a non-empty string without control characters.
StatusOr<std::string> EnvName(const Reader& r, const json& v, const JsonPath& p, const char* what) {
  const std::string want =
      std::string("expected ") + what + " (a non-empty string without control characters), got ";
  if (!v.is_string()) return r.Fail(p, want + DescribeJson(v));
  auto s = v.get<std::string>();
  bool ok = !s.empty() && s.size() <= kMaxUriBytes;
  for (char c : s) ok = ok && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  if (!ok) return r.Fail(p, want + DescribeJson(v));
  return s;
}

StatusOr<EnvCacheCase> ReadEnvCacheCase(const Reader& r, const json& root) {
  const JsonPath top;
  ORRERY_RETURN_IF_ERROR(r.Object(root, top, {"kind", "limit_bytes", "policy", "ops"}));
  EnvCacheCase c;
  CASE_ASSIGN_OR_RETURN(const json* limit, r.Required(root, top, "limit_bytes"));
  const JsonPath lp = top.Key("limit_bytes");
  const bool per_kind = limit->is_object();
  if (per_kind) {
    for (const auto& [kind, value] : limit->items()) {
      if (kind.empty()) return r.Fail(lp.Key(kind), "a kind must not be empty");
      CASE_ASSIGN_OR_RETURN(c.options.limit_bytes[kind], EnvBytes(r, value, lp.Key(kind)));
    }
  } else if (limit->is_number_unsigned()) {
    CASE_ASSIGN_OR_RETURN(c.options.default_limit_bytes, EnvBytes(r, *limit, lp));
  } else {
    return r.Fail(lp, "expected a number of bytes (every kind) or an object {kind: bytes}, got " +
                          DescribeJson(*limit));
  }
  if (const json* p = Reader::Optional(root, "policy")) {
    CASE_ASSIGN_OR_RETURN(c.options.policy,
                          r.Enum(*p, top.Key("policy"), {"arbitrary", "lru", "gdsf"}));
  }

  CASE_ASSIGN_OR_RETURN(const json* ops, r.Required(root, top, "ops"));
  const JsonPath op_path = top.Key("ops");
  if (!ops->is_array() || ops->empty()) {
    return r.Fail(op_path, "expected a non-empty array of operations, got " + DescribeJson(*ops));
  }
  // Ops are checked against a scratch cache as they come, so a use of an evicted URI or an
  // unmatched "unused" is reported at its own path.
  auto scratch = envcache::EnvCache::Create(c.options);
  if (!scratch.ok()) return r.Fail(top, scratch.status().message());
  std::map<std::string, size_t> evicted_by;  // URI -> the op that last evicted it
  for (size_t i = 0; i < ops->size(); ++i) {
    const JsonPath p = op_path.Index(i);
    const json& v = (*ops)[i];
    constexpr const char* kForms =
        "expected [\"add\", URI, BYTES], [\"add\", URI, BYTES, KIND], [\"used\", URI] or "
        "[\"unused\", URI], got ";
    if (!v.is_array() || v.empty()) return r.Fail(p, std::string(kForms) + DescribeJson(v));
    CASE_ASSIGN_OR_RETURN(auto name, r.Enum(v[0], p.Index(0), {"add", "used", "unused"}));
    EnvCacheOp op;
    op.kind = name == "add"    ? EnvCacheOp::Kind::kAdd
              : name == "used" ? EnvCacheOp::Kind::kUsed
                               : EnvCacheOp::Kind::kUnused;
    const bool add = op.kind == EnvCacheOp::Kind::kAdd;
    if (add ? (v.size() < 3 || v.size() > 4) : v.size() != 2) {
      return r.Fail(p, std::string(kForms) + "an array of " + std::to_string(v.size()));
    }
    CASE_ASSIGN_OR_RETURN(op.uri, EnvName(r, v[1], p.Index(1), "a URI"));
    if (add) {
      CASE_ASSIGN_OR_RETURN(op.bytes, EnvBytes(r, v[2], p.Index(2)));
      op.cache_kind = kDefaultEnvKind;
      if (v.size() == 4) {
        CASE_ASSIGN_OR_RETURN(op.cache_kind, EnvName(r, v[3], p.Index(3), "a kind"));
      }
      if (per_kind && c.options.limit_bytes.count(op.cache_kind) == 0) {
        return r.Fail(v.size() == 4 ? p.Index(3) : p,
                      "kind " + Quote(op.cache_kind) + " has no limit in limit_bytes");
      }
    }
    auto applied = ApplyEnvCacheOp(*scratch, op, "ops[" + std::to_string(i) + "]");
    if (!applied.ok()) {
      std::string why = applied.status().message();
      if (auto it = evicted_by.find(op.uri); it != evicted_by.end() && !scratch->State(op.uri)) {
        why += "; it was evicted by ops[" + std::to_string(it->second) + "]";
      }
      return r.Fail(p, why);
    }
    for (const auto& d : *applied) {
      if (const auto* e = std::get_if<envcache::Evict>(&d)) evicted_by[e->uri] = i;
    }
    c.ops.push_back(std::move(op));
  }
  return c;
}

}  // namespace

StatusOr<ExplainCase> ParseExplainCase(const JsonDocument& doc) {
  const Reader r(doc);
  const json& root = doc.root();
  if (!root.is_object())
    return r.Fail(JsonPath(), "expected a JSON object, got " + DescribeJson(root));
  CASE_ASSIGN_OR_RETURN(const json* kind_value, r.Required(root, JsonPath(), "kind"));
  const JsonPath kp = JsonPath().Key("kind");
  CASE_ASSIGN_OR_RETURN(
      std::string kind,
      r.Enum(*kind_value, kp, {"schedule", "placement_group", "autoscale", "env_cache"}));
  if (kind == "schedule") {
    CASE_ASSIGN_OR_RETURN(ScheduleCase c, ReadScheduleCase(r, root));
    return ExplainCase(std::move(c));
  }
  if (kind == "placement_group") {
    CASE_ASSIGN_OR_RETURN(PlacementCase c, ReadPlacementCase(r, root));
    return ExplainCase(std::move(c));
  }
  if (kind == "autoscale") {
    CASE_ASSIGN_OR_RETURN(AutoscaleCase c, ReadAutoscaleCase(r, root));
    return ExplainCase(std::move(c));
  }
  CASE_ASSIGN_OR_RETURN(EnvCacheCase c, ReadEnvCacheCase(r, root));
  return ExplainCase(std::move(c));
}

StatusOr<envcache::CacheDecisions> ApplyEnvCacheOp(envcache::EnvCache& cache, const EnvCacheOp& op,
                                                   const std::string& waiter) {
  using envcache::EntryState;
  const std::optional<EntryState> state = cache.State(op.uri);
  const std::string uri = Quote(op.uri);
  if (op.kind != EnvCacheOp::Kind::kAdd && state != EntryState::kReady) {
    return InvalidArgument(uri + " is not in the cache (never added, or evicted)");
  }
  switch (op.kind) {
    case EnvCacheOp::Kind::kAdd: {
      if (state == EntryState::kReady) {
        const std::string kind = cache.KindOf(op.uri).value_or("");
        if (kind != op.cache_kind) {
          return InvalidArgument(uri + " is cached as kind " + Quote(kind) + ", not " +
                                 Quote(op.cache_kind) + " (a URI has one kind)");
        }
        if (cache.BytesOf(op.uri) != op.bytes) {
          return InvalidArgument(uri + " is cached with " + std::to_string(cache.BytesOf(op.uri)) +
                                 " bytes, not " + std::to_string(op.bytes) +
                                 " (a URI is a content hash: same URI, same size)");
        }
        return cache.Acquire(op.uri, op.cache_kind, waiter, 0.0);
      }
      auto started = cache.Acquire(op.uri, op.cache_kind, waiter, 0.0);
      if (!started.ok()) return started.status();
      const auto* start =
          started->size() == 1 ? std::get_if<envcache::StartInstall>(&started->front()) : nullptr;
      if (start == nullptr) return Internal("adding " + uri + " did not start an install");
      auto done = cache.ReportInstalled(op.uri, start->attempt, op.bytes, 0.0);
      if (!done.ok()) return done.status();
      envcache::CacheDecisions out = std::move(started).value();
      for (auto& d : *done) out.push_back(std::move(d));
      return out;
    }
    case EnvCacheOp::Kind::kUsed:
      return cache.Acquire(op.uri, cache.KindOf(op.uri).value_or(""), waiter, 0.0);
    case EnvCacheOp::Kind::kUnused:
      if (cache.RefCount(op.uri) == 0) {
        return InvalidArgument(uri +
                               " is not in use: every add and used of it was already matched by "
                               "an unused");
      }
      return cache.Release(op.uri);
  }
  return Internal("unknown env_cache op");
}

}  // namespace orrery::io

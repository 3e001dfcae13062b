#include "core/cli/explain.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <variant>

#include "core/cli/cli.h"
#include "core/io/case_json.h"
#include "core/io/json_input.h"
#include "core/scheduling/hybrid_policy.h"

namespace orrery::cli {
namespace {

// The case file's reader (core/io/case_json.h) and its JSON kit.
using io::ApplyEnvCacheOp;
using io::AutoscaleCase;
using io::EnvCacheCase;
using io::EnvCacheOp;
using io::ExplainCase;
using io::JsonDocument;
using io::kSupportedCaseKinds;
using io::ParseExplainCase;
using io::PlacementCase;
using io::ReadTextFile;
using io::ScheduleCase;

using OJson = nlohmann::ordered_json;

// Case files are hand-written or dumped views; anything this large is a mistake.
constexpr size_t kMaxCaseBytes = 64u << 20;

void PrintUsage(std::ostream& os) {
  os << "usage: orrery explain CASE.json [--json]\n"
        "\n"
        "Asks the core what it would decide for the case in CASE.json and why: where requests\n"
        "land (kind \"schedule\"), where a placement group goes (\"placement_group\"), what the\n"
        "autoscaler launches and terminates (\"autoscale\"), what a node's runtime-env cache\n"
        "evicts (\"env_cache\"). See DESIGN section 8.\n"
        "\n"
        "  --json      print the decisions as JSON instead of tables\n"
        "  -h, --help  print this help\n";
}

// ---------------------------------------------------------------------------------------------
// Evaluation: core calls only, no output.

struct NodeVerdict {
  NodeId id;
  NodeState state = NodeState::kAlive;
  bool feasible = false;   // fits the node's totals (whatever its state)
  bool available = false;  // fits what the node has free now
  double score = 0.0;      // HybridScore at the case's spread threshold
};

struct ScheduleStep {
  Decision decision;
  std::optional<NodeId> node;       // chosen node, if any
  std::optional<NodeId> preferred;  // preferred node the default policy used, if any
  bool applied = false;             // the request was allocated on `node`
  std::vector<int> gpu_devices;     // device ids of the allocation
  std::vector<NodeVerdict> nodes;   // every node, by id, before the request was applied
};

std::vector<NodeVerdict> Verdicts(const ClusterView& view, const ResourceRequest& r,
                                  double spread_threshold) {
  std::vector<NodeVerdict> out;
  for (int slot : view.ordered_slots()) {
    const Node& n = view.at(slot);
    out.push_back({.id = n.id,
                   .state = n.state,
                   .feasible = n.resources.IsFeasible(r),
                   .available = n.resources.IsAvailable(r),
                   .score = HybridScore(n, spread_threshold)});
  }
  return out;
}

// REQUIRES: c.local names a node of c.view.
StatusOr<std::vector<ScheduleStep>> EvaluateSchedule(ScheduleCase& c) {
  auto scheduler = Scheduler::Create(c.scheduler);
  if (!scheduler.ok()) return scheduler.status();
  Rng rng(c.seed);
  const int local_slot = c.view.FindSlot(c.local);
  std::vector<ScheduleStep> steps;
  for (const auto& req : c.requests) {
    ScheduleStep step;
    step.nodes = Verdicts(c.view, req.resources, c.scheduler.hybrid.spread_threshold);
    step.decision = (*scheduler)->Schedule(c.view, req, local_slot, rng);
    const Decision& d = step.decision;
    if (d.preferred_slot >= 0) step.preferred = c.view.at(d.preferred_slot).id;
    if (d.slot >= 0) {
      step.node = c.view.at(d.slot).id;
      if (d.available) {
        // Through the view, so any index a policy keeps is told about the change.
        if (auto a = c.view.Allocate(d.slot, req.resources)) {
          step.applied = true;
          step.gpu_devices = a->DeviceIds(kGPU);
        }
      }
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

struct PlacementReport {
  PlacementResult::Kind kind = PlacementResult::Kind::kFailed;
  std::string reason;
  std::vector<NodeId> placement;  // per bundle, caller's order; empty unless placed
};

// Places the group and, if placed, reserves it in c.view the way the two-phase commit does:
// every bundle is prepared; if one cannot be, all prepared ones are returned and the group has
// failed (to be retried), so the view never keeps a partial reservation.
PlacementReport EvaluatePlacement(PlacementCase& c) {
  PlacementReport report;
  const PlacementResult r = PlaceBundles(c.view, c.bundles, c.strategy, c.soft_target);
  report.kind = r.kind;
  report.reason = r.reason;
  if (r.kind != PlacementResult::Kind::kPlaced) return report;
  if (r.slots.size() != c.bundles.size()) {
    report.kind = PlacementResult::Kind::kFailed;
    report.reason = "internal: the placement names " + std::to_string(r.slots.size()) +
                    " nodes for " + std::to_string(c.bundles.size()) + " bundles";
    return report;
  }
  std::vector<std::pair<int, Allocation>> prepared;
  for (size_t i = 0; i < c.bundles.size(); ++i) {
    auto a = c.view.Allocate(r.slots[i], c.bundles[i]);
    if (!a) {
      for (auto it = prepared.rbegin(); it != prepared.rend(); ++it) {
        c.view.Release(it->first, it->second);
      }
      report.kind = PlacementResult::Kind::kFailed;
      report.reason = "reserving bundle " + std::to_string(i) + " " + c.bundles[i].ToString() +
                      " on " + c.view.at(r.slots[i]).id +
                      " failed; every prepared bundle was returned (placement was: " + r.reason +
                      ")";
      return report;
    }
    prepared.emplace_back(r.slots[i], std::move(*a));
  }
  for (int slot : r.slots) report.placement.push_back(c.view.at(slot).id);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Rendering.

OJson QuantityJson(Quantity q) {
  if (q.IsWhole()) return OJson(q.raw() / Quantity::kScale);
  return OJson(q.ToDouble());
}

OJson ResourcesJson(const ResourceSet& s) {
  OJson out = OJson::object();
  s.ForEach([&](std::string_view name, Quantity q) { out[std::string(name)] = QuantityJson(q); });
  return out;
}

std::string Dump(const OJson& j) {
  return j.dump(2, ' ', false, OJson::error_handler_t::replace) + "\n";
}

void PrintScheduleJson(const std::vector<ScheduleStep>& steps, std::ostream& out) {
  OJson decisions = OJson::array();
  for (const auto& s : steps) {
    OJson d;
    d["node"] = s.node ? OJson(*s.node) : OJson(nullptr);
    d["outcome"] = OutcomeName(s.decision.outcome);
    d["reason"] = s.decision.reason;
    d["policy"] = s.decision.policy;
    d["devices"] = s.gpu_devices;
    OJson nodes = OJson::array();
    for (const auto& n : s.nodes) {
      OJson e;
      e["id"] = n.id;
      e["feasible"] = n.feasible;
      e["available"] = n.available;
      e["score"] = n.score;
      nodes.push_back(std::move(e));
    }
    d["nodes"] = std::move(nodes);
    decisions.push_back(std::move(d));
  }
  OJson root;
  root["decisions"] = std::move(decisions);
  out << Dump(root);
}

std::string StrategyText(const SchedulingRequest& r) {
  std::string s = StrategyTypeName(r.strategy.type);
  if (r.strategy.type == SchedulingStrategy::Type::kNodeAffinity) {
    s += " " + r.strategy.node + (r.strategy.soft ? " soft" : " hard");
    if (r.strategy.spill_on_unavailable) s += " spill_on_unavailable";
    if (r.strategy.fail_on_unavailable) s += " fail_on_unavailable";
  }
  if (r.actor_creation) s += ", actor";
  if (r.force_spillback) s += ", force_spillback";
  if (r.require_available) s += ", require_available";
  return s;
}

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::string Fixed3(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", x);
  return buf;
}

// Why a node was not a candidate for this decision ("" if it was one): the table marks every
// node the deciding rule skipped, so a score that "looks better" is never left unexplained.
std::string SkipNote(const ScheduleCase& c, const SchedulingRequest& req, const ScheduleStep& s,
                     const NodeVerdict& n) {
  if (n.state == NodeState::kDead) return "skipped: dead";
  if (n.state == NodeState::kDraining) return "skipped: draining";
  if (!n.feasible) return "skipped: can never hold the request";
  if (req.strategy.type == SchedulingStrategy::Type::kNodeAffinity) {
    return "";  // the affinity rule names its target; others matter only on fall-through
  }
  if (req.force_spillback && n.id == c.local) return "skipped: force_spillback excludes local";
  const bool chosen = s.node && *s.node == n.id;
  if (chosen) return "";
  const bool by_default_policy = s.decision.policy == c.scheduler.policy;
  if (by_default_policy && s.node && c.scheduler.hybrid.avoid_gpu_nodes &&
      !req.resources.RequestsGpu()) {
    // The GPU-avoidance pass decided iff it found a GPU-less node with the request available.
    const int slot = c.view.FindSlot(*s.node);
    const Node& picked = c.view.at(slot);
    const bool gpu_pass = !picked.HasGpu() && s.applied;
    const int me = c.view.FindSlot(n.id);
    if (gpu_pass && me >= 0 && c.view.at(me).HasGpu()) {
      return "skipped: has GPUs (GPU avoidance)";
    }
  }
  if ((req.require_available || (s.node && s.applied)) && !n.available) {
    return req.require_available ? "skipped: not available (require_available)"
                                 : "not available now (an available node was chosen)";
  }
  if (by_default_policy && s.preferred && *s.preferred == n.id && s.node) {
    return "not chosen: its score is above the best candidate's";
  }
  return "";
}

void PrintScheduleText(const ScheduleCase& c, const std::vector<ScheduleStep>& steps,
                       std::ostream& out) {
  out << "schedule: " << c.view.size() << " node" << (c.view.size() == 1 ? "" : "s") << ", local "
      << c.local << ", policy " << c.scheduler.policy << ", seed " << c.seed << "\n";
  size_t id_width = 4;
  for (int slot : c.view.ordered_slots()) id_width = std::max(id_width, c.view.at(slot).id.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const ScheduleStep& s = steps[i];
    const SchedulingRequest& req = c.requests[i];
    out << "\nrequest " << i << ": " << req.resources.ToString() << "  strategy "
        << StrategyText(req) << "\n";
    out << "     " << Pad("node", id_width) << "  state     feasible  available  score  notes\n";
    for (const auto& n : s.nodes) {
      const bool chosen = s.node && *s.node == n.id;
      std::string notes;
      auto note = [&](const char* w) { notes += (notes.empty() ? "" : ", ") + std::string(w); };
      if (n.id == c.local) note("local");
      if (s.preferred && *s.preferred == n.id) note("preferred");
      if (req.strategy.type == SchedulingStrategy::Type::kNodeAffinity &&
          req.strategy.node == n.id) {
        note("affinity target");
      }
      const std::string skipped = SkipNote(c, req, s, n);
      if (!skipped.empty()) note(skipped.c_str());
      std::string row = (chosen ? "  -> " : "     ") + Pad(n.id, id_width) + "  " +
                        Pad(NodeStateName(n.state), 8) + "  " + Pad(n.feasible ? "yes" : "no", 8) +
                        "  " + Pad(n.available ? "yes" : "no", 9) + "  " + Fixed3(n.score) + "  " +
                        notes;
      row.erase(row.find_last_not_of(' ') + 1);
      out << row << "\n";
    }
    out << "  outcome: " << OutcomeName(s.decision.outcome);
    if (s.node) out << " on " << *s.node;
    out << " (policy " << s.decision.policy;
    if (s.applied) {
      out << "; applied";
      if (!s.gpu_devices.empty()) {
        out << ", GPU devices";
        for (int d : s.gpu_devices) out << " " << d;
      }
    } else if (s.node) {
      out << "; not available there now: the task waits, nothing applied";
    }
    out << ")\n  reason:  " << s.decision.reason << "\n";
  }
}

OJson NodesAfterJson(const ClusterView& view) {
  OJson nodes = OJson::array();
  for (int slot : view.ordered_slots()) {
    const Node& n = view.at(slot);
    OJson e;
    e["id"] = n.id;
    e["total"] = ResourcesJson(n.resources.total());
    e["available"] = ResourcesJson(n.resources.available());
    nodes.push_back(std::move(e));
  }
  return nodes;
}

void PrintPlacementJson(const PlacementCase& c, const PlacementReport& r, std::ostream& out) {
  OJson root;
  root["outcome"] = PlacementKindName(r.kind);
  root["placement"] = r.placement;
  root["reason"] = r.reason;
  root["nodes_after"] = NodesAfterJson(c.view);
  out << Dump(root);
}

void PrintPlacementText(const PlacementCase& c, const PlacementReport& r, std::ostream& out) {
  out << "placement_group: " << c.bundles.size() << " bundle" << (c.bundles.size() == 1 ? "" : "s")
      << ", strategy " << PlacementStrategyName(c.strategy);
  if (c.soft_target) out << ", soft target " << *c.soft_target;
  out << "\n\n";
  for (size_t i = 0; i < c.bundles.size(); ++i) {
    out << "  bundle " << i << ": " << c.bundles[i].ToString();
    if (!r.placement.empty()) out << " -> " << r.placement[i];
    out << "\n";
  }
  out << "\noutcome: " << PlacementKindName(r.kind) << "\nreason:  " << r.reason << "\n";
  out << "\nnodes after"
      << (r.kind == PlacementResult::Kind::kPlaced ? " (group reserved)"
                                                   : " (unchanged: nothing is reserved)")
      << ":\n";
  size_t id_width = 4;
  for (int slot : c.view.ordered_slots()) id_width = std::max(id_width, c.view.at(slot).id.size());
  out << "  " << Pad("node", id_width) << "  state     total / available\n";
  for (int slot : c.view.ordered_slots()) {
    const Node& n = c.view.at(slot);
    out << "  " << Pad(n.id, id_width) << "  " << Pad(NodeStateName(n.state), 8) << "  "
        << n.resources.total().ToString() << " / " << n.resources.available().ToString() << "\n";
  }
}

// ---------------------------------------------------------------------------------------------
// kind "autoscale"

std::string Num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", x);
  return buf;
}

std::string Limit(int64_t n) {
  return n >= autoscaler::kUnlimitedWorkers ? std::string("-") : std::to_string(n);
}

StatusOr<autoscaler::AutoscalePlan> EvaluateAutoscale(const AutoscaleCase& c) {
  auto planner = autoscaler::AutoscalerPlanner::Create(c.config);
  if (!planner.ok()) return planner.status();
  return planner->Plan(c.input);
}

void PrintAutoscaleJson(const autoscaler::AutoscalePlan& p, std::ostream& out) {
  OJson launch = OJson::object();
  for (const auto& l : p.launches) launch[l.type] = l.count;  // by type name
  OJson terminate = OJson::array();
  for (const auto& t : p.terminations) terminate.push_back(t.node);
  OJson infeasible = OJson::array();
  for (const auto& i : p.infeasible) infeasible.push_back(ResourcesJson(i.shape));
  OJson root;
  root["launch"] = std::move(launch);
  root["terminate"] = std::move(terminate);
  root["infeasible"] = std::move(infeasible);
  out << Dump(root);
}

void PrintAutoscaleText(const AutoscaleCase& c, const autoscaler::AutoscalePlan& p,
                        std::ostream& out) {
  using autoscaler::ProviderNodeState;
  const auto& cfg = c.config;
  int64_t units = 0;
  for (const auto& d : c.input.demands) units += d.count;
  std::map<std::string, std::pair<int, int>> per_type;  // type -> (running, pending)
  int running = 0;
  int pending = 0;
  for (const auto& n : c.input.nodes) {
    const bool is_pending = n.state == ProviderNodeState::kPending;
    if (n.state == ProviderNodeState::kTerminating) continue;
    (is_pending ? pending : running) += 1;
    if (!n.type.empty()) (is_pending ? per_type[n.type].second : per_type[n.type].first) += 1;
  }
  out << "autoscale: " << cfg.node_types.size() << " node type"
      << (cfg.node_types.size() == 1 ? "" : "s") << ", " << running << " running and " << pending
      << " pending node" << (pending == 1 ? "" : "s") << ", " << units << " demand unit"
      << (units == 1 ? "" : "s") << " in " << c.input.demands.size() << " entr"
      << (c.input.demands.size() == 1 ? "y" : "ies") << ", " << c.input.gangs.size() << " gang"
      << (c.input.gangs.size() == 1 ? "" : "s") << "; now " << Num(c.input.now_s) << " s\n";
  out << "  max_workers "
      << (cfg.max_workers >= autoscaler::kUnlimitedWorkers ? std::string("no limit")
                                                           : std::to_string(cfg.max_workers))
      << ", upscaling_speed " << Num(cfg.upscaling_speed) << ", idle_timeout "
      << Num(cfg.idle_timeout_s) << " s\n\n";

  size_t w = 4;
  for (const auto& [name, t] : cfg.node_types) w = std::max(w, name.size());
  out << "  " << Pad("type", w) << "  min  max   running  pending  launch  resources\n";
  for (const auto& [name, t] : cfg.node_types) {
    const auto counts = per_type.count(name) ? per_type.at(name) : std::pair<int, int>{0, 0};
    out << "  " << Pad(name, w) << "  " << Pad(std::to_string(t.min_workers), 3) << "  "
        << Pad(Limit(t.max_workers), 4) << "  " << Pad(std::to_string(counts.first), 7) << "  "
        << Pad(std::to_string(counts.second), 7) << "  "
        << Pad(std::to_string(p.LaunchCount(name)), 6) << "  " << t.resources.ToString() << "\n";
  }

  out << "\nlaunch:\n";
  if (p.launches.empty()) out << "  (none)\n";
  for (const auto& l : p.launches) {
    std::string why;
    auto part = [&](int64_t n, const char* what) {
      if (n > 0) why += (why.empty() ? "" : ", ") + std::to_string(n) + " " + what;
    };
    part(l.for_min_workers, "for min_workers");
    part(l.for_gangs, "for gangs");
    part(l.for_demands, "for demands");
    out << "  " << Pad(l.type, w) << "  " << l.count << "  (" << why << ")\n";
  }
  out << "\nterminate:\n";
  if (p.terminations.empty()) out << "  (none)\n";
  for (const auto& t : p.terminations) {
    out << "  " << t.node << "  " << autoscaler::TerminateReasonName(t.reason) << ": " << t.detail
        << "\n";
  }
  out << "\ninfeasible (fits no node type that may launch, nor any node):\n";
  if (p.infeasible.empty()) out << "  (none)\n";
  for (const auto& i : p.infeasible) {
    out << "  " << i.shape.ToString() << " x" << i.count;
    if (i.gang >= 0) out << "  (gang " << i.gang << ")";
    out << "\n";
  }
  if (p.waiting_units > 0 || !p.waiting_gangs.empty() || !p.deferred.empty()) {
    out << "\nwaiting for a later round:\n";
    if (p.waiting_units > 0) out << "  " << p.waiting_units << " demand units\n";
    for (const auto& [type, n] : p.deferred) {
      out << "  " << n << " launch" << (n == 1 ? "" : "es") << " of " << type
          << " deferred by upscaling_speed\n";
    }
    for (int g : p.waiting_gangs) out << "  gang " << g << " (no room under max_workers)\n";
  }
}

// ---------------------------------------------------------------------------------------------
// kind "env_cache"

struct EnvCacheStep {
  std::string result;
  uint64_t total_after = 0;
};

struct EnvCacheReport {
  std::vector<EnvCacheStep> steps;
  std::vector<std::string> evicted;  // in eviction order (a URI evicted twice appears twice)
  uint64_t total_bytes = 0;
  envcache::CacheCounters counters;
};

std::string OpText(const EnvCacheOp& op) {
  switch (op.kind) {
    case EnvCacheOp::Kind::kAdd:
      return "add " + op.uri + " " + std::to_string(op.bytes) +
             (op.cache_kind == "default" ? "" : " " + op.cache_kind);
    case EnvCacheOp::Kind::kUsed:
      return "used " + op.uri;
    case EnvCacheOp::Kind::kUnused:
      return "unused " + op.uri;
  }
  return "?";
}

StatusOr<EnvCacheReport> EvaluateEnvCache(const EnvCacheCase& c) {
  auto cache = envcache::EnvCache::Create(c.options);
  if (!cache.ok()) return cache.status();
  EnvCacheReport r;
  for (size_t i = 0; i < c.ops.size(); ++i) {
    const EnvCacheOp& op = c.ops[i];
    const uint64_t hits_before = cache->counters().hits;
    auto d = ApplyEnvCacheOp(*cache, op, "ops[" + std::to_string(i) + "]");
    if (!d.ok()) return d.status().WithContext("ops[" + std::to_string(i) + "]");
    EnvCacheStep step;
    if (op.kind == EnvCacheOp::Kind::kUnused) {
      step.result = "released";
    } else if (cache->counters().hits > hits_before) {
      step.result = "hit";
    } else {
      step.result = "miss: installed";
    }
    const int64_t refs = cache->RefCount(op.uri);
    if (cache->State(op.uri)) {
      step.result += refs > 0 ? ", in use by " + std::to_string(refs) : ", unused";
    }
    std::string evicted;
    for (const auto& x : *d) {
      if (const auto* e = std::get_if<envcache::Evict>(&x)) {
        evicted +=
            (evicted.empty() ? "" : ", ") + e->uri + " (" + std::to_string(e->bytes) + " bytes)";
        r.evicted.push_back(e->uri);
      }
    }
    if (!evicted.empty()) step.result += "; evicted " + evicted;
    step.total_after = cache->TotalBytes();
    r.steps.push_back(std::move(step));
  }
  r.total_bytes = cache->TotalBytes();
  r.counters = cache->counters();
  return r;
}

void PrintEnvCacheJson(const EnvCacheReport& r, std::ostream& out) {
  OJson root;
  root["total_bytes"] = r.total_bytes;
  root["evicted"] = r.evicted;
  root["deletes"] = r.evicted.size();
  out << Dump(root);
}

void PrintEnvCacheText(const EnvCacheCase& c, const EnvCacheReport& r, std::ostream& out) {
  std::string limits;
  for (const auto& [kind, bytes] : c.options.limit_bytes) {
    limits += (limits.empty() ? "" : ", ") + kind + " " + std::to_string(bytes);
  }
  out << "env_cache: policy " << c.options.policy << ", "
      << (limits.empty()
              ? "limit " + std::to_string(c.options.default_limit_bytes) + " bytes per kind"
              : "limits " + limits + " bytes")
      << ", " << c.ops.size() << " op" << (c.ops.size() == 1 ? "" : "s") << "\n\n";
  size_t w = 9;
  for (const auto& op : c.ops) w = std::max(w, OpText(op).size());
  out << "  op   " << Pad("operation", w) << "  total  result\n";
  for (size_t i = 0; i < c.ops.size(); ++i) {
    out << "  " << Pad(std::to_string(i), 3) << "  " << Pad(OpText(c.ops[i]), w) << "  "
        << Pad(std::to_string(r.steps[i].total_after), 5) << "  " << r.steps[i].result << "\n";
  }
  std::string evicted;
  for (const auto& u : r.evicted) evicted += (evicted.empty() ? "" : ", ") + u;
  out << "\ntotal " << r.total_bytes << " bytes; evicted "
      << (evicted.empty() ? std::string("nothing") : evicted) << " (" << r.evicted.size()
      << " delete" << (r.evicted.size() == 1 ? "" : "s") << "); hits " << r.counters.hits
      << ", misses " << r.counters.misses << ", bytes installed " << r.counters.bytes_installed
      << "\n";
}

// ---------------------------------------------------------------------------------------------

int Explain(const std::string& path, bool as_json, std::ostream& out, std::ostream& err) {
  auto text = ReadTextFile(path, kMaxCaseBytes);
  if (!text.ok()) {
    err << path << ": " << text.status().message() << "\n";
    return kExitUsage;
  }
  auto doc = JsonDocument::Parse(*text);
  if (!doc.ok()) {
    err << path << ": " << doc.status().message() << "\n";
    return kExitUsage;
  }
  auto parsed = ParseExplainCase(*doc);
  if (!parsed.ok()) {
    err << path << ": " << parsed.status().message() << "\n";
    return kExitUsage;
  }
  ExplainCase& c = parsed.value();
  if (auto* sc = std::get_if<ScheduleCase>(&c)) {
    auto steps = EvaluateSchedule(*sc);
    if (!steps.ok()) {
      err << path << ": " << steps.status().ToString() << "\n";
      return kExitFailed;
    }
    if (as_json) {
      PrintScheduleJson(*steps, out);
    } else {
      PrintScheduleText(*sc, *steps, out);
    }
    return kExitOk;
  }
  if (auto* pc = std::get_if<PlacementCase>(&c)) {
    const PlacementReport report = EvaluatePlacement(*pc);
    if (as_json) {
      PrintPlacementJson(*pc, report, out);
    } else {
      PrintPlacementText(*pc, report, out);
    }
    return kExitOk;
  }
  if (auto* ac = std::get_if<AutoscaleCase>(&c)) {
    auto plan = EvaluateAutoscale(*ac);
    if (!plan.ok()) {
      err << path << ": " << plan.status().ToString() << "\n";
      return kExitFailed;
    }
    if (as_json) {
      PrintAutoscaleJson(*plan, out);
    } else {
      PrintAutoscaleText(*ac, *plan, out);
    }
    return kExitOk;
  }
  const auto& ec = std::get<EnvCacheCase>(c);
  auto report = EvaluateEnvCache(ec);
  if (!report.ok()) {
    err << path << ": " << report.status().ToString() << "\n";
    return kExitFailed;
  }
  if (as_json) {
    PrintEnvCacheJson(*report, out);
  } else {
    PrintEnvCacheText(ec, *report, out);
  }
  return kExitOk;
}

}  // namespace

int RunExplain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  bool as_json = false;
  bool no_more_flags = false;
  std::vector<std::string> files;
  for (const auto& a : args) {
    if (!no_more_flags && (a == "-h" || a == "--help")) {
      PrintUsage(out);
      return kExitOk;
    }
    if (!no_more_flags && a == "--json") {
      as_json = true;
    } else if (!no_more_flags && a == "--") {
      no_more_flags = true;
    } else if (!no_more_flags && a.size() > 1 && a[0] == '-') {
      err << "orrery explain: unknown option '" << a << "'\n\n";
      PrintUsage(err);
      return kExitUsage;
    } else {
      files.push_back(a);
    }
  }
  if (files.size() != 1) {
    err << "orrery explain: "
        << (files.empty()
                ? std::string("missing CASE.json")
                : "expected one CASE.json, got " + std::to_string(files.size()) + " files")
        << "\n\n";
    PrintUsage(err);
    return kExitUsage;
  }
  try {
    return Explain(files[0], as_json, out, err);
  } catch (const std::exception& e) {
    // Nothing here is expected to throw; an escaped exception is a bug, not bad input.
    err << "orrery explain: internal error: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace orrery::cli

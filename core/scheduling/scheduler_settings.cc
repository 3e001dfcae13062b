#include "core/scheduling/scheduler_settings.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "core/scheduling/policy_registry.h"

namespace orrery {
namespace {

bool ParseNumber(const std::string& v, double lo, double hi, double* out) {
  if (v.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (errno != 0 || end != v.c_str() + v.size() || !(d >= lo && d <= hi)) return false;
  *out = d;
  return true;
}

std::string Num(double d) {
  std::ostringstream s;
  s << d;
  return s.str();
}

}  // namespace

Status ApplySchedulerSetting(const std::string& key, const std::string& value,
                             SchedulerOptions* o) {
  if (key == "policy") {
    const PolicyRegistry& reg = PolicyRegistry::Builtin();
    if (!reg.Contains(value)) {
      std::string known;
      for (const auto& e : reg.entries()) known += (known.empty() ? "" : ", ") + e.name;
      return InvalidArgument("unknown policy '" + value + "' (known: " + known + ")");
    }
    o->policy = value;
    return Status::Ok();
  }
  double d = 0;
  if (key == "spread_threshold" || key == "top_k_fraction") {
    if (!ParseNumber(value, 0, 1, &d)) {
      return InvalidArgument("scheduler." + key + ": expected a number in [0, 1], got '" +
                             value + "'");
    }
    (key == "spread_threshold" ? o->hybrid.spread_threshold : o->hybrid.top_k_fraction) = d;
    return Status::Ok();
  }
  if (key == "top_k_absolute") {
    if (!ParseNumber(value, 1, 1e9, &d) || d != static_cast<double>(static_cast<int>(d))) {
      return InvalidArgument("scheduler.top_k_absolute: expected a whole number in [1, 1e9], got '" +
                             value + "'");
    }
    o->hybrid.top_k_absolute = static_cast<int>(d);
    return Status::Ok();
  }
  if (key == "avoid_gpu_nodes" || key == "fair_granting" || key == "wait_at_best_node") {
    if (value != "true" && value != "false") {
      return InvalidArgument("scheduler." + key + ": expected true or false, got '" + value +
                             "'");
    }
    bool* flag = key == "avoid_gpu_nodes" ? &o->hybrid.avoid_gpu_nodes
                 : key == "fair_granting" ? &o->fair_granting
                                          : &o->wait_at_best_node;
    *flag = value == "true";
    return Status::Ok();
  }
  return InvalidArgument("scheduler." + key +
                         ": not a scheduling setting (policy, spread_threshold, top_k_absolute, "
                         "top_k_fraction, avoid_gpu_nodes, fair_granting, wait_at_best_node)");
}

bool SameScheduling(const SchedulerOptions& a, const SchedulerOptions& b) {
  if (a.policy != b.policy || a.fair_granting != b.fair_granting ||
      a.wait_at_best_node != b.wait_at_best_node) {
    return false;
  }
  if (a.policy.rfind("hybrid", 0) != 0) return true;  // hybrid and hybrid-reference
  return a.hybrid.spread_threshold == b.hybrid.spread_threshold &&
         a.hybrid.top_k_absolute == b.hybrid.top_k_absolute &&
         a.hybrid.top_k_fraction == b.hybrid.top_k_fraction &&
         a.hybrid.avoid_gpu_nodes == b.hybrid.avoid_gpu_nodes;
}

std::string DescribeScheduling(const SchedulerOptions& o) {
  // The node-side rules, named only when off (their default is Ray's).
  const std::string rules = std::string(o.fair_granting ? "" : ", fair_granting false") +
                            (o.wait_at_best_node ? "" : ", wait_at_best_node false");
  if (o.policy.rfind("hybrid", 0) != 0) {
    return rules.empty() ? o.policy : o.policy + " (" + rules.substr(2) + ")";
  }
  return o.policy + " (spread_threshold " + Num(o.hybrid.spread_threshold) + ", top_k_absolute " +
         std::to_string(o.hybrid.top_k_absolute) + ", top_k_fraction " +
         Num(o.hybrid.top_k_fraction) + ", avoid_gpu_nodes " +
         (o.hybrid.avoid_gpu_nodes ? "true" : "false") + rules + ")";
}

}  // namespace orrery

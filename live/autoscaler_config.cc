// The autoscaler config file: a small loader with the scenario loader's field names and error
// style (the scenario loader's node-type parser is internal to sim/scenario.cc).
#include "live/autoscaler_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cli/yaml_input.h"

namespace orrery::live {
namespace {

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Status Error(const YAML::Node& n, const std::string& field, const std::string& expected) const {
    return InvalidArgument(file_ + ":" + std::to_string(n.Mark().line + 1) + ": " + field +
                           ": expected " + expected + ", got " + Describe(n));
  }

  static std::string Describe(const YAML::Node& n) {
    if (!n.IsDefined() || n.IsNull()) return "nothing";
    if (n.IsMap()) return "a map";
    if (n.IsSequence()) return "a list";
    return "'" + n.Scalar() + "'";
  }

  Status OnlyKeys(const YAML::Node& m, const std::string& field,
                  const std::set<std::string>& allowed) const {
    for (const auto& kv : m) {
      const std::string k = kv.first.Scalar();
      if (!allowed.count(k)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return InvalidArgument(file_ + ":" + std::to_string(kv.first.Mark().line + 1) + ": " +
                               (field.empty() ? k : field + "." + k) +
                               ": unknown field (expected " + "one of " + list + ")");
      }
    }
    return Status::Ok();
  }

  // A number, optionally with a size unit for byte quantities ("4GiB").
  Status Number(const YAML::Node& n, const std::string& field, double lo, double hi, bool sizes,
                double* out) const {
    const std::string what = sizes ? "a quantity >= 0 (a number, or a size like '4GiB')"
                                   : "a number in [" + Fmt(lo) + ", " + Fmt(hi) + "]";
    if (!n.IsScalar()) return Error(n, field, what);
    std::string_view s = n.Scalar();
    double mult = 1;
    if (sizes) {
      static const std::vector<std::pair<std::string_view, double>> kUnits = {
          {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
          {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},           {"TB", 1e12},
          {"B", 1}};
      for (const auto& [u, m] : kUnits) {
        if (s.size() > u.size() && s.substr(s.size() - u.size()) == u) {
          s.remove_suffix(u.size());
          mult = m;
          break;
        }
      }
    }
    const std::string text(s);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
      return Error(n, field, what);
    }
    *out = v * mult;
    if (*out < lo || *out > hi) return Error(n, field, what);
    return Status::Ok();
  }

  Status Int(const YAML::Node& n, const std::string& field, int64_t lo, int64_t hi,
             int64_t* out) const {
    const std::string what =
        "a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    double v = 0;
    if (!Number(n, field, static_cast<double>(lo), static_cast<double>(hi), false, &v).ok() ||
        v != std::floor(v)) {
      return Error(n, field, what);
    }
    *out = static_cast<int64_t>(v);
    return Status::Ok();
  }

  Status NodeType(const YAML::Node& t, const std::string& field, std::string* name,
                  autoscaler::NodeTypeConfig* out, int64_t* count) const {
    if (!t.IsMap()) return Error(t, field, "a map with name, resources, max_workers");
    ORRERY_RETURN_IF_ERROR(
        OnlyKeys(t, field, {"name", "count", "resources", "labels", "min_workers", "max_workers"}));
    const YAML::Node n = t["name"];
    if (!n.IsDefined() || !n.IsScalar() || n.Scalar().empty()) {
      return Error(n.IsDefined() ? n : t, field + ".name", "a node type name");
    }
    *name = n.Scalar();
    const YAML::Node r = t["resources"];
    if (!r.IsDefined() || !r.IsMap()) {
      return Error(r.IsDefined() ? r : t, field + ".resources", "a map of resource quantities");
    }
    std::map<std::string, double> q;
    for (const auto& kv : r) {
      double v = 0;
      const std::string k = kv.first.Scalar();
      ORRERY_RETURN_IF_ERROR(Number(kv.second, field + ".resources." + k, 0, 1e15, true, &v));
      q[k] = v;
    }
    auto req = ResourceRequest::Create(q, UnitInstanceNames(), field + ".resources");
    if (!req.ok()) {
      return InvalidArgument(file_ + ":" + std::to_string(r.Mark().line + 1) + ": " +
                             req.status().message());
    }
    if (auto nr = NodeResources::Create(req->set()); !nr.ok()) {
      return InvalidArgument(file_ + ":" + std::to_string(r.Mark().line + 1) + ": " + field +
                             ".resources: " + nr.status().message());
    }
    out->resources = req->set();
    if (const YAML::Node l = t["labels"]; l.IsDefined()) {
      if (!l.IsMap()) return Error(l, field + ".labels", "a map of strings");
      for (const auto& kv : l) {
        if (!kv.second.IsScalar()) {
          return Error(kv.second, field + ".labels." + kv.first.Scalar(), "a string");
        }
        out->labels[kv.first.Scalar()] = kv.second.Scalar();
      }
    }
    const YAML::Node mx = t["max_workers"];
    if (!mx.IsDefined()) {
      return Error(t, field + ".max_workers",
                   "max_workers (every type of the autoscaler config is autoscaled)");
    }
    ORRERY_RETURN_IF_ERROR(Int(mx, field + ".max_workers", 0, 100000, &out->max_workers));
    if (const YAML::Node mn = t["min_workers"]; mn.IsDefined()) {
      ORRERY_RETURN_IF_ERROR(
          Int(mn, field + ".min_workers", 0, out->max_workers, &out->min_workers));
    }
    *count = 0;
    if (const YAML::Node c = t["count"]; c.IsDefined()) {
      ORRERY_RETURN_IF_ERROR(Int(c, field + ".count", 0, out->max_workers, count));
    }
    return Status::Ok();
  }

  StatusOr<LiveAutoscalerConfig> Load(const YAML::Node& root) const {
    LiveAutoscalerConfig c;
    if (!root.IsMap()) return Error(root, "(top level)", "a map with node_types");
    ORRERY_RETURN_IF_ERROR(OnlyKeys(
        root, "", {"node_types", "max_workers", "idle_timeout_s", "upscaling_speed", "period_s"}));
    const YAML::Node types = root["node_types"];
    if (!types.IsDefined() || !types.IsSequence() || types.size() == 0) {
      return Error(types.IsDefined() ? types : root, "node_types",
                   "a non-empty list of node types");
    }
    for (size_t i = 0; i < types.size(); ++i) {
      std::string name;
      autoscaler::NodeTypeConfig t;
      int64_t count = 0;
      const std::string field = "node_types[" + std::to_string(i) + "]";
      ORRERY_RETURN_IF_ERROR(NodeType(types[i], field, &name, &t, &count));
      if (c.planner.node_types.count(name)) {
        return Error(types[i]["name"], field + ".name", "a name not used before");
      }
      c.planner.node_types[name] = std::move(t);
      if (count > 0) c.initial[name] = count;
    }
    int64_t mins = 0;
    for (const auto& [n, t] : c.planner.node_types) mins += t.min_workers;
    if (const YAML::Node m = root["max_workers"]; m.IsDefined()) {
      ORRERY_RETURN_IF_ERROR(Int(m, "max_workers", mins, 100000, &c.planner.max_workers));
    }
    if (const YAML::Node v = root["idle_timeout_s"]; v.IsDefined()) {
      ORRERY_RETURN_IF_ERROR(Number(v, "idle_timeout_s", 0, 1e9, false, &c.planner.idle_timeout_s));
    }
    if (const YAML::Node v = root["upscaling_speed"]; v.IsDefined()) {
      ORRERY_RETURN_IF_ERROR(
          Number(v, "upscaling_speed", 0, 1e6, false, &c.planner.upscaling_speed));
    }
    if (const YAML::Node v = root["period_s"]; v.IsDefined()) {
      ORRERY_RETURN_IF_ERROR(Number(v, "period_s", 0.01, 3600, false, &c.period_s));
    }
    // The planner's own checks (the same rules the simulator gets).
    if (auto p = autoscaler::AutoscalerPlanner::Create(c.planner); !p.ok()) {
      return InvalidArgument(file_ + ": " + p.status().message());
    }
    return c;
  }

 private:
  static std::string Fmt(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  }
  std::string file_;
};

}  // namespace

StatusOr<LiveAutoscalerConfig> LoadAutoscalerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, path + ": cannot read the autoscaler config");
  std::ostringstream text;
  text << in.rdbuf();
  Reader reader(path);
  try {
    const YAML::Node root = YAML::Load(text.str());
    if (!root.IsDefined() || root.IsNull()) {
      return InvalidArgument(path + ":1: (top level): expected a map with node_types, got nothing");
    }
    if (Status deep = cli::CheckYamlNesting(root); !deep.ok()) {
      return InvalidArgument(path + ": " + deep.message());
    }
    return reader.Load(root);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) +
                           ": malformed YAML: " + cli::YamlErrorMessage(e));
  }
}

LiveAutoscalerConfig AutoscalerConfigOfScenario(const sim::Scenario& s) {
  LiveAutoscalerConfig c;
  for (const auto& t : s.autoscaler.node_types) {
    autoscaler::NodeTypeConfig tc;
    tc.resources = t.resources;
    tc.labels = t.labels;
    tc.min_workers = t.min_workers;
    tc.max_workers = t.max_workers;
    c.planner.node_types[t.name] = std::move(tc);
  }
  for (const auto& n : s.nodes) {
    if (!n.standby && c.planner.node_types.count(n.type)) ++c.first_index[n.type];
  }
  c.planner.max_workers = s.autoscaler.max_workers;
  c.planner.upscaling_speed = s.autoscaler.upscaling_speed;
  c.planner.idle_timeout_s = s.autoscaler.idle_timeout_s;
  c.period_s = s.autoscaler.period_s;
  return c;
}

}  // namespace orrery::live

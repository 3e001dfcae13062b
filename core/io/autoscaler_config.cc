// The autoscaler config file on the field-reader kit (yaml_fields.h).
#include "core/io/autoscaler_config.h"

#include <yaml-cpp/yaml.h>

#include <utility>
#include <vector>

#include "core/io/yaml_fields.h"
#include "core/io/yaml_input.h"

namespace orrery::io {
namespace {

constexpr uintmax_t kMaxConfigBytes = uintmax_t{1} << 20;
constexpr int64_t kMaxWorkers = 100000;

const Schema& ConfigSchema() {
  static const Schema kValue{};
  static const Schema kDict{Schema::Kind::kDict, {}, &kValue};
  static const Schema kNodeType{Schema::Kind::kMap,
                                {{"name", &kValue},
                                 {"count", &kValue},
                                 {"resources", &kDict},
                                 {"labels", &kDict},
                                 {"min_workers", &kValue},
                                 {"max_workers", &kValue}}};
  static const Schema kNodeTypes{Schema::Kind::kList, {}, &kNodeType};
  static const Schema kRoot{Schema::Kind::kMap,
                            {{"node_types", &kNodeTypes},
                             {"max_workers", &kValue},
                             {"idle_timeout_s", &kValue},
                             {"upscaling_speed", &kValue},
                             {"period_s", &kValue}}};
  return kRoot;
}

Status ReadNodeType(const FieldContext& c, const Field& f, NodeTypeEntry* entry,
                    autoscaler::NodeTypeConfig* out, int64_t* count) {
  if (!f.node.IsMap()) return c.Expected(f, "a map with name, resources, max_workers");
  MapView m;
  ORRERY_RETURN_IF_ERROR(MapView::Open(c, f, *ConfigSchema().Field("node_types")->elem, &m));
  ORRERY_RETURN_IF_ERROR(ReadNodeTypeEntry(c, m, entry));
  out->resources = entry->total;
  out->labels = entry->labels;
  auto mx = m.Get("max_workers");
  if (!mx) {
    return c.Error(f.mark(), Join(f.path, "max_workers"),
                   "expected max_workers (every type of the autoscaler config is autoscaled), "
                   "got nothing");
  }
  ORRERY_RETURN_IF_ERROR(ReadInt(c, *mx, 0, kMaxWorkers, &out->max_workers));
  if (auto mn = m.Get("min_workers")) {
    ORRERY_RETURN_IF_ERROR(ReadInt(c, *mn, 0, out->max_workers, &out->min_workers));
  }
  *count = 0;
  if (auto cf = m.Get("count")) ORRERY_RETURN_IF_ERROR(ReadInt(c, *cf, 0, out->max_workers, count));
  return Status::Ok();
}

StatusOr<AutoscalerFile> Read(const FieldContext& c, const YAML::Node& root) {
  AutoscalerFile out;
  const Field top_field{root, ""};
  if (!root.IsMap()) return c.Expected(Field{root, "(top level)"}, "a map with node_types");
  MapView top;
  ORRERY_RETURN_IF_ERROR(MapView::Open(c, top_field, ConfigSchema(), &top));
  auto types = top.Get("node_types");
  if (!types || !types->node.IsSequence() || types->node.size() == 0) {
    return c.Expected(types ? *types : Field{root, "node_types"}, "a non-empty list of node types");
  }
  std::vector<Field> items;
  ORRERY_RETURN_IF_ERROR(OpenList(c, *types, &items));
  for (const Field& item : items) {
    NodeTypeEntry entry;
    autoscaler::NodeTypeConfig t;
    int64_t count = 0;
    ORRERY_RETURN_IF_ERROR(ReadNodeType(c, item, &entry, &t, &count));
    const std::string& name = entry.name;
    if (out.planner.node_types.count(name)) {
      return c.Expected(entry.name_field, "a name not used before");
    }
    out.planner.node_types[name] = std::move(t);
    if (count > 0) out.initial[name] = count;
  }
  int64_t mins = 0;
  for (const auto& [n, t] : out.planner.node_types) mins += t.min_workers;
  if (auto f = top.Get("max_workers")) {
    ORRERY_RETURN_IF_ERROR(ReadInt(c, *f, mins, kMaxWorkers, &out.planner.max_workers));
  }
  if (auto f = top.Get("idle_timeout_s")) {
    ORRERY_RETURN_IF_ERROR(ReadNumber(c, *f, 0, 1e9, &out.planner.idle_timeout_s));
  }
  if (auto f = top.Get("upscaling_speed")) {
    ORRERY_RETURN_IF_ERROR(ReadNumber(c, *f, 0, 1e6, &out.planner.upscaling_speed));
  }
  if (auto f = top.Get("period_s")) {
    ORRERY_RETURN_IF_ERROR(ReadNumber(c, *f, 0.01, 3600, &out.period_s));
  }
  // The planner's own checks (the same rules the simulator gets).
  if (auto p = autoscaler::AutoscalerPlanner::Create(out.planner); !p.ok()) {
    return InvalidArgument(c.file + ": " + p.status().message());
  }
  return out;
}

}  // namespace

Status ReadNodeTypeEntry(const FieldContext& c, const MapView& m, NodeTypeEntry* out) {
  ORRERY_RETURN_IF_ERROR(
      RequireString(c, m, "name", &out->name, &out->name_field, "a node type name"));
  Field rf;
  ORRERY_RETURN_IF_ERROR(m.Require(c, "resources", &rf));
  if (!rf.node.IsMap()) return c.Expected(rf, "a map of resource quantities");
  ResourceRequest req;
  ORRERY_RETURN_IF_ERROR(ReadResources(c, rf, &req));
  // NodeResources' message starts with the resource's name: "GPU: total must be ...".
  if (auto nr = NodeResources::Create(req.set()); !nr.ok()) {
    return c.Raw(rf, rf.path + "." + nr.status().message());
  }
  out->total = req.set();
  out->labels.clear();
  if (auto lf = m.Get("labels")) ORRERY_RETURN_IF_ERROR(ReadLabels(c, *lf, &out->labels));
  return Status::Ok();
}

StatusOr<AutoscalerFile> LoadAutoscalerFile(const std::string& path) {
  std::string text;
  ORRERY_RETURN_IF_ERROR(ReadFileText(path, path, kMaxConfigBytes, &text));
  FieldContext c;
  c.file = path;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsDefined() || root.IsNull()) {
      return InvalidArgument(path + ":1: (top level): expected a map with node_types, got nothing");
    }
    if (Status deep = CheckYamlNesting(root); !deep.ok()) {
      return InvalidArgument(path + ": " + deep.message());
    }
    return Read(c, root);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) +
                           ": malformed YAML: " + YamlErrorMessage(e));
  }
}

}  // namespace orrery::io

// The gpu_placement scenario loader, on the field-reader kit (yaml_fields.h): the same getters,
// override handling and messages as the task-scenario loader.
#include "core/io/gpu_scenario_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>

#include "core/gpu/gpu_policy_registry.h"
#include "core/io/yaml_fields.h"
#include "core/io/yaml_input.h"

namespace orrery::io {
namespace {

namespace fs = std::filesystem;

constexpr uintmax_t kMaxScenarioBytes = uintmax_t{1} << 20;

// Which keys exist where; a leaf's type is checked where it is read.
const Schema& GpuSchema() {
  static const Schema kValue{};
  static const Schema kWorkload{
      Schema::Kind::kMap,
      {{"nodes", &kValue}, {"pods", &kValue}, {"inflate", &kValue}, {"shuffle", &kValue}}};
  static const Schema kScheduler{Schema::Kind::kMap,
                                 {{"policy", &kValue},
                                  {"scoring", &kValue},
                                  {"tie_break", &kValue},
                                  {"spread_threshold", &kValue},
                                  {"top_k_absolute", &kValue},
                                  {"top_k_fraction", &kValue},
                                  {"avoid_gpu_nodes", &kValue}}};
  static const Schema kFragmentation{
      Schema::Kind::kMap,
      {{"typical_pods_coverage", &kValue}, {"typical_pods_include_cpu", &kValue}}};
  static const Schema kRoot{Schema::Kind::kMap,
                            {{"kind", &kValue},
                             {"name", &kValue},
                             {"description", &kValue},
                             {"seed", &kValue},
                             {"workload", &kWorkload},
                             {"scheduler", &kScheduler},
                             {"fragmentation", &kFragmentation}}};
  return kRoot;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Trace paths: ${VAR} expanded; file values relative to the scenario's folder, --set values
// relative to the current directory.
const PathOptions& TracePaths() {
  static const PathOptions kOptions{.trace_dir_hint =
                                        " (point it at the folder holding alibaba-gpu-v2023/, e.g. "
                                        "../shared/traces; see README.md, GPU fragmentation study)",
                                    .overrides_from_cwd = true};
  return kOptions;
}

}  // namespace

bool IsGpuPlacementFile(const std::string& path) {
  std::string text;
  if (!ReadFileText(path, path, kMaxScenarioBytes, &text).ok()) return false;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return false;
    const YAML::Node kind = root["kind"];
    return kind.IsDefined() && kind.IsScalar() && Lower(kind.Scalar()) == kGpuPlacementKind;
  } catch (const YAML::Exception&) {
    return false;
  }
}

StatusOr<GpuScenario> LoadGpuScenario(const std::string& path,
                                      const std::vector<std::string>& overrides) {
  std::string text;
  ORRERY_RETURN_IF_ERROR(ReadFileText(path, path, kMaxScenarioBytes, &text));
  FieldContext c;
  c.file = path;
  c.dir = fs::path(path).parent_path();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) +
                           ": malformed YAML: " + YamlErrorMessage(e));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ": malformed YAML: " + YamlErrorMessage(e));
  }
  if (!root.IsMap()) return InvalidArgument(path + ": expected a map at the top level");
  for (const auto& o : overrides) {
    ORRERY_RETURN_IF_ERROR(
        ApplyOverride(&c, root, GpuSchema(), o, OverrideOptions{.sections_whole = true}));
  }
  if (Status deep = CheckYamlNesting(root); !deep.ok()) {
    return InvalidArgument(path + ": " + deep.message());
  }
  MapView top;
  ORRERY_RETURN_IF_ERROR(MapView::Open(c, Field{root, ""}, GpuSchema(), &top));

  GpuScenario s;
  s.file = path;
  {
    auto kind = top.Get("kind");
    if (!kind) {
      return InvalidArgument(path + ": kind: required key is missing (expected gpu_placement)");
    }
    std::string k;
    ORRERY_RETURN_IF_ERROR(ReadString(c, *kind, &k, "gpu_placement"));
    if (Lower(k) != kGpuPlacementKind) return c.Expected(*kind, "gpu_placement");
  }
  s.name = fs::path(path).stem().string();
  if (auto f = top.Get("name")) ORRERY_RETURN_IF_ERROR(ReadString(c, *f, &s.name));
  if (auto f = top.Get("description")) {
    ORRERY_RETURN_IF_ERROR(RequireScalar(c, *f, "a string"));
    s.description = f->node.Scalar();
  }
  if (auto f = top.Get("seed")) {
    int64_t seed = 0;
    ORRERY_RETURN_IF_ERROR(ReadInt(c, *f, 0, std::numeric_limits<int64_t>::max(), &seed));
    s.seed = static_cast<uint64_t>(seed);
  }

  auto wf = top.Get("workload");
  if (!wf) return InvalidArgument(path + ": workload: required key is missing");
  MapView w;
  ORRERY_RETURN_IF_ERROR(MapView::Open(c, *wf, *GpuSchema().Field("workload"), &w));
  for (const char* key : {"nodes", "pods"}) {
    if (!w.Has(key)) {
      return InvalidArgument(c.Where(*wf) + ": workload." + key +
                             ": required key is missing (a CSV file)");
    }
  }
  ORRERY_RETURN_IF_ERROR(ResolvePath(c, *w.Get("nodes"), &s.nodes_path, TracePaths()));
  ORRERY_RETURN_IF_ERROR(ResolvePath(c, *w.Get("pods"), &s.pods_path, TracePaths()));
  if (auto f = w.Get("inflate")) ORRERY_RETURN_IF_ERROR(ReadNumber(c, *f, 0, 100, &s.inflate));
  if (auto f = w.Get("shuffle")) ORRERY_RETURN_IF_ERROR(ReadBool(c, *f, &s.shuffle));

  if (auto scf = top.Get("scheduler")) {
    MapView sc;
    ORRERY_RETURN_IF_ERROR(MapView::Open(c, *scf, *GpuSchema().Field("scheduler"), &sc));
    if (auto f = sc.Get("policy")) {
      ORRERY_RETURN_IF_ERROR(ReadString(c, *f, &s.policy, "a policy name"));
      if (!gpu::GpuPolicyRegistry::Builtin().Contains(s.policy)) {
        return c.Error(*f, "unknown GPU placement policy '" + s.policy + "' (expected one of: " +
                               gpu::GpuPolicyRegistry::Builtin().Names() + ")");
      }
    }
    if (auto f = sc.Get("tie_break")) {
      std::string t;
      ORRERY_RETURN_IF_ERROR(ReadString(c, *f, &t, "perm, id or random"));
      if (!gpu::ParseTieBreak(Lower(t), &s.scores.tie_break)) {
        return c.Expected(*f, "perm, id or random");
      }
    }
    if (auto f = sc.Get("scoring")) {
      std::string t;
      ORRERY_RETURN_IF_ERROR(ReadString(c, *f, &t, "kubernetes or exact"));
      if (Lower(t) == "kubernetes") {
        s.scores.scoring = gpu::Scoring::kKubernetes;
      } else if (Lower(t) == "exact") {
        s.scores.scoring = gpu::Scoring::kExact;
      } else {
        return c.Expected(*f, "kubernetes or exact");
      }
    }
    if (auto f = sc.Get("spread_threshold")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, *f, 0, 1, &s.hybrid.spread_threshold));
    }
    if (auto f = sc.Get("top_k_absolute")) {
      int64_t k = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(c, *f, 1, 1000000000, &k));
      s.hybrid.top_k_absolute = static_cast<int>(k);
    }
    if (auto f = sc.Get("top_k_fraction")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, *f, 0, 1, &s.hybrid.top_k_fraction));
    }
    if (auto f = sc.Get("avoid_gpu_nodes")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(c, *f, &s.hybrid.avoid_gpu_nodes));
    }
  }

  if (auto ff = top.Get("fragmentation")) {
    MapView f;
    ORRERY_RETURN_IF_ERROR(MapView::Open(c, *ff, *GpuSchema().Field("fragmentation"), &f));
    if (auto v = f.Get("typical_pods_coverage")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, *v, 1e-6, 1, &s.typical.coverage));
    }
    if (auto v = f.Get("typical_pods_include_cpu")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(c, *v, &s.typical.include_cpu_pods));
    }
  }
  return s;
}

}  // namespace orrery::io

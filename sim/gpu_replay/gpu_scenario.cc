#include "sim/gpu_replay/gpu_scenario.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/cli/yaml_input.h"
#include "core/gpu/gpu_policy_registry.h"

namespace orrery::gpu_replay {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxScenarioBytes = int64_t{1} << 20;

// The schema: section -> allowed keys ("" = top level). A leaf's type is checked where it is read.
const std::map<std::string, std::vector<std::string>>& Schema() {
  static const auto* const kSchema = new std::map<std::string, std::vector<std::string>>{
      {"", {"kind", "name", "description", "seed", "workload", "scheduler", "fragmentation"}},
      {"workload", {"nodes", "pods", "inflate", "shuffle"}},
      {"scheduler",
       {"policy", "scoring", "tie_break", "spread_threshold", "top_k_absolute", "top_k_fraction",
        "avoid_gpu_nodes"}},
      {"fragmentation", {"typical_pods_coverage", "typical_pods_include_cpu"}},
  };
  return *kSchema;
}

std::string KeyList(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Shortest text of a number ("0", "1e-06", "0.5").
std::string Num(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

std::string Describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  return "'" + n.Scalar() + "'";
}

struct Ctx {
  std::string file;
  fs::path dir;
  std::map<std::string, std::string> overridden;  // field path -> the --set text that set it

  std::string Where(const YAML::Node& n, const std::string& path) const {
    if (auto it = overridden.find(path); it != overridden.end()) {
      return file + " (--set " + it->second + ")";
    }
    const int line = n.IsDefined() ? n.Mark().line : -1;
    return line >= 0 ? file + ":" + std::to_string(line + 1) : file;
  }
  Status Error(const YAML::Node& n, const std::string& path, const std::string& what) const {
    return InvalidArgument(Where(n, path) + ": " + path + ": " + what);
  }
  Status Expected(const YAML::Node& n, const std::string& path, const std::string& what) const {
    return Error(n, path, "expected " + what + ", got " + Describe(n));
  }
};

std::string Join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

// Rejects unknown and duplicate keys of the map `n` at section `section`.
Status CheckKeys(const Ctx& c, const YAML::Node& n, const std::string& section) {
  if (!n.IsMap()) return c.Expected(n, section.empty() ? "(top level)" : section, "a map");
  const auto& keys = Schema().at(section);
  std::set<std::string> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string key = it->first.Scalar();
    const std::string path = Join(section, key);
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      return InvalidArgument(c.Where(it->first, path) + ": " + path +
                             ": unknown key (expected one of: " + KeyList(keys) + ")");
    }
    if (!seen.insert(key).second) {
      return InvalidArgument(c.Where(it->first, path) + ": " + path + ": duplicate key");
    }
  }
  return Status::Ok();
}

Status ReadString(const Ctx& c, const YAML::Node& n, const std::string& path, std::string* out) {
  if (!n.IsScalar()) return c.Expected(n, path, "a string");
  *out = n.Scalar();
  return Status::Ok();
}

Status ReadBool(const Ctx& c, const YAML::Node& n, const std::string& path, bool* out) {
  const std::string s = n.IsScalar() ? Lower(n.Scalar()) : "";
  if (s == "true")
    *out = true;
  else if (s == "false")
    *out = false;
  else
    return c.Expected(n, path, "true or false");
  return Status::Ok();
}

Status ReadNumber(const Ctx& c, const YAML::Node& n, const std::string& path, double lo, double hi,
                  double* out) {
  const std::string expected = "a number in [" + Num(lo) + ", " + Num(hi) + "]";
  if (!n.IsScalar()) return c.Expected(n, path, expected);
  const std::string& s = n.Scalar();
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v) || v < lo || v > hi) {
    return c.Expected(n, path, expected);
  }
  *out = v;
  return Status::Ok();
}

Status ReadWhole(const Ctx& c, const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi,
                 int64_t* out) {
  const std::string expected =
      "a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!n.IsScalar()) return c.Expected(n, path, expected);
  const std::string& s = n.Scalar();
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) {
    return c.Expected(n, path, expected);
  }
  *out = v;
  return Status::Ok();
}

// ${VAR} expansion, then resolution: file values relative to the scenario's folder, --set values
// relative to the current directory. The file must exist.
Status ReadPath(const Ctx& c, const YAML::Node& n, const std::string& path, std::string* out) {
  std::string raw;
  ORRERY_RETURN_IF_ERROR(ReadString(c, n, path, &raw));
  if (raw.empty()) return c.Expected(n, path, "a file path");
  std::string expanded;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '$' || i + 1 >= raw.size() || raw[i + 1] != '{') {
      expanded += raw[i];
      continue;
    }
    const size_t close = raw.find('}', i + 2);
    if (close == std::string::npos) return c.Error(n, path, "unterminated '${' in '" + raw + "'");
    const std::string var = raw.substr(i + 2, close - i - 2);
    const bool valid = !var.empty() && !std::isdigit(static_cast<unsigned char>(var[0])) &&
                       std::all_of(var.begin(), var.end(), [](char ch) {
                         return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
                       });
    if (!valid) return c.Error(n, path, "bad variable name '${" + var + "}'");
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) {
      const std::string hint =
          var == "ORRERY_TRACE_DIR"
              ? " (point it at the folder holding alibaba-gpu-v2023/, e.g. ../shared/traces; "
                "see README.md, GPU fragmentation study)"
              : "";
      return c.Error(n, path, "environment variable " + var + " is not set" + hint);
    }
    expanded += value;
    i = close;
  }
  fs::path p(expanded);
  if (p.is_relative()) {
    p = c.overridden.count(path) ? fs::current_path() / p : c.dir / p;
  }
  p = p.lexically_normal();
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) {
    return NotFound(c.Where(n, path) + ": " + path + ": trace file '" + p.string() +
                    "' does not exist");
  }
  *out = p.string();
  return Status::Ok();
}

Status ApplyOverride(Ctx& c, YAML::Node root, const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument(c.file + " (--set " + text + "): expected dotted.path=value");
  }
  const std::string dotted = text.substr(0, eq);
  const std::string where = c.file + " (--set " + text + ")";
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(where + ": " + dotted + ": malformed value: " +
                           cli::YamlErrorMessage(e));
  }
  std::vector<std::string> segs;
  std::stringstream ss(dotted);
  for (std::string seg; std::getline(ss, seg, '.');) segs.push_back(seg);
  if (segs.empty() || segs.size() > 2) {
    return InvalidArgument(where + ": " + dotted + ": unknown key");
  }
  const auto& top = Schema().at("");
  if (std::find(top.begin(), top.end(), segs[0]) == top.end()) {
    return InvalidArgument(where + ": " + segs[0] +
                           ": unknown key (expected one of: " + KeyList(top) + ")");
  }
  const bool is_section = Schema().count(segs[0]) > 0;
  if (segs.size() == 1) {
    if (is_section) return InvalidArgument(where + ": " + dotted + ": is a section; set its keys");
    root[segs[0]] = value;
  } else {
    if (!is_section) {
      return InvalidArgument(where + ": " + segs[0] + ": is a value and has no key '" + segs[1] +
                             "'");
    }
    const auto& keys = Schema().at(segs[0]);
    if (std::find(keys.begin(), keys.end(), segs[1]) == keys.end()) {
      return InvalidArgument(where + ": " + dotted +
                             ": unknown key (expected one of: " + KeyList(keys) + ")");
    }
    if (!root[segs[0]].IsDefined() || root[segs[0]].IsNull()) {
      root[segs[0]] = YAML::Node(YAML::NodeType::Map);
    }
    if (!root[segs[0]].IsMap()) {
      return InvalidArgument(where + ": " + segs[0] + ": is " + Describe(root[segs[0]]) +
                             ", not a map");
    }
    root[segs[0]][segs[1]] = value;
  }
  c.overridden[dotted] = text;
  return Status::Ok();
}

StatusOr<std::string> ReadScenarioText(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound(path + ": scenario file does not exist");
  if (fs::file_size(path, ec) > uint64_t(kMaxScenarioBytes)) {
    return InvalidArgument(path + ": scenario file is larger than 1 MiB");
  }
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f) return NotFound(path + ": cannot read the scenario file");
  return ss.str();
}

}  // namespace

bool IsGpuPlacementFile(const std::string& path) {
  auto text = ReadScenarioText(path);
  if (!text.ok()) return false;
  try {
    const YAML::Node root = YAML::Load(*text);
    if (!root.IsMap()) return false;
    const YAML::Node kind = root["kind"];
    return kind.IsDefined() && kind.IsScalar() && Lower(kind.Scalar()) == kGpuPlacementKind;
  } catch (const YAML::Exception&) {
    return false;
  }
}

StatusOr<GpuScenario> LoadGpuScenario(const std::string& path,
                                      const std::vector<std::string>& overrides) {
  auto text = ReadScenarioText(path);
  if (!text.ok()) return text.status();
  Ctx c;
  c.file = path;
  c.dir = fs::path(path).parent_path();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::ParserException& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) +
                           ": malformed YAML: " + cli::YamlErrorMessage(e));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ": malformed YAML: " + cli::YamlErrorMessage(e));
  }
  if (!root.IsMap()) return InvalidArgument(path + ": expected a map at the top level");
  for (const auto& o : overrides) ORRERY_RETURN_IF_ERROR(ApplyOverride(c, root, o));
  if (Status deep = cli::CheckYamlNesting(root); !deep.ok()) {
    return InvalidArgument(path + ": " + deep.message());
  }
  ORRERY_RETURN_IF_ERROR(CheckKeys(c, root, ""));

  GpuScenario s;
  s.file = path;
  {
    const YAML::Node kind = root["kind"];
    if (!kind.IsDefined()) {
      return InvalidArgument(path + ": kind: required key is missing (expected gpu_placement)");
    }
    std::string k;
    ORRERY_RETURN_IF_ERROR(ReadString(c, kind, "kind", &k));
    if (Lower(k) != kGpuPlacementKind) return c.Expected(kind, "kind", "gpu_placement");
  }
  s.name = fs::path(path).stem().string();
  if (root["name"].IsDefined())
    ORRERY_RETURN_IF_ERROR(ReadString(c, root["name"], "name", &s.name));
  if (root["description"].IsDefined()) {
    ORRERY_RETURN_IF_ERROR(ReadString(c, root["description"], "description", &s.description));
  }
  if (root["seed"].IsDefined()) {
    int64_t seed = 0;
    ORRERY_RETURN_IF_ERROR(
        ReadWhole(c, root["seed"], "seed", 0, std::numeric_limits<int64_t>::max(), &seed));
    s.seed = static_cast<uint64_t>(seed);
  }

  const YAML::Node w = root["workload"];
  if (!w.IsDefined()) return InvalidArgument(path + ": workload: required key is missing");
  ORRERY_RETURN_IF_ERROR(CheckKeys(c, w, "workload"));
  for (const char* key : {"nodes", "pods"}) {
    if (!w[key].IsDefined()) {
      return InvalidArgument(c.Where(w, "workload") + ": workload." + key +
                             ": required key is missing (a CSV file)");
    }
  }
  ORRERY_RETURN_IF_ERROR(ReadPath(c, w["nodes"], "workload.nodes", &s.nodes_path));
  ORRERY_RETURN_IF_ERROR(ReadPath(c, w["pods"], "workload.pods", &s.pods_path));
  if (w["inflate"].IsDefined()) {
    ORRERY_RETURN_IF_ERROR(ReadNumber(c, w["inflate"], "workload.inflate", 0, 100, &s.inflate));
  }
  if (w["shuffle"].IsDefined()) {
    ORRERY_RETURN_IF_ERROR(ReadBool(c, w["shuffle"], "workload.shuffle", &s.shuffle));
  }

  if (const YAML::Node sc = root["scheduler"]; sc.IsDefined()) {
    ORRERY_RETURN_IF_ERROR(CheckKeys(c, sc, "scheduler"));
    if (sc["policy"].IsDefined()) {
      ORRERY_RETURN_IF_ERROR(ReadString(c, sc["policy"], "scheduler.policy", &s.policy));
      if (!gpu::GpuPolicyRegistry::Builtin().Contains(s.policy)) {
        return c.Error(sc["policy"], "scheduler.policy",
                       "unknown GPU placement policy '" + s.policy + "' (expected one of: " +
                           gpu::GpuPolicyRegistry::Builtin().Names() + ")");
      }
    }
    if (sc["tie_break"].IsDefined()) {
      std::string t;
      ORRERY_RETURN_IF_ERROR(ReadString(c, sc["tie_break"], "scheduler.tie_break", &t));
      if (!gpu::ParseTieBreak(Lower(t), &s.scores.tie_break)) {
        return c.Expected(sc["tie_break"], "scheduler.tie_break", "perm, id or random");
      }
    }
    if (sc["scoring"].IsDefined()) {
      std::string t;
      ORRERY_RETURN_IF_ERROR(ReadString(c, sc["scoring"], "scheduler.scoring", &t));
      if (Lower(t) == "kubernetes") {
        s.scores.scoring = gpu::Scoring::kKubernetes;
      } else if (Lower(t) == "exact") {
        s.scores.scoring = gpu::Scoring::kExact;
      } else {
        return c.Expected(sc["scoring"], "scheduler.scoring", "kubernetes or exact");
      }
    }
    if (sc["spread_threshold"].IsDefined()) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, sc["spread_threshold"], "scheduler.spread_threshold", 0,
                                        1, &s.hybrid.spread_threshold));
    }
    if (sc["top_k_absolute"].IsDefined()) {
      int64_t k = 0;
      ORRERY_RETURN_IF_ERROR(
          ReadWhole(c, sc["top_k_absolute"], "scheduler.top_k_absolute", 1, 1000000000, &k));
      s.hybrid.top_k_absolute = static_cast<int>(k);
    }
    if (sc["top_k_fraction"].IsDefined()) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, sc["top_k_fraction"], "scheduler.top_k_fraction", 0, 1,
                                        &s.hybrid.top_k_fraction));
    }
    if (sc["avoid_gpu_nodes"].IsDefined()) {
      ORRERY_RETURN_IF_ERROR(ReadBool(c, sc["avoid_gpu_nodes"], "scheduler.avoid_gpu_nodes",
                                      &s.hybrid.avoid_gpu_nodes));
    }
  }

  if (const YAML::Node f = root["fragmentation"]; f.IsDefined()) {
    ORRERY_RETURN_IF_ERROR(CheckKeys(c, f, "fragmentation"));
    if (f["typical_pods_coverage"].IsDefined()) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, f["typical_pods_coverage"],
                                        "fragmentation.typical_pods_coverage", 1e-6, 1,
                                        &s.typical.coverage));
    }
    if (f["typical_pods_include_cpu"].IsDefined()) {
      ORRERY_RETURN_IF_ERROR(ReadBool(c, f["typical_pods_include_cpu"],
                                      "fragmentation.typical_pods_include_cpu",
                                      &s.typical.include_cpu_pods));
    }
  }
  return s;
}

}  // namespace orrery::gpu_replay

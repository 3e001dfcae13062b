// Scenario loader: YAML (yaml-cpp) -> validated, expanded Scenario.
//
// Pipeline: read the file (reject missing, binary, empty) -> parse YAML -> apply --set overrides
// to the tree (checked against the schema below) -> validate every section into plans, with
// errors "FILE:LINE: FIELD: expected X, got Y" (the field-reader kit, yaml_fields.h) -> expand
// generators with seeded RNG streams (core/scenario/generators.h) -> stable sort by submit time
// -> warnings (shapes no node can hold, ...).
//
// Why one schema table: the same key lists drive the unknown-key check of the validator and the
// path check of --set, so an override can name a key the file omits but can never invent one.
#include "core/io/scenario_loader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <istream>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <streambuf>
#include <string_view>
#include <utility>

#include "core/io/autoscaler_config.h"
#include "core/io/csv.h"
#include "core/io/yaml_fields.h"
#include "core/io/yaml_input.h"
#include "core/rng.h"
#include "core/scenario/generators.h"
#include "core/scheduling/policy_registry.h"

namespace orrery::io {

namespace {

namespace fs = std::filesystem;

// Caps that keep a typo ("count: 5e9") from eating the machine.
constexpr uint64_t kMaxTasks = 50'000'000;
constexpr uint64_t kMaxNodes = 1'000'000;
constexpr uint64_t kMaxAutoscaledNodes = 100'000;  // standby hosts are created up front
constexpr uint64_t kMaxArgsPerSpec = 1000;
constexpr uint64_t kMaxArgs = 200'000'000;
constexpr uintmax_t kMaxScenarioBytes = 64u << 20;
constexpr double kMaxSeconds = kMaxScenarioSeconds;

// ---------------------------------------------------------------------------------------------
// The scenario schema (core/io/yaml_fields.h: Schema).

const Schema& RootSchema() {
  static const Schema* const kRoot = [] {
    static std::deque<Schema> pool;
    using Fields = std::vector<std::pair<std::string, const Schema*>>;
    auto make = [](Schema s) -> const Schema* {
      pool.push_back(std::move(s));
      return &pool.back();
    };
    auto map = [&](Fields f) { return make({Schema::Kind::kMap, std::move(f), nullptr}); };
    auto dict = [&](const Schema* e) { return make({Schema::Kind::kDict, {}, e}); };
    auto list = [&](const Schema* e) { return make({Schema::Kind::kList, {}, e}); };
    const Schema* v = make({});
    const Schema* values = dict(v);

    const Schema* duration = map({{"dist", v},
                                  {"mean", v},
                                  {"min", v},
                                  {"max", v},
                                  {"median", v},
                                  {"sigma", v},
                                  {"column", v},
                                  {"scale", v},
                                  {"offset", v}});
    const Schema* arrival = map({{"process", v},
                                 {"rate", v},
                                 {"interval", v},
                                 {"at", v},
                                 {"file", v},
                                 {"column", v},
                                 {"time_format", v},
                                 {"limit", v},
                                 {"speedup", v}});
    const Schema* strategy = map({{"type", v},
                                  {"node", v},
                                  {"soft", v},
                                  {"spill_on_unavailable", v},
                                  {"fail_on_unavailable", v}});
    const Schema* arg = map({{"from", v}, {"count", v}, {"pick", v}, {"node", v}, {"bytes", v}});
    const Schema* generator = map({{"name", v},
                                   {"job", v},
                                   {"count", v},
                                   {"arrival", arrival},
                                   {"start", v},
                                   {"duration", duration},
                                   {"resources", values},
                                   {"strategy", strategy},
                                   {"placement_group", v},
                                   {"bundle", v},
                                   {"args", list(arg)},
                                   {"output", v},
                                   {"runtime_env", v},
                                   {"max_retries", v}});
    const Schema* column_ref = map({{"column", v}, {"scale", v}});
    const Schema* trace = map({{"file", v},
                               {"name", v},
                               {"job", v},
                               {"kind", v},
                               {"start", v},
                               {"speedup", v},
                               {"limit", v},
                               {"time_format", v},
                               {"submit_column", v},
                               {"duration_column", v},
                               {"end_column", v},
                               {"resources", dict(column_ref)},
                               {"strategy", strategy},
                               {"placement_group", v},
                               {"bundle", v},
                               {"output", v},
                               {"runtime_env", v},
                               {"max_retries", v}});
    const Schema* pg = map({{"name", v}, {"strategy", v}, {"bundles", list(values)}, {"at", v}});
    const Schema* workload = map({{"tasks", list(generator)},
                                  {"actors", list(generator)},
                                  {"placement_groups", list(pg)},
                                  {"trace", list(trace)}});
    const Schema* node_type = map({{"name", v},
                                   {"count", v},
                                   {"resources", values},
                                   {"labels", values},
                                   {"min_workers", v},
                                   {"max_workers", v}});
    const Schema* node = map({{"id", v}, {"type", v}, {"resources", values}, {"labels", values}});
    const Schema* cluster = map({{"node_types", list(node_type)},
                                 {"nodes", list(node)},
                                 {"driver", v},
                                 {"network", map({{"bandwidth", v}, {"latency", v}})}});
    const Schema* scheduler = map({{"policy", v},
                                   {"spread_threshold", v},
                                   {"top_k_absolute", v},
                                   {"top_k_fraction", v},
                                   {"avoid_gpu_nodes", v},
                                   {"fair_granting", v},
                                   {"wait_at_best_node", v},
                                   {"report_period", v},
                                   {"view_via_head", v}});
    const Schema* env = map({{"name", v}, {"size", v}, {"install_time", v}});
    const Schema* autoscaler = map({{"period", v},
                                    {"idle_timeout", v},
                                    {"upscaling_speed", v},
                                    {"max_workers", v},
                                    {"boot_delay", v}});
    const Schema* env_cache = map({{"policy", v},
                                   {"limit", v},
                                   {"setup_timeout", v},
                                   {"max_attempts", v},
                                   {"worker_startup", v}});
    const Schema* failure = map({{"at", v}, {"node", v}, {"action", v}});
    const Schema* control_plane = map({{"lease_request", v},
                                       {"spillback", v},
                                       {"task_start", v},
                                       {"worker_start", v},
                                       {"worker_start_parallel", v},
                                       {"worker_start_shared", v},
                                       {"task_finish", v},
                                       {"resources_visible_remote", v},
                                       {"report_period", v},
                                       {"report_jitter", v},
                                       {"object_latency", v},
                                       {"object_bandwidth", v}});
    const Schema* owner = map({{"reuse_leases", v},
                               {"max_pending_lease_requests_per_class", v},
                               {"idle_lease_timeout", v},
                               {"lease_timeout", v},
                               {"gpu_tasks_per_lease", v}});
    return map({{"name", v},
                {"description", v},
                {"seed", v},
                {"stop", map({{"max_time", v}})},
                {"cluster", cluster},
                {"scheduler", scheduler},
                {"workload", workload},
                {"runtime_envs", list(env)},
                {"runtime_env_cache", env_cache},
                {"autoscaler", autoscaler},
                {"owner", owner},
                {"control_plane", control_plane},
                {"failures", list(failure)}});
  }();
  return *kRoot;
}

// Names must be unique within a namespace; the error points at the second one.
class NameTable {
 public:
  explicit NameTable(std::string what) : what_(std::move(what)) {}
  Status Add(const FieldContext& c, const Field& f, const std::string& name, int32_t index) {
    auto [it, inserted] = names_.emplace(name, Entry{index, f.path, c.Where(f)});
    if (!inserted) {
      return c.Error(f, "duplicate " + what_ + " name '" + name + "' (first defined at " +
                            it->second.where + ", " + it->second.path + ")");
    }
    return Status::Ok();
  }
  int32_t Find(const std::string& name) const {
    auto it = names_.find(name);
    return it == names_.end() ? -1 : it->second.index;
  }
  std::string Known() const {
    std::string out;
    for (const auto& [n, e] : names_) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "none defined" : "known: " + out;
  }

 private:
  struct Entry {
    int32_t index;
    std::string path;
    std::string where;
  };
  std::string what_;
  std::map<std::string, Entry> names_;
};

// ---------------------------------------------------------------------------------------------
// Files: text checks, ${VAR} expansion, CSV.

using RowFn = std::function<Status(size_t line, const std::vector<std::string>& cells)>;

// Reads a CSV file with a header line: fills `header`, calls `on_header` once, then `on_row` for
// at most `limit` data rows.
Status ReadCsv(const std::string& path, uint64_t limit, std::vector<std::string>* header,
               const std::function<Status()>& on_header, const RowFn& on_row) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot be read");
  std::string line;
  std::vector<std::string> cells;
  size_t line_no = 0;
  uint64_t rows = 0;
  header->clear();
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (auto bad = FirstNonTextByte(line)) {
      return InvalidArgument(path + ":" + std::to_string(line_no) +
                             ": not a text file (bad byte at column " + std::to_string(*bad + 1) +
                             ")");
    }
    if (Trim(line).empty()) continue;
    const bool is_header = header->empty();
    if (!is_header && rows >= limit) break;
    if (!SplitCsvLine(line, is_header ? header : &cells)) {
      return InvalidArgument(path + ":" + std::to_string(line_no) + ": unterminated quoted field");
    }
    if (is_header) {
      ORRERY_RETURN_IF_ERROR(on_header());
      continue;
    }
    if (cells.size() != header->size()) {
      return InvalidArgument(path + ":" + std::to_string(line_no) + ": expected " +
                             std::to_string(header->size()) + " columns, got " +
                             std::to_string(cells.size()));
    }
    ORRERY_RETURN_IF_ERROR(on_row(line_no, cells));
    ++rows;
  }
  if (header->empty()) return InvalidArgument(path + ": empty trace (no header line)");
  return Status::Ok();
}

int ColumnIndex(const std::vector<std::string>& header, std::string_view name) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::string ColumnList(const std::vector<std::string>& header) {
  std::string out;
  for (const auto& h : header) out += (out.empty() ? "" : ", ") + h;
  return out;
}

// Time cells: numbers (in a unit) or "YYYY-MM-DD HH:MM:SS[.fraction][Z]" date-times.
enum class TimeFormat : uint8_t { kAuto, kSeconds, kMillis, kMicros, kDatetime };
const std::vector<std::string>& TimeFormatNames() {
  static const std::vector<std::string> k = {"AUTO", "SECONDS", "MS", "US", "DATETIME"};
  return k;
}

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  // Proleptic Gregorian calendar; day 0 = 1970-01-01.
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::optional<int64_t> ParseDatetimeNs(std::string_view s) {
  s = Trim(s);
  auto num = [&](size_t pos, size_t len, int64_t* out) {
    if (pos + len > s.size()) return false;
    int64_t v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int64_t y, mo, d, h, mi, sec;
  if (!num(0, 4, &y) || s.size() < 19 || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || (s[10] != ' ' && s[10] != 'T') || !num(11, 2, &h) || s[13] != ':' ||
      !num(14, 2, &mi) || s[16] != ':' || !num(17, 2, &sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t i = 19;
  int64_t frac_ns = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100'000'000;
    const size_t begin = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      frac_ns += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == begin) return std::nullopt;
  }
  if (i < s.size() && s[i] == 'Z') ++i;
  if (i != s.size()) return std::nullopt;
  const int64_t days = DaysFromCivil(y, mo, d);
  const int64_t secs = ((days * 24 + h) * 60 + mi) * 60 + sec;
  // Nanoseconds since 1970 fit int64 for about +-292 years (1677-09-21 .. 2262-04-11); a date
  // outside is not a time this loader can represent (found by tests/fuzz: year 2526 overflowed).
  constexpr int64_t kMaxSecs = std::numeric_limits<int64_t>::max() / 1'000'000'000LL - 1;
  if (secs > kMaxSecs || secs < -kMaxSecs) return std::nullopt;
  return secs * 1'000'000'000LL + frac_ns;
}

// A column of times converted to seconds. Date-times are made relative to the earliest one;
// numbers are kept as they are unless `rebase_numbers`, which makes them relative to the
// smallest. A column may not mix the two.
class TimeColumn {
 public:
  explicit TimeColumn(TimeFormat f) : format_(f) {}
  // Returns an error message (without location) or "".
  std::string Add(std::string_view cell) {
    if (format_ != TimeFormat::kDatetime) {
      if (auto v = ParsePlainNumber(cell)) {
        if (mixed(false)) return "mixes numbers and date-times";
        const double unit = format_ == TimeFormat::kMillis   ? 1e-3
                            : format_ == TimeFormat::kMicros ? 1e-6
                                                             : 1.0;
        numbers_.push_back(*v * unit);
        return "";
      }
      if (format_ != TimeFormat::kAuto) {
        return "expected a number, got '" + std::string(cell) + "'";
      }
    }
    if (auto ns = ParseDatetimeNs(cell)) {
      if (mixed(true)) return "mixes numbers and date-times";
      ns_.push_back(*ns);
      return "";
    }
    return format_ == TimeFormat::kDatetime
               ? "expected a date-time like '2023-11-16 18:15:46.68', got '" + std::string(cell) +
                     "'"
               : "expected a number of seconds or a date-time, got '" + std::string(cell) + "'";
  }
  std::vector<double> Seconds(bool rebase_numbers) const {
    std::vector<double> out;
    if (datetime_) {
      const int64_t base = ns_.empty() ? 0 : *std::min_element(ns_.begin(), ns_.end());
      out.reserve(ns_.size());
      for (int64_t v : ns_) out.push_back(static_cast<double>(v - base) * 1e-9);
      return out;
    }
    out = numbers_;
    if (rebase_numbers && !out.empty()) {
      const double base = *std::min_element(out.begin(), out.end());
      for (double& v : out) v -= base;
    }
    return out;
  }
  bool datetime() const { return datetime_; }
  // Absolute nanoseconds of row i (date-time columns only).
  int64_t ns(size_t i) const { return ns_[i]; }

 private:
  bool mixed(bool datetime) {
    if (!started_) {
      started_ = true;
      datetime_ = datetime;
      return false;
    }
    return datetime_ != datetime;
  }
  TimeFormat format_;
  bool started_ = false;
  bool datetime_ = false;
  std::vector<double> numbers_;
  std::vector<int64_t> ns_;
};

// ---------------------------------------------------------------------------------------------
// Overrides.

// ---------------------------------------------------------------------------------------------
// Plans: validated generators before expansion.

using GenPlan = GeneratorPlan;

// ---------------------------------------------------------------------------------------------
// The loader.

class Loader {
 public:
  Loader(FieldContext ctx, const LoadProgressFn& progress)
      : ctx_(std::move(ctx)), progress_(progress) {}

  Status Load(const YAML::Node& root) {
    MapView top;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, Field{root, ""}, RootSchema(), &top));
    s_.path = ctx_.file;
    s_.name = fs::path(ctx_.file).stem().string();
    if (auto f = top.Get("name")) ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *f, &s_.name));
    if (auto f = top.Get("description")) {
      std::string unused;
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *f, &unused, "a string"));
    }
    if (auto f = top.Get("seed")) {
      int64_t seed = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *f, 0, std::numeric_limits<int64_t>::max(), &seed));
      s_.seed = static_cast<uint64_t>(seed);
    }
    if (auto f = top.Get("stop")) {
      MapView stop;
      ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, *f, *RootSchema().Field("stop"), &stop));
      if (auto mt = stop.Get("max_time")) {
        ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *mt, &s_.max_time_s));
        if (s_.max_time_s <= 0) return ctx_.Expected(*mt, "a duration > 0");
      }
    }
    s_.strategies.push_back(SchedulingStrategy::Default());

    Field cluster;
    ORRERY_RETURN_IF_ERROR(top.Require(ctx_, "cluster", &cluster));
    ORRERY_RETURN_IF_ERROR(ParseCluster(cluster));
    if (auto f = top.Get("scheduler")) ORRERY_RETURN_IF_ERROR(ParseScheduler(*f));
    if (auto f = top.Get("runtime_envs")) ORRERY_RETURN_IF_ERROR(ParseEnvs(*f));
    if (auto f = top.Get("runtime_env_cache")) ORRERY_RETURN_IF_ERROR(ParseEnvCache(*f));
    if (auto f = top.Get("owner")) ORRERY_RETURN_IF_ERROR(ParseOwner(*f));
    if (auto f = top.Get("control_plane")) ORRERY_RETURN_IF_ERROR(ParseControlPlane(*f));
    ORRERY_RETURN_IF_ERROR(ParseAutoscaler(top.Get("autoscaler")));
    if (auto f = top.Get("workload")) ORRERY_RETURN_IF_ERROR(ParseWorkload(*f));
    if (auto f = top.Get("failures")) ORRERY_RETURN_IF_ERROR(ParseFailures(*f));
    ORRERY_RETURN_IF_ERROR(Expand());
    Warn();
    return Status::Ok();
  }

  Scenario Take() && { return std::move(s_); }

 private:
  static const Schema& GeneratorSchema() {
    return *RootSchema().Field("workload")->Field("tasks")->elem;
  }

  // --- cluster ---------------------------------------------------------------------------------

  Status ReadNodeTotal(const Field& f, ResourceSet* out) {
    ResourceRequest r;
    ORRERY_RETURN_IF_ERROR(ReadResources(ctx_, f, &r));
    auto nr = NodeResources::Create(r.set());
    if (!nr.ok()) return ctx_.Raw(f, f.path + "." + nr.status().message());
    *out = r.set();
    return Status::Ok();
  }

  Status AddNode(const Field& where, NodeSpec spec) {
    if (s_.nodes.size() >= kMaxNodes) {
      return ctx_.Error(where, "too many nodes (at most " + std::to_string(kMaxNodes) + ")");
    }
    ORRERY_RETURN_IF_ERROR(
        node_names_.Add(ctx_, where, spec.id, static_cast<int32_t>(s_.nodes.size())));
    s_.nodes.push_back(std::move(spec));
    return Status::Ok();
  }

  Status ParseCluster(const Field& f) {
    const Schema& cs = *RootSchema().Field("cluster");
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, cs, &m));
    const Schema& ts = *cs.Field("node_types")->elem;
    NameTable type_names("node type");
    std::vector<NodeTypeEntry> defs;
    const Field no_types{};
    auto tlist = m.Get("node_types");
    ORRERY_RETURN_IF_ERROR(ForEachMap(ctx_, tlist ? *tlist : no_types, ts, [&](const MapView& tm) {
      NodeTypeEntry def;
      ORRERY_RETURN_IF_ERROR(ReadNodeTypeEntry(ctx_, tm, &def));
      const std::string& name = def.name;
      const Field& nf = def.name_field;
      ORRERY_RETURN_IF_ERROR(type_names.Add(ctx_, nf, name, static_cast<int32_t>(defs.size())));
      uint64_t count = 1;
      if (auto cf = tm.Get("count"))
        ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *cf, kMaxNodes, &count));
      for (uint64_t i = 0; i < count; ++i) {
        ORRERY_RETURN_IF_ERROR(
            AddNode(nf, NodeSpec{name + "-" + std::to_string(i), name, def.total, def.labels}));
      }
      auto minf = tm.Get("min_workers");
      auto maxf = tm.Get("max_workers");
      if (minf && !maxf) {
        return ctx_.Error(minf->node, minf->path,
                          "min_workers needs max_workers (a type is autoscaled when it has "
                          "max_workers)");
      }
      if (maxf) {
        NodeTypeSpec nt{name, def.total, def.labels, 0, 0};
        uint64_t mx = 0, mn = 0;
        ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *maxf, kMaxAutoscaledNodes, &mx));
        if (minf) ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *minf, kMaxAutoscaledNodes, &mn));
        if (mn > mx) return ctx_.Expected(*minf, "min_workers <= max_workers");
        if (count > mx) {
          return ctx_.Expected(*maxf, "max_workers >= count (" + std::to_string(count) + ")");
        }
        nt.min_workers = static_cast<int64_t>(mn);
        nt.max_workers = static_cast<int64_t>(mx);
        // Hosts cannot be added to a sealed SimGrid platform: the nodes the autoscaler may
        // launch exist from the start as standby nodes.
        for (uint64_t i = count; i < mx; ++i) {
          NodeSpec sb{name + "-" + std::to_string(i), name, def.total, def.labels};
          sb.standby = true;
          ORRERY_RETURN_IF_ERROR(AddNode(nf, std::move(sb)));
        }
        s_.autoscaler.node_types.push_back(std::move(nt));
      }
      defs.push_back(std::move(def));
      return Status::Ok();
    }));
    const Schema& ns = *cs.Field("nodes")->elem;
    auto nlist = m.Get("nodes");
    ORRERY_RETURN_IF_ERROR(ForEachMap(ctx_, nlist ? *nlist : no_types, ns, [&](const MapView& nm) {
      Field idf;
      NodeSpec spec;
      ORRERY_RETURN_IF_ERROR(RequireString(ctx_, nm, "id", &spec.id, &idf, "a node id"));
      auto tf = nm.Get("type");
      auto rf = nm.Get("resources");
      if (tf && rf) {
        return ctx_.Error(rf->node, rf->path, "give either type or resources, not both");
      }
      if (!tf && !rf) {
        return ctx_.Error(nm.self(), "a node needs a type or resources");
      }
      if (tf) {
        ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *tf, &spec.type, "a node type name"));
        const int32_t t = type_names.Find(spec.type);
        if (t < 0) {
          return ctx_.Error(tf->node, tf->path,
                            "unknown node type '" + spec.type + "' (" + type_names.Known() + ")");
        }
        spec.total = defs[t].total;
        spec.labels = defs[t].labels;
      } else {
        spec.type = "custom";
        ORRERY_RETURN_IF_ERROR(ReadNodeTotal(*rf, &spec.total));
      }
      if (auto lf = nm.Get("labels")) {
        Labels extra;
        ORRERY_RETURN_IF_ERROR(ReadLabels(ctx_, *lf, &extra));
        for (auto& [k, v] : extra) spec.labels[k] = v;
      }
      return AddNode(idf, std::move(spec));
    }));
    if (s_.nodes.empty()) {
      return ctx_.Error(f, "expected at least one node (node_types with count >= 1, or nodes)");
    }
    if (auto df = m.Get("driver")) {
      std::string id;
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *df, &id, "a node id"));
      ORRERY_RETURN_IF_ERROR(FindNode(*df, id, &s_.driver_node));
    }
    if (auto nf = m.Get("network")) {
      MapView nm;
      ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, *nf, *cs.Field("network"), &nm));
      if (auto bf = nm.Get("bandwidth")) {
        ORRERY_RETURN_IF_ERROR(ReadBandwidth(ctx_, *bf, &s_.network.bandwidth_Bps));
        bandwidth_given_ = true;
      }
      if (auto lf = nm.Get("latency")) {
        ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *lf, &s_.network.latency_s));
        latency_given_ = true;
      }
    }
    return Status::Ok();
  }

  Status FindNode(const Field& f, const std::string& id, int32_t* out) {
    *out = node_names_.Find(id);
    if (*out < 0) {
      std::string sample;
      for (size_t i = 0; i < s_.nodes.size() && i < 5; ++i) {
        sample += (i ? ", " : "") + s_.nodes[i].id;
      }
      if (s_.nodes.size() > 5) sample += ", ...";
      return ctx_.Error(f, "unknown node '" + id + "' (nodes: " + sample + ")");
    }
    return Status::Ok();
  }

  // --- scheduler -------------------------------------------------------------------------------

  Status ParseScheduler(const Field& f) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, *RootSchema().Field("scheduler"), &m));
    SchedulerOptions& o = s_.scheduler.options;
    for (const char* k : {"policy", "spread_threshold", "top_k_absolute", "top_k_fraction",
                          "avoid_gpu_nodes", "fair_granting", "wait_at_best_node"}) {
      if (m.Get(k)) s_.scheduler.policy_given = true;
    }
    if (auto pf = m.Get("policy")) {
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *pf, &o.policy, "a policy name"));
      const PolicyRegistry& reg = PolicyRegistry::Builtin();
      if (!reg.Contains(o.policy)) {
        std::string known;
        for (const auto& e : reg.entries()) known += (known.empty() ? "" : ", ") + e.name;
        return ctx_.Error(pf->node, pf->path,
                          "unknown policy '" + o.policy + "' (known: " + known + ")");
      }
    }
    if (auto v = m.Get("spread_threshold")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *v, 0, 1, &o.hybrid.spread_threshold));
    }
    if (auto v = m.Get("top_k_absolute")) {
      int64_t k = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *v, 1, 1'000'000'000, &k));
      o.hybrid.top_k_absolute = static_cast<int>(k);
    }
    if (auto v = m.Get("top_k_fraction")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *v, 0, 1, &o.hybrid.top_k_fraction));
    }
    if (auto v = m.Get("avoid_gpu_nodes")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &o.hybrid.avoid_gpu_nodes));
    }
    if (auto v = m.Get("fair_granting")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &o.fair_granting));
    }
    if (auto v = m.Get("wait_at_best_node")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &o.wait_at_best_node));
    }
    if (auto v = m.Get("report_period")) {
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &s_.scheduler.report_period_s));
      report_period_given_ = true;
      if (s_.scheduler.report_period_s <= 0) return ctx_.Expected(*v, "a duration > 0");
    }
    if (auto v = m.Get("view_via_head")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &s_.scheduler.view_via_head));
    }
    return Status::Ok();
  }

  // --- autoscaler and env cache -----------------------------------------------------------------

  Status ParseAutoscaler(std::optional<Field> f) {
    AutoscalerSpec& a = s_.autoscaler;
    std::sort(a.node_types.begin(), a.node_types.end(),
              [](const NodeTypeSpec& x, const NodeTypeSpec& y) { return x.name < y.name; });
    if (!f) {
      if (!a.node_types.empty()) {
        a.enabled = true;  // max_workers on a node type is enough to turn the autoscaler on
      }
      return Status::Ok();
    }
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, *f, *RootSchema().Field("autoscaler"), &m));
    if (a.node_types.empty()) {
      return ctx_.Error(*f, "the autoscaler needs at least one node type with max_workers");
    }
    a.enabled = true;
    if (auto v = m.Get("period")) {
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &a.period_s));
      if (a.period_s <= 0) return ctx_.Expected(*v, "a duration > 0");
    }
    if (auto v = m.Get("idle_timeout"))
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &a.idle_timeout_s));
    if (auto v = m.Get("boot_delay"))
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &a.boot_delay_s));
    if (auto v = m.Get("upscaling_speed")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *v, 0, 1e6, &a.upscaling_speed));
    }
    if (auto v = m.Get("max_workers")) {
      uint64_t mx = 0;
      ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *v, kMaxAutoscaledNodes, &mx));
      int64_t mins = 0;
      for (const auto& t : a.node_types) mins += t.min_workers;
      if (static_cast<int64_t>(mx) < mins) {
        return ctx_.Expected(
            *v, "max_workers >= the sum of the types' min_workers (" + std::to_string(mins) + ")");
      }
      a.max_workers = static_cast<int64_t>(mx);
    }
    return Status::Ok();
  }

  Status ParseEnvCache(const Field& f) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, *RootSchema().Field("runtime_env_cache"), &m));
    EnvCacheSpec& e = s_.env_cache;
    if (auto v = m.Get("policy")) {
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &e.policy, "arbitrary, lru or gdsf"));
      for (char& c : e.policy) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (e.policy != "arbitrary" && e.policy != "lru" && e.policy != "gdsf") {
        return ctx_.Expected(*v, "one of arbitrary, lru, gdsf");
      }
    }
    if (auto v = m.Get("limit")) ORRERY_RETURN_IF_ERROR(ReadSize(ctx_, *v, &e.limit_bytes));
    if (auto v = m.Get("setup_timeout")) {
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &e.setup_timeout_s));
      if (e.setup_timeout_s <= 0) return ctx_.Expected(*v, "a duration > 0");
    }
    if (auto v = m.Get("max_attempts")) {
      int64_t n = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *v, 1, 100, &n));
      e.max_attempts = static_cast<int>(n);
    }
    if (auto v = m.Get("worker_startup")) {
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &e.worker_startup_s));
      worker_startup_given_ = true;
    }
    return Status::Ok();
  }

  Status ParseOwner(const Field& f) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, *RootSchema().Field("owner"), &m));
    OwnerSpec& o = s_.owner;
    if (auto v = m.Get("reuse_leases")) ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &o.reuse_leases));
    if (auto v = m.Get("max_pending_lease_requests_per_class")) {
      int64_t n = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *v, 0, 1000000, &n));
      o.max_pending_lease_requests_per_class = static_cast<int>(n);
    }
    if (auto v = m.Get("idle_lease_timeout")) {
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &o.idle_lease_timeout_s));
    }
    if (auto v = m.Get("lease_timeout")) {
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &o.lease_timeout_s));
    }
    if (auto v = m.Get("gpu_tasks_per_lease")) {
      int64_t n = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *v, 0, 1000000, &n));
      o.gpu_tasks_per_lease = static_cast<int>(n);
    }
    return Status::Ok();
  }

  // --- control plane ---------------------------------------------------------------------------

  // `control_plane:` is a map, or the path of a YAML file (relative to the scenario's folder)
  // whose top level holds a `control_plane:` map, as `orrery calibrate` writes it. Values set
  // explicitly elsewhere in the scenario (cluster.network, scheduler.report_period,
  // runtime_env_cache.worker_startup) win over the calibrated ones.
  Status ParseControlPlane(const Field& f) {
    const Schema& schema = *RootSchema().Field("control_plane");
    if (f.node.IsScalar()) {
      std::string file;
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, f, &file, "a control_plane map or a file path"));
      fs::path path = fs::path(file).is_absolute() ? fs::path(file) : ctx_.dir / file;
      FieldContext inc;
      inc.file = path.string();
      inc.dir = path.parent_path();
      YAML::Node root;
      try {
        std::ifstream in(path);
        if (!in) return ctx_.Error(f, "cannot read the control_plane file '" + path.string() + "'");
        root = YAML::Load(in);
      } catch (const YAML::Exception& e) {
        return InvalidArgument(inc.file + ":" + std::to_string(e.mark.line + 1) +
                               ": malformed YAML (column " + std::to_string(e.mark.column + 1) +
                               "): " + YamlErrorMessage(e));
      }
      if (Status deep = CheckYamlNesting(root); !deep.ok()) {
        return InvalidArgument(inc.file + ": " + deep.message());
      }
      if (!root.IsMap() || !root["control_plane"]) {
        return InvalidArgument(inc.file + ": expected a map with a 'control_plane' key (as "
                               "`orrery calibrate` writes), got " + Describe(root) +
                               " (included from " + ctx_.Where(f) + ")");
      }
      for (const auto& kv : root) {
        const std::string key = kv.first.Scalar();
        if (key != "control_plane") {
          return inc.Error(kv.first, key, "unknown key (the file holds only 'control_plane')");
        }
      }
      Field cf{root["control_plane"], "control_plane", NodeRef()};
      return ReadControlPlane(inc, cf, schema);
    }
    return ReadControlPlane(ctx_, f, schema);
  }

  Status ReadControlPlane(const FieldContext& c, const Field& f, const Schema& schema) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(c, f, schema, &m));
    ControlPlaneSpec& cp = s_.control_plane;
    cp.given = true;
    struct Item {
      const char* key;
      double* out;
    };
    double worker_start = -1, report_period = -1, object_latency = -1;
    const Item items[] = {{"lease_request", &cp.lease_request_s},
                          {"spillback", &cp.spillback_s},
                          {"task_start", &cp.task_start_s},
                          {"worker_start", &worker_start},
                          {"task_finish", &cp.task_finish_s},
                          {"resources_visible_remote", &cp.resources_visible_remote_s},
                          {"report_period", &report_period},
                          {"report_jitter", &cp.report_jitter_s},
                          {"object_latency", &object_latency}};
    for (const Item& it : items) {
      if (auto v = m.Get(it.key)) ORRERY_RETURN_IF_ERROR(ReadDuration(c, *v, it.out));
    }
    if (report_period == 0) {
      return c.Error(*m.Get("report_period"), "expected a duration > 0, got 0");
    }
    if (auto v = m.Get("worker_start_parallel")) {
      int64_t n = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(c, *v, 1, 1'000'000, &n));
      cp.worker_start_parallel = static_cast<int>(n);
    }
    if (auto v = m.Get("worker_start_shared")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(c, *v, 0, 1, &cp.worker_start_shared));
    }
    if (worker_start >= 0 && !worker_startup_given_) s_.env_cache.worker_startup_s = worker_start;
    if (report_period > 0 && !report_period_given_) s_.scheduler.report_period_s = report_period;
    // A fetch is a round trip: the one-way latency is half of it.
    if (object_latency >= 0 && !latency_given_) s_.network.latency_s = object_latency / 2;
    if (auto v = m.Get("object_bandwidth"); v && !bandwidth_given_) {
      ORRERY_RETURN_IF_ERROR(ReadBandwidth(c, *v, &s_.network.bandwidth_Bps));
    } else if (v) {
      double unused = 0;
      ORRERY_RETURN_IF_ERROR(ReadBandwidth(c, *v, &unused));
    }
    return Status::Ok();
  }

  // --- runtime envs, placement groups, failures ------------------------------------------------

  // The required `name` of a list entry, unique in `table` (which maps it to `index`).
  Status ReadEntryName(const MapView& m, NameTable& table, size_t index, std::string* name,
                       Field* where) {
    ORRERY_RETURN_IF_ERROR(RequireString(ctx_, m, "name", name, where));
    return table.Add(ctx_, *where, *name, static_cast<int32_t>(index));
  }

  Status ParseEnvs(const Field& f) {
    const Schema& es = *RootSchema().Field("runtime_envs")->elem;
    return ForEachMap(ctx_, f, es, [&](const MapView& m) {
      Field nf;
      RuntimeEnvSpec env;
      ORRERY_RETURN_IF_ERROR(ReadEntryName(m, env_names_, s_.runtime_envs.size(), &env.id, &nf));
      if (auto v = m.Get("size")) ORRERY_RETURN_IF_ERROR(ReadSize(ctx_, *v, &env.size_bytes));
      if (auto v = m.Get("install_time")) {
        ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &env.install_s));
      }
      s_.runtime_envs.push_back(std::move(env));
      return Status::Ok();
    });
  }

  Status ParsePlacementGroups(const Field& f, const Schema& ps) {
    return ForEachMap(ctx_, f, ps, [&](const MapView& m) {
      Field nf, bf;
      PlacementGroupSpec pg;
      ORRERY_RETURN_IF_ERROR(ReadEntryName(m, pg_names_, s_.placement_groups.size(), &pg.id, &nf));
      if (auto sf = m.Get("strategy")) {
        std::string text;
        ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *sf, &text, "a placement strategy"));
        auto st = ParsePlacementStrategy(text);
        if (!st.ok()) return ctx_.Error(sf->node, sf->path, st.status().message());
        pg.strategy = *st;
      }
      if (auto af = m.Get("at")) ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *af, &pg.create_s));
      ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "bundles", &bf));
      std::vector<Field> bundles;
      ORRERY_RETURN_IF_ERROR(OpenList(ctx_, bf, &bundles));
      if (bundles.empty()) return ctx_.Expected(bf, "a non-empty list of bundles");
      for (const Field& b : bundles) {
        ResourceRequest r;
        ORRERY_RETURN_IF_ERROR(ReadResources(ctx_, b, &r));
        if (r.IsEmpty()) return ctx_.Error(b, "a bundle must request a resource");
        pg.bundles.push_back(std::move(r));
      }
      s_.placement_groups.push_back(std::move(pg));
      return Status::Ok();
    });
  }

  Status ParseFailures(const Field& f) {
    const Schema& fs_schema = *RootSchema().Field("failures")->elem;
    ORRERY_RETURN_IF_ERROR(ForEachMap(ctx_, f, fs_schema, [&](const MapView& m) {
      Field af, nf;
      FailureSpec fail;
      ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "at", &af));
      ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, af, &fail.at_s));
      std::string id;
      ORRERY_RETURN_IF_ERROR(RequireString(ctx_, m, "node", &id, &nf, "a node id"));
      ORRERY_RETURN_IF_ERROR(FindNode(nf, id, &fail.node));
      if (auto v = m.Get("action")) {
        size_t a = 0;
        ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, *v, {"crash", "recover"}, &a));
        fail.action = a == 0 ? FailureSpec::Action::kCrash : FailureSpec::Action::kRecover;
      }
      s_.failures.push_back(fail);
      return Status::Ok();
    }));
    std::stable_sort(s_.failures.begin(), s_.failures.end(),
                     [](const FailureSpec& a, const FailureSpec& b) { return a.at_s < b.at_s; });
    return Status::Ok();
  }

  // --- workload --------------------------------------------------------------------------------

  Status ParseWorkload(const Field& f) {
    const Schema& ws = *RootSchema().Field("workload");
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, ws, &m));
    if (auto pf = m.Get("placement_groups")) {
      ORRERY_RETURN_IF_ERROR(ParsePlacementGroups(*pf, *ws.Field("placement_groups")->elem));
    }
    for (const char* section : {"tasks", "actors"}) {
      auto lf = m.Get(section);
      if (!lf) continue;
      std::vector<Field> items;
      ORRERY_RETURN_IF_ERROR(OpenList(ctx_, *lf, &items));
      gens_.reserve(gens_.size() + items.size());
      const WorkKind kind =
          std::string_view(section) == "tasks" ? WorkKind::kTask : WorkKind::kActor;
      for (size_t i = 0; i < items.size(); ++i) {
        ORRERY_RETURN_IF_ERROR(ParseGenerator(items[i], *ws.Field("tasks")->elem, kind));
        if ((i & 4095) == 4095) Report("generators", i + 1, items.size());
      }
      Report("generators", items.size(), items.size());
    }
    if (auto tf = m.Get("trace")) {
      std::vector<Field> items;
      ORRERY_RETURN_IF_ERROR(OpenList(ctx_, *tf, &items));
      for (const Field& t : items) {
        ORRERY_RETURN_IF_ERROR(ParseTrace(t, *ws.Field("trace")->elem));
      }
    }
    return Status::Ok();
  }

  uint32_t InternJob(const std::string& job) {
    auto [it, inserted] = jobs_.emplace(job, static_cast<uint32_t>(s_.jobs.size()));
    if (inserted) s_.jobs.push_back(job);
    return it->second;
  }

  uint32_t InternShape(const ResourceRequest& r) {
    auto [it, inserted] = shapes_.emplace(r.ToString(), static_cast<uint32_t>(s_.shapes.size()));
    if (inserted) s_.shapes.push_back(r);
    return it->second;
  }

  uint32_t InternStrategy(const SchedulingStrategy& st) {
    for (size_t i = 0; i < s_.strategies.size(); ++i) {
      const SchedulingStrategy& o = s_.strategies[i];
      if (o.type == st.type && o.node == st.node && o.soft == st.soft &&
          o.spill_on_unavailable == st.spill_on_unavailable &&
          o.fail_on_unavailable == st.fail_on_unavailable) {
        return static_cast<uint32_t>(i);
      }
    }
    s_.strategies.push_back(st);
    return static_cast<uint32_t>(s_.strategies.size() - 1);
  }

  Status ParseStrategy(const Field& f, SchedulingStrategy* out) {
    const std::vector<std::string> types = {"DEFAULT", "SPREAD", "NODE_AFFINITY"};
    if (f.node.IsScalar()) {
      size_t t = 0;
      if (!ReadChoice(ctx_, f, {"DEFAULT", "SPREAD"}, &t).ok()) {
        return ctx_.Expected(f, "DEFAULT, SPREAD or a map {type: NODE_AFFINITY, node: ID, ...}");
      }
      *out = t == 0 ? SchedulingStrategy::Default() : SchedulingStrategy::Spread();
      return Status::Ok();
    }
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, *GeneratorSchema().Field("strategy"), &m));
    Field tf;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "type", &tf));
    size_t t = 0;
    ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, tf, types, &t));
    if (t != 2) {
      ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"type"}, "strategy " + types[t]));
      *out = t == 0 ? SchedulingStrategy::Default() : SchedulingStrategy::Spread();
      return Status::Ok();
    }
    Field nf;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "node", &nf));
    std::string id;
    ORRERY_RETURN_IF_ERROR(ReadString(ctx_, nf, &id, "a node id"));
    int32_t slot = -1;
    ORRERY_RETURN_IF_ERROR(FindNode(nf, id, &slot));
    SchedulingStrategy st = SchedulingStrategy::NodeAffinity(id);
    if (auto v = m.Get("soft")) ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &st.soft));
    if (auto v = m.Get("spill_on_unavailable")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &st.spill_on_unavailable));
    }
    if (auto v = m.Get("fail_on_unavailable")) {
      ORRERY_RETURN_IF_ERROR(ReadBool(ctx_, *v, &st.fail_on_unavailable));
    }
    if (st.spill_on_unavailable && st.fail_on_unavailable) {
      return ctx_.Error(f, "spill_on_unavailable and fail_on_unavailable exclude each other");
    }
    *out = std::move(st);
    return Status::Ok();
  }

  // The per-task fields that generators and trace entries share: strategy, placement_group,
  // bundle, output, runtime_env, max_retries, job.
  Status ParseCommon(const MapView& m, GenPlan* c) {
    std::string job = "default";
    if (auto v = m.Get("job")) ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &job, "a job name"));
    c->job = InternJob(job);
    SchedulingStrategy st;
    auto sf = m.Get("strategy");
    if (sf) ORRERY_RETURN_IF_ERROR(ParseStrategy(*sf, &st));
    c->strategy = InternStrategy(st);
    if (auto v = m.Get("placement_group")) {
      std::string name;
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &name, "a placement group name"));
      c->pg = pg_names_.Find(name);
      if (c->pg < 0) {
        return ctx_.Error(v->node, v->path,
                          "unknown placement group '" + name + "' (" + pg_names_.Known() + ")");
      }
      if (sf && st.type != SchedulingStrategy::Type::kDefault) {
        return ctx_.Error(sf->node, sf->path,
                          "a task in a placement group takes its placement from the group; "
                          "leave strategy out");
      }
    }
    if (auto v = m.Get("bundle")) {
      if (c->pg < 0) return ctx_.Error(v->node, v->path, "bundle needs placement_group");
      const auto n = static_cast<int64_t>(s_.placement_groups[c->pg].bundles.size());
      int64_t b = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *v, -1, n - 1, &b));
      c->bundle = static_cast<int32_t>(b);
    }
    if (auto v = m.Get("output")) ORRERY_RETURN_IF_ERROR(ReadSize(ctx_, *v, &c->output));
    if (auto v = m.Get("runtime_env")) {
      std::string name;
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &name, "a runtime env name"));
      c->env = env_names_.Find(name);
      if (c->env < 0) {
        return ctx_.Error(v->node, v->path,
                          "unknown runtime env '" + name + "' (" + env_names_.Known() + ")");
      }
    }
    if (auto v = m.Get("max_retries")) {
      int64_t r = 0;
      ORRERY_RETURN_IF_ERROR(ReadInt(ctx_, *v, 0, 65535, &r));
      c->max_retries = static_cast<uint16_t>(r);
    }
    return Status::Ok();
  }

  Status AddTaskCount(const Field& where, uint64_t n) {
    total_tasks_ += n;
    if (total_tasks_ > kMaxTasks) {
      return ctx_.Error(where, "the scenario would have more than " + std::to_string(kMaxTasks) +
                                   " tasks; lower the counts");
    }
    return Status::Ok();
  }

  Status ParseDuration(const Field& f, GenPlan* g) {
    DurationDist& d = g->duration;
    if (!f.node.IsMap()) {
      d.kind = DurationDist::Kind::kConstant;
      return ReadDuration(ctx_, f, &d.a);
    }
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, *GeneratorSchema().Field("duration"), &m));
    Field df;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "dist", &df));
    size_t kind = 0;
    ORRERY_RETURN_IF_ERROR(
        ReadChoice(ctx_, df, {"constant", "exponential", "uniform", "lognormal", "column"}, &kind));
    auto need = [&](const char* key, double* out) -> Status {
      Field v;
      ORRERY_RETURN_IF_ERROR(m.Require(ctx_, key, &v));
      return ReadDuration(ctx_, v, out);
    };
    switch (kind) {
      case 0:
        d.kind = DurationDist::Kind::kConstant;
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"dist", "mean"}, "dist constant"));
        return need("mean", &d.a);
      case 1:
        d.kind = DurationDist::Kind::kExponential;
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"dist", "mean"}, "dist exponential"));
        return need("mean", &d.a);
      case 2: {
        d.kind = DurationDist::Kind::kUniform;
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"dist", "min", "max"}, "dist uniform"));
        ORRERY_RETURN_IF_ERROR(need("min", &d.a));
        ORRERY_RETURN_IF_ERROR(need("max", &d.b));
        if (d.b < d.a) {
          return ctx_.Error(m.Get("max")->node, m.Get("max")->path, "expected max >= min");
        }
        return Status::Ok();
      }
      case 3: {
        d.kind = DurationDist::Kind::kLognormal;
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"dist", "median", "sigma"}, "dist lognormal"));
        ORRERY_RETURN_IF_ERROR(need("median", &d.a));
        Field sf;
        ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "sigma", &sf));
        return ReadNumber(ctx_, sf, 0, 10, &d.b);
      }
      default: {
        d.kind = DurationDist::Kind::kColumn;
        ORRERY_RETURN_IF_ERROR(
            OnlyKeys(ctx_, m, {"dist", "column", "scale", "offset"}, "dist column"));
        if (g->process != GenPlan::Process::kTrace) {
          return ctx_.Error(df, "dist column needs arrival.process trace");
        }
        Field cf;
        ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "column", &cf));
        ORRERY_RETURN_IF_ERROR(ReadString(ctx_, cf, &d.column, "a column name"));
        d.a = 1;
        if (auto v = m.Get("scale")) ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *v, 0, 1e300, &d.a));
        if (auto v = m.Get("offset")) ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &d.b));
        duration_column_field_ = cf;
        return Status::Ok();
      }
    }
  }

  Status ParseArrival(const Field& f, GenPlan* g) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, *GeneratorSchema().Field("arrival"), &m));
    Field pf;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "process", &pf));
    size_t p = 0;
    ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, pf, {"poisson", "uniform", "burst", "trace"}, &p));
    switch (p) {
      case 0: {
        g->process = GenPlan::Process::kPoisson;
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"process", "rate"}, "process poisson"));
        Field rf;
        ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "rate", &rf));
        return ReadRate(ctx_, rf, &g->rate);
      }
      case 1: {
        g->process = GenPlan::Process::kUniform;
        ORRERY_RETURN_IF_ERROR(
            OnlyKeys(ctx_, m, {"process", "interval", "rate"}, "process uniform"));
        auto iv = m.Get("interval");
        auto rf = m.Get("rate");
        if (iv.has_value() == rf.has_value()) {
          return ctx_.Error(f, "process uniform needs exactly one of interval, rate");
        }
        if (iv) return ReadDuration(ctx_, *iv, &g->interval);
        double rate = 0;
        ORRERY_RETURN_IF_ERROR(ReadRate(ctx_, *rf, &rate));
        g->interval = 1.0 / rate;
        return Status::Ok();
      }
      case 2: {
        g->process = GenPlan::Process::kBurst;
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"process", "at"}, "process burst"));
        if (auto a = m.Get("at")) return ReadDuration(ctx_, *a, &g->at);
        return Status::Ok();
      }
      default:
        g->process = GenPlan::Process::kTrace;
        ORRERY_RETURN_IF_ERROR(
            OnlyKeys(ctx_, m, {"process", "file", "column", "time_format", "limit", "speedup"},
                     "process trace"));
        arrival_view_ = m;
        return Status::Ok();  // read after the duration is known (it may name a column)
    }
  }

  // Reads the arrival trace of `g` (and its duration column, if any).
  Status ReadArrivalTrace(const MapView& m, GenPlan* g) {
    Field ff;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "file", &ff));
    std::string file;
    ORRERY_RETURN_IF_ERROR(ResolvePath(ctx_, ff, &file));
    std::string column;
    if (auto v = m.Get("column")) ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &column, "a column"));
    size_t tf = 0;
    if (auto v = m.Get("time_format")) {
      ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, *v, TimeFormatNames(), &tf));
    }
    uint64_t limit = kMaxTasks;
    if (auto v = m.Get("limit")) ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *v, kMaxTasks, &limit));
    double speedup = 1;
    if (auto v = m.Get("speedup")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *v, 1e-9, 1e12, &speedup));
    }
    TimeColumn times(static_cast<TimeFormat>(tf));
    std::vector<double> durations;
    std::vector<std::string> header;
    int tcol = -1, dcol = -1;
    const bool want_duration = g->duration.kind == DurationDist::Kind::kColumn;
    auto on_header = [&]() -> Status {
      tcol = column.empty() ? 0 : ColumnIndex(header, column);
      if (tcol < 0) {
        const Field cf = *m.Get("column");
        return ctx_.Error(cf, "trace '" + file + "' has no column '" + column +
                                  "' (columns: " + ColumnList(header) + ")");
      }
      if (want_duration) {
        dcol = ColumnIndex(header, g->duration.column);
        if (dcol < 0) {
          return ctx_.Error(duration_column_field_, "trace '" + file + "' has no column '" +
                                                        g->duration.column +
                                                        "' (columns: " + ColumnList(header) + ")");
        }
      }
      return Status::Ok();
    };
    Status st = ReadCsv(
        file, limit, &header, on_header, [&](size_t line, const std::vector<std::string>& c) {
          const std::string err = times.Add(c[tcol]);
          if (!err.empty()) {
            return InvalidArgument(file + ":" + std::to_string(line) + ": column '" + header[tcol] +
                                   "': " + err + " (" + m.self().path + ")");
          }
          if (want_duration) {
            auto v = ParsePlainNumber(c[dcol]);
            if (!v || *v < 0) {
              return InvalidArgument(file + ":" + std::to_string(line) + ": column '" +
                                     header[dcol] + "': expected a number >= 0, got '" + c[dcol] +
                                     "' (" + g->path + ".duration)");
            }
            durations.push_back(*v * g->duration.a + g->duration.b);
          }
          return Status::Ok();
        });
    if (!st.ok()) return st;
    std::vector<double> secs = times.Seconds(/*rebase_numbers=*/true);
    // Arrival order: by time, file order within equal times.
    std::vector<size_t> order(secs.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return secs[a] < secs[b]; });
    g->trace_times.reserve(secs.size());
    for (size_t i : order) {
      g->trace_times.push_back(secs[i] / speedup);
      if (want_duration) g->trace_durations.push_back(durations[i]);
    }
    g->count = g->trace_times.size();
    return Status::Ok();
  }

  Status ParseArgs(const Field& f, GenPlan* g) {
    const Schema& as = *GeneratorSchema().Field("args")->elem;
    return ForEachMap(ctx_, f, as, [&](const MapView& m) {
      ArgPlan a;
      if (auto from = m.Get("from")) {
        ORRERY_RETURN_IF_ERROR(
            OnlyKeys(ctx_, m, {"from", "count", "pick"}, "an argument from a generator"));
        std::string name;
        ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *from, &name, "a generator name"));
        const int32_t gi = gen_names_.Find(name);
        if (gi < 0 || gi >= static_cast<int32_t>(gens_.size()) ||
            gens_[gi].kind != WorkKind::kTask) {
          std::string known;
          for (const auto& p : gens_) {
            if (p.kind == WorkKind::kTask && !p.name.empty())
              known += (known.empty() ? "" : ", ") + p.name;
          }
          return ctx_.Error(from->node, from->path,
                            "unknown generator '" + name +
                                "': args must come from a task generator listed earlier in "
                                "workload.tasks (" +
                                (known.empty() ? std::string("none") : "earlier: " + known) + ")");
        }
        a.from_gen = gi;
        if (auto v = m.Get("count")) {
          uint64_t n = 0;
          ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *v, kMaxArgsPerSpec, &n));
          a.count = static_cast<uint32_t>(n);
        }
        if (auto v = m.Get("pick")) {
          size_t p = 0;
          ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, *v, {"same_index", "random"}, &p));
          a.random = p == 1;
        }
      } else if (auto nf = m.Get("node")) {
        ORRERY_RETURN_IF_ERROR(OnlyKeys(ctx_, m, {"node", "bytes"}, "an argument on a node"));
        std::string id;
        ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *nf, &id, "a node id"));
        ORRERY_RETURN_IF_ERROR(FindNode(*nf, id, &a.node));
        Field bf;
        ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "bytes", &bf));
        ORRERY_RETURN_IF_ERROR(ReadSize(ctx_, bf, &a.bytes));
      } else {
        return ctx_.Error(m.self(), "an argument needs 'from' (a generator) or 'node' and 'bytes'");
      }
      g->args.push_back(std::move(a));
      return Status::Ok();
    });
  }

  Status ParseGenerator(const Field& f, const Schema& gs, WorkKind kind) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, gs, &m));
    GenPlan g;
    gen_where_.push_back(f);
    g.path = f.path;
    g.kind = kind;
    Field nf;
    ORRERY_RETURN_IF_ERROR(ReadEntryName(m, gen_names_, gens_.size(), &g.name, &nf));
    g.name_idx = static_cast<uint32_t>(s_.names.size());
    s_.names.push_back(g.name);

    arrival_view_ = MapView();
    if (auto af = m.Get("arrival")) ORRERY_RETURN_IF_ERROR(ParseArrival(*af, &g));
    Field df;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "duration", &df));
    ORRERY_RETURN_IF_ERROR(ParseDuration(df, &g));
    if (g.process == GenPlan::Process::kTrace) {
      if (auto cf = m.Get("count")) {
        return ctx_.Error(cf->node, cf->path,
                          "the trace sets the count; use arrival.limit to take fewer rows");
      }
      ORRERY_RETURN_IF_ERROR(ReadArrivalTrace(arrival_view_, &g));
      ORRERY_RETURN_IF_ERROR(AddTaskCount(f, g.count));
    } else {
      Field cf;
      ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "count", &cf));
      ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, cf, kMaxTasks, &g.count));
      ORRERY_RETURN_IF_ERROR(AddTaskCount(cf, g.count));
    }
    if (auto v = m.Get("start")) ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &g.start));

    ResourceRequest shape = kind == WorkKind::kTask
                                ? *ResourceRequest::Create({{std::string(kCPU), 1.0}})
                                : ResourceRequest();
    if (auto rf = m.Get("resources")) ORRERY_RETURN_IF_ERROR(ReadResources(ctx_, *rf, &shape));
    g.shape = InternShape(shape);
    NoteShape(g.shape, g.count, g.path + " (" + g.name + ")");

    ORRERY_RETURN_IF_ERROR(ParseCommon(m, &g));
    if (auto af = m.Get("args")) ORRERY_RETURN_IF_ERROR(ParseArgs(*af, &g));
    uint64_t per_task = 0;
    for (const auto& a : g.args) per_task += a.from_gen >= 0 ? a.count : 1;
    total_args_ += per_task * g.count;
    if (total_args_ > kMaxArgs) {
      return ctx_.Error(f, "the scenario would have more than " + std::to_string(kMaxArgs) +
                               " task arguments; lower the counts");
    }
    if (g.pg >= 0) CheckBundleFit(g.pg, g.bundle, shape, g.path + " (" + g.name + ")");
    gens_.push_back(std::move(g));
    return Status::Ok();
  }

  // --- task traces (Orrery CSV and column-mapped CSVs) -----------------------------------------

  Status ParseTrace(const Field& f, const Schema& ts) {
    MapView m;
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, f, ts, &m));
    Field ff;
    ORRERY_RETURN_IF_ERROR(m.Require(ctx_, "file", &ff));
    std::string file;
    ORRERY_RETURN_IF_ERROR(ResolvePath(ctx_, ff, &file));
    GenPlan g;
    gen_where_.push_back(f);
    g.path = f.path;
    g.name = fs::path(file).stem().string();
    Field name_field = ff;
    if (auto v = m.Get("name")) {
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &g.name));
      name_field = *v;
    }
    ORRERY_RETURN_IF_ERROR(
        gen_names_.Add(ctx_, name_field, g.name, static_cast<int32_t>(gens_.size())));
    g.name_idx = static_cast<uint32_t>(s_.names.size());
    s_.names.push_back(g.name);
    if (auto v = m.Get("kind")) {
      size_t k = 0;
      ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, *v, {"task", "actor"}, &k));
      g.kind = k == 0 ? WorkKind::kTask : WorkKind::kActor;
    }
    double start = 0, speedup = 1;
    if (auto v = m.Get("start")) ORRERY_RETURN_IF_ERROR(ReadDuration(ctx_, *v, &start));
    if (auto v = m.Get("speedup")) {
      ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *v, 1e-9, 1e12, &speedup));
    }
    uint64_t limit = kMaxTasks;
    if (auto v = m.Get("limit")) ORRERY_RETURN_IF_ERROR(ReadCount(ctx_, *v, kMaxTasks, &limit));
    size_t tf = 0;
    if (auto v = m.Get("time_format")) {
      ORRERY_RETURN_IF_ERROR(ReadChoice(ctx_, *v, TimeFormatNames(), &tf));
    }
    std::string submit_col = "submit_s", duration_col = "duration_s", end_col;
    if (auto v = m.Get("submit_column")) ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *v, &submit_col));
    auto dcf = m.Get("duration_column");
    auto ecf = m.Get("end_column");
    if (dcf && ecf) {
      return ctx_.Error(ecf->node, ecf->path, "give duration_column or end_column, not both");
    }
    if (dcf) ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *dcf, &duration_col));
    if (ecf) {
      ORRERY_RETURN_IF_ERROR(ReadString(ctx_, *ecf, &end_col));
      duration_col.clear();
    }
    // Resource columns: name -> (column, scale). Default: every other column, scale 1.
    struct ResCol {
      std::string name, column;
      double scale = 1;
      int index = -1;
    };
    std::vector<ResCol> res_cols;
    const bool explicit_resources = m.Has("resources");
    if (auto rf = m.Get("resources")) {
      MapView rm;
      ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, *rf, *ts.Field("resources"), &rm));
      const Schema& colref = *ts.Field("resources")->elem;
      for (const auto& [name, node] : rm.entries()) {
        Field cf{node, Join(rf->path, name)};
        ResCol rc{name, "", 1, -1};
        if (node.IsMap()) {
          MapView cm;
          ORRERY_RETURN_IF_ERROR(MapView::Open(ctx_, cf, colref, &cm));
          Field colf;
          ORRERY_RETURN_IF_ERROR(cm.Require(ctx_, "column", &colf));
          ORRERY_RETURN_IF_ERROR(ReadString(ctx_, colf, &rc.column, "a column name"));
          if (auto sf = cm.Get("scale")) {
            ORRERY_RETURN_IF_ERROR(ReadNumber(ctx_, *sf, 0, 1e300, &rc.scale));
          }
        } else {
          ORRERY_RETURN_IF_ERROR(ReadString(ctx_, cf, &rc.column, "a column name"));
        }
        res_cols.push_back(std::move(rc));
      }
    }
    ORRERY_RETURN_IF_ERROR(ParseCommon(m, &g));

    TimeColumn submits(static_cast<TimeFormat>(tf));
    TimeColumn ends(static_cast<TimeFormat>(tf));
    std::vector<double> durations;
    std::vector<uint32_t> shapes;
    std::vector<std::string> header;
    int scol = -1, dcol = -1, ecol = -1;
    const double unit = tf == 2 ? 1e-3 : tf == 3 ? 1e-6 : 1.0;
    auto missing = [&](const std::string& col, const Field& where) {
      return ctx_.Error(where, "trace '" + file + "' has no column '" + col +
                                   "' (columns: " + ColumnList(header) + ")");
    };
    auto on_header = [&]() -> Status {
      scol = ColumnIndex(header, submit_col);
      if (scol < 0) return missing(submit_col, m.Get("submit_column").value_or(ff));
      if (!duration_col.empty()) {
        dcol = ColumnIndex(header, duration_col);
        if (dcol < 0) return missing(duration_col, dcf.value_or(ff));
      } else {
        ecol = ColumnIndex(header, end_col);
        if (ecol < 0) return missing(end_col, *ecf);
      }
      if (!explicit_resources) {
        for (size_t i = 0; i < header.size(); ++i) {
          if (static_cast<int>(i) == scol || static_cast<int>(i) == dcol ||
              static_cast<int>(i) == ecol || header[i].empty()) {
            continue;
          }
          res_cols.push_back(ResCol{header[i], header[i], 1, static_cast<int>(i)});
        }
      } else {
        for (auto& rc : res_cols) {
          rc.index = ColumnIndex(header, rc.column);
          if (rc.index < 0) {
            return missing(rc.column, Field{m.Get("resources")->node,
                                            Join(m.Get("resources")->path, rc.name)});
          }
        }
      }
      return Status::Ok();
    };
    Status st = ReadCsv(
        file, limit, &header, on_header, [&](size_t line, const std::vector<std::string>& row) {
          const std::string at = file + ":" + std::to_string(line) + ": column '";
          const std::string ref = " (" + f.path + ")";
          std::string err = submits.Add(row[scol]);
          if (!err.empty()) return InvalidArgument(at + header[scol] + "': " + err + ref);
          if (dcol >= 0) {
            auto v = ParsePlainNumber(row[dcol]);
            if (!v || *v < 0) {
              return InvalidArgument(at + header[dcol] + "': expected a duration >= 0, got '" +
                                     row[dcol] + "'" + ref);
            }
            durations.push_back(*v * unit);
          } else {
            err = ends.Add(row[ecol]);
            if (!err.empty()) return InvalidArgument(at + header[ecol] + "': " + err + ref);
          }
          std::map<std::string, double> q;
          for (const auto& rc : res_cols) {
            const std::string& cell = row[rc.index];
            if (cell.empty()) continue;
            auto v = ParseWithUnits(cell, SizeUnits(), 1.0);
            if (!v || *v < 0) {
              return InvalidArgument(at + rc.column + "': expected a quantity >= 0, got '" + cell +
                                     "'" + ref);
            }
            q[rc.name] = *v * rc.scale;
          }
          auto r = ResourceRequest::Create(q, UnitInstanceNames(), "resources");
          if (!r.ok()) {
            return InvalidArgument(file + ":" + std::to_string(line) + ": " + r.status().message() +
                                   ref);
          }
          shapes.push_back(InternShape(*r));
          return Status::Ok();
        });
    if (!st.ok()) return st;
    const std::vector<double> sub = submits.Seconds(/*rebase_numbers=*/false);
    if (ecol >= 0) {
      if (submits.datetime() != ends.datetime()) {
        return ctx_.Error(ecf->node, ecf->path,
                          "the submit and end columns must both be numbers or both date-times");
      }
      const std::vector<double> end_numbers = ends.Seconds(false);
      for (size_t i = 0; i < sub.size(); ++i) {
        const double d = submits.datetime() ? static_cast<double>(ends.ns(i) - submits.ns(i)) * 1e-9
                                            : end_numbers[i] - sub[i];
        if (d < 0) {
          return InvalidArgument(file + ": row " + std::to_string(i + 1) +
                                 ": ends before it is submitted (" + f.path + ")");
        }
        durations.push_back(d);
      }
    }
    ORRERY_RETURN_IF_ERROR(AddTaskCount(f, sub.size()));
    g.count = sub.size();
    g.process = GenPlan::Process::kTrace;
    g.duration.kind = DurationDist::Kind::kColumn;
    g.duration.a = 1;
    // Rows keep their own shapes; expansion reads them from here.
    g.trace_shapes = std::move(shapes);
    for (size_t i = 0; i < sub.size(); ++i) {
      g.trace_times.push_back(start + sub[i] / speedup);
      NoteShape(g.trace_shapes[i], 1, g.path + " (" + g.name + ")");
      if (g.pg >= 0) {
        CheckBundleFit(g.pg, g.bundle, s_.shapes[g.trace_shapes[i]], g.path + " (" + g.name + ")");
      }
    }
    g.trace_durations = std::move(durations);
    g.start = 0;  // already applied
    gens_.push_back(std::move(g));
    return Status::Ok();
  }

  // --- expansion -------------------------------------------------------------------------------

  void Report(const char* phase, uint64_t done, uint64_t total) {
    if (progress_) progress_(LoadProgress{phase, done, total});
  }

  // Expands every generator into s_.tasks (reserved once, no intermediate copy), then sorts the
  // tasks by submit time in place (core/scenario/generators.h).
  Status Expand() {
    size_t failed = 0;
    Status st = ExpandGenerators(
        gens_, total_tasks_, std::min<uint64_t>(total_args_, kMaxArgs), &s_, &failed,
        [this](const char* phase, uint64_t done, uint64_t total) { Report(phase, done, total); });
    if (!st.ok()) return ctx_.Error(gen_where_[failed], st.message());
    return Status::Ok();
  }

  // --- warnings --------------------------------------------------------------------------------

  void NoteShape(uint32_t shape, uint64_t n, const std::string& user) {
    if (shape_use_.size() <= shape) shape_use_.resize(shape + 1);
    if (shape_use_[shape].tasks == 0 && n > 0) shape_use_[shape].first_user = user;
    shape_use_[shape].tasks += n;
  }

  void CheckBundleFit(int32_t pg, int32_t bundle, const ResourceRequest& shape,
                      const std::string& user) {
    const PlacementGroupSpec& g = s_.placement_groups[pg];
    auto fits = [&](const ResourceRequest& b) { return shape.set().IsSubsetOf(b.set()); };
    const bool ok = bundle >= 0 ? fits(g.bundles[bundle])
                                : std::any_of(g.bundles.begin(), g.bundles.end(), fits);
    const std::string key = user + "/" + g.id;
    if (!ok && warned_bundles_.insert(key).second) {
      s_.warnings.push_back(user + ": resources " + shape.ToString() + " fit no bundle" +
                            (bundle >= 0 ? " " + std::to_string(bundle) : std::string()) +
                            " of placement group '" + g.id + "': those tasks can never run");
    }
  }

  void Warn() {
    // Distinct node shapes (a 10,000-node cluster usually has a handful).
    std::vector<NodeResources> kinds;
    std::set<std::string> seen;
    for (const NodeSpec& n : s_.nodes) {
      if (seen.insert(n.total.ToString()).second) {
        auto nr = NodeResources::Create(n.total);
        if (nr.ok()) kinds.push_back(*nr);
      }
    }
    auto feasible = [&](const ResourceRequest& r) {
      return std::any_of(kinds.begin(), kinds.end(),
                         [&](const NodeResources& k) { return k.IsFeasible(r); });
    };
    for (size_t i = 0; i < s_.shapes.size() && i < shape_use_.size(); ++i) {
      if (shape_use_[i].tasks == 0 || feasible(s_.shapes[i])) continue;
      s_.warnings.push_back("resource shape " + s_.shapes[i].ToString() +
                            " fits no node in the cluster: " + std::to_string(shape_use_[i].tasks) +
                            " task(s) (first: " + shape_use_[i].first_user +
                            ") will stay infeasible");
    }
    for (const PlacementGroupSpec& pg : s_.placement_groups) {
      for (size_t b = 0; b < pg.bundles.size(); ++b) {
        if (!feasible(pg.bundles[b])) {
          s_.warnings.push_back("placement group '" + pg.id + "': bundle " + std::to_string(b) +
                                " " + pg.bundles[b].ToString() +
                                " fits no node: the group is infeasible");
        }
      }
      if (pg.strategy == PlacementStrategy::kStrictSpread && pg.bundles.size() > s_.nodes.size()) {
        s_.warnings.push_back("placement group '" + pg.id + "': STRICT_SPREAD with " +
                              std::to_string(pg.bundles.size()) + " bundles but only " +
                              std::to_string(s_.nodes.size()) + " nodes: infeasible");
      }
      if (pg.strategy == PlacementStrategy::kStrictPack) {
        ResourceSet sum;
        for (const auto& b : pg.bundles) sum += b.set();
        if (!feasible(ResourceRequest::FromSet(sum))) {
          s_.warnings.push_back("placement group '" + pg.id + "': STRICT_PACK needs " +
                                sum.ToString() + " on one node, which no node has: infeasible");
        }
      }
    }
    for (const GenPlan& g : gens_) {
      if (g.missing_args > 0) {
        s_.warnings.push_back(g.path + " (" + g.name + "): " + std::to_string(g.missing_args) +
                              " task(s) found fewer producers submitted before them than args "
                              "asked for and got fewer arguments");
      }
    }
    if (std::isfinite(s_.max_time_s)) {
      const auto late = static_cast<uint64_t>(
          s_.tasks.end() -
          std::upper_bound(s_.tasks.begin(), s_.tasks.end(), s_.max_time_s,
                           [](double v, const TaskSpec& t) { return v < t.submit_s; }));
      if (late > 0) {
        s_.warnings.push_back(std::to_string(late) +
                              " task(s) are submitted after stop.max_time (" +
                              std::to_string(s_.max_time_s) + " s) and will never run");
      }
    }
  }

  struct ShapeUse {
    uint64_t tasks = 0;
    std::string first_user;
  };

  FieldContext ctx_;
  Scenario s_;
  // Set explicitly in the scenario: a calibrated control_plane does not override these.
  bool latency_given_ = false, bandwidth_given_ = false, report_period_given_ = false,
       worker_startup_given_ = false;
  NameTable node_names_{"node"};
  NameTable env_names_{"runtime env"};
  NameTable pg_names_{"placement group"};
  NameTable gen_names_{"generator"};
  std::map<std::string, uint32_t> jobs_;
  std::map<std::string, uint32_t> shapes_;
  std::vector<ShapeUse> shape_use_;
  std::set<std::string> warned_bundles_;
  std::vector<GenPlan> gens_;
  std::vector<Field> gen_where_;  // each generator's entry, for errors found while expanding
  const LoadProgressFn& progress_;
  uint64_t total_tasks_ = 0;
  uint64_t total_args_ = 0;
  MapView arrival_view_;         // the arrival map of the generator being parsed
  Field duration_column_field_;  // its duration column key, for messages
};

// Hands `text` to the YAML parser in 1 MiB windows and reports how far the parser has read, so a
// large file shows progress while yaml-cpp parses it (LoadAll is one call). The whole text stays
// the get area's start, so the parser can always put characters back.
class ProgressBuf : public std::streambuf {
 public:
  ProgressBuf(std::string& text, const LoadProgressFn& progress)
      : text_(text), progress_(progress) {}

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (next_ >= text_.size()) return traits_type::eof();
    if (progress_) progress_(LoadProgress{"parse", next_, text_.size()});
    const size_t n = std::min<size_t>(1 << 20, text_.size() - next_);
    setg(text_.data(), text_.data() + next_, text_.data() + next_ + n);
    next_ += n;
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string& text_;
  const LoadProgressFn& progress_;
  size_t next_ = 0;
};

// Where the last node of `root` in document order starts: down the last value of every map and
// the last item of every sequence. O(depth x map width on that path).
YAML::Mark LastMark(const YAML::Node& root) {
  YAML::Node n(root);
  YAML::Mark mark = n.Mark();
  for (int depth = 0;; ++depth) {
    // An alias can make the tree a cycle ("a: &a [*a]"): past the nesting limit, give up
    // (an impossible mark, so the caller counts the documents instead).
    if (depth > kMaxInputNesting) return YAML::Mark::null_mark();
    YAML::Node next;
    if (n.IsMap() && n.size() > 0) {
      for (auto it = n.begin(); it != n.end(); ++it) next.reset(it->second);
    } else if (n.IsSequence() && n.size() > 0) {
      next.reset(n[n.size() - 1]);
    } else {
      break;
    }
    n.reset(next);
    if (n.Mark().pos > mark.pos) mark = n.Mark();
  }
  return mark;
}

// True when every line after the one holding `last` is blank, a comment, or closing brackets of
// flow collections: the first document then covers the whole text (the cheap check that spares
// well-formed files a second parse).
bool OnlyClosersAfter(std::string_view text, const YAML::Mark& last) {
  if (last.pos < 0 || static_cast<size_t>(last.pos) > text.size()) return false;
  size_t i = text.find('\n', static_cast<size_t>(last.pos));
  while (i != std::string_view::npos && i < text.size()) {
    ++i;
    const size_t end = std::min(text.find('\n', i), text.size());
    for (size_t k = i; k < end; ++k) {
      const char c = text[k];
      if (c == '#') break;
      if (c != ' ' && c != '\t' && c != '\r' && c != ']' && c != '}') return false;
    }
    i = end;
  }
  return true;
}

// Counts the documents of a YAML stream without building them. yaml-cpp 0.7's LoadAll never
// returns on some malformed input: after a token it cannot place (a lone ',' is enough) every
// HandleNextDocument reports one more empty document, forever, allocating as it goes
// (jbeder/yaml-cpp#1040; found here by tests/fuzz). The loader therefore counts with a bound and
// builds the one document it accepts with YAML::Load. `stray` holds where the first document
// that is nothing but a null started, after the first document.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {
    ++documents;
    depth_ = 0;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    if (depth_ == 0 && documents > 1 && !stray) stray = mark;
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++depth_;
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++depth_;
  }
  void OnMapEnd() override { --depth_; }

  int documents = 0;
  std::optional<YAML::Mark> stray;

 private:
  int depth_ = 0;
};

StatusOr<Scenario> LoadImpl(const std::string& path, const std::vector<std::string>& overrides,
                            const LoadProgressFn& progress) {
  std::string text;
  ORRERY_RETURN_IF_ERROR(ReadFileText(path, path, kMaxScenarioBytes, &text));
  if (auto bad = FirstNonTextByte(text)) {
    const auto line =
        1 + std::count(text.begin(), text.begin() + static_cast<ptrdiff_t>(*bad), '\n');
    return InvalidArgument(path + ":" + std::to_string(line) +
                           ": not a text file (a byte at offset " + std::to_string(*bad) +
                           " is not UTF-8 text); expected a YAML scenario");
  }
  FieldContext ctx;
  ctx.file = path;
  ctx.dir = fs::path(path).parent_path();
  if (ctx.dir.empty()) ctx.dir = ".";

  // One pass builds the tree of the first document (YAML::Load; never LoadAll, see
  // DocumentCounter). Only when text the tree may not cover follows its last node does a second,
  // counting pass decide between "one document", "several" and "malformed".
  YAML::Node root;
  try {
    ProgressBuf buf(text, progress);
    std::istream in(&buf);
    root = YAML::Load(in);
    if (!root.IsDefined() || root.IsNull() || !OnlyClosersAfter(text, LastMark(root))) {
      DocumentCounter counter;
      std::istringstream again(text);
      YAML::Parser parser(again);
      while (counter.documents < 3 && parser.HandleNextDocument(counter)) {
      }
      if (counter.stray && counter.documents > 2) {
        return InvalidArgument(path + ":" + std::to_string(counter.stray->line + 1) +
                               ": malformed YAML (column " +
                               std::to_string(counter.stray->column + 1) +
                               "): a character the YAML parser cannot place here (e.g. a stray "
                               "',')");
      }
      if (counter.documents > 1) {
        return InvalidArgument(path + ": expected one YAML document, got " +
                               (counter.documents > 2 ? std::string("3 or more")
                                                      : std::to_string(counter.documents)));
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) +
                           ": malformed YAML (column " + std::to_string(e.mark.column + 1) +
                           "): " + YamlErrorMessage(e));
  }
  if (!root || root.IsNull()) {
    return InvalidArgument(path + ": empty scenario; expected a map with at least 'cluster'");
  }
  if (progress) progress(LoadProgress{"parse", text.size(), text.size()});
  std::string().swap(text);  // the tree holds what it needs
  if (!root.IsMap()) {
    return InvalidArgument(ctx.Where(root, "") + ": expected a map at the top level, got " +
                           Describe(root));
  }
  for (const std::string& o : overrides)
    ORRERY_RETURN_IF_ERROR(ApplyOverride(&ctx, root, RootSchema(), o));
  if (Status deep = CheckYamlNesting(root); !deep.ok()) {
    return InvalidArgument(path + ": " + deep.message());
  }
  Loader loader(std::move(ctx), progress);
  ORRERY_RETURN_IF_ERROR(loader.Load(root));
  return std::move(loader).Take();
}

}  // namespace

StatusOr<Scenario> LoadScenario(const std::string& path, const std::vector<std::string>& overrides,
                                const LoadProgressFn& progress) {
  // yaml-cpp reports problems by exception; none may escape (and none should reach here).
  try {
    return LoadImpl(path, overrides, progress);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, path + ": out of memory while loading");
  } catch (const std::exception& e) {
    return Internal(path + ": unexpected error while loading: " + e.what());
  }
}

}  // namespace orrery::io

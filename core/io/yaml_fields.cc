// The field-reader kit (yaml_fields.h). Moved here from the scenario loader, which had grown the
// most complete set of getters; the GPU-scenario and autoscaler-config loaders had their own
// smaller copies with the same message shapes.
#include "core/io/yaml_fields.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "core/io/yaml_input.h"

namespace orrery::io {

namespace fs = std::filesystem;

const Schema* Schema::Field(std::string_view key) const {
  for (const auto& [k, s] : fields) {
    if (k == key) return s;
  }
  return nullptr;
}

std::string Schema::KeyList() const {
  std::string out;
  for (const auto& [k, s] : fields) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Error context.

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
std::string Index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar: {
      std::string s = n.Scalar();
      if (s.size() > 40) s = s.substr(0, 37) + "...";
      return "'" + s + "'";
    }
    default:
      return "nothing";
  }
}

const std::string* FieldContext::OverrideOf(const std::string& path) const {
  for (const auto& [p, text] : overrides) {
    if (path == p || (path.size() > p.size() && path.compare(0, p.size(), p) == 0 &&
                      (path[p.size()] == '.' || path[p.size()] == '['))) {
      return &text;
    }
  }
  return nullptr;
}

std::string FieldContext::Where(const YAML::Node& n, const std::string& path) const {
  if (const std::string* text = OverrideOf(path)) return file + " (--set " + *text + ")";
  const int line = n.IsDefined() ? n.Mark().line : -1;
  return line >= 0 ? file + ":" + std::to_string(line + 1) : file;
}

Status FieldContext::Error(const YAML::Node& n, const std::string& path,
                           const std::string& what) const {
  return InvalidArgument(Where(n, path) + ": " + path + ": " + what);
}

Status FieldContext::Raw(const YAML::Node& n, const std::string& path,
                         const std::string& message) const {
  return InvalidArgument(Where(n, path) + ": " + message);
}

Status FieldContext::Expected(const Field& f, const std::string& what) const {
  return Error(f, "expected " + what + ", got " + Describe(f.node));
}

Status MapView::Open(const FieldContext& ctx, const Field& f, const Schema& schema, MapView* out) {
  out->self_ = f;
  out->entries_.clear();
  out->keys_.clear();
  if (f.node.IsNull()) return Status::Ok();  // `key:` with nothing = empty map
  if (!f.node.IsMap()) {
    return ctx.Expected(f, schema.kind == Schema::Kind::kMap ? "a map with keys " + schema.KeyList()
                                                             : std::string("a map"));
  }
  for (auto it = f.node.begin(); it != f.node.end(); ++it) {
    const YAML::Node k = it->first;  // a copy: `it->` yields a temporary proxy
    if (!k.IsScalar()) {
      return ctx.Error(k, f.path, "expected plain names as keys, got " + Describe(k));
    }
    const std::string key = k.Scalar();
    const std::string path = Join(f.path, key);
    if (schema.kind == Schema::Kind::kMap && schema.Field(key) == nullptr) {
      return ctx.Error(k, path, "unknown key (expected one of: " + schema.KeyList() + ")");
    }
    for (const auto& e : out->entries_) {
      if (e.first == key) return ctx.Error(k, path, "duplicate key");
    }
    out->entries_.emplace_back(key, it->second);
    out->keys_.push_back(k);
  }
  return Status::Ok();
}

std::optional<Field> MapView::Get(std::string_view key) const {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == key) return Field{entries_[i].second, Join(self_.path, key), keys_[i]};
  }
  return std::nullopt;
}

Status MapView::Require(const FieldContext& ctx, std::string_view key, Field* out) const {
  auto f = Get(key);
  if (!f) return ctx.Error(self_.mark(), Join(self_.path, key), "required key is missing");
  *out = *f;
  return Status::Ok();
}

Status OpenList(const FieldContext& ctx, const Field& f, std::vector<Field>* items) {
  items->clear();
  if (f.node.IsNull()) return Status::Ok();
  if (!f.node.IsSequence()) return ctx.Expected(f, "a list");
  size_t i = 0;
  for (auto it = f.node.begin(); it != f.node.end(); ++it, ++i) {
    items->push_back(Field{*it, Index(f.path, i)});
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Scalars with units.

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "12.5ms" into 12.5 and "ms". Accepts an optional sign, digits with '_' separators, a
// fraction and an exponent. False if there is no finite number at the start.
namespace {

// "12.5ms" -> 12.5 and "ms"; false unless it starts with a finite number.
bool SplitNumber(std::string_view text, double* value, std::string_view* unit) {
  std::string_view s = Trim(text);
  std::string digits;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    if (s[i] == '-') digits += '-';
    ++i;
  }
  bool any = false;
  while (i < s.size() &&
         (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '.')) {
    if (s[i] != '_') digits += s[i];
    any |= std::isdigit(static_cast<unsigned char>(s[i])) != 0;
    ++i;
  }
  if (!any) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
      digits.append(s.substr(i, j - i));
      i = j;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) digits += s[i++];
    }
  }
  double v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size() || !std::isfinite(v)) return false;
  *value = v;
  *unit = Trim(s.substr(i));
  return true;
}

}  // namespace

std::optional<double> ParsePlainNumber(std::string_view text) {
  double v = 0;
  std::string_view unit;
  if (!SplitNumber(text, &v, &unit) || !unit.empty()) return std::nullopt;
  return v;
}

std::optional<double> ParseWithUnits(std::string_view text, const std::vector<Unit>& units,
                                     double no_unit_factor) {
  double v = 0;
  std::string_view unit;
  if (!SplitNumber(text, &v, &unit)) return std::nullopt;
  if (unit.empty()) return v * no_unit_factor;
  for (const auto& u : units) {
    if (u.name == unit) return v * u.factor;
  }
  return std::nullopt;
}

const std::vector<Unit>& DurationUnits() {
  static const std::vector<Unit> k = {{"ns", 1e-9}, {"us", 1e-6}, {"µs", 1e-6}, {"ms", 1e-3},
                                      {"s", 1},     {"m", 60},    {"min", 60},  {"h", 3600}};
  return k;
}
const std::vector<Unit>& SizeUnits() {
  static const std::vector<Unit> k = {
      {"B", 1},           {"KB", 1e3},           {"MB", 1e6},
      {"GB", 1e9},        {"TB", 1e12},          {"KiB", 1024.0},
      {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  return k;
}
const std::vector<Unit>& BandwidthUnits() {
  static const std::vector<Unit> k = {
      {"bps", 1 / 8.0},   {"Kbps", 1e3 / 8}, {"Mbps", 1e6 / 8},    {"Gbps", 1e9 / 8},
      {"Tbps", 1e12 / 8}, {"B/s", 1},        {"KB/s", 1e3},        {"MB/s", 1e6},
      {"GB/s", 1e9},      {"KiB/s", 1024.0}, {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0}};
  return k;
}
const std::vector<Unit>& RateUnits() {
  static const std::vector<Unit> k = {{"/s", 1},        {"/ms", 1e3},       {"/us", 1e6},
                                      {"/m", 1 / 60.0}, {"/min", 1 / 60.0}, {"/h", 1 / 3600.0}};
  return k;
}

Status RequireScalar(const FieldContext& c, const Field& f, const std::string& what) {
  if (!f.node.IsScalar()) return c.Expected(f, what);
  return Status::Ok();
}

Status ReadString(const FieldContext& c, const Field& f, std::string* out,
                  const std::string& what) {
  ORRERY_RETURN_IF_ERROR(RequireScalar(c, f, what));
  *out = f.node.Scalar();
  if (Trim(*out).empty()) return c.Expected(f, what);
  return Status::Ok();
}

Status RequireString(const FieldContext& c, const MapView& m, std::string_view key,
                     std::string* out, Field* where, const std::string& what) {
  ORRERY_RETURN_IF_ERROR(m.Require(c, key, where));
  return ReadString(c, *where, out, what);
}

Status ReadBool(const FieldContext& c, const Field& f, bool* out) {
  const std::string what = "true or false";
  ORRERY_RETURN_IF_ERROR(RequireScalar(c, f, what));
  const std::string& s = f.node.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") {
    *out = true;
  } else if (s == "false" || s == "False" || s == "FALSE") {
    *out = false;
  } else {
    return c.Expected(f, what);
  }
  return Status::Ok();
}

// A plain number in [lo, hi].
Status ReadNumber(const FieldContext& c, const Field& f, double lo, double hi, double* out) {
  std::string what = "a number";
  if (lo > -1e300 && hi < 1e300) {
    std::ostringstream os;
    os << "a number in [" << lo << ", " << hi << "]";
    what = os.str();
  } else if (lo > -1e300) {
    std::ostringstream os;
    os << "a number >= " << lo;
    what = os.str();
  }
  ORRERY_RETURN_IF_ERROR(RequireScalar(c, f, what));
  auto v = ParsePlainNumber(f.node.Scalar());
  if (!v || *v < lo || *v > hi) return c.Expected(f, what);
  *out = *v;
  return Status::Ok();
}

// A whole number in [lo, hi] (written as an integer, 1e6 or 1_000_000).
Status ReadInt(const FieldContext& c, const Field& f, int64_t lo, int64_t hi, int64_t* out) {
  const std::string what =
      "a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  ORRERY_RETURN_IF_ERROR(RequireScalar(c, f, what));
  const std::string& s = f.node.Scalar();
  int64_t iv = 0;
  std::string clean;
  for (char ch : s) {
    if (ch != '_') clean += ch;
  }
  auto [p, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), iv);
  if (ec == std::errc() && p == clean.data() + clean.size()) {
    if (iv < lo || iv > hi) return c.Expected(f, what);
    *out = iv;
    return Status::Ok();
  }
  auto v = ParsePlainNumber(s);
  if (!v || std::floor(*v) != *v || *v < static_cast<double>(lo) || *v > static_cast<double>(hi)) {
    return c.Expected(f, what);
  }
  *out = static_cast<int64_t>(*v);
  return Status::Ok();
}

Status ReadCount(const FieldContext& c, const Field& f, uint64_t max, uint64_t* out) {
  int64_t v = 0;
  ORRERY_RETURN_IF_ERROR(ReadInt(c, f, 0, static_cast<int64_t>(max), &v));
  *out = static_cast<uint64_t>(v);
  return Status::Ok();
}

namespace {

// A finite number with an optional unit from `units` (no unit: the base unit), accepted when
// `accept(value)`; otherwise the error says `what` was expected.
template <typename Accept>
Status ReadWithUnits(const FieldContext& c, const Field& f, const std::vector<Unit>& units,
                     const std::string& what, Accept accept, double* out) {
  ORRERY_RETURN_IF_ERROR(RequireScalar(c, f, what));
  auto v = ParseWithUnits(f.node.Scalar(), units, 1.0);
  if (!v || !std::isfinite(*v) || !accept(*v)) return c.Expected(f, what);
  *out = *v;
  return Status::Ok();
}

}  // namespace

Status ReadDuration(const FieldContext& c, const Field& f, double* out) {
  return ReadWithUnits(
      c, f, DurationUnits(),
      "a duration >= 0 (seconds, or a string like '250ms', '1.5s', '2m', '1h')",
      [](double v) { return v >= 0; }, out);
}

Status ReadSize(const FieldContext& c, const Field& f, uint64_t* out) {
  double v = 0;
  ORRERY_RETURN_IF_ERROR(ReadWithUnits(
      c, f, SizeUnits(), "a size >= 0 (bytes, or a string like '100MB', '2GiB')",
      [](double x) { return x >= 0 && x <= 9.2e18; }, &v));
  *out = static_cast<uint64_t>(std::llround(v));
  return Status::Ok();
}

Status ReadBandwidth(const FieldContext& c, const Field& f, double* out) {
  return ReadWithUnits(
      c, f, BandwidthUnits(), "a bandwidth > 0 (bytes/s, or a string like '10Gbps', '100MB/s')",
      [](double v) { return v > 0; }, out);
}

Status ReadRate(const FieldContext& c, const Field& f, double* out) {
  return ReadWithUnits(
      c, f, RateUnits(), "a rate > 0 (per second, or a string like '100/s', '5/ms', '60/m')",
      [](double v) { return v > 0; }, out);
}

// A resource quantity: a number, or a size string for byte-valued resources ("32GiB").
Status ReadQuantity(const FieldContext& c, const Field& f, double* out) {
  return ReadWithUnits(
      c, f, SizeUnits(), "a quantity >= 0 (a number, or a size like '32GiB')",
      [](double v) { return v >= 0; }, out);
}

Status ReadResources(const FieldContext& c, const Field& f, ResourceRequest* out) {
  static const Schema kAny{Schema::Kind::kDict, {}, nullptr};
  MapView m;
  ORRERY_RETURN_IF_ERROR(MapView::Open(c, f, kAny, &m));
  std::map<std::string, double> q;
  for (const auto& [name, node] : m.entries()) {
    double v = 0;
    ORRERY_RETURN_IF_ERROR(ReadQuantity(c, Field{node, Join(f.path, name)}, &v));
    q[name] = v;
  }
  auto r = ResourceRequest::Create(q, UnitInstanceNames(), f.path);
  if (!r.ok()) return c.Raw(f, r.status().message());
  *out = *r;
  return Status::Ok();
}

Status ReadLabels(const FieldContext& c, const Field& f, Labels* out) {
  static const Schema kAny{Schema::Kind::kDict, {}, nullptr};
  MapView m;
  ORRERY_RETURN_IF_ERROR(MapView::Open(c, f, kAny, &m));
  for (const auto& [k, node] : m.entries()) {
    Field lf{node, Join(f.path, k)};
    ORRERY_RETURN_IF_ERROR(RequireScalar(c, lf, "a string"));
    (*out)[k] = node.Scalar();
  }
  return Status::Ok();
}

// Accepts `value` in either case; returns its index in `choices` (upper-case spellings).
Status ReadChoice(const FieldContext& c, const Field& f, const std::vector<std::string>& choices,
                  size_t* out) {
  std::string what = "one of ";
  for (size_t i = 0; i < choices.size(); ++i) what += (i ? ", " : "") + choices[i];
  ORRERY_RETURN_IF_ERROR(RequireScalar(c, f, what));
  std::string s = f.node.Scalar();
  for (size_t i = 0; i < choices.size(); ++i) {
    const std::string& ch = choices[i];
    if (s.size() == ch.size() && std::equal(s.begin(), s.end(), ch.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      *out = i;
      return Status::Ok();
    }
  }
  return c.Expected(f, what);
}

// Keys of `m` that `allowed` does not list are errors "does not apply to <context>".
Status OnlyKeys(const FieldContext& c, const MapView& m,
                const std::vector<std::string_view>& allowed, const std::string& context) {
  for (const auto& [k, node] : m.entries()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return c.Error(node, Join(m.self().path, k),
                     "does not apply to " + context + " (its keys: " + list + ")");
    }
  }
  return Status::Ok();
}

// NUL bytes or invalid UTF-8 mean "not a text file". Returns the offset of the first bad byte.
std::optional<size_t> FirstNonTextByte(std::string_view s) {
  // Well-formed UTF-8 only (json_input.h): a runtime env whose working_dir held the overlong
  // pair "\xC1\x9E" parsed, then terminated the canonical JSON (found by runtime_env_json_fuzz).
  const size_t first = std::min(s.find('\0'), FirstInvalidUtf8(s));  // npos is the largest
  if (first == std::string_view::npos) return std::nullopt;
  return first;
}

Status ReadFileText(const std::string& path, const std::string& shown, uintmax_t max_bytes,
                    std::string* out) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return NotFound(shown + ": no such file");
  if (fs::is_directory(st)) return InvalidArgument(shown + ": is a directory, expected a file");
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > max_bytes) {
    return InvalidArgument(shown + ": file is larger than " + std::to_string(max_bytes >> 20) +
                           " MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(shown + ": cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return Status::Ok();
}

Status ResolvePath(const FieldContext& c, const Field& f, std::string* out,
                   const PathOptions& options) {
  std::string raw;
  ORRERY_RETURN_IF_ERROR(ReadString(c, f, &raw, "a file path"));
  std::string expanded;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '$' || i + 1 >= raw.size() || raw[i + 1] != '{') {
      expanded += raw[i];
      continue;
    }
    const size_t close = raw.find('}', i + 2);
    if (close == std::string::npos) {
      return c.Error(f, "unterminated '${' in path '" + raw + "'");
    }
    const std::string var = raw.substr(i + 2, close - i - 2);
    const bool valid = !var.empty() && !std::isdigit(static_cast<unsigned char>(var[0])) &&
                       std::all_of(var.begin(), var.end(), [](char ch) {
                         return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
                       });
    if (!valid) return c.Error(f, "bad variable name '${" + var + "}'");
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) {
      const std::string hint = var == "ORRERY_TRACE_DIR" ? options.trace_dir_hint : "";
      return c.Error(f, "environment variable " + var + " is not set" + hint);
    }
    expanded += value;
    i = close;
  }
  fs::path p(expanded);
  if (p.is_relative()) {
    const bool from_override = c.OverrideOf(f.path) != nullptr;
    p = options.overrides_from_cwd && from_override ? fs::current_path() / p : c.dir / p;
  }
  p = p.lexically_normal();
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) {
    return NotFound(c.Where(f) + ": " + f.path + ": trace file '" + p.string() +
                    "' does not exist");
  }
  *out = p.string();
  return Status::Ok();
}

Status ApplyOverride(FieldContext* ctx_out, YAML::Node root, const Schema& root_schema,
                     const std::string& text, const OverrideOptions& options) {
  FieldContext& ctx = *ctx_out;
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument(ctx.file + " (--set " + text + "): expected dotted.path=value");
  }
  const std::string dotted = text.substr(0, eq);
  const std::string value_text = text.substr(eq + 1);
  const std::string where = ctx.file + " (--set " + text + ")";

  std::vector<std::string> segs;
  for (size_t b = 0;;) {
    const size_t e = dotted.find('.', b);
    segs.push_back(dotted.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }

  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(where + ": " + dotted + ": malformed value: " + YamlErrorMessage(e));
  }

  const Schema* schema = &root_schema;
  YAML::Node cur = root;
  std::string path;
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& seg = segs[i];
    const bool last = i + 1 == segs.size();
    if (seg.empty()) return InvalidArgument(where + ": empty path segment in '" + dotted + "'");
    if (schema->kind == Schema::Kind::kList) {
      int64_t idx = -1;
      auto [p, ec] = std::from_chars(seg.data(), seg.data() + seg.size(), idx);
      if (ec != std::errc() || p != seg.data() + seg.size() || idx < 0) {
        return InvalidArgument(where + ": " + path + ": is a list; expected an index, got '" + seg +
                               "'");
      }
      const size_t n = cur.IsSequence() ? cur.size() : 0;
      if (static_cast<size_t>(idx) >= n) {
        return InvalidArgument(where + ": " + path + ": index " + seg +
                               " is out of range (the list has " + std::to_string(n) + " entries)");
      }
      path = Index(path, static_cast<size_t>(idx));
      schema = schema->elem;
      if (last) {
        cur[static_cast<size_t>(idx)] = value;
      } else {
        YAML::Node next = cur[static_cast<size_t>(idx)];
        cur.reset(next);
      }
      continue;
    }
    if (schema->kind == Schema::Kind::kValue) {
      return InvalidArgument(where + ": " + path + ": is a value and has no key '" + seg + "'");
    }
    const Schema* child = schema->kind == Schema::Kind::kDict ? schema->elem : schema->Field(seg);
    const std::string child_path = Join(path, seg);
    if (child == nullptr) {
      return InvalidArgument(where + ": " + child_path +
                             ": unknown key (expected one of: " + schema->KeyList() + ")");
    }
    if (!cur.IsMap()) {
      if (!cur.IsNull()) {
        return InvalidArgument(where + ": " + (path.empty() ? "(top level)" : path) + ": is " +
                               Describe(cur) + ", not a map; cannot set '" + seg + "' in it");
      }
      cur = YAML::Node(YAML::NodeType::Map);  // assigns through: `key:` left empty in the file
    }
    if (last) {
      if (options.sections_whole && child->kind == Schema::Kind::kMap) {
        return InvalidArgument(where + ": " + child_path + ": is a section; set its keys");
      }
      cur[seg] = value;
    } else {
      if (!cur[seg].IsDefined() || cur[seg].IsNull()) cur[seg] = YAML::Node(YAML::NodeType::Map);
      YAML::Node next = cur[seg];
      cur.reset(next);
    }
    path = child_path;
    schema = child ? child : schema;
  }
  ctx.overrides.emplace_back(path, text);
  return Status::Ok();
}

}  // namespace orrery::io

// The field-reader kit of core/io: one set of typed getters over a YAML tree that every YAML
// loader uses (scenario, GPU scenario, autoscaler config), so that a bad field is reported the
// same way everywhere:
//   scenarios/x.yaml:14: cluster.nodes[2].resources.GPU: expected a quantity >= 0 (...), got '-1'
//   scenarios/x.yaml (--set scheduler.top_k_fraction=2): scheduler.top_k_fraction: expected ...
// i.e. "FILE:LINE: FIELD PATH: expected WHAT, got VALUE", or "FILE (--set TEXT): ..." when the
// value came from a command-line override. The JSON twin (json_input.h: JsonDocument, JsonPath)
// serves the JSON loader (the explain case) with the same parts: the file, the line, the field
// path and what was expected.
//
// How a loader uses it:
//   FieldContext ctx{.file = path, .dir = folder};
//   ApplyOverride(ctx, root, schema, "scheduler.policy=spread");   // checked against the schema
//   MapView top;  MapView::Open(ctx, Field{root, ""}, schema, &top);  // unknown/duplicate keys
//   if (auto f = top.Get("seed")) ReadInt(ctx, *f, 0, max, &seed);
//
// A Schema lists which keys exist where; the same table drives the unknown-key check of MapView
// and the path check of ApplyOverride, so an override can name a key the file omits but can
// never invent one.
//
// Thread safety: values and free functions; a FieldContext is used by one loader at a time.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery::io {

// Which keys exist where. kValue accepts any scalar; kMap lists its keys (a kMap may also be
// written as a scalar where the reader allows it, e.g. `duration: 1s`); kDict has free-form keys
// (resources, labels); kList has numbered elements.
struct Schema {
  enum class Kind : uint8_t { kValue, kMap, kDict, kList };
  Kind kind = Kind::kValue;
  std::vector<std::pair<std::string, const Schema*>> fields;  // kMap, in documentation order
  const Schema* elem = nullptr;                               // kDict values, kList elements

  // The schema of `key` of a kMap, or nullptr when the map has no such key. O(keys).
  const Schema* Field(std::string_view key) const;
  // "a, b, c": the keys of a kMap in documentation order.
  std::string KeyList() const;
};

// "a.b" (or "b" when `path` is the root "").
std::string Join(const std::string& path, std::string_view key);
// "a[3]".
std::string Index(const std::string& path, size_t i);
// A short rendering of a value for "got ...": 'text' (cut to 40 characters), "a list", "a map",
// "nothing".
std::string Describe(const YAML::Node& n);

// A YAML::Node handle whose assignment rebinds the handle. YAML::Node's own operator= assigns
// *through* it: an empty left side first gets a new node allocated in the document (freed only
// with the whole document), and a bound one is turned into an alias of the right side. Loaders
// keep assigning Fields, so with plain YAML::Node every generator entry left about 60 dead nodes
// behind: 1.1M generators took 7.8 GB (issue 11 item 5).
struct NodeRef : YAML::Node {
  NodeRef() = default;
  NodeRef(const YAML::Node& n) : YAML::Node(n) {}  // NOLINT(google-explicit-constructor)
  NodeRef(const NodeRef&) = default;
  NodeRef& operator=(const NodeRef& o) {
    reset(o);
    return *this;
  }
};

// A present value and where it sits in the document.
struct Field {
  NodeRef node;
  std::string path;  // "cluster.nodes[2].resources"
  NodeRef key;       // the map key naming it, if any

  // Errors about a value point at its key's line: a block map's own mark is its first child.
  const YAML::Node& mark() const { return key.Mark().line >= 0 ? key : node; }
};

// The file being read and the overrides applied to it: turns (node, path, what) into the
// messages above.
struct FieldContext {
  std::string file;           // as the caller named it
  std::filesystem::path dir;  // relative paths in the file start here
  // Override paths in the error-path spelling ("workload.tasks[0].count") and their text.
  std::vector<std::pair<std::string, std::string>> overrides;

  // The text of the override that set `path` or a value holding it, or nullptr.
  const std::string* OverrideOf(const std::string& path) const;
  // "FILE:LINE", or "FILE (--set a.b=c)" when `path` lies in a value set by an override.
  std::string Where(const YAML::Node& n, const std::string& path) const;
  std::string Where(const Field& f) const { return Where(f.mark(), f.path); }
  // "WHERE: PATH: WHAT".
  Status Error(const YAML::Node& n, const std::string& path, const std::string& what) const;
  Status Error(const Field& f, const std::string& what) const {
    return Error(f.mark(), f.path, what);
  }
  // "WHERE: MESSAGE": `message` already names the field (e.g. from ResourceRequest::Create).
  Status Raw(const YAML::Node& n, const std::string& path, const std::string& message) const;
  Status Raw(const Field& f, const std::string& message) const {
    return Raw(f.mark(), f.path, message);
  }
  // "WHERE: PATH: expected WHAT, got VALUE".
  Status Expected(const Field& f, const std::string& what) const;
};

// A validated map: keys are scalars, unique and (for a kMap schema) known to the schema.
class MapView {
 public:
  // A null value (`key:` with nothing) is an empty map; anything but a map is an error.
  static Status Open(const FieldContext& ctx, const Field& f, const Schema& schema, MapView* out);

  std::optional<Field> Get(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key).has_value(); }
  // "PATH.KEY: required key is missing" when absent.
  Status Require(const FieldContext& ctx, std::string_view key, Field* out) const;
  const Field& self() const { return self_; }
  const std::vector<std::pair<std::string, NodeRef>>& entries() const { return entries_; }

 private:
  Field self_;
  std::vector<std::pair<std::string, NodeRef>> entries_;
  std::vector<NodeRef> keys_;
};

// The elements of a list (null = empty list).
Status OpenList(const FieldContext& ctx, const Field& f, std::vector<Field>* items);

// A list of maps (null = empty list): opens each element as a MapView with `schema` and calls
// `fn(const MapView&) -> Status` on it, in list order; the first error (of the list, of an
// element or of `fn`) is returned. One MapView at a time: O(elements) Fields, no MapView list.
template <typename Fn>
Status ForEachMap(const FieldContext& ctx, const Field& f, const Schema& schema, Fn&& fn) {
  std::vector<Field> items;
  ORRERY_RETURN_IF_ERROR(OpenList(ctx, f, &items));
  MapView m;
  for (const Field& item : items) {
    ORRERY_RETURN_IF_ERROR(MapView::Open(ctx, item, schema, &m));
    ORRERY_RETURN_IF_ERROR(fn(static_cast<const MapView&>(m)));
  }
  return Status::Ok();
}

// --- Scalars. Numbers may use `_` between digits (1_000_000) and exponents (1e6).

std::string_view Trim(std::string_view s);
// A finite number with nothing after it.
std::optional<double> ParsePlainNumber(std::string_view text);
struct Unit {
  std::string_view name;
  double factor;
};
// A finite number and an optional unit from `units` (none: `no_unit_factor`).
std::optional<double> ParseWithUnits(std::string_view text, const std::vector<Unit>& units,
                                     double no_unit_factor);
const std::vector<Unit>& DurationUnits();   // ns us µs ms s m min h -> seconds
const std::vector<Unit>& SizeUnits();       // B KB MB GB TB KiB MiB GiB TiB -> bytes
const std::vector<Unit>& BandwidthUnits();  // bps .. Tbps, B/s .. GiB/s -> bytes/s
const std::vector<Unit>& RateUnits();       // /s /ms /us /m /min /h -> per second

// Each getter reads `f` into *out or returns "expected <what>, got <value>" naming the field.
Status RequireScalar(const FieldContext& c, const Field& f, const std::string& what);
// A non-blank scalar.
Status ReadString(const FieldContext& c, const Field& f, std::string* out,
                  const std::string& what = "a name");
// The required key `key` of `m` read as ReadString does; *where = its Field (for later errors,
// e.g. a duplicate name).
Status RequireString(const FieldContext& c, const MapView& m, std::string_view key,
                     std::string* out, Field* where, const std::string& what = "a name");
Status ReadBool(const FieldContext& c, const Field& f, bool* out);  // true/True/TRUE, false/...
// A plain number in [lo, hi] (what: "a number in [lo, hi]", or "a number >= lo" if hi is huge).
Status ReadNumber(const FieldContext& c, const Field& f, double lo, double hi, double* out);
// A whole number in [lo, hi] (written as an integer, 1e6 or 1_000_000).
Status ReadInt(const FieldContext& c, const Field& f, int64_t lo, int64_t hi, int64_t* out);
Status ReadCount(const FieldContext& c, const Field& f, uint64_t max, uint64_t* out);
Status ReadDuration(const FieldContext& c, const Field& f, double* out);   // seconds, >= 0
Status ReadSize(const FieldContext& c, const Field& f, uint64_t* out);     // bytes
Status ReadBandwidth(const FieldContext& c, const Field& f, double* out);  // bytes/s, > 0
Status ReadRate(const FieldContext& c, const Field& f, double* out);       // per second, > 0
// A resource quantity: a number, or a size string for byte-valued resources ("32GiB").
Status ReadQuantity(const FieldContext& c, const Field& f, double* out);
// {name: quantity} validated by ResourceRequest::Create (GPU whole or <= 1, ...).
Status ReadResources(const FieldContext& c, const Field& f, ResourceRequest* out);
// {key: string}.
Status ReadLabels(const FieldContext& c, const Field& f, Labels* out);
// One of `choices` in any case; *out = its index.
Status ReadChoice(const FieldContext& c, const Field& f, const std::vector<std::string>& choices,
                  size_t* out);
// Keys of `m` that `allowed` does not list are errors "does not apply to <context>".
Status OnlyKeys(const FieldContext& c, const MapView& m,
                const std::vector<std::string_view>& allowed, const std::string& context);

// --- Files.

// The offset of the first byte that makes `s` not UTF-8 text (a NUL or an invalid sequence).
std::optional<size_t> FirstNonTextByte(std::string_view s);
// Reads `path` whole. NotFound "SHOWN: no such file"; InvalidArgument for a directory, a file
// larger than `max_bytes` or one that cannot be read.
Status ReadFileText(const std::string& path, const std::string& shown, uintmax_t max_bytes,
                    std::string* out);

// How ResolvePath treats a path.
struct PathOptions {
  // Appended to "environment variable ORRERY_TRACE_DIR is not set".
  std::string trace_dir_hint = " (point it at the traces folder, e.g. ../shared/traces)";
  // Relative paths given with --set start at the current directory (else at ctx.dir, as the
  // file's own).
  bool overrides_from_cwd = false;
};
// A path to an existing regular file: ${VAR} expanded from the environment (an unset or badly
// named variable is an error naming it), relative paths resolved (PathOptions), normalised.
// NotFound "WHERE: PATH: trace file 'P' does not exist" when there is no such file.
Status ResolvePath(const FieldContext& c, const Field& f, std::string* out,
                   const PathOptions& options = {});

// --- Overrides.

struct OverrideOptions {
  // Refuse to replace a kMap section as a whole ("is a section; set its keys"); otherwise a
  // section may be set to any value and the loader's reading judges it (e.g. `duration=1s`).
  bool sections_whole = false;
};
// Applies "dotted.path=value" (the value parsed as YAML; list elements by index:
// workload.tasks.0.count=5) to `root`, checked against `schema`: an unknown key, an index out of
// range or a malformed value is InvalidArgument "FILE (--set TEXT): PATH: ...". Records the path
// in ctx->overrides so later errors about it name the override.
Status ApplyOverride(FieldContext* ctx, YAML::Node root, const Schema& schema,
                     const std::string& text, const OverrideOptions& options = {});

}  // namespace orrery::io

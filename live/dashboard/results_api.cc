#include "live/dashboard/results_api.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/cli/cli.h"
#include "core/io/csv.h"

namespace orrery::live::dashboard {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kNotResultDir =
    ": not a result directory: no summary.json (expected the --out of sim run, live run or "
    "compare)";

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

bool ReadFile(const fs::path& p, std::string* text) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  *text = std::move(s).str();
  return true;
}

std::string Quoted(std::string_view s) {
  std::string out(s.substr(0, 64));
  if (s.size() > 64) out += "...";
  return "'" + out + "'";
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(*out);
}

template <typename Int>
bool ParseInt(std::string_view s, Int* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Calls `row(line_no, cells)` for every non-empty line after the header; the header's cells go to
// `header`. Errors name FILE:LINE.
Status ForEachCsvRow(const std::string& text, const std::string& file,
                     const std::function<Status(const std::vector<std::string>&)>& on_header,
                     const std::function<Status(int, const std::vector<std::string>&)>& row) {
  std::vector<std::string> header_cells;
  std::vector<std::string>* header = &header_cells;
  std::string_view rest(text);
  std::vector<std::string> cells;
  int line_no = 0;
  bool have_header = false;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (!io::SplitCsvLine(line, &cells)) {
      return Invalid(file + ":" + std::to_string(line_no) + ": unterminated quoted field");
    }
    if (!have_header) {
      *header = cells;
      have_header = true;
      Status h = on_header(cells);
      if (!h.ok()) return h;
      continue;
    }
    if (cells.size() != header->size()) {
      return Invalid(file + ":" + std::to_string(line_no) + ": expected " +
                     std::to_string(header->size()) + " fields (as the header), got " +
                     std::to_string(cells.size()) +
                     (cells.size() < header->size() ? " (a truncated file?)" : ""));
    }
    Status s = row(line_no, cells);
    if (!s.ok()) return s;
  }
  if (!have_header) return Invalid(file + ": empty (expected a header line)");
  return Status();
}

// Column indices by name; InvalidArgument naming the first required column missing.
StatusOr<std::map<std::string, size_t>> Columns(const std::vector<std::string>& header,
                                                const std::vector<const char*>& required,
                                                const std::string& file) {
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) col.emplace(header[i], i);
  for (const char* need : required) {
    if (!col.count(need)) return Invalid(file + ":1: header: no column '" + need + "'");
  }
  return col;
}

// Natural order of node ids: "cpu-2" before "cpu-10".
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::string_view da(a.data() + i, ie - i), db(b.data() + j, je - j);
      while (da.size() > 1 && da.front() == '0') da.remove_prefix(1);
      while (db.size() > 1 && db.front() == '0') db.remove_prefix(1);
      if (da.size() != db.size()) return da.size() < db.size();
      if (da != db) return da < db;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// The directories a path given on the command line stands for: itself, or a compare
// directory's sim/, live/, live-2/, ... (in that order).
StatusOr<std::vector<fs::path>> RunDirsOf(const fs::path& dir) {
  std::error_code ec;
  const std::string name = dir.string();
  if (!fs::exists(dir, ec)) return Invalid(name + ": no such directory");
  if (!fs::is_directory(dir, ec)) {
    return Invalid(name +
                   ": not a directory (expected a result directory: the --out of sim run, live "
                   "run or compare)");
  }
  if (fs::exists(dir / "summary.json", ec)) return std::vector<fs::path>{dir};
  if (fs::exists(dir / "sim" / "summary.json", ec) ||
      fs::exists(dir / "live" / "summary.json", ec)) {
    std::vector<fs::path> out;
    for (const char* sub : {"sim", "live"}) {
      if (fs::exists(dir / sub / "summary.json", ec)) out.push_back(dir / sub);
    }
    for (int k = 2; fs::exists(dir / ("live-" + std::to_string(k)) / "summary.json", ec); ++k) {
      out.push_back(dir / ("live-" + std::to_string(k)));
    }
    return out;
  }
  return Invalid(name + kNotResultDir);
}

StatusOr<ResultsApi::Run> ReadRun(const fs::path& dir) {
  ResultsApi::Run run;
  run.dir = dir.string();
  std::string text;
  const std::string summary_file = (dir / "summary.json").string();
  if (!ReadFile(dir / "summary.json", &text)) return Invalid(summary_file + ": cannot read");
  // ordered_json: the summary is served with its keys in the file's order.
  nlohmann::ordered_json summary = nlohmann::ordered_json::parse(text, nullptr, false);
  if (summary.is_discarded()) {
    // Parse again with exceptions for the position of the error.
    std::string why = "not valid JSON";
    try {
      nlohmann::ordered_json again = nlohmann::ordered_json::parse(text);
      (void)again;
    } catch (const json::parse_error& e) {
      why = "not valid JSON (byte " + std::to_string(e.byte) + ")";
    } catch (const json::exception& e) {  // out_of_range for '1e999': no position
      why = std::string("not valid JSON (") + e.what() + ")";
    }
    return Invalid(summary_file + ": " + why);
  }
  if (!summary.is_object()) return Invalid(summary_file + ": expected a JSON object");
  for (const char* key : {"scenario", "backend"}) {
    if (!summary.contains(key) || !summary[key].is_string()) {
      return Invalid(summary_file + ": field '" + key + "': expected a string");
    }
  }
  if (!summary.contains("tasks") || !summary["tasks"].is_object()) {
    return Invalid(summary_file + ": field 'tasks': expected an object");
  }
  if (summary.contains("makespan_s")) {
    if (!summary["makespan_s"].is_number()) {
      return Invalid(summary_file + ": field 'makespan_s': expected a number");
    }
    run.makespan_s = summary["makespan_s"].get<double>();
  }
  run.summary_json = summary.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string label = dir.filename().string();
  if (label.empty()) label = dir.parent_path().filename().string();
  label += " (" + summary["backend"].get<std::string>();
  if (summary.contains("policy") && summary["policy"].is_string()) {
    label += ", " + summary["policy"].get<std::string>();
  }
  run.label = label + ")";

  const fs::path tasks = dir / "tasks.csv";
  std::error_code ec;
  if (!fs::exists(tasks, ec)) {
    return Invalid(dir.string() +
                   ": no tasks.csv (summary.json is there: an incomplete result directory?)");
  }
  if (!ReadFile(tasks, &text)) return Invalid(tasks.string() + ": cannot read");
  auto attempts = ParseTasksCsv(text, tasks.string());
  if (!attempts.ok()) return attempts.status();
  run.attempts = std::move(*attempts);
  const fs::path ts = dir / "timeseries.csv";
  if (fs::exists(ts, ec)) {
    if (!ReadFile(ts, &text)) return Invalid(ts.string() + ": cannot read");
    auto samples = ParseTimeseriesCsv(text, ts.string());
    if (!samples.ok()) return samples.status();
    run.samples = std::move(*samples);
  }
  // A summary without makespan_s (or a zero one): the last moment in tasks.csv.
  if (run.makespan_s <= 0) {
    for (const auto& a : run.attempts) {
      run.makespan_s = std::max({run.makespan_s, a.submit_s, a.start_s, a.end_s});
    }
  }
  return run;
}

// -- JSON rendering helpers

void AppendNumber(std::string* out, double v) {
  if (!std::isfinite(v)) {
    *out += "null";
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, ec == std::errc() ? end : buf);
}

void AppendString(std::string* out, const std::string& s) {
  *out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Query parameter `name` as a finite number; `fallback` when absent.
bool QueryDouble(const http::Request& r, const std::string& name, double fallback, double* out,
                 std::string* error) {
  auto it = r.query.find(name);
  if (it == r.query.end()) {
    *out = fallback;
    return true;
  }
  if (!ParseDouble(it->second, out)) {
    *error = "query parameter '" + name + "': expected a number of seconds, got " +
             Quoted(it->second);
    return false;
  }
  return true;
}

}  // namespace

StatusOr<std::vector<results::TaskAttempt>> ParseTasksCsv(const std::string& text,
                                                          const std::string& file) {
  std::vector<results::TaskAttempt> out;
  size_t c_id = 0, c_name = 0, c_submit = 0, c_start = 0, c_end = 0, c_node = 0, c_state = 0,
         c_attempt = 0;
  constexpr size_t kNone = std::numeric_limits<size_t>::max();
  size_t c_job = kNone, c_kind = kNone, c_spill = kNone, c_reason = kNone;
  auto on_header = [&](const std::vector<std::string>& header) -> Status {
    auto cols = Columns(header,
                        {"task_id", "name", "submit_s", "start_s", "end_s", "node_id", "state",
                         "attempt"},
                        file);
    if (!cols.ok()) return cols.status();
    auto& c = *cols;
    c_id = c["task_id"], c_name = c["name"], c_submit = c["submit_s"], c_start = c["start_s"];
    c_end = c["end_s"], c_node = c["node_id"], c_state = c["state"], c_attempt = c["attempt"];
    if (c.count("job_id")) c_job = c["job_id"];
    if (c.count("kind")) c_kind = c["kind"];
    if (c.count("spillbacks")) c_spill = c["spillbacks"];
    if (c.count("wait_reason")) c_reason = c["wait_reason"];
    return Status();
  };
  auto on_row = [&](int line_no, const std::vector<std::string>& f) -> Status {
    const std::string at = file + ":" + std::to_string(line_no) + ": ";
    results::TaskAttempt a;
    if (!ParseInt(f[c_id], &a.task_id)) {
      return Invalid(at + "task_id: expected a non-negative integer, got " + Quoted(f[c_id]));
    }
    if (!ParseInt(f[c_attempt], &a.attempt) || a.attempt < 0) {
      return Invalid(at + "attempt: expected a non-negative integer, got " + Quoted(f[c_attempt]));
    }
    if (!ParseDouble(f[c_submit], &a.submit_s) || a.submit_s < 0) {
      return Invalid(at + "submit_s: expected a non-negative number, got " + Quoted(f[c_submit]));
    }
    for (auto [name, c, field] : {std::tuple<const char*, size_t, double*>{"start_s", c_start,
                                                                            &a.start_s},
                                  {"end_s", c_end, &a.end_s}}) {
      const std::string& cell = f[c];
      if (cell.empty()) {
        *field = -1;
      } else if (!ParseDouble(cell, field) || *field < 0) {
        return Invalid(at + name + ": expected a non-negative number or empty, got " +
                       Quoted(cell));
      }
    }
    a.name = f[c_name];
    a.node_id = f[c_node];
    a.state = f[c_state];
    if (a.state.empty()) return Invalid(at + "state: expected a state name, got ''");
    if (c_job != kNone) a.job_id = f[c_job];
    if (c_kind != kNone) a.kind = f[c_kind];
    if (c_reason != kNone) a.wait_reason = f[c_reason];
    if (c_spill != kNone && !f[c_spill].empty() && !ParseInt(f[c_spill], &a.spillbacks)) {
      return Invalid(at + "spillbacks: expected an integer, got " + Quoted(f[c_spill]));
    }
    out.push_back(std::move(a));
    return Status();
  };
  Status s = ForEachCsvRow(text, file, on_header, on_row);
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::vector<results::Sample>> ParseTimeseriesCsv(const std::string& text,
                                                          const std::string& file) {
  std::vector<results::Sample> out;
  size_t c_t = 0, c_metric = 0, c_labels = 0, c_value = 0;
  auto on_header = [&](const std::vector<std::string>& header) -> Status {
    auto cols = Columns(header, {"t_s", "metric", "labels", "value"}, file);
    if (!cols.ok()) return cols.status();
    auto& c = *cols;
    c_t = c["t_s"], c_metric = c["metric"], c_labels = c["labels"], c_value = c["value"];
    return Status();
  };
  auto on_row = [&](int line_no, const std::vector<std::string>& f) -> Status {
    const std::string at = file + ":" + std::to_string(line_no) + ": ";
    results::Sample x;
    if (!ParseDouble(f[c_t], &x.t_s)) {
      return Invalid(at + "t_s: expected a number, got " + Quoted(f[c_t]));
    }
    if (!ParseDouble(f[c_value], &x.value)) {
      return Invalid(at + "value: expected a number, got " + Quoted(f[c_value]));
    }
    x.metric = f[c_metric];
    x.labels = f[c_labels];
    out.push_back(std::move(x));
    return Status();
  };
  Status s = ForEachCsvRow(text, file, on_header, on_row);
  if (!s.ok()) return s;
  return out;
}

// Per-run precomputation for the routes: the Gantt layout, the sorted durations and the sorted
// interval ends the series are counted from.
struct ResultsApi::Index {
  std::vector<std::string> lanes;  // node ids in natural order, then "" when some never ran
  std::vector<int> rows;           // per lane: how many rows its attempts stack into
  struct Bar {
    int lane = 0, row = 0, state = 0;
    double from = 0, to = 0;
  };
  std::vector<Bar> bars;            // per attempt, tasks.csv order
  std::vector<std::string> states;  // state names, first-seen order
  std::vector<double> jct, queue;   // sorted
  // Sorted starts and ends of the running and pending intervals (an interval that never ends
  // has no end entry).
  std::vector<double> run_begin, run_end, pend_begin, pend_end;
  std::map<std::string, uint64_t> by_state;
};

namespace {

std::unique_ptr<ResultsApi::Index> BuildIndex(const ResultsApi::Run& run) {
  auto ix = std::make_unique<ResultsApi::Index>();
  const auto& at = run.attempts;
  std::set<std::string, decltype(&NaturalLess)> nodes(&NaturalLess);
  bool unplaced = false;
  for (const auto& a : at) {
    if (a.start_s >= 0 && !a.node_id.empty()) {
      nodes.insert(a.node_id);
    } else {
      unplaced = true;
    }
  }
  ix->lanes.assign(nodes.begin(), nodes.end());
  if (unplaced) ix->lanes.emplace_back();
  std::unordered_map<std::string, int> lane_of, state_of;
  for (size_t i = 0; i < ix->lanes.size(); ++i) lane_of[ix->lanes[i]] = static_cast<int>(i);
  ix->bars.resize(at.size());
  std::vector<std::vector<size_t>> per_lane(ix->lanes.size());
  for (size_t i = 0; i < at.size(); ++i) {
    const auto& a = at[i];
    auto& b = ix->bars[i];
    const bool ran = a.start_s >= 0 && !a.node_id.empty();
    b.lane = lane_of[ran ? a.node_id : std::string()];
    b.from = ran ? a.start_s : a.submit_s;
    b.to = a.end_s >= 0 ? a.end_s : std::max(run.makespan_s, b.from);
    if (b.to < b.from) b.to = b.from;
    auto [it, fresh] = state_of.emplace(a.state, static_cast<int>(ix->states.size()));
    if (fresh) ix->states.push_back(a.state);
    b.state = it->second;
    per_lane[b.lane].push_back(i);
    ++ix->by_state[a.state];
  }
  // Interval partitioning per lane: by start, each attempt takes the lowest row free at its start.
  ix->rows.assign(ix->lanes.size(), 0);
  for (size_t l = 0; l < per_lane.size(); ++l) {
    auto& order = per_lane[l];
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return ix->bars[x].from < ix->bars[y].from; });
    using Busy = std::pair<double, int>;  // (end, row)
    std::priority_queue<Busy, std::vector<Busy>, std::greater<>> busy;
    std::priority_queue<int, std::vector<int>, std::greater<>> free_rows;
    int rows = 0;
    for (size_t i : order) {
      auto& b = ix->bars[i];
      while (!busy.empty() && busy.top().first <= b.from) {
        free_rows.push(busy.top().second);
        busy.pop();
      }
      if (free_rows.empty()) free_rows.push(rows++);
      b.row = free_rows.top();
      free_rows.pop();
      busy.push({b.to, b.row});
    }
    ix->rows[l] = rows;
  }
  // JCT per task (last attempt finished): its end - its first submit; queue delay per started
  // attempt.
  std::map<uint64_t, std::pair<double, const results::TaskAttempt*>> tasks;
  for (const auto& a : at) {
    auto [it, fresh] = tasks.emplace(a.task_id, std::make_pair(a.submit_s, &a));
    if (!fresh) {
      it->second.first = std::min(it->second.first, a.submit_s);
      if (a.attempt >= it->second.second->attempt) it->second.second = &a;
    }
    if (a.start_s >= 0) ix->queue.push_back(std::max(0.0, a.start_s - a.submit_s));
    if (a.start_s >= 0) {
      ix->run_begin.push_back(a.start_s);
      if (a.end_s >= 0) ix->run_end.push_back(std::max(a.end_s, a.start_s));
    }
    ix->pend_begin.push_back(a.submit_s);
    const double pend_stop = a.start_s >= 0 ? a.start_s : a.end_s;
    if (pend_stop >= 0) ix->pend_end.push_back(std::max(pend_stop, a.submit_s));
  }
  for (const auto& [id, t] : tasks) {
    const auto* last = t.second;
    if (last->state == "finished" && last->end_s >= 0) {
      ix->jct.push_back(std::max(0.0, last->end_s - t.first));
    }
  }
  for (auto* v : {&ix->jct, &ix->queue, &ix->run_begin, &ix->run_end, &ix->pend_begin,
                  &ix->pend_end}) {
    std::sort(v->begin(), v->end());
  }
  return ix;
}

// How many of `sorted` are <= t.
size_t CountUpTo(const std::vector<double>& sorted, double t) {
  return static_cast<size_t>(std::upper_bound(sorted.begin(), sorted.end(), t) - sorted.begin());
}

// The value of label `key` in "a=x,b=y" ("" when absent).
std::string LabelValue(const std::string& labels, const std::string& key) {
  size_t pos = 0;
  while (pos <= labels.size()) {
    size_t comma = labels.find(',', pos);
    if (comma == std::string::npos) comma = labels.size();
    std::string_view kv(labels.data() + pos, comma - pos);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) {
      return std::string(kv.substr(eq + 1));
    }
    pos = comma + 1;
  }
  return "";
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

http::Response BadParam(const std::string& error) { return http::ErrorResponse(400, error); }

// /api/runs/{i}/tasks: the attempts, filtered and paginated.
http::Response Tasks(const ResultsApi::Run& run, const ResultsApi::Index& ix,
                     const http::Request& r) {
  std::string error;
    long long offset = 0, limit = 100;
    if (!http::QueryInt(r, "offset", 0, std::numeric_limits<int>::max(), 0, &offset, &error) ||
        !http::QueryInt(r, "limit", 1, 1000, 100, &limit, &error)) {
      return BadParam(error);
    }
    auto param = [&](const char* name) -> const std::string* {
      auto it = r.query.find(name);
      return it == r.query.end() || it->second.empty() ? nullptr : &it->second;
    };
    const std::string* state = param("state");
    const std::string* node = param("node_id");
    const std::string* name = param("name");
    const std::string* q = param("q");
    const std::string q_lower = q ? Lower(*q) : "";
    json items = json::array();
    size_t total = 0;
    for (const auto& a : run.attempts) {
      if (state && a.state != *state) continue;
      if (node && a.node_id != *node) continue;
      if (name && a.name != *name) continue;
      if (q && Lower(a.name).find(q_lower) == std::string::npos &&
          std::to_string(a.task_id).find(q_lower) == std::string::npos) {
        continue;
      }
      if (total >= static_cast<size_t>(offset) &&
          total < static_cast<size_t>(offset + limit)) {
        items.push_back({{"task_id", a.task_id},
                         {"attempt", a.attempt},
                         {"name", a.name},
                         {"job_id", a.job_id},
                         {"kind", a.kind},
                         {"submit_s", a.submit_s},
                         {"start_s", a.start_s >= 0 ? json(a.start_s) : json()},
                         {"end_s", a.end_s >= 0 ? json(a.end_s) : json()},
                         {"node_id", a.node_id},
                         {"state", a.state},
                         {"spillbacks", a.spillbacks},
                         {"wait_reason", a.wait_reason}});
      }
      ++total;
    }
    return http::JsonResponse({{"total", total},
                         {"offset", offset},
                         {"limit", limit},
                         {"items", items},
                         {"by_state", ix.by_state}});
}

// /api/runs/{i}/timeline: the Gantt bars of a time window, sub-pixel attempts merged.
http::Response Timeline(const ResultsApi::Run& run, const ResultsApi::Index& ix,
                        const http::Request& r) {
  std::string error;
    const double end = run.makespan_s > 0 ? run.makespan_s : 1.0;
    double t0 = 0, t1 = end;
    long long px = 1200;
    if (!QueryDouble(r, "t0", 0, &t0, &error) || !QueryDouble(r, "t1", end, &t1, &error) ||
        !http::QueryInt(r, "px", 100, 8000, 1200, &px, &error)) {
      return BadParam(error);
    }
    if (!(t1 > t0)) {
      return BadParam("query parameters 't0', 't1': expected t0 < t1, got " +
                      std::to_string(t0) + " and " + std::to_string(t1));
    }
    // Merge attempts narrower than `merge_px` pixels per (lane, row, pixel column, state);
    // widen the merge until the answer stays small.
    constexpr size_t kMaxBars = 20000;
    const double px_s = (t1 - t0) / static_cast<double>(px);
    struct Out {
      int lane, row, state;
      double from, to;
      size_t n;
      long long attempt_index;  // -1 for a merged bar
    };
    std::vector<Out> out;
    size_t in_window = 0;
    for (double merge_px = 1;;) {
      out.clear();
      in_window = 0;
      const double cell = px_s * merge_px;
      std::unordered_map<uint64_t, size_t> merged;
      for (size_t i = 0; i < ix.bars.size(); ++i) {
        const auto& b = ix.bars[i];
        if (b.to < t0 || b.from > t1) continue;
        ++in_window;
        const double from = std::max(b.from, t0), to = std::min(b.to, t1);
        if (to - from >= cell) {
          out.push_back({b.lane, b.row, b.state, b.from, b.to, 1, static_cast<long long>(i)});
          continue;
        }
        const uint64_t column = static_cast<uint64_t>(
            std::min((from - t0) / cell, static_cast<double>(px)));
        const uint64_t key = ((static_cast<uint64_t>(b.lane) * 4096 + b.row % 4096) * 8192 +
                              column) * 64 + static_cast<uint64_t>(b.state % 64);
        auto [it, fresh] = merged.emplace(key, out.size());
        if (fresh) {
          out.push_back({b.lane, b.row, b.state, b.from, b.to, 1, static_cast<long long>(i)});
        } else {
          Out& o = out[it->second];
          o.from = std::min(o.from, b.from);
          o.to = std::max(o.to, b.to);
          ++o.n;
          o.attempt_index = -1;
        }
      }
      if (out.size() <= kMaxBars || merge_px >= static_cast<double>(px)) break;
      // Wider cells in one step, by about the factor the answer is too big.
      merge_px *= std::max(2.0, std::ceil(static_cast<double>(out.size()) / kMaxBars));
    }
    std::string body = "{\"t0\":";
    AppendNumber(&body, t0);
    body += ",\"t1\":";
    AppendNumber(&body, t1);
    body += ",\"makespan_s\":";
    AppendNumber(&body, run.makespan_s);
    body += ",\"px\":" + std::to_string(px) + ",\"states\":" + json(ix.states).dump() +
            ",\"lanes\":[";
    for (size_t l = 0; l < ix.lanes.size(); ++l) {
      if (l) body += ',';
      body += "{\"node_id\":";
      AppendString(&body, ix.lanes[l]);
      body += ",\"rows\":" + std::to_string(ix.rows[l]) + "}";
    }
    body += "],\"tasks_in_window\":" + std::to_string(in_window) + ",\"bars\":[";
    for (size_t k = 0; k < out.size(); ++k) {
      const Out& o = out[k];
      if (k) body += ',';
      body += '[' + std::to_string(o.lane) + ',' + std::to_string(o.row) + ',';
      AppendNumber(&body, o.from);
      body += ',';
      AppendNumber(&body, o.to);
      body += ',' + std::to_string(o.state) + ',' + std::to_string(o.n) + ',';
      if (o.attempt_index < 0) {
        body += "-1,-1,\"\"]";
      } else {
        const auto& a = run.attempts[static_cast<size_t>(o.attempt_index)];
        body += std::to_string(a.task_id) + ',' + std::to_string(a.attempt) + ',';
        AppendString(&body, a.name);
        body += ']';
      }
    }
    body += "]}";
    http::Response resp;
    resp.body = std::move(body);
    return resp;
}

// /api/runs/{i}/series: attempts running and pending, sampled.
http::Response Series(const ResultsApi::Run& run, const ResultsApi::Index& ix,
                      const http::Request& r) {
  std::string error;
    long long buckets = 200;
    double span = run.makespan_s;
    if (!http::QueryInt(r, "buckets", 2, 5000, 200, &buckets, &error) ||
        !QueryDouble(r, "t1", run.makespan_s, &span, &error)) {
      return BadParam(error);
    }
    if (span < 0) return BadParam("query parameter 't1': expected a non-negative number");
    json t = json::array(), running = json::array(), pending = json::array();
    for (long long k = 0; k < buckets; ++k) {
      const double at = span * static_cast<double>(k) / static_cast<double>(buckets - 1);
      // An interval [b, e) counts at `at` when b <= at < e.
      auto count = [&](const std::vector<double>& begin, const std::vector<double>& end) {
        const size_t b = CountUpTo(begin, at), e = CountUpTo(end, at);
        return b >= e ? b - e : 0;
      };
      t.push_back(at);
      running.push_back(count(ix.run_begin, ix.run_end));
      pending.push_back(count(ix.pend_begin, ix.pend_end));
    }
    return http::JsonResponse({{"t", t}, {"running", running}, {"pending", pending}});
}

// /api/runs/{i}/heatmap: per-node utilisation per time bucket.
http::Response Heatmap(const ResultsApi::Run& run, const ResultsApi::Index& ix,
                       const http::Request& r) {
  std::string error;
    long long buckets = 60;
    double span = run.makespan_s > 0 ? run.makespan_s : 1.0;
    if (!http::QueryInt(r, "buckets", 1, 1000, 60, &buckets, &error) ||
        !QueryDouble(r, "t1", span, &span, &error)) {
      return BadParam(error);
    }
    if (!(span > 0)) return BadParam("query parameter 't1': expected a positive number");
    const double bucket_s = span / static_cast<double>(buckets);
    auto bucket_of = [&](double t) {
      const long long b = static_cast<long long>(std::floor(t / bucket_s));
      return static_cast<size_t>(std::clamp(b, 0LL, buckets - 1));
    };
    std::vector<std::string> nodes;
    std::vector<std::vector<double>> sum, cnt;
    std::string source = "timeseries", metric = "orrery_node_cpu_utilization";
    std::map<std::string, size_t, decltype(&NaturalLess)> node_index(&NaturalLess);
    for (const auto& x : run.samples) {
      if (x.metric == metric) node_index.emplace(LabelValue(x.labels, "node"), 0);
    }
    if (!node_index.empty()) {
      for (auto& [n, i] : node_index) {
        i = nodes.size();
        nodes.push_back(n);
      }
      sum.assign(nodes.size(), std::vector<double>(static_cast<size_t>(buckets), 0.0));
      cnt = sum;
      for (const auto& x : run.samples) {
        if (x.metric != metric) continue;
        const size_t n = node_index[LabelValue(x.labels, "node")];
        const size_t b = bucket_of(x.t_s);
        sum[n][b] += x.value;
        cnt[n][b] += 1;
      }
    } else {
      // Busy row-seconds over (peak rows x bucket length) per node, from the Gantt layout.
      source = "tasks";
      metric = "busy rows / peak rows";
      for (size_t l = 0; l < ix.lanes.size(); ++l) {
        if (!ix.lanes[l].empty()) nodes.push_back(ix.lanes[l]);
      }
      sum.assign(nodes.size(), std::vector<double>(static_cast<size_t>(buckets), 0.0));
      cnt.assign(nodes.size(), std::vector<double>(static_cast<size_t>(buckets), 0.0));
      for (size_t i = 0; i < ix.bars.size(); ++i) {
        const auto& b = ix.bars[i];
        if (static_cast<size_t>(b.lane) >= nodes.size() || run.attempts[i].start_s < 0) continue;
        for (size_t k = bucket_of(b.from); k <= bucket_of(b.to); ++k) {
          const double lo = std::max(b.from, static_cast<double>(k) * bucket_s);
          const double hi = std::min(b.to, static_cast<double>(k + 1) * bucket_s);
          if (hi > lo) sum[static_cast<size_t>(b.lane)][k] += hi - lo;
        }
      }
      for (size_t n = 0; n < nodes.size(); ++n) {
        const double capacity = bucket_s * std::max(1, ix.rows[n]);
        for (auto& v : sum[n]) v /= capacity;
        std::fill(cnt[n].begin(), cnt[n].end(), 1.0);
      }
    }
    json cells = json::array();
    for (size_t n = 0; n < nodes.size(); ++n) {
      json row = json::array();
      for (size_t k = 0; k < static_cast<size_t>(buckets); ++k) {
        row.push_back(cnt[n][k] > 0 ? json(std::clamp(sum[n][k] / cnt[n][k], 0.0, 1.0))
                                    : json());
      }
      cells.push_back(std::move(row));
    }
    return http::JsonResponse({{"source", source},
                         {"metric", metric},
                         {"bucket_s", bucket_s},
                         {"nodes", nodes},
                         {"cells", cells}});
}

// /api/runs/{i}/wait_reasons: attempts per last wait reason, and the reasons over time.
http::Response WaitReasons(const ResultsApi::Run& run, const ResultsApi::Index& /*ix*/,
                           const http::Request& /*r*/) {
    std::map<std::string, std::pair<uint64_t, uint64_t>> counts;
    for (const auto& a : run.attempts) {
      auto& c = counts[a.wait_reason.empty() ? "none" : a.wait_reason];
      ++c.first;
      if (a.state == "pending") ++c.second;
    }
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> sorted(counts.begin(),
                                                                               counts.end());
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& x, const auto& y) {
      return x.second.first > y.second.first;
    });
    json reasons = json::array();
    for (const auto& [reason, c] : sorted) {
      reasons.push_back({{"reason", reason}, {"attempts", c.first}, {"still_pending", c.second}});
    }
    std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> series;
    for (const auto& x : run.samples) {
      if (x.metric != "orrery_scheduler_unschedulable_tasks") continue;
      auto& s = series[LabelValue(x.labels, "reason")];
      s.first.push_back(x.t_s);
      s.second.push_back(x.value);
    }
    json series_json = json::array();
    for (auto& [reason, s] : series) {
      // At most ~1000 points per reason: every k-th sample.
      const size_t step = std::max<size_t>(1, s.first.size() / 1000);
      json t = json::array(), v = json::array();
      for (size_t k = 0; k < s.first.size(); k += step) {
        t.push_back(s.first[k]);
        v.push_back(s.second[k]);
      }
      series_json.push_back({{"reason", reason}, {"t", t}, {"value", v}});
    }
    return http::JsonResponse({{"reasons", reasons}, {"series", series_json}});
}

// /api/runs/{i}/cdf: the JCT or queue-delay CDF, at most `points` points.
http::Response Cdf(const ResultsApi::Run& /*run*/, const ResultsApi::Index& ix,
                   const http::Request& r) {
  std::string error;
    auto it = r.query.find("metric");
    const std::string metric = it == r.query.end() ? "jct" : it->second;
    if (metric != "jct" && metric != "queue_delay") {
      return BadParam("query parameter 'metric': expected jct or queue_delay, got " +
                      Quoted(metric));
    }
    long long points = 200;
    if (!http::QueryInt(r, "points", 2, 5000, 200, &points, &error)) return BadParam(error);
    const auto& xs = metric == "jct" ? ix.jct : ix.queue;
    json pts = json::array();
    const size_t n = xs.size();
    if (n > 0) {
      const size_t p = std::min(n, static_cast<size_t>(points));
      size_t last = std::numeric_limits<size_t>::max();
      for (size_t k = 0; k < p; ++k) {
        const size_t idx = p == 1 ? n - 1 : static_cast<size_t>(std::llround(
                                                static_cast<double>(k) *
                                                static_cast<double>(n - 1) /
                                                static_cast<double>(p - 1)));
        if (idx == last) continue;
        last = idx;
        pts.push_back({xs[idx], static_cast<double>(idx + 1) / static_cast<double>(n)});
      }
    }
    return http::JsonResponse({{"metric", metric}, {"n", n}, {"points", pts}});
}

}  // namespace

ResultsApi::ResultsApi() = default;
ResultsApi::~ResultsApi() = default;

const std::vector<ResultsApi::Run>& ResultsApi::runs() const { return runs_; }

StatusOr<std::unique_ptr<ResultsApi>> ResultsApi::Open(const std::vector<fs::path>& dirs) {
  std::unique_ptr<ResultsApi> api(new ResultsApi());
  std::vector<fs::path> run_dirs;
  for (const auto& d : dirs) {
    auto expanded = RunDirsOf(d);
    if (!expanded.ok()) return expanded.status();
    run_dirs.insert(run_dirs.end(), expanded->begin(), expanded->end());
  }
  if (run_dirs.empty()) return Invalid("no result directory given");
  if (run_dirs.size() > kMaxRuns) {
    return Invalid("too many runs: " + std::to_string(run_dirs.size()) + " (at most " +
                   std::to_string(kMaxRuns) + ")");
  }
  for (const auto& d : run_dirs) {
    auto run = ReadRun(d);
    if (!run.ok()) return run.status();
    api->runs_.push_back(std::move(*run));
  }
  // Two runs with the same label (e.g. two dirs both named "out"): add the parent's name.
  for (size_t i = 0; i < api->runs_.size(); ++i) {
    for (size_t j = i + 1; j < api->runs_.size(); ++j) {
      if (api->runs_[i].label == api->runs_[j].label) {
        for (size_t k : {i, j}) {
          api->runs_[k].label = "#" + std::to_string(k) + " " + api->runs_[k].dir;
        }
      }
    }
  }
  for (const auto& run : api->runs_) api->index_.push_back(BuildIndex(run));
  // Runs side by side that differ in scenario or seed may not be comparable (two policies on
  // one scenario, or sim vs live, are what the side-by-side views are for).
  for (const char* key : {"scenario", "seed"}) {
    const json first = json::parse(api->runs_[0].summary_json).value(key, json());
    for (size_t i = 1; i < api->runs_.size(); ++i) {
      const json other = json::parse(api->runs_[i].summary_json).value(key, json());
      if (other != first) {
        api->warnings_.push_back("the runs differ in " + std::string(key) + ": " + first.dump() +
                                 " (" + api->runs_[0].label + ") vs " + other.dump() + " (" +
                                 api->runs_[i].label + ")");
      }
    }
  }
  return api;
}

http::Handler ResultsApi::AsHandler() const {
  return [this](const http::Request& r) { return Handle(r); };
}

http::Response ResultsApi::Handle(const http::Request& r) const {
  try {
    if (r.method != "GET" && r.method != "HEAD") {
      return http::ErrorResponse(405, "read-only results dashboard: " + r.method +
                                          " is not allowed (GET only)");
    }
    if (r.path == "/api/mode") {
      // Built by hand so each summary keeps its file's key order (the views list it so).
      std::string body = "{\"mode\":\"results\",\"read_only\":true,\"version\":";
      AppendString(&body, cli::Version());
      body += ",\"runs\":[";
      for (size_t i = 0; i < runs_.size(); ++i) {
        if (i) body += ',';
        body += "{\"index\":" + std::to_string(i) + ",\"dir\":";
        AppendString(&body, runs_[i].dir);
        body += ",\"label\":";
        AppendString(&body, runs_[i].label);
        body += ",\"summary\":" + runs_[i].summary_json + "}";
      }
      body += "],\"warnings\":" + json(warnings_).dump(-1, ' ', false,
                                                          json::error_handler_t::replace) +
              "}";
      http::Response resp;
      resp.body = std::move(body);
      return resp;
    }
    constexpr std::string_view kRuns = "/api/runs/";
    if (r.path.rfind(kRuns, 0) != 0) return http::ErrorResponse(404, "no route " + r.path);
    std::string_view rest = std::string_view(r.path).substr(kRuns.size());
    const size_t slash = rest.find('/');
    const std::string_view id = rest.substr(0, slash);
    const std::string_view what =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    size_t index = 0;
    if (!ParseInt(id, &index) || index >= runs_.size()) {
      return http::ErrorResponse(404, "unknown run " + Quoted(id) + " (runs 0.." +
                                          std::to_string(runs_.size() - 1) + ")");
    }
    const Run& run = runs_[index];
    const Index& ix = *index_[index];
    if (what == "summary") {
      http::Response resp;
      resp.body = run.summary_json;
      return resp;
    }
    using Route = http::Response (*)(const Run&, const Index&, const http::Request&);
    static const std::pair<std::string_view, Route> kRoutes[] = {
        {"tasks", Tasks},   {"timeline", Timeline},         {"series", Series},
        {"heatmap", Heatmap}, {"wait_reasons", WaitReasons}, {"cdf", Cdf}};
    for (const auto& [name, route] : kRoutes) {
      if (what == name) return route(run, ix, r);
    }
    return http::ErrorResponse(
        404, "no route " + r.path +
                 " (per run: summary, tasks, timeline, series, heatmap, wait_reasons, cdf)");
  } catch (const std::exception& e) {
    return http::ErrorResponse(500, std::string("internal error: ") + e.what());
  }
}

}  // namespace orrery::live::dashboard

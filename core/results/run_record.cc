#include "core/results/run_record.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>

#include "core/results/csv.h"
#include "core/results/svg_plot.h"
#include <sstream>

namespace orrery::results {
namespace {

// Nearest-rank percentile of sorted `xs`.
double Rank(const std::vector<double>& xs, double p) {
  if (xs.empty()) return 0;
  auto idx = static_cast<size_t>(std::ceil(p * static_cast<double>(xs.size())));
  idx = std::clamp<size_t>(idx, 1, xs.size());
  return xs[idx - 1];
}

// Fixed, locale-free number formatting for CSV: up to 6 decimals, trailing zeros dropped.
std::string Num(double x) {
  if (x == -1) return "";
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << std::fixed << std::setprecision(6) << x;
  std::string s = os.str();
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

// CSV field quoting per RFC 4180 when needed.
std::string Csv(const std::string& s) { return CsvQuote(s); }

double Round6(double x) { return std::round(x * 1e6) / 1e6; }

nlohmann::ordered_json PercentilesJson(const Percentiles& p) {
  nlohmann::ordered_json j;
  j["mean"] = Round6(p.mean);
  j["p50"] = Round6(p.p50);
  j["p95"] = Round6(p.p95);
  j["p99"] = Round6(p.p99);
  return j;
}

// Last attempt of every task, by task id.
std::map<uint64_t, const TaskAttempt*> LastAttempts(const RunRecord& r) {
  std::map<uint64_t, const TaskAttempt*> last;
  for (const auto& a : r.attempts) {
    auto& slot = last[a.task_id];
    if (slot == nullptr || a.attempt >= slot->attempt) slot = &a;
  }
  return last;
}

}  // namespace

Percentiles Summarise(std::vector<double> xs) {
  Percentiles p;
  if (xs.empty()) return p;
  std::sort(xs.begin(), xs.end());
  double sum = 0;
  for (double x : xs) sum += x;
  p.mean = sum / static_cast<double>(xs.size());
  p.p50 = Rank(xs, 0.50);
  p.p95 = Rank(xs, 0.95);
  p.p99 = Rank(xs, 0.99);
  return p;
}

TaskCounts CountTasks(const RunRecord& r) {
  TaskCounts c;
  for (const auto& [id, a] : LastAttempts(r)) {
    ++c.total;
    if (a->state == "finished") ++c.finished;
    else if (a->state == "failed") ++c.failed;
    else if (a->state == "canceled") ++c.canceled;
    else if (a->state == "infeasible") ++c.infeasible;
    else ++c.pending;
  }
  return c;
}

std::string RenderSummaryJson(const RunRecord& r) {
  // JCT: first submit to the end of the last attempt, finished tasks only. Queue delay: submit to
  // start, per started attempt.
  std::map<uint64_t, double> first_submit;
  std::vector<double> queue;
  for (const auto& a : r.attempts) {
    auto it = first_submit.find(a.task_id);
    if (it == first_submit.end() || a.submit_s < it->second) first_submit[a.task_id] = a.submit_s;
    if (a.start_s >= 0) queue.push_back(a.start_s - a.submit_s);
  }
  std::vector<double> jct;
  for (const auto& [id, a] : LastAttempts(r)) {
    if (a->state == "finished" && a->end_s >= 0) jct.push_back(a->end_s - first_submit[id]);
  }
  const TaskCounts c = CountTasks(r);
  nlohmann::ordered_json j;
  j["scenario"] = r.scenario;
  j["backend"] = r.backend;
  j["policy"] = r.policy;
  j["seed"] = r.seed;
  j["tasks"] = {{"total", c.total},       {"finished", c.finished},
                {"failed", c.failed},     {"canceled", c.canceled},
                {"infeasible", c.infeasible}, {"pending", c.pending}};
  j["makespan_s"] = Round6(r.makespan_s);
  j["jct_s"] = PercentilesJson(Summarise(jct));
  j["queue_delay_s"] = PercentilesJson(Summarise(queue));
  nlohmann::ordered_json u = nlohmann::ordered_json::object();
  for (const char* k : {"CPU", "GPU", "memory"}) {
    auto it = r.utilization.find(k);
    u[k] = Round6(it == r.utilization.end() ? 0.0 : it->second);
  }
  for (const auto& [k, v] : r.utilization) {
    if (!u.contains(k)) u[k] = Round6(v);
  }
  j["utilization"] = u;
  j["node_seconds"] = Round6(r.node_seconds);
  j["spillbacks"] = r.spillbacks;
  j["bytes_transferred"] = r.bytes_transferred;
  j["env_cache"] = {{"hits", r.env_cache.hits},
                    {"misses", r.env_cache.misses},
                    {"evictions", r.env_cache.evictions},
                    {"bytes_installed", r.env_cache.bytes_installed}};
  j["autoscaler"] = {{"launched", r.autoscaler.launched},
                     {"terminated", r.autoscaler.terminated},
                     {"peak_nodes", r.autoscaler.peak_nodes}};
  j["nodes"] = {{"initial", r.nodes.initial}, {"peak", r.nodes.peak}};
  for (const auto& [k, text] : r.extra_json) {
    j[k] = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  }
  j["wall_s"] = Round6(r.wall_s);
  j["orrery_version"] = r.orrery_version;
  return j.dump(2) + "\n";
}

std::string RenderTasksCsv(const RunRecord& r) {
  std::vector<const TaskAttempt*> rows;
  rows.reserve(r.attempts.size());
  for (const auto& a : r.attempts) rows.push_back(&a);
  std::stable_sort(rows.begin(), rows.end(), [](const TaskAttempt* a, const TaskAttempt* b) {
    return a->task_id != b->task_id ? a->task_id < b->task_id : a->attempt < b->attempt;
  });
  std::string out =
      "task_id,name,job_id,kind,submit_s,start_s,end_s,node_id,state,attempt,spillbacks,"
      "wait_reason\n";
  out.reserve(rows.size() * 80 + out.size());
  for (const TaskAttempt* a : rows) {
    out += std::to_string(a->task_id);
    out += ',';
    out += Csv(a->name);
    out += ',';
    out += Csv(a->job_id);
    out += ',';
    out += a->kind;
    out += ',';
    out += Num(a->submit_s);
    out += ',';
    out += Num(a->start_s);
    out += ',';
    out += Num(a->end_s);
    out += ',';
    out += Csv(a->node_id);
    out += ',';
    out += a->state;
    out += ',';
    out += std::to_string(a->attempt);
    out += ',';
    out += std::to_string(a->spillbacks);
    out += ',';
    out += a->wait_reason;
    out += '\n';
  }
  return out;
}

std::string RenderTimeseriesCsv(const RunRecord& r) {
  std::string out = "t_s,metric,labels,value\n";
  for (const auto& s : r.samples) {
    out += Num(s.t_s) + "," + s.metric + "," + Csv(s.labels) + "," + Num(s.value) + "\n";
  }
  return out;
}

std::string RenderTimeseriesSvg(const RunRecord& r) {
  SvgChart chart;
  chart.title = r.scenario + " (" + r.backend + ", " + r.policy + ", seed " +
                std::to_string(r.seed) + ")";
  chart.x_label = "time (s)";
  chart.y_label = "count";
  const std::pair<const char*, const char*> wanted[] = {
      {"orrery_tasks", "state=running"},
      {"orrery_tasks", "state=pending"},
      {"orrery_nodes", "state=alive"},
  };
  const char* names[] = {"tasks running", "tasks pending", "nodes alive"};
  for (size_t i = 0; i < std::size(wanted); ++i) {
    SvgSeries series{names[i], {}, {}, i == 2, ""};
    for (const auto& s : r.samples) {
      if (s.metric == wanted[i].first && s.labels == wanted[i].second) {
        series.x.push_back(s.t_s);
        series.y.push_back(s.value);
      }
    }
    if (!series.x.empty()) chart.series.push_back(std::move(series));
  }
  chart.legend = SvgChart::Legend::kTopRight;
  return RenderSvgLineChart(chart);
}

std::string RenderSummaryTable(const RunRecord& r) {
  const TaskCounts c = CountTasks(r);
  std::vector<double> queue;
  for (const auto& a : r.attempts) {
    if (a.start_s >= 0) queue.push_back(a.start_s - a.submit_s);
  }
  const Percentiles q = Summarise(queue);
  auto util = [&](const char* k) {
    auto it = r.utilization.find(k);
    return it == r.utilization.end() ? 0.0 : it->second;
  };
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << std::fixed;
  os << "scenario " << r.scenario << "  backend " << r.backend << "  policy " << r.policy
     << "  seed " << r.seed << "\n";
  os << std::setprecision(0);
  os << "  tasks       " << c.total << " total, " << c.finished << " finished, " << c.failed
     << " failed, " << c.canceled << " canceled, " << c.infeasible << " infeasible";
  if (c.pending > 0) os << ", " << c.pending << " unfinished";
  os << "\n";
  os << std::setprecision(3);
  os << "  makespan    " << r.makespan_s << " s\n";
  os << "  queue delay mean " << q.mean << " s, p50 " << q.p50 << " s, p95 " << q.p95
     << " s, p99 " << q.p99 << " s\n";
  os << std::setprecision(1);
  os << "  utilisation CPU " << 100 * util("CPU") << " %, GPU " << 100 * util("GPU")
     << " %, memory " << 100 * util("memory") << " %\n";
  os << "  spillbacks  " << r.spillbacks << ", data moved " << std::setprecision(1)
     << static_cast<double>(r.bytes_transferred) / 1e6 << " MB, node-seconds "
     << std::setprecision(0) << r.node_seconds << "\n";
  os << std::setprecision(2) << "  wall        " << r.wall_s << " s\n";
  return os.str();
}

}  // namespace orrery::results

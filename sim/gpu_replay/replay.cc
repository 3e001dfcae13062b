#include "sim/gpu_replay/replay.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/gpu/gpu_policy_registry.h"
#include "core/results/csv.h"
#include "core/results/run_record.h"

namespace orrery::gpu_replay {
namespace {

// The policy's draws come from a stream independent of the workload's (which depends on the seed
// only), so every policy sees the same arrivals for a given seed.
constexpr uint64_t kPolicyStream = 0x5DEECE66DA5A5A5AULL;
// The tie order's stream: a third one, so `tie_break` changes neither of the others.
constexpr uint64_t kTieStream = 0x7A1EB4EA6C0FFEE5ULL;

std::string Int(int64_t v) { return std::to_string(v); }

}  // namespace

const char* PodOutcomeName(PodOutcome::Kind k) {
  switch (k) {
    case PodOutcome::Kind::kPlaced:
      return "placed";
    case PodOutcome::Kind::kFailed:
      return "failed";
    case PodOutcome::Kind::kInfeasible:
      return "infeasible";
  }
  return "failed";
}

std::string FormatFixed(double v, int decimals) {
  if (v != v) return "";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  std::string s = ec == std::errc() ? std::string(buf, end) : std::string("0");
  if (s.size() > 1 && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

StatusOr<Workload> MakeWorkload(const std::vector<gpu::GpuNodeSpec>& nodes,
                                std::vector<io::PodRecord> records,
                                const gpu::TypicalPodOptions& typical) {
  auto cluster = gpu::GpuCluster::Create(nodes);
  if (!cluster.ok()) return cluster.status();
  Workload w;
  w.cluster = *std::move(cluster);
  w.records = std::move(records);
  w.pods.reserve(w.records.size());
  std::map<std::string, int> unknown_models;  // spec name -> pods naming it
  uint64_t never = 0;
  std::string first_never;
  for (const io::PodRecord& r : w.records) {
    gpu::GpuPod p{.cpu_milli = r.cpu_milli,
                  .memory_mib = r.memory_mib,
                  .num_gpus = r.num_gpu,
                  .gpu_milli = r.gpu_milli,
                  .models = w.cluster.ResolveModels(r.gpu_spec)};
    ORRERY_RETURN_IF_ERROR(p.Validate("pod '" + r.name + "' (line " + Int(r.line) + ")"));
    for (size_t b = 0; b <= r.gpu_spec.size();) {
      size_t e = r.gpu_spec.find('|', b);
      if (e == std::string::npos) e = r.gpu_spec.size();
      const std::string name = r.gpu_spec.substr(b, e - b);
      const auto& m = w.cluster.models();
      if (!name.empty() && std::find(m.begin(), m.end(), name) == m.end()) ++unknown_models[name];
      b = e + 1;
    }
    if (!w.cluster.AnyFitsEmpty(p)) {
      if (never++ == 0) first_never = r.name + " (line " + Int(r.line) + ")";
    }
    w.list_gpu_milli += p.TotalGpuMilli();
    w.pods.push_back(p);
  }
  for (const auto& [name, n] : unknown_models) {
    w.warnings.push_back("GPU model '" + name + "' is named by " + Int(n) +
                         " pod(s)' gpu_spec but no node has it");
  }
  if (never > 0) {
    w.warnings.push_back(Int(int64_t(never)) +
                         " pod(s) fit no node even when it is empty (they will be recorded as "
                         "infeasible), e.g. " +
                         first_never);
  }
  if (w.cluster.gpu_total_milli() == 0) {
    return InvalidArgument("the node list has no GPU: nothing to study");
  }
  w.typical = gpu::TypicalPods::FromPods(w.pods, typical);
  w.fragmentation = gpu::FragmentationModel(w.typical);
  return w;
}

StatusOr<Workload> LoadWorkload(const GpuScenario& s) {
  auto nodes = io::ReadNodeList(s.nodes_path);
  if (!nodes.ok()) return nodes.status();
  auto pods = io::ReadPodList(s.pods_path);
  if (!pods.ok()) return pods.status();
  auto w = MakeWorkload(*nodes, *std::move(pods), s.typical);
  if (!w.ok()) return InvalidArgument(s.pods_path + ": " + w.status().message());
  return w;
}

std::vector<int32_t> BuildArrivals(const Workload& w, double inflate, bool shuffle, Rng& rng) {
  const int32_t n = static_cast<int32_t>(w.pods.size());
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) order[size_t(i)] = i;
  if (inflate > 0 && n > 0) {
    const double target = inflate * static_cast<double>(w.cluster.gpu_total_milli());
    int64_t total = w.list_gpu_milli;
    if (static_cast<double>(total) > target) {
      while (static_cast<double>(total) > target && !order.empty()) {
        const size_t k = size_t(rng.UniformIndex(order.size()));
        total -= w.pods[size_t(order[k])].TotalGpuMilli();
        order.erase(order.begin() + std::ptrdiff_t(k));
      }
    } else {
      // Drawing stops at the first pod that would overshoot. Unbounded loops are impossible: a
      // list of CPU-only pods never overshoots, so cap the draws at a generous multiple.
      const uint64_t cap = uint64_t(n) * 1000 + 1000000;
      for (uint64_t draws = 0; draws < cap; ++draws) {
        const int32_t k = static_cast<int32_t>(rng.UniformIndex(uint64_t(n)));
        const int64_t g = w.pods[size_t(k)].TotalGpuMilli();
        if (static_cast<double>(total + g) > target) break;
        total += g;
        order.push_back(k);
      }
    }
  }
  if (shuffle) {
    for (size_t i = order.size(); i > 1; --i) {
      const size_t j = size_t(rng.UniformIndex(i));
      std::swap(order[i - 1], order[j]);
    }
  }
  return order;
}

std::vector<int32_t> ArrivalsForSeed(const Workload& w, double inflate, bool shuffle,
                                     uint64_t seed) {
  Rng rng(seed);
  return BuildArrivals(w, inflate, shuffle, rng);
}

std::vector<int32_t> TieOrderForSeed(int nodes, uint64_t seed) {
  Rng rng(seed ^ kTieStream);
  return gpu::DrawTieOrder(nodes, rng);
}

StatusOr<ReplayResult> RunReplay(const Workload& w, const ReplayOptions& o) {
  gpu::GpuPolicyContext ctx{
      .fragmentation = w.fragmentation, .hybrid = o.hybrid, .scores = o.scores};
  ctx.scores.tie_seed = o.seed ^ kTieStream;  // TieBreaker draws TieOrderForSeed from it
  auto policy = gpu::GpuPolicyRegistry::Builtin().Make(o.policy, ctx);
  if (!policy.ok()) return InvalidArgument(policy.status().message());
  const std::vector<int32_t> arrivals = ArrivalsForSeed(w, o.inflate, o.shuffle, o.seed);
  Rng policy_rng(o.seed ^ kPolicyStream);

  ReplayResult r;
  r.policy = o.policy;
  r.seed = o.seed;
  r.gpu_total_milli = w.cluster.gpu_total_milli();
  r.frag_weight = w.fragmentation.weight();
  r.outcomes.reserve(arrivals.size());
  r.rows.reserve(arrivals.size());

  const auto t0 = std::chrono::steady_clock::now();
  gpu::GpuCluster cluster = w.cluster;
  std::vector<int64_t> node_frag(size_t(cluster.size()));
  int64_t frag = 0;
  for (int i = 0; i < cluster.size(); ++i) {
    node_frag[size_t(i)] = w.fragmentation.Weighted(cluster.node(i));
    frag += node_frag[size_t(i)];
  }
  int64_t arrived = 0;
  for (int32_t k : arrivals) {
    const gpu::GpuPod& pod = w.pods[size_t(k)];
    arrived += pod.TotalGpuMilli();
    PodOutcome out;
    out.pod = k;
    const gpu::GpuDecision d = (*policy)->Choose(cluster, pod, policy_rng);
    if (d.placed()) {
      Status s = cluster.Place(d.node, pod, d.devices);
      if (!s.ok()) {
        return Internal("policy " + o.policy +
                        " chose a placement the cluster rejects: " + s.message());
      }
      out.kind = PodOutcome::Kind::kPlaced;
      out.node = d.node;
      out.devices = d.devices;
      ++r.placed;
      const int64_t now = w.fragmentation.Weighted(cluster.node(d.node));
      frag += now - node_frag[size_t(d.node)];
      node_frag[size_t(d.node)] = now;
    } else if (cluster.AnyFitsEmpty(pod)) {
      out.kind = PodOutcome::Kind::kFailed;
      ++r.failed;
    } else {
      out.kind = PodOutcome::Kind::kInfeasible;
      ++r.infeasible;
    }
    r.outcomes.push_back(out);
    r.rows.push_back({arrived, cluster.gpu_allocated_milli(), frag});
  }
  r.place_wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto frac = [](int64_t a, int64_t t) { return t > 0 ? double(a) / double(t) : 0.0; };
  r.cpu_utilization = frac(cluster.cpu_allocated_milli(), cluster.cpu_total_milli());
  r.gpu_utilization = frac(cluster.gpu_allocated_milli(), cluster.gpu_total_milli());
  r.memory_utilization = frac(cluster.memory_allocated_mib(), cluster.memory_total_mib());
  return r;
}

double ArrivedPct(const ReplayResult& r, const ReplayRow& row) {
  return 100.0 * double(row.arrived_milli) / double(r.gpu_total_milli);
}
double AllocatedPct(const ReplayResult& r, const ReplayRow& row) {
  return 100.0 * double(row.allocated_milli) / double(r.gpu_total_milli);
}
double FragPct(const ReplayResult& r, const ReplayRow& row) {
  if (r.frag_weight == 0) return 0;
  return 100.0 * double(row.frag_weighted) / double(r.frag_weight) / double(r.gpu_total_milli);
}
double FragRatioPct(const ReplayResult& r, const ReplayRow& row) {
  const int64_t idle = r.gpu_total_milli - row.allocated_milli;
  if (idle <= 0) return ReplayMetrics::kNaN;
  if (r.frag_weight == 0) return 0;
  return 100.0 * double(row.frag_weighted) / double(r.frag_weight) / double(idle);
}

ReplayMetrics Measure(const ReplayResult& r) {
  ReplayMetrics m;
  if (r.rows.empty()) {
    m.unallocated_pct_end = 100;
    return m;
  }
  const ReplayRow& last = r.rows.back();
  m.arrived_pct_end = ArrivedPct(r, last);
  m.allocated_pct_end = AllocatedPct(r, last);
  m.unallocated_pct_end = 100.0 - m.allocated_pct_end;
  m.frag_pct_end = FragPct(r, last);
  m.frag_ratio_pct_end = FragRatioPct(r, last);
  m.unallocated_pct_at_100 =
      100.0 - AtArrived(r, 100, [&](const ReplayRow& row) { return AllocatedPct(r, row); });
  m.frag_pct_at_100 = AtArrived(r, 100, [&](const ReplayRow& row) { return FragPct(r, row); });
  m.frag_ratio_pct_at_100 =
      AtArrived(r, 100, [&](const ReplayRow& row) { return FragRatioPct(r, row); });
  return m;
}

std::string RenderAllocationCsv(const ReplayResult& r) {
  std::string out = "arrived_gpu_pct,allocated_gpu_pct\n";
  out.reserve(out.size() + r.rows.size() * 18);
  for (const ReplayRow& row : r.rows) {
    out += FormatFixed(ArrivedPct(r, row));
    out += ',';
    out += FormatFixed(AllocatedPct(r, row));
    out += '\n';
  }
  return out;
}

std::string RenderFragmentationCsv(const ReplayResult& r) {
  std::string out = "arrived_gpu_pct,frag_gpu_pct,frag_ratio_pct,idle_gpu_pct\n";
  out.reserve(out.size() + r.rows.size() * 32);
  for (const ReplayRow& row : r.rows) {
    out += FormatFixed(ArrivedPct(r, row));
    out += ',';
    out += FormatFixed(FragPct(r, row));
    out += ',';
    out += FormatFixed(FragRatioPct(r, row));
    out += ',';
    out += FormatFixed(100.0 - AllocatedPct(r, row));
    out += '\n';
  }
  return out;
}

namespace {
std::string CsvField(const std::string& s) { return results::CsvQuote(s); }
}  // namespace

std::string RenderPlacementsCsv(const Workload& w, const ReplayResult& r) {
  std::string out =
      "index,pod,line,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,outcome,node,devices\n";
  out.reserve(out.size() + r.outcomes.size() * 90);
  for (size_t i = 0; i < r.outcomes.size(); ++i) {
    const PodOutcome& o = r.outcomes[i];
    const io::PodRecord& p = w.records[size_t(o.pod)];
    out += std::to_string(i) + ',' + CsvField(p.name) + ',' + Int(p.line) + ',' + Int(p.cpu_milli) +
           ',' + Int(p.memory_mib) + ',' + Int(p.num_gpu) + ',' + Int(p.gpu_milli) + ',' +
           CsvField(p.gpu_spec) + ',' + PodOutcomeName(o.kind) + ',';
    if (o.node >= 0) out += CsvField(w.cluster.id(o.node));
    out += ',';
    for (int k = 0; k < o.devices.size; ++k) {
      if (k > 0) out += '|';
      out += std::to_string(o.devices.ids[size_t(k)]);
    }
    out += '\n';
  }
  return out;
}

std::string RenderGpuSummaryJson(const GpuScenario& s, const Workload& w, const ReplayResult& r,
                                 const std::string& version, double wall_s) {
  results::RunRecord rec;
  rec.scenario = s.name;
  rec.backend = "sim";
  rec.policy = r.policy;
  rec.seed = r.seed;
  rec.attempts.reserve(r.outcomes.size());
  for (size_t i = 0; i < r.outcomes.size(); ++i) {
    const PodOutcome& o = r.outcomes[i];
    results::TaskAttempt a;
    a.task_id = i;
    a.name = w.records[size_t(o.pod)].name;
    a.kind = "task";
    a.start_s = o.kind == PodOutcome::Kind::kPlaced ? 0 : -1;
    a.node_id = o.node >= 0 ? w.cluster.id(o.node) : "";
    a.state = o.kind == PodOutcome::Kind::kPlaced   ? "finished"
              : o.kind == PodOutcome::Kind::kFailed ? "failed"
                                                    : "infeasible";
    rec.attempts.push_back(std::move(a));
  }
  rec.utilization = {
      {"CPU", r.cpu_utilization}, {"GPU", r.gpu_utilization}, {"memory", r.memory_utilization}};
  rec.nodes.initial = rec.nodes.peak = uint64_t(w.cluster.size());
  rec.wall_s = wall_s;
  rec.orrery_version = version;

  const ReplayMetrics m = Measure(r);
  auto num = [](double v) -> nlohmann::ordered_json {
    if (v != v) return nullptr;
    return std::round(v * 1e4) / 1e4;
  };
  nlohmann::ordered_json g;
  g["mode"] = "placement-only";
  g["nodes_file"] = s.nodes_path;
  g["pods_file"] = s.pods_path;
  g["nodes"] = w.cluster.size();
  g["gpus"] = w.cluster.gpu_total_milli() / gpu::kMilliPerGpu;
  g["pods_in_list"] = w.pods.size();
  g["inflate"] = s.inflate;
  g["shuffle"] = s.shuffle;
  g["scoring"] = gpu::ScoringName(s.scores.scoring);
  g["tie_break"] = gpu::TieBreakName(s.scores.tie_break);
  g["arrivals"] = r.outcomes.size();
  g["placed"] = r.placed;
  g["failed"] = r.failed;
  g["infeasible"] = r.infeasible;
  g["arrived_gpu_pct_end"] = num(m.arrived_pct_end);
  g["allocated_gpu_pct_end"] = num(m.allocated_pct_end);
  g["unallocated_gpu_pct_at_100"] = num(m.unallocated_pct_at_100);
  g["unallocated_gpu_pct_end"] = num(m.unallocated_pct_end);
  g["frag_gpu_pct_at_100"] = num(m.frag_pct_at_100);
  g["frag_ratio_pct_at_100"] = num(m.frag_ratio_pct_at_100);
  g["frag_gpu_pct_end"] = num(m.frag_pct_end);
  g["frag_ratio_pct_end"] = num(m.frag_ratio_pct_end);
  g["typical_pods"] = {{"shapes", w.typical.pods().size()},
                       {"coverage", num(w.typical.coverage())},
                       {"coverage_target", s.typical.coverage},
                       {"include_cpu_pods", s.typical.include_cpu_pods}};
  g["place_wall_s"] = num(r.place_wall_s);
  rec.extra_json["gpu_placement"] = g.dump();
  return results::RenderSummaryJson(rec);
}

}  // namespace orrery::gpu_replay

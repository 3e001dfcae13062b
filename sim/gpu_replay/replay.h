// Placement-only replay of a GPU-sharing trace, following the protocol of Weng et al. (USENIX
// ATC'23, section 6.1) and its artifact:
//   1. the workload = every pod of the list once, topped up with pods drawn uniformly with
//      replacement while the total GPU request stays within `inflate` x the cluster's GPU capacity
//      (the first draw that would exceed it ends the resampling; a list that already exceeds the
//      target loses uniformly drawn pods until it fits); then the order is shuffled with the seed;
//   2. pods arrive one by one; the policy places each once, for good (pods never leave); a pod that
//      fits nowhere is recorded as failed (or infeasible: no node could hold it even empty) and
//      skipped;
//   3. after every pod: arrived GPU (all requests so far), allocated GPU and the cluster's GPU
//      fragmentation relative to the workload's typical pods (core/gpu/fragmentation.h).
// The workload stream depends on the seed only (not on the policy), so policies compared under
// one seed see exactly the same pods in the same order; the policy's random draws come from a
// second stream derived from the same seed, and the node order that breaks score ties under
// `tie_break: perm` (core/gpu/tie_break.h) from a third, drawn once per run.
//
// This is a pure loop over core/gpu (no SimGrid, no clock inside the loop but the wall timer):
// 1,213 nodes and ~10,800 pods take well under a second.
//
// Thread safety: Workload is immutable after loading and may be shared by concurrent RunReplay
// calls; each call builds its own cluster copy and policy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/gpu/fragmentation.h"
#include "core/gpu/gpu_cluster.h"
#include "core/gpu/gpu_policy.h"
#include "core/rng.h"
#include "core/scheduling/policy.h"
#include "core/status.h"
#include "core/scenario/gpu_scenario.h"
#include "core/io/gpu_trace.h"

namespace orrery::gpu_replay {

// The inputs of every run of one scenario: the empty cluster, the pod list and the target
// workload's fragmentation measure.
struct Workload {
  gpu::GpuCluster cluster;                // empty
  std::vector<io::PodRecord> records;         // the pod list, in file order
  std::vector<gpu::GpuPod> pods;          // parallel to records; models resolved by `cluster`
  gpu::TypicalPods typical;               // from `pods`
  gpu::FragmentationModel fragmentation;  // from `typical`
  int64_t list_gpu_milli = 0;             // total GPU request of the list
  std::vector<std::string> warnings;      // legal but suspicious input (e.g. unplaceable pods)
};

// Reads the scenario's node and pod lists. Errors as core/io/gpu_trace.h.
StatusOr<Workload> LoadWorkload(const GpuScenario& s);
// From lists already in memory (tests).
StatusOr<Workload> MakeWorkload(const std::vector<gpu::GpuNodeSpec>& nodes,
                                std::vector<io::PodRecord> pods,
                                const gpu::TypicalPodOptions& typical = {});

// Step 1 of the protocol: the arrival order as indices into Workload::pods. inflate <= 0 keeps the
// list as is. Uses only `rng`. O(pods).
std::vector<int32_t> BuildArrivals(const Workload& w, double inflate, bool shuffle, Rng& rng);
// The arrivals RunReplay uses for `seed` (the workload stream: Rng(seed)).
std::vector<int32_t> ArrivalsForSeed(const Workload& w, double inflate, bool shuffle,
                                     uint64_t seed);

// The node order RunReplay's score-based policies break ties with under TieBreak::kPermuted, for
// a cluster of `nodes` nodes and `seed`: DrawTieOrder on the tie stream (its own, so it changes
// neither the arrivals nor the policy's draws). O(nodes).
std::vector<int32_t> TieOrderForSeed(int nodes, uint64_t seed);

struct ReplayOptions {
  std::string policy = "fgd";  // a GpuPolicyRegistry name
  uint64_t seed = 1;
  double inflate = 1.3;
  bool shuffle = true;
  gpu::ScoreOptions scores;  // RunReplay sets scores.tie_seed from `seed` (TieOrderForSeed)
  HybridOptions hybrid;
};

struct PodOutcome {
  enum class Kind : uint8_t { kPlaced, kFailed, kInfeasible };
  int32_t pod = -1;   // index into Workload::pods
  int32_t node = -1;  // placed only
  gpu::DeviceList devices;
  Kind kind = Kind::kFailed;
};
const char* PodOutcomeName(PodOutcome::Kind k);  // "placed" | "failed" | "infeasible"

// The cluster after each arrival's decision.
struct ReplayRow {
  int64_t arrived_milli = 0;    // GPU requested by the arrivals so far (placed or not)
  int64_t allocated_milli = 0;  // GPU held by placed pods
  int64_t frag_weighted = 0;    // cluster fragmentation x ReplayResult::frag_weight
};

struct ReplayResult {
  std::string policy;
  uint64_t seed = 0;
  int64_t gpu_total_milli = 0;
  int64_t frag_weight = 0;
  std::vector<PodOutcome> outcomes;  // one per arrival
  std::vector<ReplayRow> rows;       // one per arrival
  uint64_t placed = 0, failed = 0, infeasible = 0;
  // Final allocated fractions (0-1).
  double cpu_utilization = 0, gpu_utilization = 0, memory_utilization = 0;
  double place_wall_s = 0;  // the placement loop alone
};

// Runs the protocol. InvalidArgument for an unknown policy name.
StatusOr<ReplayResult> RunReplay(const Workload& w, const ReplayOptions& o);

// Figures of a run, in % of the cluster's GPU capacity unless noted. "At X % arrived" follows the
// artifact: the mean over the arrivals whose arrived GPU % rounds to X (if none, within X +- 1);
// NaN when the run never gets there.
struct ReplayMetrics {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  double arrived_pct_end = 0;
  double allocated_pct_end = 0;
  double unallocated_pct_at_100 = kNaN;  // 100 - allocated at 100 % arrived: the paper's metric
  double unallocated_pct_end = 0;        // 100 - allocated after the last arrival
  double frag_pct_at_100 = kNaN;         // fragmented GPU
  double frag_ratio_pct_at_100 = kNaN;   // fragmented GPU in % of the idle GPU
  double frag_pct_end = 0;
  double frag_ratio_pct_end = 0;
};
ReplayMetrics Measure(const ReplayResult& r);

// Per-row figures, for plots and CSV.
double ArrivedPct(const ReplayResult& r, const ReplayRow& row);
double AllocatedPct(const ReplayResult& r, const ReplayRow& row);
double FragPct(const ReplayResult& r, const ReplayRow& row);
double FragRatioPct(const ReplayResult& r, const ReplayRow& row);  // NaN when nothing is idle
// The artifact's discretisation of a per-row figure at `pct` % arrived (see ReplayMetrics).
template <typename Fn>
double AtArrived(const ReplayResult& r, int pct, Fn&& figure);

// AtArrived for every pct in [0, max_pct] in one pass: element p is AtArrived(r, p, figure).
// O(rows + max_pct).
template <typename Fn>
std::vector<double> CurveAtArrived(const ReplayResult& r, int max_pct, Fn&& figure);

// Result files.
// allocation.csv: arrived_gpu_pct,allocated_gpu_pct (one row per arrival).
std::string RenderAllocationCsv(const ReplayResult& r);
// fragmentation.csv: arrived_gpu_pct,frag_gpu_pct,frag_ratio_pct,idle_gpu_pct.
std::string RenderFragmentationCsv(const ReplayResult& r);
// placements.csv: index,pod,line,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,outcome,node,
// devices (devices '|'-separated).
std::string RenderPlacementsCsv(const Workload& w, const ReplayResult& r);
// summary.json: the shared schema (DESIGN section 6; placed pods count as finished, the rest as
// failed or infeasible) plus a "gpu_placement" section with the figures above.
std::string RenderGpuSummaryJson(const GpuScenario& s, const Workload& w, const ReplayResult& r,
                                 const std::string& version, double wall_s);
// Fixed-point text with `decimals` digits (locale-free); "" for NaN.
std::string FormatFixed(double v, int decimals = 4);

template <typename Fn>
double AtArrived(const ReplayResult& r, int pct, Fn&& figure) {
  for (double half : {0.5, 1.5}) {
    double sum = 0;
    int n = 0;
    for (const ReplayRow& row : r.rows) {
      const double a = ArrivedPct(r, row);
      if (a < pct - half) continue;
      if (a >= pct + half) break;  // rows are in arrival order: arrived never decreases
      const double v = figure(row);
      if (v == v) {
        sum += v;
        ++n;
      }
    }
    if (n > 0) return sum / n;
  }
  return ReplayMetrics::kNaN;
}

template <typename Fn>
std::vector<double> CurveAtArrived(const ReplayResult& r, int max_pct, Fn&& figure) {
  // Bucket b holds the rows whose arrived % rounds (half up) to b.
  std::vector<double> sum(size_t(max_pct) + 3, 0.0);
  std::vector<int64_t> n(size_t(max_pct) + 3, 0);
  for (const ReplayRow& row : r.rows) {
    const double a = ArrivedPct(r, row);
    const double b = std::floor(a + 0.5);
    if (b < 0 || b > max_pct + 1) continue;
    const double v = figure(row);
    if (v != v) continue;
    sum[size_t(b)] += v;
    ++n[size_t(b)];
  }
  std::vector<double> out(size_t(max_pct) + 1, ReplayMetrics::kNaN);
  for (int p = 0; p <= max_pct; ++p) {
    if (n[size_t(p)] > 0) {
      out[size_t(p)] = sum[size_t(p)] / double(n[size_t(p)]);
      continue;
    }
    double s = 0;
    int64_t k = 0;
    for (int q = std::max(0, p - 1); q <= p + 1; ++q) {
      s += sum[size_t(q)];
      k += n[size_t(q)];
    }
    if (k > 0) out[size_t(p)] = s / double(k);
  }
  return out;
}

}  // namespace orrery::gpu_replay

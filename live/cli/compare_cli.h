// `orrery compare`: one scenario run by the simulator and by a live cluster, side by side.
//
//   orrery compare SCENARIO.yaml (--local | --address HOST:PORT) [--policy P] [--seed N]
//                  [--set dotted.path=value]... [--out DIR] [--temp-dir DIR] [--timeout S]
//                  [--live-runs N] [--sim-runs N]
//   orrery compare --sim-results DIR... --live-results DIR [--live-results DIR]... [--out DIR]
//                  (no runs; default out/compare)
//
// Runs `orrery sim run` and then `orrery live run` (each a child process of this same binary, so
// the simulator's process-wide state never meets the live daemons) with the same overrides,
// policy and seed, into DIR/sim/ and DIR/live/ (their output in DIR/sim.log and DIR/live.log).
// It then reads both result directories back -- the one schema of DESIGN section 6 is the only
// interface between the two runs -- and writes:
//   DIR/compare.csv    metric,sim,live,diff,diff_pct (diff = live - sim; diff_pct relative to
//                      sim, empty when sim is 0), one row per summary metric (ComparedMetrics);
//   DIR/placement.csv  task_id,attempt,name,sim_node,live_node,same: every task attempt of
//                      either run, matched by (task_id, attempt);
//   DIR/compare.svg    the CDFs of job completion time and queue delay in both runs;
//   DIR/classes.csv    a row per task class (scenario name): tasks, mean and p95 queue delay and
//                      JCT in sim and live (mean of the live runs, and their spread), the bar and
//                      whether sim is within it (core/results/fidelity.h);
//   DIR/classes.svg    mean queue delay per class, sim vs live (with the live runs' range);
// and prints the same tables, the placement agreement, up to 10 attempts placed differently and
// one fidelity verdict line. `--live-runs N` runs the live side N times (DIR/live/, DIR/live-2/,
// ...): the verdict is against their mean and a class the live runs disagree on gets a wider bar.
// `--sim-runs N` (N > 1) runs the simulator N times with `--timing-seed 1..N` (DIR/sim/,
// DIR/sim-2/, ...): each draws the phases of the head's tick and the nodes' heartbeats anew, as
// every live run lines its timers up anew, and the verdict judges the mean of the N runs. A
// workload near saturation can settle into different queueing regimes depending on those phases
// (one class absorbs the backlog, or another does); one run predicts one regime, the mean of N
// predicts the mix. Progress goes to stderr. Exit codes (DESIGN section 5): 0 when both runs
// completed and wrote their results (even if values differ, or tasks failed in them), 1 when a run
// failed (no results, crashed, timed out), 2 bad usage or bad input (the message names the
// file/field).
//
// The comparison itself (CompareResults) is a function of two result directories, so it also
// serves results produced earlier by separate `sim run` / `live run` invocations.
//
// Thread safety: the command blocks its caller; CompareResults is reentrant.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/cli/cli.h"
#include "core/results/fidelity.h"
#include "core/results/lease_trace.h"
#include "core/status.h"

namespace orrery::live {

// One summary metric of both runs.
struct MetricDiff {
  std::string metric;  // "makespan_s", "jct_s.p50", "tasks.finished", ...
  double sim = 0, live = 0;
};

// One task attempt as placed by each run ("" = the run has no such attempt or placed it nowhere).
struct PlacementDiff {
  std::string task_id, attempt, name, sim_node, live_node;
  bool same() const { return sim_node == live_node; }
};

struct Comparison {
  std::string scenario;                       // the sim summary's "scenario"
  // Reasons the two runs may not be comparable (different scenario, seed or policy), one line
  // each; empty when they match.
  std::vector<std::string> warnings;
  std::vector<MetricDiff> metrics;            // in ComparedMetrics() order
  std::vector<PlacementDiff> placements;      // by (task_id, attempt), numerically
  std::vector<double> sim_jct, live_jct;      // per finished task, seconds (for the CDF plot)
  std::vector<double> sim_queue, live_queue;  // per started attempt, seconds
  // Per task class (scenario name): the sim run, every live run, and the sim judged against the
  // mean of the live runs (core/results/fidelity.h bars).
  // With several sim runs (--sim-runs: timing seeds 1..N), sim_classes is their mean
  // (results::MeanRunStats) and sim_runs holds each; metrics, placements, CDFs and legs use the
  // first sim run.
  results::RunStats sim_classes;
  std::vector<results::RunStats> sim_runs;
  std::vector<results::RunStats> live_classes;
  results::FidelityVerdict verdict;
  // Where the queue delay goes (core/results/lease_trace.h), when every run dir has leases.csv
  // (runs with --trace): the sim run's classes and each live run's.
  bool has_legs = false;
  std::vector<results::ClassLegs> sim_legs;
  std::vector<std::vector<results::ClassLegs>> live_legs;
  size_t SamePlacements() const;
};

// The summary.json paths compared, in table order ("tasks.finished", "jct_s.p50", ...).
const std::vector<std::string>& ComparedMetrics();

// Reads DIR/summary.json and DIR/tasks.csv of the result directories. InvalidArgument naming
// the file (and field) when one is missing or malformed. Metrics, placements and CDFs compare the
// sim run with the first live run; the per-class table and the verdict use every live run (their
// mean, and their spread as the live runs' own noise). REQUIRES: !live_dirs.empty().
// O(attempts log attempts).
// `bars`: the fidelity bars of the verdict (results::RayBars() against real Ray runs).
StatusOr<Comparison> CompareResults(const std::filesystem::path& sim_dir,
                                    const std::vector<std::filesystem::path>& live_dirs,
                                    const results::FidelityBars& bars = {});
// The same with several sim runs of the scenario (REQUIRES: !sim_dirs.empty()): the verdict
// judges their mean.
StatusOr<Comparison> CompareResults(const std::vector<std::filesystem::path>& sim_dirs,
                                    const std::vector<std::filesystem::path>& live_dirs,
                                    const results::FidelityBars& bars = {});
StatusOr<Comparison> CompareResults(const std::filesystem::path& sim_dir,
                                    const std::filesystem::path& live_dir);

// The renderings of a comparison: compare.csv, placement.csv, compare.svg, and the printed table
// (with up to `max_differences` differing placements listed).
std::string RenderCompareCsv(const Comparison& c);
std::string RenderPlacementCsv(const Comparison& c);
std::string RenderCompareSvg(const Comparison& c, const std::string& scenario);
std::string RenderCompareTable(const Comparison& c, size_t max_differences = 10);
// classes.svg: mean queue delay per class, sim and live side by side.
std::string RenderClassesSvg(const Comparison& c, const std::string& scenario);

// The "compare" command for the CLI's composition root.
cli::Command CompareCommand();

}  // namespace orrery::live

// Per-class statistics of a run and the fidelity verdict of one run (the simulator's) against
// reference runs (live, or real Ray): does the simulator predict queueing per task class?
//
// A task class is a task's scenario name ("map", "reduce", "small", ...), the unit a user tunes
// and the one Ray's own queues differ by (issue 15). Per class: tasks, queue delay (start -
// submit, per started attempt) and job completion time (end of the finished last attempt - first
// submit, per task), each as mean and nearest-rank percentiles, the definitions summary.json
// uses for the whole run (core/results/run_record.h).
//
// The verdict compares the candidate with the MEAN of the reference runs:
//   makespan                 |cand - ref| <= makespan_rel x ref
//   overall queue delay p95  |cand - ref| <= queue_p95_rel x ref
//   each class's mean queue  |cand - ref| <= max(class_mean_rel x ref, class_mean_abs_s),
//   delay                    widened to spread_widen x (max - min of the references) where the
//                            references of that class differ by more than live_spread_rel of
//                            their mean (what the reference cannot reproduce itself is noise)
//   class order              every pair of classes the reference separates by more than both
//                            classes' allowances is ordered the same way by the candidate
// Every check reports the references' spread beside the difference, so a reader sees what is
// noise. The defaults are the calibrated simulator's bars against live (issue 15 item 5);
// RayBars() are the bars against real Ray (25 % or 0.2 s per class).
//
// Pure: value types and functions; no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/results/run_record.h"

namespace orrery::results {

// One attempt as a result directory's tasks.csv holds it (ids as text: any run's ids).
struct AttemptTimes {
  std::string task_id;
  int attempt = 0;
  std::string name;
  bool finished = false;  // state == "finished"
  double submit_s = 0, start_s = -1, end_s = -1;
};

struct ClassStats {
  std::string name;
  size_t tasks = 0;
  Percentiles queue;  // per started attempt
  Percentiles jct;    // per finished task
};

struct RunStats {
  double makespan_s = 0;
  Percentiles queue;                // every started attempt
  std::vector<ClassStats> classes;  // by name
  const ClassStats* Find(std::string_view name) const;
};

// O(attempts log attempts).
RunStats ComputeRunStats(const std::vector<AttemptTimes>& attempts, double makespan_s);

// The mean of several runs of one workload (e.g. simulator runs with different timing seeds):
// makespan, every queue percentile and, per class (the union of the runs' classes), every queue
// and JCT percentile averaged over the runs that have the class; its task count is the largest.
// REQUIRES: !runs.empty(). O(runs * classes log classes).
RunStats MeanRunStats(const std::vector<RunStats>& runs);

struct FidelityBars {
  double makespan_rel = 0.05;
  double queue_p95_rel = 0.10;
  double class_mean_rel = 0.15;
  double class_mean_abs_s = 0.1;
  double live_spread_rel = 0.10;
  double spread_widen = 1.5;
  bool same_class_order = true;
};
// Against real Ray (issue 15 "Done when"): per class 25 % or 0.2 s; makespan and p95 as above.
FidelityBars RayBars();

struct FidelityCheck {
  std::string what;        // "makespan_s", "queue_delay_s.p95", "class map: mean queue delay"
  double candidate = 0;    // the simulator's value
  double reference = 0;    // mean of the references
  double spread = 0;       // max - min of the references (0 with one)
  double allowed = 0;      // the largest |candidate - reference| that passes
  bool widened = false;    // the allowance is the references' spread
  bool pass = true;
  double diff() const { return candidate - reference; }
};

struct FidelityVerdict {
  std::vector<FidelityCheck> checks;
  // Pairs of classes ordered differently ("a < b in the reference, b < a in the candidate").
  std::vector<std::string> order_violations;
  bool pass = true;
  // "fidelity: PASS (12/12 checks within bars)" or "fidelity: FAIL: 2 of 12 checks ... (worst:
  // ...)" -- one line, no newline.
  std::string Line() const;
};

// REQUIRES: !references.empty(). Classes missing from the candidate fail; classes only in the
// candidate are not judged. O(classes^2).
FidelityVerdict JudgeFidelity(const RunStats& candidate, const std::vector<RunStats>& references,
                              const FidelityBars& bars = {});

// classes.csv: a row per class: class,tasks,sim_queue_mean,sim_queue_p95,ref_queue_mean,
// ref_queue_p95,ref_queue_spread,sim_jct_mean,sim_jct_p95,ref_jct_mean,ref_jct_p95,allowed,pass
// (ref = mean of the references). Classes of either side, by name.
std::string RenderClassesCsv(const RunStats& candidate, const std::vector<RunStats>& references,
                             const FidelityVerdict& verdict);
// The printed per-class table (same columns, aligned), then the verdict line.
std::string RenderClassesTable(const RunStats& candidate, const std::vector<RunStats>& references,
                               const FidelityVerdict& verdict, const std::string& candidate_label,
                               const std::string& reference_label);

}  // namespace orrery::results

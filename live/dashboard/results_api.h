// ResultsApi: the JSON routes of `orrery dashboard RESULTS_DIR [RESULTS_DIR_B]`, a read-only
// dashboard over the result directories of `orrery sim run`, `orrery live run` and
// `orrery compare` (DESIGN section 6: summary.json, tasks.csv, timeseries.csv).
//
// Opening. Each directory given is one of
//   - a run directory: DIR/summary.json and DIR/tasks.csv (DIR/timeseries.csv optional: the
//     heat map then falls back to the tasks), one run labelled "DIR (backend, policy)";
//   - a compare directory (`orrery compare --out`): no DIR/summary.json but DIR/sim/ and
//     DIR/live/ (and DIR/live-2/, ... of --live-runs) run directories, one run each.
// At most kMaxRuns runs in all. Everything is read and checked up front, so a bad directory is
// refused before the server starts, with a message naming the file, the line and the field:
//   "DIR: not a result directory: no summary.json (expected the --out of sim run, live run or
//    compare)", "DIR/tasks.csv:17: end_s: expected a number or empty, got 'x'", ...
//
// Routes (GET only; others 405). `{i}` is a run index from /api/mode (unknown: 404). Bad query
// parameters: 400 naming the parameter. Times are seconds from the run's start, as in the files.
//   /api/mode
//       {"mode": "results", "read_only": true, "version": "...",
//        "runs": [{"index", "dir", "label", "summary": {summary.json as written}}],
//        "warnings": ["the runs differ in scenario: ...", ...]}  (scenario or seed differ)
//   /api/runs/{i}/summary                      summary.json of run i, as written
//   /api/runs/{i}/tasks?offset=&limit=&state=&node_id=&name=&q=
//       the list shape of API.md (offset [0], limit [100, <= 1000], total after filtering):
//       items {"task_id", "attempt", "name", "job_id", "kind", "submit_s", "start_s", "end_s"
//       (null when unset), "node_id", "state", "spillbacks", "wait_reason"}, in tasks.csv order,
//       plus "by_state": counts over all attempts. `q`: case-insensitive substring of the task
//       id or name; the others exact.
//   /api/runs/{i}/timeline?t0=&t1=&px=
//       The Gantt chart of [t0, t1] (default the whole run) drawn `px` [1200, 100..8000] pixels
//       wide: {"t0", "t1", "makespan_s", "states": [names], "lanes": [{"node_id", "rows"}],
//       "tasks_in_window": N, "bars": [[lane, row, from_s, to_s, state, n, task_id, attempt,
//       "name"]]}. A lane is a node (the last lane, node_id "", holds attempts that never ran:
//       pending, infeasible, canceled before start); rows within a lane stack attempts that
//       overlap in time (fixed per run, so zooming keeps every bar on its row). A bar is an
//       attempt from start to end (never-started ones: from submit to end or the run's end),
//       `state` an index into "states". Decimation: attempts narrower than one pixel that share
//       a lane, row, pixel and state are merged into one bar with n > 1 (task_id -1), so a
//       100k-attempt run answers in a few thousand bars while the n of the bars still add up
//       to tasks_in_window (every attempt overlapping the window is counted exactly once).
//   /api/runs/{i}/series?buckets=&t1=
//       Tasks running and pending over time from tasks.csv, `buckets` [200, 2..5000] samples
//       over [0, t1] (t1 defaults to the run's makespan; the views pass the longest run's so two
//       runs share one time axis): {"t": [...], "running": [...], "pending": [...]} (pending counts
//       submitted, not yet started nor ended attempts; each value is the count at that instant).
//   /api/runs/{i}/heatmap?buckets=&t1=
//       Per-node utilisation, `buckets` [60, 1..1000] time buckets over [0, t1] (as series):
//       {"source": "timeseries"|"tasks", "metric", "bucket_s", "nodes": [ids],
//        "cells": [[value 0..1 or null per bucket] per node]}. Source "timeseries": the mean of
//       orrery_node_cpu_utilization{node} samples in the bucket; "tasks" (no such samples): the
//       fraction of the bucket the node had at least one attempt running, weighted by how many
//       of its rows were busy over its peak rows.
//   /api/runs/{i}/wait_reasons
//       {"reasons": [{"reason", "attempts", "still_pending"}] (by attempts, most first; "" is
//        reported as "none"), "series": [{"reason", "t": [...], "value": [...]}] from
//        orrery_scheduler_unschedulable_tasks{reason} when timeseries.csv has it}
//   /api/runs/{i}/cdf?metric=jct|queue_delay&points=
//       {"metric", "n", "points": [[seconds, fraction <= it], ...]} with at most `points`
//       [200, 2..5000] points (quantiles, always including the minimum and the maximum). JCT per
//       task whose last attempt finished: its end - its first submit; queue delay per started
//       attempt: start - submit (as summary.json and `orrery compare` compute them).
//
// Thread safety: after Open the object is immutable; Handle may run on many threads at once.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/results/run_record.h"
#include "core/status.h"
#include "live/dashboard/http_types.h"

namespace orrery::live::dashboard {

class ResultsApi {
 public:
  static constexpr size_t kMaxRuns = 8;

  // One run as read from its directory.
  struct Run {
    std::string dir;    // as given (or DIR/sim, DIR/live for a compare directory)
    std::string label;  // e.g. "sim · hybrid · quickstart"
    std::string summary_json;  // compact
    std::vector<results::TaskAttempt> attempts;  // tasks.csv order
    std::vector<results::Sample> samples;        // timeseries.csv (may be empty)
    double makespan_s = 0;                       // summary's, or the last event in tasks.csv
  };

  // Reads every directory (see the header comment). InvalidArgument naming the directory or the
  // file, line and field on the first problem. REQUIRES: !dirs.empty(). O(file sizes).
  static StatusOr<std::unique_ptr<ResultsApi>> Open(const std::vector<std::filesystem::path>& dirs);

  // Answers one request under /api/ (routes above). Never throws.
  http::Response Handle(const http::Request& request) const;
  // Handle as an http::Handler; `this` must outlive it.
  http::Handler AsHandler() const;

  const std::vector<Run>& runs() const;
  ~ResultsApi();

  struct Index;  // per-run precomputation (lanes, rows, sorted durations)

 private:
  ResultsApi();
  std::vector<Run> runs_;
  std::vector<std::unique_ptr<Index>> index_;
  std::vector<std::string> warnings_;
};

// Parses the text of a tasks.csv (`file` names it in errors: "FILE:LINE: FIELD: ..."). Columns
// are found by the header's names; task_id, name, submit_s, start_s, end_s, node_id, state and
// attempt are required, the others of DESIGN section 6 optional. O(text size).
StatusOr<std::vector<results::TaskAttempt>> ParseTasksCsv(const std::string& text,
                                                          const std::string& file);
// Parses the text of a timeseries.csv (t_s,metric,labels,value). O(text size).
StatusOr<std::vector<results::Sample>> ParseTimeseriesCsv(const std::string& text,
                                                          const std::string& file);

}  // namespace orrery::live::dashboard

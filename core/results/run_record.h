// What one run produced, in the one schema shared by the simulator and the live cluster
// (DESIGN section 6), and its rendering into summary.json, tasks.csv and timeseries.csv.
//
// Rendering returns strings; the backend writes them to files (core/ does no I/O). Rendering is
// deterministic: a run record renders to the same bytes every time (wall_s aside, which lives in
// summary.json only).
//
// Thread safety: value types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace orrery::results {

// One attempt of one task or actor: a row of tasks.csv.
struct TaskAttempt {
  uint64_t task_id = 0;
  std::string name;
  std::string job_id;
  std::string kind;     // "task" | "actor"
  double submit_s = 0;  // when this attempt was submitted
  double start_s = -1;  // -1 = never started
  double end_s = -1;    // -1 = did not end
  std::string node_id;  // where it ran (or was last queued); empty if nowhere
  std::string state;    // finished | failed | canceled | infeasible | pending | running
  int attempt = 0;      // 0 for the first
  int spillbacks = 0;
  std::string wait_reason;  // last wait reason while pending ("" if it never waited)
};

// One step of one worker lease at the driver's owner: a row of leases.csv (written when a run
// is asked to trace; core/results/lease_trace.h says what each event means).
struct LeaseEvent {
  double t_s = 0;
  uint64_t lease = 0;
  std::string name;     // the class: its front task's name
  std::string event;    // request | spilled | rejected | granted | failed | push | finished | ...
  std::string node;     // the node asked, deciding, holding the lease
  std::string task_id;  // push: the task (as tasks.csv names it); "" otherwise
  int attempt = 0;      // push: the task's attempt
  std::string detail;   // spilled: the target; failed: why
  double view_age_s = -1;  // spilled: how old the decider's report of the target was; -1 unknown
};

// One sample of timeseries.csv.
struct Sample {
  double t_s = 0;
  std::string metric;  // DESIGN section 7 names, e.g. orrery_tasks
  std::string labels;  // "state=running" or "name=CPU,state=used" ("" for none)
  double value = 0;
};

struct Percentiles {
  double mean = 0, p50 = 0, p95 = 0, p99 = 0;
};
// Mean and nearest-rank percentiles of `xs` (all zero when empty).
Percentiles Summarise(std::vector<double> xs);

struct RunRecord {
  std::string scenario;
  std::string backend;  // "sim" | "live"
  std::string policy;
  uint64_t seed = 0;
  std::vector<TaskAttempt> attempts;
  std::vector<Sample> samples;
  std::vector<LeaseEvent> lease_events;  // empty unless the run traced its leases

  double makespan_s = 0;
  // Time-averaged utilisation (0..1) per resource name: CPU, GPU, memory at least.
  std::map<std::string, double> utilization;
  double node_seconds = 0;
  uint64_t spillbacks = 0;
  uint64_t bytes_transferred = 0;
  struct EnvCache {
    uint64_t hits = 0, misses = 0, evictions = 0, bytes_installed = 0;
  } env_cache;
  struct Autoscaler {
    uint64_t launched = 0, terminated = 0, peak_nodes = 0;
  } autoscaler;
  struct Nodes {
    uint64_t initial = 0, peak = 0;
  } nodes;
  double wall_s = 0;
  std::string orrery_version;
  // Extra top-level summary fields a backend wants to add (name -> JSON text).
  std::map<std::string, std::string> extra_json;
};

// Task counts by final state, over tasks (a task's final state is that of its last attempt).
struct TaskCounts {
  uint64_t total = 0, finished = 0, failed = 0, canceled = 0, infeasible = 0, pending = 0;
};
TaskCounts CountTasks(const RunRecord& r);

// summary.json (pretty-printed, keys in a fixed order).
std::string RenderSummaryJson(const RunRecord& r);
// tasks.csv with header; rows in (task_id, attempt) order.
std::string RenderTasksCsv(const RunRecord& r);
// timeseries.csv with header; rows in recorded order.
std::string RenderTimeseriesCsv(const RunRecord& r);
// A one-screen human summary table.
std::string RenderSummaryTable(const RunRecord& r);
// timeseries.svg: tasks running and pending, and nodes alive, over the run (from the samples).
std::string RenderTimeseriesSvg(const RunRecord& r);

}  // namespace orrery::results

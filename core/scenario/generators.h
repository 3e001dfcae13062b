// Generator expansion: a scenario file describes work as generators ("500 tasks, Poisson arrivals
// at 10/s, exponential durations with mean 2 s, each taking the output of one earlier task") and
// traces; expansion turns them into the concrete, time-ordered TaskSpecs of a Scenario.
//
// Pure: no file access, no clock; randomness comes from the scenario's seed. The reader
// (core/io/scenario_loader.cc) validates the file into GeneratorPlans, then calls
// ExpandGenerators; the same (plans, seed) always yields the same tasks, byte for byte.
//
// Randomness: each generator draws from three independent streams (arrival, duration, argument
// picks) seeded from (scenario seed, generator name, purpose), so editing one generator leaves
// every other generator's draws unchanged.
//
//   arrival process | submit time of the i-th task (start = plan.start)
//   ----------------+-------------------------------------------------------------------------
//   kPoisson        | previous + Exponential(1 / rate)        (first: start + one draw)
//   kUniform        | start + i * interval
//   kBurst          | start + at                               (all at once)
//   kTrace          | start + trace_times[i]
//
//   duration        | run time of the i-th task
//   ----------------+-------------------------------------------------------------------------
//   kConstant       | a
//   kExponential    | Exponential(mean a)
//   kUniform        | a + (b - a) * U[0, 1)
//   kLognormal      | a * exp(b * N(0, 1))                      (a = median, b = sigma)
//   kColumn         | trace_durations[i]
//
// Arguments from a producer generator: the task takes `count` of the producer's tasks submitted
// no later than itself (round robin over them, or distinct seeded picks when `random`); a task
// that finds fewer such producers takes what there is, and the plan's missing_args counts it.
//
// Thread safety: free functions over the values they are handed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "core/scenario/scenario.h"
#include "core/status.h"

namespace orrery {

// How long each task of a generator runs.
struct DurationDist {
  enum class Kind : uint8_t { kConstant, kExponential, kUniform, kLognormal, kColumn };
  Kind kind = Kind::kConstant;
  double a = 0;        // constant value | mean | min | median | column scale
  double b = 0;        // -            | -    | max | sigma  | column offset
  std::string column;  // kColumn: the trace column it came from (for messages)
};

// One object argument of every task of a generator.
struct ArgPlan {
  int32_t from_gen = -1;  // producer generator (index into the plans), or -1
  uint32_t count = 1;     // producers' outputs per task
  bool random = false;    // seeded distinct picks instead of round robin
  int32_t node = -1;      // from_gen == -1: an object that exists at start on this node
  uint64_t bytes = 0;     // from_gen == -1: its size
};

// A validated generator (or trace) before expansion. Indexes refer to the Scenario's tables.
struct GeneratorPlan {
  std::string path;  // where it sits in the file ("workload.tasks[2]"), for messages
  std::string name;  // unique among the scenario's generators; names its random streams
  WorkKind kind = WorkKind::kTask;
  uint32_t name_idx = 0, job = 0, shape = 0, strategy = 0;
  uint64_t count = 0;
  double start = 0;
  enum class Process : uint8_t { kPoisson, kUniform, kBurst, kTrace } process = Process::kBurst;
  double rate = 0, interval = 0, at = 0;
  std::vector<double> trace_times;      // kTrace: seconds after start (speedup applied)
  std::vector<double> trace_durations;  // duration column values (kTrace + kColumn)
  std::vector<uint32_t> trace_shapes;   // per-task shapes of a trace; empty: every task `shape`
  DurationDist duration;
  uint64_t output = 0;
  int32_t pg = -1, bundle = -1, env = -1;
  uint16_t max_retries = 3;
  std::vector<ArgPlan> args;
  // Filled by expansion: its tasks are [first_task, first_task + count) before sorting.
  uint64_t first_task = 0;
  uint64_t missing_args = 0;  // tasks that found fewer producers than asked
};

// Times above this (about 30,000 years) are refused: they come from a typo in a rate.
inline constexpr double kMaxScenarioSeconds = 1e12;

// The random stream `purpose` (0 arrival, 1 duration, 2 argument picks) of generator `name`.
Rng GeneratorRng(uint64_t seed, std::string_view name, uint64_t purpose);

// Progress of expansion: phase "expand" (done/total tasks, about every 4,096 tasks) then "sort".
using ExpandProgressFn = std::function<void(const char* phase, uint64_t done, uint64_t total)>;

// Appends the tasks of every plan, in plan order, to scenario->tasks and their arguments to
// scenario->args, then sorts the tasks stably by submit time (argument producers renumbered).
// `reserve_tasks` and `reserve_args` size the vectors once (no reallocation when exact).
// REQUIRES: every ArgPlan::from_gen names an earlier plan of kind kTask; the indexes in each plan
// are valid for `scenario`'s tables; trace vectors hold `count` entries where used.
// On a task whose submit time or duration would exceed kMaxScenarioSeconds: InvalidArgument
// "task I would be submitted at ... s and run for ... s; ..." and *failed_plan = its plan index
// (the caller adds where that plan is in the file); scenario->tasks is then incomplete.
// Complexity: O(tasks * args per task * log tasks) plus the sort, O(tasks log tasks); memory: the
// tasks and arguments themselves plus a 4-byte permutation a task while sorting.
Status ExpandGenerators(std::vector<GeneratorPlan>& plans, uint64_t reserve_tasks,
                        uint64_t reserve_args, Scenario* scenario, size_t* failed_plan,
                        const ExpandProgressFn& progress = {});

// Stable sort of scenario->tasks by submit time, in place, renumbering ArgSpec::producer.
// Producers keep preceding their consumers when they were submitted no later and came first.
void SortTasksBySubmitTime(Scenario* scenario);

}  // namespace orrery

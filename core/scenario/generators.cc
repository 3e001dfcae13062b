// Generator expansion (generators.h). The arithmetic here fixes every shipped scenario's tasks:
// change a draw, its order or a formula and the golden outputs change.
#include "core/scenario/generators.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

namespace orrery {
namespace {

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

double Exponential(Rng& rng, double mean) { return -mean * std::log1p(-rng.UniformDouble()); }

double StandardNormal(Rng& rng) {
  const double u1 = 1.0 - rng.UniformDouble();  // (0, 1]
  const double u2 = rng.UniformDouble();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Three significant digits (as printf's %.3g): a rate of 1e-300/s must not print a 300-digit
// time.
std::string G3(double x) {
  char b[32];
  auto [end, ec] = std::to_chars(b, b + sizeof(b), x, std::chars_format::general, 3);
  return ec == std::errc() ? std::string(b, end) : std::string("?");
}

}  // namespace

Rng GeneratorRng(uint64_t seed, std::string_view name, uint64_t purpose) {
  return Rng(seed ^ (Fnv1a(name) * 0x9e3779b97f4a7c15ULL) ^
             ((purpose + 1) * 0xd1b54a32d192ed03ULL));
}

Status ExpandGenerators(std::vector<GeneratorPlan>& plans, uint64_t reserve_tasks,
                        uint64_t reserve_args, Scenario* scenario, size_t* failed_plan,
                        const ExpandProgressFn& progress) {
  auto report = [&](const char* phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  std::vector<TaskSpec>& tasks = scenario->tasks;
  std::vector<ArgSpec>& all_args = scenario->args;
  tasks.reserve(reserve_tasks);
  all_args.reserve(reserve_args);
  report("expand", 0, reserve_tasks);
  for (size_t gi = 0; gi < plans.size(); ++gi) {
    GeneratorPlan& g = plans[gi];
    g.first_task = tasks.size();
    Rng arrival = GeneratorRng(scenario->seed, g.name, 0);
    Rng duration = GeneratorRng(scenario->seed, g.name, 1);
    Rng args = GeneratorRng(scenario->seed, g.name, 2);
    const bool own_shapes = !g.trace_shapes.empty();
    double t = g.start;
    for (uint64_t i = 0; i < g.count; ++i) {
      TaskSpec task;
      switch (g.process) {
        case GeneratorPlan::Process::kPoisson:
          t += Exponential(arrival, 1.0 / g.rate);
          task.submit_s = t;
          break;
        case GeneratorPlan::Process::kUniform:
          task.submit_s = g.start + static_cast<double>(i) * g.interval;
          break;
        case GeneratorPlan::Process::kBurst:
          task.submit_s = g.start + g.at;
          break;
        case GeneratorPlan::Process::kTrace:
          task.submit_s = g.start + g.trace_times[i];
          break;
      }
      const DurationDist& d = g.duration;
      switch (d.kind) {
        case DurationDist::Kind::kConstant:
          task.duration_s = d.a;
          break;
        case DurationDist::Kind::kExponential:
          task.duration_s = Exponential(duration, d.a);
          break;
        case DurationDist::Kind::kUniform:
          task.duration_s = d.a + (d.b - d.a) * duration.UniformDouble();
          break;
        case DurationDist::Kind::kLognormal:
          task.duration_s = d.a * std::exp(d.b * StandardNormal(duration));
          break;
        case DurationDist::Kind::kColumn:
          task.duration_s = g.trace_durations[i];
          break;
      }
      if (!(task.submit_s <= kMaxScenarioSeconds) || !(task.duration_s <= kMaxScenarioSeconds)) {
        if (failed_plan != nullptr) *failed_plan = gi;
        return InvalidArgument("task " + std::to_string(i) + " would be submitted at " +
                               G3(task.submit_s) + " s and run for " + G3(task.duration_s) +
                               " s; times above 1e12 s (about 30,000 years) are refused: check "
                               "the rate and duration");
      }
      task.output_bytes = g.output;
      task.name = g.name_idx;
      task.job = g.job;
      task.shape = own_shapes ? g.trace_shapes[i] : g.shape;
      task.strategy = g.strategy;
      task.placement_group = g.pg;
      task.bundle = g.bundle;
      task.env = g.env;
      task.max_retries = g.max_retries;
      task.kind = g.kind;
      task.args_begin = static_cast<uint32_t>(all_args.size());
      for (const ArgPlan& a : g.args) {
        if (a.from_gen < 0) {
          all_args.push_back(ArgSpec{-1, a.node, a.bytes});
          continue;
        }
        const GeneratorPlan& p = plans[a.from_gen];
        // Producers submitted no later than this task (their times are non-decreasing).
        const auto begin = tasks.begin() + static_cast<ptrdiff_t>(p.first_task);
        const auto end = begin + static_cast<ptrdiff_t>(p.count);
        const auto m = static_cast<uint64_t>(
            std::upper_bound(begin, end, task.submit_s,
                             [](double v, const TaskSpec& x) { return v < x.submit_s; }) -
            begin);
        if (m < a.count) ++g.missing_args;
        if (m == 0) continue;
        const size_t first = all_args.size();
        for (uint32_t j = 0; j < a.count && j < m; ++j) {
          uint64_t k = 0;
          if (!a.random) {
            k = (i * a.count + j) % m;
          } else if (a.count >= m) {
            k = j;
          } else {
            bool dup = true;
            while (dup) {  // a.count < m: terminates; a.count <= 1000 keeps it cheap
              k = args.UniformIndex(m);
              dup = false;
              for (size_t q = first; q < all_args.size(); ++q) {
                dup |= all_args[q].producer == static_cast<int32_t>(p.first_task + k);
              }
            }
          }
          const uint64_t producer = p.first_task + k;
          all_args.push_back(
              ArgSpec{static_cast<int32_t>(producer), -1, tasks[producer].output_bytes});
        }
      }
      task.args_count = static_cast<uint32_t>(all_args.size()) - task.args_begin;
      tasks.push_back(task);
      if ((tasks.size() & 4095) == 0) report("expand", tasks.size(), reserve_tasks);
    }
  }
  report("expand", tasks.size(), reserve_tasks);
  report("sort", 0, tasks.size());
  SortTasksBySubmitTime(scenario);
  report("sort", tasks.size(), tasks.size());
  return Status::Ok();
}

// In place: a permutation of indices (4 bytes a task, plus the stable sort's buffer) is sorted
// and then applied cycle by cycle, so a million tasks are never copied as a whole.
void SortTasksBySubmitTime(Scenario* scenario) {
  std::vector<TaskSpec>& tasks = scenario->tasks;
  const auto earlier = [](const TaskSpec& a, const TaskSpec& b) { return a.submit_s < b.submit_s; };
  if (std::is_sorted(tasks.begin(), tasks.end(), earlier)) return;  // bursts, one generator
  std::vector<uint32_t> order(tasks.size());  // order[i] = old index of the i-th task
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return tasks[a].submit_s < tasks[b].submit_s; });
  {
    std::vector<uint32_t> new_index(tasks.size());
    for (size_t i = 0; i < order.size(); ++i) new_index[order[i]] = static_cast<uint32_t>(i);
    for (ArgSpec& a : scenario->args) {
      if (a.producer >= 0) a.producer = static_cast<int32_t>(new_index[a.producer]);
    }
  }
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] == i) continue;
    const TaskSpec first = tasks[i];
    size_t j = i;
    while (order[j] != i) {
      const size_t k = order[j];
      tasks[j] = tasks[k];
      order[j] = static_cast<uint32_t>(j);
      j = k;
    }
    tasks[j] = first;
    order[j] = static_cast<uint32_t>(j);
  }
}

}  // namespace orrery

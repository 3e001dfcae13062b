// One autoscaler planning round (AutoscalerPlanner::Plan) at the scale: <shapes> distinct
// demand shapes x 10 node types x 1,000 running nodes. Goal: <= 10 ms at 1,000 shapes.
//
// Name: BM_Plan/<shapes>.
//
// Node types (max_workers 2,000 each, cluster max_workers 20,000):
//   cpu.{2,4,8,16,32,64}  {CPU n, memory 4n, object_store_memory n}
//   mem.16                {CPU 16, memory 256, object_store_memory 16}
//   gpu.1                 {CPU 8, GPU 1, memory 64, object_store_memory 16}
//   gpu.4                 {CPU 32, GPU 4, memory 256, object_store_memory 32}
//   gpu.8                 {CPU 64, GPU 8, memory 512, object_store_memory 64, accel_a100 1}
// Cluster: 1,000 running nodes, 100 of each type, each with a random background load (CPU,
// memory and GPUs independently 0-100 % in 10 % steps); the 10 % with no load have been idle for
// a random 0-600 s (idle_timeout 300 s).
// Demand: <shapes> distinct random shapes, each with a count of 1-4 units: CPU from {0.5, 1, 2,
// 3, 4, 6, 8, 12, 16}; memory absent or {1, 2, 4, 8, 16, 32}; 30 % ask for GPU {0.5, 1, 2, 4};
// 2 % ask for accel_a100 (on top of GPU); 1 % ask for a resource no type has (infeasible). Plus 10
// gangs of 4 bundles (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD in turn).
// Everything is generated once from a fixed seed; the timed loop is only Plan().
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/autoscaler/planner.h"
#include "core/rng.h"

namespace orrery::autoscaler {
namespace {

ResourceSet Set(const std::map<std::string, double>& m) {
  ResourceSet s;
  for (const auto& [name, x] : m) s.Set(name, Quantity::FromDouble(x));
  return s;
}

AutoscalerConfig MakeConfig() {
  AutoscalerConfig cfg;
  for (int n : {2, 4, 8, 16, 32, 64}) {
    cfg.node_types["cpu." + std::to_string(n)] = {
        .resources = Set({{"CPU", n}, {"memory", 4.0 * n}, {"object_store_memory", n}})};
  }
  cfg.node_types["mem.16"] = {.resources =
                                  Set({{"CPU", 16}, {"memory", 256}, {"object_store_memory", 16}})};
  cfg.node_types["gpu.1"] = {
      .resources = Set({{"CPU", 8}, {"GPU", 1}, {"memory", 64}, {"object_store_memory", 16}})};
  cfg.node_types["gpu.4"] = {
      .resources = Set({{"CPU", 32}, {"GPU", 4}, {"memory", 256}, {"object_store_memory", 32}})};
  cfg.node_types["gpu.8"] = {.resources = Set({{"CPU", 64},
                                               {"GPU", 8},
                                               {"memory", 512},
                                               {"object_store_memory", 64},
                                               {"accel_a100", 1}})};
  for (auto& [name, t] : cfg.node_types) t.max_workers = 2000;
  cfg.max_workers = 20000;
  return cfg;
}

AutoscalerInput MakeInput(const AutoscalerConfig& cfg, int shapes, uint64_t seed) {
  Rng rng(seed);
  AutoscalerInput in;
  in.now_s = 10000.0;
  std::vector<std::string> types;
  for (const auto& [name, t] : cfg.node_types) types.push_back(name);
  for (int i = 0; i < 1000; ++i) {
    const std::string& type = types[static_cast<size_t>(i) % types.size()];
    const ResourceSet& total = cfg.node_types.at(type).resources;
    SnapshotNode n;
    n.id = "node-" + std::to_string(100000 + i);
    n.type = type;
    n.state = ProviderNodeState::kRunning;
    n.total = total;
    n.available = total;
    if (rng.UniformIndex(10) == 0) {
      n.idle_since_s = in.now_s - static_cast<double>(rng.UniformIndex(601));
    } else {
      for (const char* name : {"CPU", "memory", "GPU"}) {
        const Quantity t = total.Get(name);
        if (t.IsZero()) continue;
        const int64_t tenths = static_cast<int64_t>(rng.UniformIndex(11));
        Quantity used = Quantity::FromRaw(t.raw() * tenths / 10);
        if (std::string(name) == "GPU") used = Quantity::Whole(used.raw() / Quantity::kScale);
        n.available.Set(name, t - used);
      }
    }
    in.nodes.push_back(std::move(n));
  }
  const double cpus[] = {0.5, 1, 2, 3, 4, 6, 8, 12, 16};
  const double mems[] = {1, 2, 4, 8, 16, 32};
  const double gpus[] = {0.5, 1, 2, 4};
  std::set<std::map<std::string, double>> seen;
  while (static_cast<int>(seen.size()) < shapes) {
    std::map<std::string, double> m;
    m["CPU"] = cpus[rng.UniformIndex(9)];
    if (rng.UniformIndex(3) != 0) m["memory"] = mems[rng.UniformIndex(6)];
    if (rng.UniformIndex(10) < 3) m["GPU"] = gpus[rng.UniformIndex(4)];
    if (rng.UniformIndex(50) == 0) {
      m["GPU"] = 1;
      m["accel_a100"] = 0.5;
    }
    if (rng.UniformIndex(100) == 0) m["tpu"] = 1;
    // Distinct shapes: a unique small object-store request when a draw repeats.
    if (seen.count(m) != 0) m["object_store_memory"] = 0.001 * static_cast<double>(seen.size() + 1);
    if (!seen.insert(m).second) continue;
    in.demands.push_back({Set(m), static_cast<int64_t>(1 + rng.UniformIndex(4))});
  }
  const PlacementStrategy strategies[] = {PlacementStrategy::kPack, PlacementStrategy::kSpread,
                                          PlacementStrategy::kStrictPack,
                                          PlacementStrategy::kStrictSpread};
  for (int g = 0; g < 10; ++g) {
    GangDemand gang{strategies[g % 4], {}};
    for (int b = 0; b < 4; ++b) gang.bundles.push_back(Set({{"CPU", 4}, {"GPU", 1}}));
    in.gangs.push_back(std::move(gang));
  }
  return in;
}

void BM_Plan(benchmark::State& state) {
  const AutoscalerConfig cfg = MakeConfig();
  auto planner = AutoscalerPlanner::Create(cfg);
  if (!planner.ok()) std::abort();
  const AutoscalerInput in = MakeInput(cfg, static_cast<int>(state.range(0)), 42);
  AutoscalePlan last;
  for (auto _ : state) {
    auto plan = planner->Plan(in);
    if (!plan.ok()) std::abort();
    benchmark::DoNotOptimize(plan->launches.data());
    last = std::move(plan).value();
  }
  int64_t launched = 0;
  int64_t wanted = 0;
  for (const auto& l : last.launches) launched += l.count;
  for (const auto& [type, n] : last.deferred) wanted += n;
  int64_t units = 0;
  for (const auto& d : in.demands) units += d.count;
  state.counters["shapes"] = static_cast<double>(in.demands.size());
  state.counters["units"] = static_cast<double>(units);
  state.counters["nodes"] = static_cast<double>(in.nodes.size());
  state.counters["launched"] = static_cast<double>(launched);
  state.counters["deferred"] = static_cast<double>(wanted);
  state.counters["terminated"] = static_cast<double>(last.terminations.size());
  state.counters["infeasible"] = static_cast<double>(last.infeasible.size());
}
BENCHMARK(BM_Plan)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace orrery::autoscaler

BENCHMARK_MAIN();

// Hybrid scheduling decisions per second: HybridPolicy (indexed) against HybridReferencePolicy
// (scan), on the same cluster, request stream and Rng seed -- hence the same decisions and the
// same work around them.
//
// Names: BM_Hybrid/<nodes>/<k1|topk> and BM_HybridReference/<nodes>/<k1|topk>; k1 is
// top_k_fraction = 0 (always the best node), topk the default 0.2.
//
// Cluster: <nodes> nodes, 3 in 4 CPU-only {CPU 16, memory 64, object_store_memory 16} and 1 in 4
// GPU {CPU 32, GPU 4, memory 256, object_store_memory 32}, each with a random background load
// (CPU and memory independently uniform in [0, 90 %]) that never goes away. Requests: a fixed
// random stream of four shapes -- {CPU 1} 40 %, {CPU 2, memory 4} 30 %, {CPU 4, GPU 1} 15 %,
// {CPU 1, GPU 0.5} 15 % -- half of them with a random preferred (local) node.
//
// One iteration = one decision + applying it (Allocate on the chosen node) + releasing the
// allocation made kWindow iterations earlier, so utilisation stays steady and the index pays for
// its maintenance inside the timed loop. Before timing, 2 * kWindow untimed decisions fill the
// window (and let the index admit and build every shape).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/rng.h"
#include "core/scheduling/hybrid_policy.h"

namespace orrery {
namespace {

constexpr size_t kWindow = 64;
constexpr size_t kStreamLength = 8192;

ResourceSet Set(std::initializer_list<std::pair<Predefined, double>> entries) {
  ResourceSet s;
  for (const auto& [p, x] : entries) s.Set(p, Quantity::FromDouble(x));
  return s;
}

struct Workload {
  ClusterView view;
  std::vector<ResourceRequest> shapes;
  struct Step {
    int shape;
    int preferred;
  };
  std::vector<Step> stream;
};

Workload MakeWorkload(int nodes, uint64_t seed) {
  Workload w;
  Rng rng(seed);
  const ResourceSet cpu_node = Set({{Predefined::kCPU, 16},
                                    {Predefined::kMemory, 64},
                                    {Predefined::kObjectStoreMemory, 16}});
  const ResourceSet gpu_node = Set({{Predefined::kCPU, 32},
                                    {Predefined::kGPU, 4},
                                    {Predefined::kMemory, 256},
                                    {Predefined::kObjectStoreMemory, 32}});
  std::vector<int> slots;
  for (int i = 0; i < nodes; ++i) {
    Node n;
    n.id = "node-" + std::to_string(1000000 + i);
    const bool gpu = rng.UniformIndex(4) == 0;
    n.resources = *NodeResources::Create(gpu ? gpu_node : cpu_node);
    const ResourceSet& total = n.resources.total();
    // Background load in 1 % steps of each total.
    const double cpu = total.Get(Predefined::kCPU).ToDouble() *
                       static_cast<double>(rng.UniformIndex(91)) / 100.0;
    const double mem = total.Get(Predefined::kMemory).ToDouble() *
                       static_cast<double>(rng.UniformIndex(91)) / 100.0;
    if (!w.view.AddNode(std::move(n)).ok()) std::abort();
    const int slot = w.view.FindSlot("node-" + std::to_string(1000000 + i));
    slots.push_back(slot);
    ResourceSet load = Set({{Predefined::kCPU, cpu}, {Predefined::kMemory, mem}});
    if (!w.view.Allocate(slot, ResourceRequest::FromSet(load)).has_value()) std::abort();
  }
  w.shapes = {ResourceRequest::FromSet(Set({{Predefined::kCPU, 1}})),
              ResourceRequest::FromSet(Set({{Predefined::kCPU, 2}, {Predefined::kMemory, 4}})),
              ResourceRequest::FromSet(Set({{Predefined::kCPU, 4}, {Predefined::kGPU, 1}})),
              ResourceRequest::FromSet(Set({{Predefined::kCPU, 1}, {Predefined::kGPU, 0.5}}))};
  for (size_t i = 0; i < kStreamLength; ++i) {
    const uint64_t u = rng.UniformIndex(100);
    const int shape = u < 40 ? 0 : u < 70 ? 1 : u < 85 ? 2 : 3;
    const int preferred =
        rng.UniformIndex(2) == 0 ? slots[rng.UniformIndex(slots.size())] : -1;
    w.stream.push_back({shape, preferred});
  }
  return w;
}

template <typename Policy>
void BM_Decide(benchmark::State& state, int nodes, bool topk) {
  Workload w = MakeWorkload(nodes, /*seed=*/42);
  HybridOptions options;
  if (!topk) options.top_k_fraction = 0.0;
  Policy policy(options);
  Rng rng(7);
  struct Held {
    int slot = -1;
    Allocation allocation;
  };
  std::vector<Held> window(kWindow);
  size_t step = 0;
  int64_t chosen = 0;
  auto decide_apply_release = [&] {
    const Workload::Step& s = w.stream[step % w.stream.size()];
    PolicyRequest req;
    req.resources = &w.shapes[static_cast<size_t>(s.shape)];
    req.preferred_slot = s.preferred;
    PolicyResult r = policy.Schedule(w.view, req, rng);
    Held& old = window[step % kWindow];
    if (old.slot >= 0) w.view.Release(old.slot, old.allocation);
    old.slot = -1;
    if (r.chosen()) {
      ++chosen;
      if (auto a = w.view.Allocate(r.slot, *req.resources)) old = {r.slot, std::move(*a)};
    }
    ++step;
    return r.slot;
  };
  for (size_t i = 0; i < 2 * kWindow; ++i) decide_apply_release();
  chosen = 0;
  for (auto _ : state) benchmark::DoNotOptimize(decide_apply_release());
  state.SetItemsProcessed(state.iterations());
  state.counters["nodes"] = nodes;
  state.counters["chosen_frac"] =
      static_cast<double>(chosen) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

void RegisterAll() {
  for (int nodes : {100, 1000, 10000, 100000}) {
    for (bool topk : {false, true}) {
      const std::string suffix = "/" + std::to_string(nodes) + (topk ? "/topk" : "/k1");
      benchmark::RegisterBenchmark(("BM_Hybrid" + suffix).c_str(), [=](benchmark::State& s) {
        BM_Decide<HybridPolicy>(s, nodes, topk);
      });
      // A 10^5-node scan takes milliseconds, so the default minimum time (0.5 s) already means
      // only ~100 iterations there: the whole run stays near a minute.
      benchmark::RegisterBenchmark(
          ("BM_HybridReference" + suffix).c_str(),
          [=](benchmark::State& s) { BM_Decide<HybridReferencePolicy>(s, nodes, topk); });
    }
  }
}

}  // namespace
}  // namespace orrery

int main(int argc, char** argv) {
  orrery::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

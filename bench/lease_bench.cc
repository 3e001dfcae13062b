// One scheduling pass of a node's lease manager (LeaseManager::SchedulePending) against the depth
// of its queue (issue 11, item 4): a pass must cost O(classes + dispatched), not O(queued).
//
// Name: BM_SchedulePendingDeepQueue/<queued>/<classes>.
//
// Cluster: 16 nodes {CPU 4, memory 64}; the deciding node n0 is full with its own grants, the 15
// others are full with background load that never goes away, so every lease that leaves the
// queue is granted on n0. Queue: <queued> requests of <classes> shapes {CPU 1, memory c + 1},
// interleaved (request i has shape i mod classes).
//
// One iteration = return the oldest grant on n0 (one CPU frees), one pass (grants the head of one
// class; the other heads are decided once and stay), and one new request of the granted shape
// (it joins the back of its waiting class), so the depth stays at <queued>. Counters:
// decisions_per_pass (policy calls a pass made; expected classes + 1: the granted head, the
// next of its class, and every other class's head once).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "core/cluster_view.h"
#include "core/lease/lease_manager.h"
#include "core/resources.h"
#include "core/rng.h"

namespace orrery {
namespace {

ResourceRequest Shape(int cls) {
  return *ResourceRequest::Create({{"CPU", 1.0}, {"memory", 1.0 + cls}});
}

void BM_SchedulePendingDeepQueue(benchmark::State& state) {
  const int64_t queued = state.range(0);
  const int classes = static_cast<int>(state.range(1));
  ClusterView view;
  ResourceSet total;
  total.Set("CPU", Quantity::FromDouble(4));
  total.Set("memory", Quantity::FromDouble(64));
  for (int i = 0; i < 16; ++i) {
    Node n;
    n.id = "n" + std::to_string(i);
    n.resources = *NodeResources::Create(total);
    (void)view.AddNode(std::move(n));
    const int slot = view.FindSlot("n" + std::to_string(i));
    for (int c = 0; i > 0 && c < 4; ++c) (void)view.Allocate(slot, Shape(0));
  }
  SchedulerOptions options;
  auto m = std::move(LeaseManager::Create("n0", view, options)).value();
  Rng rng(7);
  uint64_t next = 0;
  std::deque<std::string> running;
  auto submit = [&](int cls) {
    LeaseRequest r;
    r.task_id = std::to_string(cls) + ":" + std::to_string(next++);  // "<class>:<n>"
    r.sched.resources = Shape(cls);
    LeaseReply reply = m->RequestLease(std::move(r), rng);
    if (reply.kind == LeaseReply::Kind::kGranted) running.push_back(reply.task_id);
  };
  while (static_cast<int64_t>(m->NumQueued()) < queued) submit(static_cast<int>(next % classes));
  const uint64_t decisions_before = m->counters().pass_decisions;
  const uint64_t passes_before = m->counters().passes;
  for (auto _ : state) {
    (void)m->ReturnLease(running.front());
    running.pop_front();
    for (const LeaseReply& r : m->SchedulePending(rng)) {
      if (r.kind == LeaseReply::Kind::kGranted) {
        running.push_back(r.task_id);
        submit(std::stoi(r.task_id.substr(0, r.task_id.find(':'))));
      }
    }
  }
  const double passes = static_cast<double>(m->counters().passes - passes_before);
  state.counters["decisions_per_pass"] =
      passes > 0 ? static_cast<double>(m->counters().pass_decisions - decisions_before) / passes
                 : 0.0;
  state.counters["queued"] = static_cast<double>(m->NumQueued());
}
BENCHMARK(BM_SchedulePendingDeepQueue)
    ->ArgsProduct({{1000, 10000, 100000, 1000000}, {1, 8}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace orrery

BENCHMARK_MAIN();

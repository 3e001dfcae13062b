// Small builders for GPU placement tests: tiny clusters and pods in a line each.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/gpu/gpu_cluster.h"
#include "core/gpu/gpu_policy.h"

namespace orrery::gpu::testing {

// A node: `cores` CPU cores, `mem_gib` GiB, `gpus` devices of `model`.
inline GpuNodeSpec Node(std::string id, int64_t cores, int32_t gpus, std::string model = "V100",
                        int64_t mem_gib = 256) {
  return {.id = std::move(id),
          .cpu_milli = cores * 1000,
          .memory_mib = mem_gib * 1024,
          .num_gpus = gpus,
          .model = gpus > 0 ? std::move(model) : std::string()};
}

// A pod of `cpu_milli`, `num_gpus` devices of `gpu_milli` each (1000 = whole).
inline GpuPod Pod(int64_t cpu_milli, int32_t num_gpus = 0, int32_t gpu_milli = 0,
                  int64_t memory_mib = 0) {
  return {.cpu_milli = cpu_milli,
          .memory_mib = memory_mib,
          .num_gpus = num_gpus,
          .gpu_milli = num_gpus > 0 && gpu_milli == 0 ? kMilliPerGpu : gpu_milli};
}
inline GpuPod Share(int32_t gpu_milli, int64_t cpu_milli = 1000) {
  return Pod(cpu_milli, 1, gpu_milli);
}

inline GpuCluster MakeCluster(const std::vector<GpuNodeSpec>& nodes) {
  auto c = GpuCluster::Create(nodes);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return *std::move(c);
}

inline DeviceList Devices(std::initializer_list<int> ids) {
  DeviceList d;
  for (int i : ids) d.Push(i);
  return d;
}

// Places `pod` on node `node` on the given devices; fails the test if the cluster refuses.
inline void PlaceOn(GpuCluster& c, int node, const GpuPod& pod, std::initializer_list<int> ids) {
  Status s = c.Place(node, pod, Devices(ids));
  ASSERT_TRUE(s.ok()) << s.message();
}

// Node index by id (-1 if absent).
inline int IndexOf(const GpuCluster& c, const std::string& id) {
  for (int i = 0; i < c.size(); ++i) {
    if (c.id(i) == id) return i;
  }
  return -1;
}

// The trace folder: ORRERY_TRACE_DIR, else the workspace's ../shared/traces.
inline std::string TraceDir() {
  const char* v = std::getenv("ORRERY_TRACE_DIR");
  return v != nullptr ? std::string(v) : std::string(ORRERY_DEFAULT_TRACE_DIR);
}

}  // namespace orrery::gpu::testing

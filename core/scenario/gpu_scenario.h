// Scenario files of kind `gpu_placement`: a placement-only replay of a GPU-sharing trace
// (documented in scenarios/README.md, section "GPU placement scenarios").
//
//   kind: gpu_placement                 # required: selects this loader
//   name: alibaba-openb                 # [file name without .yaml]
//   description: ...                    # free text
//   seed: 1                             # workload resampling/shuffle, policy draws, tie order [1]
//   workload:
//     nodes: ${ORRERY_TRACE_DIR}/alibaba-gpu-v2023/csv/openb_node_list_gpu_node.csv   # required
//     pods: ${ORRERY_TRACE_DIR}/alibaba-gpu-v2023/csv/openb_pod_list_default.csv      # required
//     inflate: 1.3                      # resample pods until their GPU request reaches this
//                                       # multiple of the cluster's GPUs; 0 = the list as is [1.3]
//     shuffle: true                     # shuffle the arrival order with the seed [true]
//   scheduler:
//     policy: fgd                       # any name `orrery policies` lists as a GPU policy [fgd]
//     scoring: kubernetes               # integer scores 0-100 as the artifact's Kubernetes
//                                       # plugins (reproduces the paper) | exact [kubernetes]
//     tie_break: perm                   # equal scores: first in one seeded node order per run
//                                       # (what the artifact's random node-name prefixes amount
//                                       # to) | id: lowest node id | random: a draw per decision
//                                       # [perm]
//     spread_threshold: 0.5             # hybrid options, as in ordinary scenarios
//     top_k_absolute: 1
//     top_k_fraction: 0.2
//     avoid_gpu_nodes: true
//   fragmentation:
//     typical_pods_coverage: 0.95       # typical pods = most frequent shapes covering this [0.95]
//     typical_pods_include_cpu: true    # CPU-only pods are part of the target workload [true]
//
// This header is the data; core/io/gpu_scenario_loader.h reads it from the file.
// Strict reading: unknown or duplicate keys, wrong types and out-of-range values are errors
// "FILE:LINE: FIELD: expected X, got Y" (or "FILE (--set a=b): ..." for an override). Paths may
// use ${VAR} (an unset variable is an error naming it); relative paths in the file are relative to
// the file's folder, relative paths given with --set to the current directory.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gpu/fragmentation.h"
#include "core/gpu/gpu_policy.h"
#include "core/scheduling/policy.h"
#include "core/status.h"

namespace orrery {

inline constexpr const char* kGpuPlacementKind = "gpu_placement";

struct GpuScenario {
  std::string file;  // the scenario file as given
  std::string name;
  std::string description;
  uint64_t seed = 1;
  std::string nodes_path;  // resolved: variables expanded, made absolute or file-relative
  std::string pods_path;
  double inflate = 1.3;
  bool shuffle = true;
  std::string policy = "fgd";
  gpu::ScoreOptions scores;  // scoring, tie_break
  HybridOptions hybrid;
  gpu::TypicalPodOptions typical;
};

}  // namespace orrery

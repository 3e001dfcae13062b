// Reader (core/io) for the Alibaba GPU-cluster trace v2023 ("openb", github.com/alibaba/clusterdata,
// cluster-trace-gpu-v2023/csv/), the data set of Weng et al. (USENIX ATC'23).
//
// Node lists (openb_node_list_*.csv), one node per row; columns found by header name, in any
// order, others ignored:
//   sn          node id, non-empty, unique
//   cpu_milli   CPU in milli-cores, whole number >= 0
//   memory_mib  memory in MiB, whole number >= 0
//   gpu         number of GPU devices, whole number in [0, 16]
//   model       GPU model ("" or "nan" = none); becomes the node's model label
// Pod lists (openb_pod_list_*.csv), one pod per row:
//   name        optional; "pod-<line>" when the column is absent or the cell empty
//   cpu_milli, memory_mib   as for nodes
//   num_gpu     GPU devices requested, whole number in [0, 16]
//   gpu_milli   per device, whole number: 0 if num_gpu is 0; in [1, 1000] if num_gpu is 1
//               (below 1000 = a share of one device); 1000 if num_gpu > 1 (whole devices)
//   gpu_spec    optional; '|'-separated GPU models the pod accepts ("" or "nan" = any)
// The trace's other columns (qos, pod_phase, creation/deletion/scheduled times) are ignored: the
// placement-only study does not use them.
//
// Numbers may be written as integers or as whole decimals ("12000", "12000.0"). Fields may be
// double-quoted (RFC 4180, no embedded newlines). Lines end in LF or CRLF; a UTF-8 BOM and blank
// lines are skipped.
//
// Errors (InvalidArgument; NotFound for a missing file) name the file, the 1-based line and the
// column, e.g.
//   pods.csv:17: column 'gpu_milli': expected a whole number in [0, 1000], got '1.5'
//   pods.csv:1: missing column 'num_gpu' (the header has: name, cpu_milli, memory_mib)
//
// Thread safety: free functions, no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/gpu/gpu_cluster.h"
#include "core/status.h"

namespace orrery::io {

// One row of a pod list.
struct PodRecord {
  std::string name;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int32_t num_gpu = 0;
  int32_t gpu_milli = 0;
  std::string gpu_spec;  // "" = any model
  int line = 0;          // 1-based line in the file
};

StatusOr<std::vector<gpu::GpuNodeSpec>> ReadNodeList(const std::string& path);
StatusOr<std::vector<PodRecord>> ReadPodList(const std::string& path);

// The same from text already in memory; `source` names it in messages.
StatusOr<std::vector<gpu::GpuNodeSpec>> ParseNodeList(std::string_view text,
                                                      const std::string& source);
StatusOr<std::vector<PodRecord>> ParsePodList(std::string_view text, const std::string& source);

}  // namespace orrery::io

// GPU discovery for a live node, without linking the NVIDIA driver.
//
// A node daemon calls DetectGpuInventory(SystemGpuProbe()) once at start. It asks, in order:
//   1. NVML (dlopen "libnvidia-ml.so.1"): count, names, memory, UUIDs;
//   2. the CUDA runtime (dlopen "libcudart.so*"): cudaGetDeviceCount only;
//   3. the device files: the number of /dev/nvidiaN entries.
// A pre-set CUDA_VISIBLE_DEVICES then restricts and orders what was found: the node's logical GPU i
// is the i-th listed id ("" or "NoDevFiles" means none). A task granted logical GPUs {0,1} on a
// node started with CUDA_VISIBLE_DEVICES=2,3 must see CUDA_VISIBLE_DEVICES=2,3: see
// VisibleDevicesForGrant.
//
// Everything that reaches for the machine (environment, /dev, the two libraries) sits behind
// GpuProbe so tests can fake a machine with GPUs on one without.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orrery::live {

// One physical GPU as a driver library reports it. `index` is NVML's (or CUDA's) device ordinal.
struct PhysicalGpu {
  int index = 0;
  std::string name;           // "NVIDIA H100 80GB HBM3"; empty when unknown
  std::string uuid;           // "GPU-8f6c..."; empty when unknown
  uint64_t memory_bytes = 0;  // 0 when unknown
};

// What DetectGpuInventory asks of the machine. Implementations must be safe to call from one
// thread at a time; the system one is stateless.
class GpuProbe {
 public:
  virtual ~GpuProbe() = default;
  // The value of environment variable `name`, or nullopt when unset.
  virtual std::optional<std::string> GetEnv(const std::string& name) const = 0;
  // All GPUs NVML reports, or nullopt when NVML cannot be loaded or initialised.
  virtual std::optional<std::vector<PhysicalGpu>> QueryNvml() const = 0;
  // cudaGetDeviceCount (which already honours CUDA_VISIBLE_DEVICES), or nullopt when the CUDA
  // runtime cannot be loaded or reports an error (e.g. no driver).
  virtual std::optional<int> QueryCudart() const = 0;
  // The entry names in /dev (e.g. "nvidia0", "nvidiactl"); empty when unreadable.
  virtual std::vector<std::string> ListDev() const = 0;
};

// The real machine: getenv, dlopen, /dev. Never fails; a missing library is "not available".
const GpuProbe& SystemGpuProbe();

// One GPU of the node, in logical order (the position in GpuInventory::devices).
struct NodeGpu {
  std::string physical_id;  // what goes into a task's CUDA_VISIBLE_DEVICES ("2", "GPU-8f6c...")
  std::string name;         // empty when unknown (cudart / /dev fallbacks)
  uint64_t memory_bytes = 0;
};

// The GPUs a node offers. `source` says who reported them: "nvml", "cudart", "dev" or "none".
struct GpuInventory {
  std::vector<NodeGpu> devices;
  std::string source = "none";

  int count() const { return static_cast<int>(devices.size()); }
  // The model name when every device reports the same non-empty one (the `gpu_model` label);
  // empty otherwise.
  std::string model() const;
  // physical_id of each device, in logical order.
  std::vector<std::string> physical_ids() const;
};

// Parses CUDA_VISIBLE_DEVICES: nullopt when unset (all devices visible); an empty list for "" or
// "NoDevFiles"; else the comma-separated ids, trimmed. As CUDA does, the list stops at the first
// empty or invalid entry (for integer ids: a negative one).
std::optional<std::vector<std::string>> ParseVisibleDevices(const std::optional<std::string>& v);

// Detects the node's GPUs as described at the top of this file. Never fails: no GPU is a count
// of 0. Cost: one NVML init/shutdown at most; call once per process.
GpuInventory DetectGpuInventory(const GpuProbe& probe);

// The CUDA_VISIBLE_DEVICES value for a task granted `logical` GPU indices on a node whose logical
// GPU i is `physical_ids[i]`: the granted physical ids joined by ','. An index outside
// `physical_ids` passes through unchanged (nodes configured with --num-gpus beyond what was
// detected keep today's identity mapping). Empty `logical` gives "" (the task sees no GPU).
std::string VisibleDevicesForGrant(const std::vector<int>& logical,
                                   const std::vector<std::string>& physical_ids);

// Same, with the mapping taken from this process's CUDA_VISIBLE_DEVICES (identity when unset).
// This is what a node daemon needs: its logical GPU i is the i-th id it was started with.
std::string VisibleDevicesForGrant(const std::vector<int>& logical);

}  // namespace orrery::live

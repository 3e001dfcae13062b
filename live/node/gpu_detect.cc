// GPU discovery without linking the driver: see gpu_detect.h for the order of sources.
#include "live/node/gpu_detect.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace orrery::live {
namespace {

namespace fs = std::filesystem;

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The NVML entry points we use, declared here so no NVML header (nor the driver) is needed to
// build. Signatures as in nvml.h; nvmlReturn_t is an enum whose success value is 0.
using NvmlDevice = void*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
using NvmlInitFn = int (*)();
using NvmlShutdownFn = int (*)();
using NvmlCountFn = int (*)(unsigned int*);
using NvmlHandleFn = int (*)(unsigned int, NvmlDevice*);
using NvmlStringFn = int (*)(NvmlDevice, char*, unsigned int);
using NvmlMemoryFn = int (*)(NvmlDevice, NvmlMemory*);
using CudaCountFn = int (*)(int*);

template <typename Fn>
Fn Sym(void* lib, const char* name) {
  return reinterpret_cast<Fn>(::dlsym(lib, name));
}

class SystemProbe final : public GpuProbe {
 public:
  std::optional<std::string> GetEnv(const std::string& name) const override {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  }

  std::optional<std::vector<PhysicalGpu>> QueryNvml() const override {
    void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return std::nullopt;
    std::optional<std::vector<PhysicalGpu>> out;
    auto init = Sym<NvmlInitFn>(lib, "nvmlInit_v2");
    auto shutdown = Sym<NvmlShutdownFn>(lib, "nvmlShutdown");
    auto count = Sym<NvmlCountFn>(lib, "nvmlDeviceGetCount_v2");
    auto handle = Sym<NvmlHandleFn>(lib, "nvmlDeviceGetHandleByIndex_v2");
    auto name = Sym<NvmlStringFn>(lib, "nvmlDeviceGetName");
    auto uuid = Sym<NvmlStringFn>(lib, "nvmlDeviceGetUUID");
    auto memory = Sym<NvmlMemoryFn>(lib, "nvmlDeviceGetMemoryInfo");
    unsigned int n = 0;
    if (init && shutdown && count && handle && init() == 0) {
      if (count(&n) == 0) {
        out.emplace();
        for (unsigned int i = 0; i < n; ++i) {
          PhysicalGpu g;
          g.index = static_cast<int>(i);
          NvmlDevice d = nullptr;
          if (handle(i, &d) == 0) {
            char buf[128] = {};
            if (name && name(d, buf, sizeof buf) == 0) g.name = buf;
            char ubuf[128] = {};
            if (uuid && uuid(d, ubuf, sizeof ubuf) == 0) g.uuid = ubuf;
            NvmlMemory m{};
            if (memory && memory(d, &m) == 0) g.memory_bytes = m.total;
          }
          out->push_back(std::move(g));
        }
      }
      shutdown();
    }
    ::dlclose(lib);
    return out;
  }

  std::optional<int> QueryCudart() const override {
    // Left loaded on purpose: the CUDA runtime registers exit handlers and must not be unloaded.
    for (const char* so :
         {"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"}) {
      void* lib = ::dlopen(so, RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) continue;
      auto count = Sym<CudaCountFn>(lib, "cudaGetDeviceCount");
      int n = 0;
      if (count && count(&n) == 0) return n;
      return std::nullopt;  // loaded but no usable driver: the other sonames would say the same
    }
    return std::nullopt;
  }

  std::vector<std::string> ListDev() const override {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it("/dev", ec), end; !ec && it != end; it.increment(ec)) {
      out.push_back(it->path().filename().string());
    }
    return out;
  }
};

// Logical devices for the /dev and cudart fallbacks, which know a count but no identities.
// Integer ids must be below `n` (CUDA stops at the first invalid one); UUIDs cannot be checked and
// are trusted.
std::vector<NodeGpu> ByCount(int n, const std::optional<std::vector<std::string>>& visible) {
  std::vector<NodeGpu> out;
  if (!visible) {
    for (int i = 0; i < n; ++i) out.push_back({std::to_string(i), "", 0});
    return out;
  }
  for (const auto& id : *visible) {
    if (static_cast<int>(out.size()) >= n) break;
    if (AllDigits(id) && std::stoll(id) >= n) break;
    out.push_back({id, "", 0});
  }
  return out;
}

}  // namespace

const GpuProbe& SystemGpuProbe() {
  static const SystemProbe probe;
  return probe;
}

std::string GpuInventory::model() const {
  if (devices.empty() || devices.front().name.empty()) return "";
  for (const auto& d : devices) {
    if (d.name != devices.front().name) return "";
  }
  return devices.front().name;
}

std::vector<std::string> GpuInventory::physical_ids() const {
  std::vector<std::string> out;
  for (const auto& d : devices) out.push_back(d.physical_id);
  return out;
}

std::optional<std::vector<std::string>> ParseVisibleDevices(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  std::vector<std::string> out;
  const std::string s = Trim(*v);
  if (s.empty() || s == "NoDevFiles") return out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    const std::string id = Trim(s.substr(start, comma - start));
    if (id.empty() || id[0] == '-') break;  // CUDA ignores everything from an invalid entry on
    out.push_back(id);
    start = comma + 1;
  }
  return out;
}

GpuInventory DetectGpuInventory(const GpuProbe& probe) {
  GpuInventory inv;
  const auto visible = ParseVisibleDevices(probe.GetEnv("CUDA_VISIBLE_DEVICES"));
  if (visible && visible->empty()) return inv;

  if (auto nvml = probe.QueryNvml(); nvml && !nvml->empty()) {
    inv.source = "nvml";
    // NVML ignores CUDA_VISIBLE_DEVICES, so apply it here: integer ids are NVML indices (equal to
    // CUDA ordinals under CUDA_DEVICE_ORDER=PCI_BUS_ID), others are (prefixes of) UUIDs.
    auto find = [&](const std::string& id) -> const PhysicalGpu* {
      for (const auto& g : *nvml) {
        if (AllDigits(id) ? std::to_string(g.index) == id
                          : (!g.uuid.empty() && g.uuid.rfind(id, 0) == 0)) {
          return &g;
        }
      }
      return nullptr;
    };
    if (!visible) {
      for (const auto& g : *nvml)
        inv.devices.push_back({std::to_string(g.index), g.name, g.memory_bytes});
      return inv;
    }
    for (const auto& id : *visible) {
      const PhysicalGpu* g = find(id);
      if (g == nullptr) break;
      inv.devices.push_back({id, g->name, g->memory_bytes});
    }
    return inv;
  }
  if (auto n = probe.QueryCudart(); n && *n > 0) {
    inv.source = "cudart";
    // cudaGetDeviceCount already counted only the visible devices, and CUDA validated the ids:
    // logical i is the i-th listed id.
    for (int i = 0; i < *n; ++i) {
      if (visible && static_cast<size_t>(i) >= visible->size()) break;
      inv.devices.push_back({visible ? (*visible)[i] : std::to_string(i), "", 0});
    }
    return inv;
  }
  int n = 0;
  for (const auto& name : probe.ListDev()) {
    if (name.size() > 6 && name.rfind("nvidia", 0) == 0 && AllDigits(name.substr(6))) ++n;
  }
  if (n > 0) {
    inv.source = "dev";
    inv.devices = ByCount(n, visible);
  }
  return inv;
}

std::string VisibleDevicesForGrant(const std::vector<int>& logical,
                                   const std::vector<std::string>& physical_ids) {
  std::string out;
  for (size_t i = 0; i < logical.size(); ++i) {
    const int l = logical[i];
    if (i > 0) out += ',';
    out += (l >= 0 && static_cast<size_t>(l) < physical_ids.size()) ? physical_ids[l]
                                                                    : std::to_string(l);
  }
  return out;
}

std::string VisibleDevicesForGrant(const std::vector<int>& logical) {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  const auto ids = ParseVisibleDevices(v ? std::optional<std::string>(v) : std::nullopt);
  return VisibleDevicesForGrant(logical, ids.value_or(std::vector<std::string>{}));
}

}  // namespace orrery::live

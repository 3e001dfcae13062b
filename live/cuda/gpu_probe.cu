// orrery-gpu-probe: proves a task really ran on the GPUs it was granted.
//
// For each device the process can see (CUDA_VISIBLE_DEVICES decides), a kernel writes the device
// ordinal and PCI location (as the host reads them from cudaDeviceProp) into device memory; the
// host copies them back and prints one JSON line per device:
//   {"device": 0, "name": "...", "pci_bus_id": "0000:19:00.0", "kernel_ok": true,
//    "cuda_visible_devices": "2"}
// With --hold-ms N the process keeps its devices (and CUDA contexts) for N ms after printing, so
// concurrent tasks really overlap. Exit status: 0 when every kernel ran and returned what it was
// given; 1 when a CUDA call failed; 2 when no device is visible.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

// What the kernel writes: ordinal, PCI domain/bus/device, and a marker only a run kernel sets.
struct Probe {
  int ordinal, pci_domain, pci_bus, pci_device, marker;
};
constexpr int kMarker = 0x0ee17;

__global__ void WriteProbe(Probe* out, int ordinal, int domain, int bus, int device) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *out = Probe{ordinal, domain, bus, device, kMarker};
}

std::string JsonEscape(const char* s) {
  std::string out;
  for (; *s; ++s) {
    if (*s == '"' || *s == '\\') out += '\\';
    if (static_cast<unsigned char>(*s) >= 0x20) out += *s;
  }
  return out;
}

bool Check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "orrery-gpu-probe: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  long hold_ms = 0;
  for (int a = 1; a < argc; ++a) {
    if (std::string(argv[a]) == "--hold-ms" && a + 1 < argc) {
      hold_ms = std::strtol(argv[++a], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: orrery-gpu-probe [--hold-ms N]\n");
      return 1;
    }
  }
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  int n = 0;
  if (!Check(cudaGetDeviceCount(&n), "cudaGetDeviceCount")) return 1;
  if (n == 0) {
    std::fprintf(stderr, "orrery-gpu-probe: no visible device\n");
    return 2;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    Probe* d = nullptr;
    Probe h{};
    char bus_id[32] = {};
    if (!Check(cudaSetDevice(i), "cudaSetDevice") ||
        !Check(cudaGetDeviceProperties(&p, i), "cudaGetDeviceProperties") ||
        !Check(cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, i), "cudaDeviceGetPCIBusId") ||
        !Check(cudaMalloc(&d, sizeof(Probe)), "cudaMalloc")) {
      return 1;
    }
    WriteProbe<<<1, 32>>>(d, i, p.pciDomainID, p.pciBusID, p.pciDeviceID);
    if (!Check(cudaGetLastError(), "kernel launch") ||
        !Check(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost), "cudaMemcpy")) {
      return 1;
    }
    cudaFree(d);
    const bool ok = h.marker == kMarker && h.ordinal == i && h.pci_bus == p.pciBusID &&
                    h.pci_domain == p.pciDomainID && h.pci_device == p.pciDeviceID;
    // The PCI id as the kernel returned it, in the form cudaDeviceGetPCIBusId uses.
    char from_kernel[32];
    std::snprintf(from_kernel, sizeof from_kernel, "%08x:%02x:%02x.0", h.pci_domain, h.pci_bus,
                  h.pci_device);
    std::printf(
        "{\"device\": %d, \"name\": \"%s\", \"pci_bus_id\": \"%s\", \"kernel_pci_bus_id\": "
        "\"%s\", \"kernel_ok\": %s, \"cuda_visible_devices\": \"%s\"}\n",
        i, JsonEscape(p.name).c_str(), bus_id, from_kernel, ok ? "true" : "false",
        visible ? JsonEscape(visible).c_str() : "");
    if (!ok) return 1;
  }
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  return 0;
}

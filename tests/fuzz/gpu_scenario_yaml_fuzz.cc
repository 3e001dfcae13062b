// libFuzzer: GPU-placement scenario YAML (core/io/gpu_scenario_loader.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/io/gpu_scenario_loader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orrery;
  const std::string path = fuzz::Scratch().Write(
      "gpu.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  (void)io::IsGpuPlacementFile(path);
  auto s = io::LoadGpuScenario(path);
  (void)s;
  return 0;
}

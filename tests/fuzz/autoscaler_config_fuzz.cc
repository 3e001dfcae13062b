// libFuzzer: the autoscaler config file (core/io/autoscaler_config.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/io/autoscaler_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orrery;
  const std::string path = fuzz::Scratch().Write(
      "autoscaler.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  auto c = io::LoadAutoscalerFile(path);
  (void)c;
  return 0;
}

// libFuzzer: scenario YAML (core/io/scenario_loader.h). Any input must give a Scenario or an
// error status, never a crash, a sanitizer report or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/io/scenario_loader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orrery;
  const std::string path = fuzz::Scratch().Write(
      "scenario.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::LoadScenarioBounded(path);
  return 0;
}

// libFuzzer: runtime-env text (live/common/runtime_env.h), as `--runtime-env-json`, a job's
// `runtime_env` and a worker lease's env carry it. Any input gives an env or an error, never a
// crash or a sanitizer report; and what parses round-trips: ToJson(env) parses back to the same
// env (the canonical form the head, nodes and drivers exchange), else abort. The same input is
// also read as YAML (`--runtime-env FILE.yaml`).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "live/common/runtime_env.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orrery::live;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool yaml : {false, true}) {
    auto env = yaml ? ParseRuntimeEnvYaml(text, "fuzz.yaml") : ParseRuntimeEnvJson(text, "fuzz");
    if (!env.ok()) continue;
    const std::string canonical = ToJson(*env);
    auto again = ParseRuntimeEnvJson(canonical, "canonical");
    if (!again.ok() || !(*again == *env)) {
      std::fprintf(stderr, "runtime env does not round-trip: %s -> %s\n", canonical.c_str(),
                   again.ok() ? ToJson(*again).c_str() : again.status().ToString().c_str());
      std::abort();
    }
  }
  return 0;
}

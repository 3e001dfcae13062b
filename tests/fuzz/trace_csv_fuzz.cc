// libFuzzer: the CSV readers: a scenario's task trace (workload.trace, read by the scenario
// loader), an arrival trace (arrival: {process: trace}) and the GPU study's node and pod lists
// (core/io/gpu_trace.h). The first input byte picks the reader; the rest is the CSV text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/io/gpu_trace.h"
#include "core/io/scenario_loader.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr std::string_view kTaskTraceScenario =
    "name: fuzz\n"
    "cluster: {nodes: [{id: n0, resources: {CPU: 4, GPU: 1}}]}\n"
    "workload:\n"
    "  trace:\n"
    "    - {file: trace.csv}\n";
constexpr std::string_view kArrivalTraceScenario =
    "name: fuzz\n"
    "cluster: {nodes: [{id: n0, resources: {CPU: 4}}]}\n"
    "workload:\n"
    "  tasks:\n"
    "    - {name: t, duration: 1s, arrival: {process: trace, file: trace.csv, limit: 100000}}\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orrery;
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
    case 1: {
      const auto& dir = fuzz::Scratch();
      dir.Write("trace.csv", text);
      const std::string path =
          dir.Write("trace-scenario.yaml", data[0] % 4 == 0 ? kTaskTraceScenario
                                                             : kArrivalTraceScenario);
      fuzz::LoadScenarioBounded(path);
      break;
    }
    case 2: {
      auto nodes = io::ParseNodeList(text, "nodes.csv");
      (void)nodes;
      break;
    }
    default: {
      auto pods = io::ParsePodList(text, "pods.csv");
      (void)pods;
    }
  }
  return 0;
}

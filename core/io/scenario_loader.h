// Reads a scenario file (YAML, with trace CSVs it names) into a validated, expanded Scenario
// (core/scenario/scenario.h). The reading goes through the field-reader kit of core/io
// (core/io/yaml_fields.h), so every error names the file, the line, the field and what was
// expected; expansion of the generators is core/scenario/generators.h (pure).
//
// Thread safety: free functions; the loader touches only the files it is given.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/scenario/scenario.h"
#include "core/status.h"

namespace orrery::io {

// Where loading is (for a progress line). Phases, in order: "parse" (the YAML parser; done/total
// are bytes of the file read so far, every MiB), "generators" (generator entries read), "expand"
// (tasks expanded), "sort" (tasks; at its start and end).
struct LoadProgress {
  const char* phase = "";
  uint64_t done = 0;
  uint64_t total = 0;
};
// Called from the loading thread at most about every 4,096 items of a phase (and at each phase's
// start and end); the callee decides whether to print (it may read a clock: the loader does not).
using LoadProgressFn = std::function<void(const LoadProgress&)>;

// Loads and validates `path`. `overrides` are "dotted.path=value" strings applied to the YAML
// before validation (e.g. "scheduler.policy=spread", "workload.tasks.0.count=10"); an override of
// a path the schema does not know is an error. Errors are InvalidArgument (or NotFound for a
// missing file) with a message "FILE:LINE: FIELD: what was expected", and never a crash.
// `progress`, if set, is told how far loading got (see LoadProgress).
// Memory while loading: the parsed YAML tree (yaml-cpp: about 3 KB per generator entry of the
// file; a scenario of a million one-task generators is better written as a trace CSV), about
// 0.5 KB per generator of plans, and per task sizeof(TaskSpec) = 64 bytes in the result plus 8
// bytes of sort permutation (freed before returning, skipped when already in order); the tasks
// are expanded in place, never copied.
StatusOr<Scenario> LoadScenario(const std::string& path,
                                const std::vector<std::string>& overrides = {},
                                const LoadProgressFn& progress = {});

}  // namespace orrery::io

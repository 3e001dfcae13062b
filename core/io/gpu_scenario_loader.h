// Reads `kind: gpu_placement` scenario files into a GpuScenario (core/scenario/gpu_scenario.h,
// which documents the format) with the field-reader kit of core/io (core/io/yaml_fields.h):
// errors "FILE:LINE: FIELD: expected X, got Y", or "FILE (--set a=b): ..." for an override.
//
// Thread safety: free functions; they read the files they are given and the environment (for
// ${VAR} in paths).
#pragma once

#include <string>
#include <vector>

#include "core/scenario/gpu_scenario.h"
#include "core/status.h"

namespace orrery::io {

// Loads and validates `path`, applying `overrides` ("dotted.path=value", parsed as YAML) in order
// before validation. NotFound for a missing scenario or trace file; InvalidArgument otherwise.
// Does not read the trace files (they are only checked to exist).
StatusOr<GpuScenario> LoadGpuScenario(const std::string& path,
                                      const std::vector<std::string>& overrides = {});

// True if `path` is a readable YAML file whose top level is a map with `kind: gpu_placement`
// (case-insensitive). Never fails: anything else is false.
bool IsGpuPlacementFile(const std::string& path);

}  // namespace orrery::io

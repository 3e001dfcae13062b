// Small file and argument helpers shared by the command-line front ends (sim/, sim/gpu_replay/).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace orrery::cli {

// Writes `text` to `path` (binary, truncating). Unavailable naming the path on failure.
Status WriteFile(const std::filesystem::path& path, const std::string& text);

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> SplitComma(const std::string& s);

}  // namespace orrery::cli

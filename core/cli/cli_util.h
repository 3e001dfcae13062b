// Small file and argument helpers shared by the command-line front ends (sim/, sim/gpu_replay/).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/status.h"

namespace orrery::cli {

// Writes `text` to `path` (binary, truncating). Unavailable naming the path on failure.
Status WriteFile(const std::filesystem::path& path, const std::string& text);

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> SplitComma(const std::string& s);

// The options of `orrery sim run`, shared by every scenario kind (sim/sim_cli.cc for task
// scenarios, sim/gpu_replay/gpu_cli.cc for gpu_placement ones).
struct SimRunFlags {
  std::string scenario_path, policy, out_dir, decision_log;
  std::vector<std::string> sets;  // --set path=value, in order
  int64_t seed = -1;              // -1: not given
  bool no_progress = false;
  // The scenario overrides the flags amount to: the --set values, then scheduler.policy and seed.
  std::vector<std::string> Overrides() const;
};

// What `sim run --help` says about the options whose meaning differs by scenario kind.
struct SimRunHelp {
  const char* usage;  // printed before the options on --help and after a usage error
  const char* scenario = "scenario file";
  const char* policy = "scheduling policy for DEFAULT requests (orrery policies)";
  const char* decision_log = "write one line per scheduling decision";
  const char* no_progress = "never print the progress line";
};

// Parses `sim run` arguments into `flags`. Returns the exit code when the command ends here:
// kExitOk after --help (printed to `out`), kExitUsage after a usage error (printed to `err`,
// prefixed "orrery sim run: "); nullopt when the run should go on.
std::optional<int> ParseSimRunFlags(const std::vector<std::string>& args, const SimRunHelp& help,
                                    SimRunFlags* flags, std::ostream& out, std::ostream& err);

}  // namespace orrery::cli

// Small file and argument helpers shared by the command-line front ends (core/cli, sim/,
// sim/gpu_replay/, live/cli/): one option parser with one way of reporting usage errors and --help.
#pragma once

#include <boost/program_options.hpp>
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

// Parses `args` against `desc` into `vm`; `positional` names the option that takes the one
// positional argument (nullptr: none). On a usage error writes "orrery CMD: WHAT" to `err` and
// returns false.
bool ParseOptions(const std::string& cmd, const std::vector<std::string>& args,
                  const boost::program_options::options_description& desc,
                  boost::program_options::variables_map& vm, std::ostream& err,
                  const char* positional = nullptr);

// The usual start of a command: ParseOptions, then `usage` after a usage error (on `err`:
// "orrery CMD: WHAT\nUSAGE") or after --help (on `out`: USAGE and the options; `desc` has a
// "help" option). Returns the exit code when the command ends here (kExitUsage, kExitOk);
// nullopt when it should go on.
std::optional<int> ParseCommand(const std::string& cmd, const std::vector<std::string>& args,
                                const boost::program_options::options_description& desc,
                                const char* positional, const std::string& usage,
                                boost::program_options::variables_map& vm, std::ostream& out,
                                std::ostream& err);

// The options of `orrery sim run`, shared by every scenario kind (sim/sim_cli.cc for task
// scenarios, sim/gpu_replay/gpu_cli.cc for gpu_placement ones).
struct SimRunFlags {
  std::string scenario_path, policy, out_dir, decision_log;
  std::vector<std::string> sets;  // --set path=value, in order
  int64_t seed = -1;              // -1: not given
  bool no_progress = false;
  bool trace = false;  // --trace: leases.csv beside tasks.csv
  int64_t timing_seed = -1;  // --timing-seed: -1 = not given (sim/model.h ModelOptions)
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
  const char* trace = "also write leases.csv: every step of every worker lease at the driver";
  const char* out = "result directory (default: out/<scenario name>)";
  const char* timing_seed =
      "draw the phases of the head's broadcast tick and of each node's heartbeat from seed N (a "
      "live cluster's timers line up differently in every run; default: fixed mean phases)";
};

// Parses `sim run` arguments into `flags`. Returns the exit code when the command ends here:
// kExitOk after --help (printed to `out`), kExitUsage after a usage error (printed to `err`,
// prefixed "orrery sim run: "); nullopt when the run should go on.
std::optional<int> ParseSimRunFlags(const std::vector<std::string>& args, const SimRunHelp& help,
                                    SimRunFlags* flags, std::ostream& out, std::ostream& err);

}  // namespace orrery::cli

// The `orrery` command line: one binary, subcommands (DESIGN section 5).
//
// Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace orrery::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

using CommandFn = std::function<int(const std::vector<std::string>& args, std::ostream& out,
                                    std::ostream& err)>;

// A subcommand contributed by a backend (sim/, live/). Backends register theirs from a small
// entry file compiled straight into the `orrery` executable (sim/sim_entry.cc,
// live/cli/live_entry.cc), so this library -- and core/ -- depends on no backend.
struct Command {
  std::string name;   // "sim"
  std::string usage;  // one line for the command list, e.g. "sim run|compare ...  simulate"
  CommandFn run;      // gets the arguments after the name
};

// Adds a backend command for Run(). Called during static initialisation by the entry files.
void RegisterCommand(Command command);
// Registers `command` when constructed (a namespace-scope object in an entry file).
struct CommandRegistration {
  explicit CommandRegistration(Command command) { RegisterCommand(std::move(command)); }
};

// Runs the CLI with `args` (without the program name), writing to `out` and `err`. The commands
// are the built-in ones, the registered backend commands (by name) and `backends`.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const std::vector<Command>& backends = {});

// The version string printed by `orrery version` and recorded in result files.
const char* Version();

}  // namespace orrery::cli

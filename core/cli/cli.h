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

// A subcommand contributed by a backend (sim/, live/). The composition root (main.cc) hands them
// to Run(), so this library depends on no backend.
struct Command {
  std::string name;   // "sim"
  std::string usage;  // one line for the command list, e.g. "sim run|compare ...  simulate"
  CommandFn run;      // gets the arguments after the name
};

// Runs the CLI with `args` (without the program name), writing to `out` and `err`.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const std::vector<Command>& backends = {});

// The version string printed by `orrery version` and recorded in result files.
const char* Version();

}  // namespace orrery::cli

// The `orrery` command line: one binary, subcommands (DESIGN section 5).
//
// Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace orrery::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Runs the CLI with `args` (without the program name), writing to `out` and `err`.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace orrery::cli

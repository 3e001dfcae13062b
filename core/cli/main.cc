// Entry point of the `orrery` binary. The backends' commands (sim, live) register themselves from
// their entry files (sim/sim_entry.cc, live/cli/live_entry.cc), compiled into this executable by the
// top-level CMakeLists.txt; nothing here depends on a backend.
#include <iostream>
#include <string>
#include <vector>

#include "core/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return orrery::cli::Run(args, std::cout, std::cerr);
}

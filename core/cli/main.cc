// Entry point of the `orrery` binary: the composition root, the one translation unit that sees
// every front end. Backends contribute their subcommands; the CLI library depends on none.
#include <iostream>
#include <string>
#include <vector>

#include "core/cli/cli.h"
#include "live/live_cli.h"
#include "sim/sim_cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<orrery::cli::Command> commands = {orrery::sim::SimCommand()};
  for (auto& c : orrery::live::LiveCommands()) commands.push_back(std::move(c));
  return orrery::cli::Run(args, std::cout, std::cerr, commands);
}

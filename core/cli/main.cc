// Entry point of the `orrery` binary. The only translation unit that sees every front end.
#include <iostream>
#include <string>
#include <vector>

#include "core/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return orrery::cli::Run(args, std::cout, std::cerr);
}

// Registers `orrery sim ...` with the CLI. Compiled straight into the `orrery` executable (not into
// a library) so that the registration always runs.
#include "core/cli/cli.h"
#include "sim/sim_cli.h"

namespace {
const orrery::cli::CommandRegistration kSim(orrery::sim::SimCommand());
}  // namespace

// `orrery sim run|compare`: the simulator's command line (DESIGN section 5).
#pragma once

#include "core/cli/cli.h"

namespace orrery::sim {

// The "sim" command for the CLI's composition root.
cli::Command SimCommand();

}  // namespace orrery::sim

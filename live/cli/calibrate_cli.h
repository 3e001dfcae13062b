// `orrery calibrate`: measures a live cluster's control-plane latencies (live/run/calibrate.h)
// and writes them as a scenario `control_plane:` block.
//
//   orrery calibrate --local [--samples N] [--out FILE]
//   orrery calibrate [--address A] [--samples N] [--out FILE]
//
// --local starts a private two-node cluster in this process (as `orrery live run --local` does,
// two nodes of 2 CPUs, report period 100 ms) and measures it; otherwise the cluster at
// --address (or this machine's session, as `orrery status`). Progress goes to stderr, the block
// to --out (default: stdout). Exit 0; 1 if the cluster cannot be measured (the reason names the
// node or call); 2 on bad flags.
#pragma once

#include "core/cli/cli.h"

namespace orrery::live {

cli::Command CalibrateCommand();

}  // namespace orrery::live

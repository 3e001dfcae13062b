// The remote code of the scale benchmarks (bench/driver_million.sh, bench/actors_thousand.sh,
// bench/soak.sh): a no-op task, a task that prints one log line, and a tiny actor.
#include <cstdio>
#include <string>

#include "bench/scale_lib.h"
#include "live/api/orrery_api.h"

namespace orrery::bench {

void ScaleNoop() {}

// One line on the worker's stdout (the node's log monitor ships it to the head's log hub and on
// to the driver), so the soak carries log traffic through every daemon.
void ScaleSay(int i) {
  std::printf("soak task line %d\n", i);
  std::fflush(stdout);
}

// An actor that holds one counter: 1,000 of them on one node (bench/actors_thousand.sh).
ScalePinger* ScalePinger::Create(int id) { return new ScalePinger(id); }
int ScalePinger::Ping() { return id_ + ++calls_; }

ORRERY_REMOTE(ScaleNoop);
ORRERY_REMOTE(ScaleSay);
ORRERY_REMOTE(ScalePinger::Create);
ORRERY_REMOTE(&ScalePinger::Ping);

}  // namespace orrery::bench

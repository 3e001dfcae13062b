// The remote code of the side-by-side benchmark (bench/live_vs_ray_dask.sh): a no-op task.
#include "live/api/orrery_api.h"

namespace orrery::bench {

void Noop() {}

ORRERY_REMOTE(Noop);

}  // namespace orrery::bench

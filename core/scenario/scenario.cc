#include "core/scenario/scenario.h"

namespace orrery {

const char* WorkKindName(WorkKind k) { return k == WorkKind::kActor ? "actor" : "task"; }

// scenario.h promises 64 bytes a task.
static_assert(sizeof(TaskSpec) <= 64);

}  // namespace orrery

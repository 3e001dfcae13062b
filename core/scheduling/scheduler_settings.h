// The cluster's scheduling setting (DESIGN section 3, issue 14 "policy is a cluster setting"):
// the policy every node decides DEFAULT-strategy requests with, and its options. The head is
// started with it (`orrery start --head --policy NAME --set scheduler.KEY=VALUE`), broadcasts it
// to every node in the registration reply and the cluster view, and every node builds its
// LeaseManager with it; `live run --address` and `compare --address` take it from the cluster.
//
// Keys, as a scenario's `scheduler:` block and `sim run --set scheduler.KEY=VALUE` spell them:
//   policy            a name in PolicyRegistry::Builtin()          [hybrid]
//   spread_threshold  number in [0, 1]                              [0.5]
//   top_k_absolute    whole number in [1, 1e9]                      [1]
//   top_k_fraction    number in [0, 1]                              [0.2]
//   avoid_gpu_nodes   true | false                                  [true]
//   fair_granting     true | false                                  [true]
//   wait_at_best_node true | false                                  [true]
//
// Pure functions; thread-safe.
#pragma once

#include <string>

#include "core/scheduling/scheduler.h"
#include "core/status.h"

namespace orrery {

// Sets `key` (one of the keys above, without the "scheduler." prefix) to `value`.
// InvalidArgument naming the key and what is expected (for an unknown policy, the known ones).
// O(length).
Status ApplySchedulerSetting(const std::string& key, const std::string& value,
                             SchedulerOptions* options);

// True if both decide alike: the same policy, and for the hybrid policies the same options (the
// hybrid options of another policy are not compared, they are unused). O(1).
bool SameScheduling(const SchedulerOptions& a, const SchedulerOptions& b);

// One line for people: "spread", or "hybrid (spread_threshold 0.5, top_k_absolute 1,
// top_k_fraction 0.2, avoid_gpu_nodes true)". O(1).
std::string DescribeScheduling(const SchedulerOptions& o);

}  // namespace orrery

// Registers the live cluster's commands (start, stop, status, list, task, live, job helpers) with
// the CLI. Compiled straight into the `orrery` executable (not into a library) so that the
// registration always runs.
#include "core/cli/cli.h"
#include "live/cli/compare_cli.h"  // --- compare
#include "live/cli/job_cli.h"  // --- jobs
#include "live/cli/live_cli.h"

namespace {
const bool kLiveRegistered = [] {
  for (auto& c : orrery::live::LiveCommands()) orrery::cli::RegisterCommand(std::move(c));
  for (auto& c : orrery::live::JobCommands()) orrery::cli::RegisterCommand(std::move(c));  // jobs
  orrery::cli::RegisterCommand(orrery::live::CompareCommand());  // --- compare
  return true;
}();
}  // namespace

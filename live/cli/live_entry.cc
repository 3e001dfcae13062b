// Registers the live cluster's commands (start, stop, status, list, task, live, job helpers) with
// the CLI. Compiled straight into the `orrery` executable (not into a library) so that the
// registration always runs.
#include "core/cli/cli.h"
#include "live/cli/calibrate_cli.h"  // --- calibrate
#include "live/cli/compare_cli.h"  // --- compare
#include "live/cli/dashboard_cli.h"  // --- results dashboard
#include "live/cli/job_cli.h"  // --- jobs
#include "live/cli/live_cli.h"
#include "live/cli/tls_cli.h"  // --- TLS

namespace {
const bool kLiveRegistered = [] {
  // --- TLS: every live command takes --tls-dir etc. (live/cli/tls_cli.h).
  using orrery::live::WithTls;
  for (auto& c : orrery::live::LiveCommands()) orrery::cli::RegisterCommand(WithTls(std::move(c)));
  for (auto& c : orrery::live::JobCommands()) {  // jobs
    orrery::cli::RegisterCommand(WithTls(std::move(c)));
  }
  orrery::cli::RegisterCommand(WithTls(orrery::live::CompareCommand()));  // --- compare
  orrery::cli::RegisterCommand(WithTls(orrery::live::CalibrateCommand()));  // --- calibrate
  orrery::cli::RegisterCommand(orrery::live::TlsCommand());              // --- TLS
  // --- results dashboard: read-only over result directories, no cluster (so no TLS flags).
  orrery::cli::RegisterCommand(orrery::live::DashboardCommand());
  return true;
}();
}  // namespace

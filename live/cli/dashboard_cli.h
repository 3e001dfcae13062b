// `orrery dashboard`: the dashboard's views, read-only, over result directories.
//
//   orrery dashboard RESULTS_DIR [RESULTS_DIR_B] [--port P] [--bind ADDR]
//
// RESULTS_DIR is the --out of `orrery sim run`, `orrery live run` or `orrery compare` (a compare
// directory stands for its sim/ and live/ runs); with two directories, the views show both on
// the same axes (sim vs live, or two policies). The directories are read and checked first
// (live/dashboard/results_api.h): a bad one is refused with the file, line and field (exit 2)
// before anything listens. Then it serves http://ADDR:P/ (default 127.0.0.1:8266, next to the
// head's 8265) with a fresh random token, prints "Dashboard: http://ADDR:P/?token=T" and serves
// until SIGINT or SIGTERM (exit 0). A port in use: exit 1 naming the holder (as `orrery start`).
//
// Thread safety: the command blocks its caller (SIGINT/SIGTERM are blocked in the calling
// thread while it serves and waited for with sigwait).
#pragma once

#include "core/cli/cli.h"

namespace orrery::live {

// The "dashboard" command for the CLI's composition root.
cli::Command DashboardCommand();

}  // namespace orrery::live

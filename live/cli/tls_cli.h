// The TLS part of the live command line (live/common/tls.h):
//   orrery tls init DIR [--san NAME_OR_IP ...] [--days N] [--force]
// and WithTls, which gives every live command (start, stop, status, list, task, live, job, and
// the hidden daemons) the options --tls-dir DIR | --tls-cert F --tls-key F --tls-ca F in one
// place: it takes them out of the arguments (before a `--`), falls back to ORRERY_TLS_DIR (and
// ORRERY_TLS_CERT/_KEY/_CA), checks the files, installs the process's TLS identity and then runs
// the command. `start` also warns when it binds a non-loopback address without TLS.
#pragma once

#include <string>
#include <vector>

#include "core/cli/cli.h"
#include "core/status.h"

namespace orrery::live {

// `orrery tls ...`.
cli::Command TlsCommand();

// `command` with the TLS options (see above). A bad TLS option or file: "orrery CMD: WHY" on
// err, exit 2, the command does not run.
cli::Command WithTls(cli::Command command);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackBind(const std::string& bind);

}  // namespace orrery::live

// The live backend's command line (DESIGN section 5):
//   orrery start --head [--port P] [--node-name N] [--num-cpus N] [--num-gpus N]
//                [--resources JSON] [--labels JSON] [--temp-dir DIR] [--bind ADDR]
//   orrery start --address HOST:PORT [same node options]
//   orrery stop [--temp-dir DIR]
//   orrery status [--address A] [--temp-dir DIR]
//   orrery list nodes|tasks [--format table|json] [--address A] [--temp-dir DIR]
//   orrery task run [--num-cpus N] [--num-gpus N] [--resources JSON]
//                   [--strategy default|spread|node:NAME|node:NAME:soft] [--node NAME] -- CMD
//                   ARGS...
// and the hidden daemon entry points `orrery __head` / `orrery __node`, which `start` runs as
// daemonised children of the same binary (pids in the session dir, see live/common/session.h).
// --address defaults to $ORRERY_ADDRESS, then the session's address file; the token comes from
// $ORRERY_TOKEN, then the session dir (the latest one under --temp-dir, default /tmp/orrery).
// Exit codes: 0 ok, 1 the work failed (task exit codes are passed through), 2 bad usage, bad
// input or no cluster reachable.
#pragma once

#include <boost/program_options.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/cli/cli.h"
#include "core/cli/cli_util.h"

namespace orrery::live {

// A reachable cluster: the head's address and the token.
struct Cluster {
  std::string address;
  std::string token;
};

// --address, $ORRERY_ADDRESS, then the session; token from $ORRERY_TOKEN, then the session (the
// latest one under `temp_dir`, default /tmp/orrery). Checks that the head answers. Writes the
// reason (prefixed "orrery CMD: ") to `err` and returns nullopt otherwise.
std::optional<Cluster> FindCluster(const std::string& cmd, const std::string& address_flag,
                                   const std::string& temp_dir, std::ostream& err);

// The option parser of every front end (core/cli/cli_util.h).
using cli::ParseOptions;

// start, stop, status, list, task, and the hidden __head / __node (empty usage).
std::vector<cli::Command> LiveCommands();

}  // namespace orrery::live

// `orrery job ...` (Ray's job CLI) and `orrery list jobs`:
//   orrery job submit [--address A] [--temp-dir DIR] [--submission-id ID]
//                     [--runtime-env-json J | --runtime-env FILE.yaml] [--working-dir D]
//                     [--entrypoint-num-cpus N] [--entrypoint-num-gpus N]
//                     [--entrypoint-resources JSON] [--metadata-json J] [--no-wait]
//                     -- ENTRYPOINT...
//       prints the submission id, then (unless --no-wait) streams the driver's output to stdout
//       and exits 0 when the job SUCCEEDED, 1 when it FAILED or was STOPPED.
//   orrery job status ID [--format table|json]     orrery job logs ID [--follow]
//   orrery job stop ID [--no-wait]                 orrery job list [--format table|json]
//   orrery job delete ID
// Exit codes: 0 ok, 1 the job failed (submit) or the cluster call failed, 2 bad usage or input
// (malformed runtime env, unknown id, deleting a running job).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "core/cli/cli.h"
#include "core/status.h"
#include "live/cli/live_cli.h"

namespace orrery::live {

// The `job` command.
std::vector<cli::Command> JobCommands();

// `orrery list jobs` for a cluster found by FindCluster (format "table" or "json").
int RunListJobs(const Cluster& cluster, const std::string& format, std::ostream& out,
                std::ostream& err);

// The job's runtime env as a JSON object text ("" if none) from the submit flags: at most one
// of `json_flag` (--runtime-env-json) and `yaml_file` (--runtime-env, YAML converted to JSON),
// plus `working_dir` (--working-dir, must be an existing directory; sets "working_dir").
// InvalidArgument naming the flag or the file (with the line for YAML errors).
StatusOr<std::string> ResolveRuntimeEnv(const std::string& json_flag, const std::string& yaml_file,
                                        const std::string& working_dir);

// The entrypoint of `job submit -- ARGV...`, as Ray's CLI builds it: a single argument is kept
// as it is (it is a shell command line, e.g. -- 'echo a; echo b'); several arguments are each
// quoted for /bin/sh (Python's shlex.quote: bare when made only of [A-Za-z0-9@%+=:,./_-],
// else in single quotes with each ' written '"'"') and joined by spaces, so that /bin/sh -c runs
// exactly the argv that was typed. REQUIRES: !argv.empty(). O(total length).
std::string ShellJoinEntrypoint(const std::vector<std::string>& argv);

}  // namespace orrery::live

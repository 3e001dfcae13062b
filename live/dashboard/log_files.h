// A daemon's log files for the dashboard's log pages: listing the files of one log directory
// that belong to one daemon, and a bounded read of one of them (from an offset, or its last
// lines, optionally only the lines containing a string). Used by the node daemon
// (NodeService.GetNodeDetail / ReadNodeLog) and by the head for its own log.
//
// Thread safety: pure functions of their arguments and the file system.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "orrery.pb.h"

namespace orrery::live::dashboard {

constexpr int64_t kMaxLogReadBytes = 8 << 20;

// The files in `dir` (not recursive) whose name `mine` accepts, by name. `kind` of each is
// "worker" for worker-*.out/.err files (job_id parsed from the name), else "daemon".
std::vector<v1::NodeLogFile> ListLogFiles(const std::string& dir,
                                          const std::function<bool(const std::string&)>& mine);

// Reads `req.name` in `dir` (a plain file name, no '/', not "." or ".."; InvalidArgument
// otherwise) that `mine` accepts (NotFound otherwise, as for a missing file). At most req.limit
// bytes [1..8 MiB; InvalidArgument otherwise]; tail > 0: the last `tail` lines; search: only the
// lines containing it (case-insensitive) of the bytes read.
StatusOr<v1::ReadNodeLogReply> ReadLogFile(const std::string& dir,
                                           const std::function<bool(const std::string&)>& mine,
                                           const v1::ReadNodeLogRequest& req);

}  // namespace orrery::live::dashboard

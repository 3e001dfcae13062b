// The session directory of a live cluster on this machine, and the few files in it.
//
//   <temp root>/session_<YYYYmmdd_HHMMSS>_<pid>/   one per `orrery start --head` (or per node
//                                                  started on a machine without a session)
//       token            the cluster token, mode 0600, written by the head daemon
//       address          HOST:PORT of the head
//       pids/<name>.pid  one per daemon started from this machine (orrery stop reads them)
//       logs/<name>.log  the daemon's stdout and stderr
//   <temp root>/session_latest -> session_...      the newest session
// The temp root defaults to /tmp/orrery (`--temp-dir DIR` overrides it).
//
// Thread safety: free functions; the files are the synchronisation.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace orrery::live {

inline constexpr const char* kDefaultTempRoot = "/tmp/orrery";

// `dir` if non-empty, else /tmp/orrery.
std::filesystem::path TempRoot(const std::string& dir);
// Makes `root` a private directory of the current user: created with mode 0700 if missing;
// an existing one must be a real directory (not a symlink) owned by this user, and loses any
// group/other permission bits. FailedPrecondition naming the path and the problem otherwise
// (another user's or a symlinked root could read the token and job logs, or redirect them).
Status EnsurePrivateRoot(const std::filesystem::path& root);
// Creates a new session dir (with pids/ and logs/) under EnsurePrivateRoot(root) and points
// session_latest at it.
StatusOr<std::filesystem::path> CreateSession(const std::filesystem::path& root);
// The session session_latest points to. NotFound if none.
StatusOr<std::filesystem::path> LatestSession(const std::filesystem::path& root);

// Every session directory under `root` (session_*, not the session_latest link), by name.
std::vector<std::filesystem::path> ListSessions(const std::filesystem::path& root);

// Removes what killed daemons left behind (their object stores, <session>/objects/) in every
// session under `root` none of whose daemons still runs. Logs are kept. Returns how many
// sessions were cleaned.
int CleanStaleSessions(const std::filesystem::path& root);

// A node name is used in file names (logs, runtime envs), so it is checked before any use:
// 1 to 64 characters from [A-Za-z0-9._-], starting with a letter or digit. InvalidArgument
// naming `what` and the rule otherwise.
Status ValidateNodeName(const std::string& name, const std::string& what = "--node-name");

// 32 random bytes from the OS, hex encoded.
StatusOr<std::string> GenerateToken();
// Writes `text` to `path` with `mode`, failing if it exists (O_EXCL).
Status WriteNewFile(const std::filesystem::path& path, const std::string& text, mode_t mode);
// Replaces `path` atomically (write to a temp file, rename).
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& text);
StatusOr<std::string> ReadFileTrimmed(const std::filesystem::path& path);

// Pid files of a session: (name, pid), by name.
std::vector<std::pair<std::string, pid_t>> ReadPidFiles(const std::filesystem::path& session);
// True if `pid` is a running (not zombie) process whose command line is an orrery daemon
// (`__head` or `__node`), so a recycled pid is never signalled.
bool IsDaemonProcess(pid_t pid);
// True if `pid` exists and is not a zombie.
bool IsProcessAlive(pid_t pid);
// The command line of `pid` from /proc, arguments joined by spaces, cut to `max_chars` (with
// "..."); "" if it is gone or unreadable.
std::string ProcessCommandLine(pid_t pid, size_t max_chars = 120);

}  // namespace orrery::live

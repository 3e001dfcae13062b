// Worker log files: where a worker process's stdout and stderr go, how they rotate, and the
// marker lines that tell the node's log monitor (live/node/log_monitor.h) what runs in the worker.
//
// Files (in the node's log dir, <session>/logs/):
//   worker-<worker id>-<job id>-<pid>.out     stdout
//   worker-<worker id>-<job id>-<pid>.err     stderr
//   ... .out.1 .. .out.<backups>              rotated copies, .1 the newest
// <worker id> is 16 hex digits: the node's 8-digit tag (ORRERY_LOG_WORKER_PREFIX) then 8 random
// ones, so a node's monitor can tell its own workers' files from those of other nodes sharing
// the directory (several nodes of one machine share a session). <job id> is the job the worker
// was started for ($ORRERY_JOB_ID), "none" if none; characters outside [A-Za-z0-9_.-] become '_'.
//
// Who writes: the worker itself. The node starts workers with ORRERY_LOG_DIR set; at start-up
// the worker opens its two files and dup2()s them onto fds 1 and 2 (a pooled `__worker`, whose
// stdout is its command channel, redirects only stderr), so user code writing to stdout/stderr
// (printf, std::cout, write(1, ...)) lands in the files with no copy through the node. stdout is
// made line-buffered, so lines of a long call appear while it runs.
//
// Rotation: the worker's rotation thread checks each file's size every 200 ms; past
// ORRERY_LOG_MAX_BYTES [512 MiB] it renames <f>.<i> to <f>.<i+1> (the oldest,
// <f>.<ORRERY_LOG_BACKUP_COUNT [5]>, is removed), renames <f> to <f>.1, opens a new <f> and
// dup2()s it onto the fd: nothing written is lost (a write lands in the old or the new file),
// and a file may overshoot the limit by what is written within one check period.
//
// Markers: lines `:task_name:<name>`, `:actor_name:<name>` and `:job_id:<id>` (Ray's), written
// by the worker to both files before the first call of a new function or actor, say what the
// following lines belong to. The monitor consumes them; they are never shown to a driver.
//
// Thread safety: free functions are thread-safe; WorkerLogRedirect is created once per process.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace orrery::live {

inline constexpr uint64_t kDefaultLogMaxBytes = 512ull << 20;
inline constexpr int kDefaultLogBackups = 5;

// "worker-<worker_id>-<job>-<pid>.out|.err" (job sanitised, "none" if empty).
std::string WorkerLogFileName(const std::string& worker_id, const std::string& job_id, pid_t pid,
                              bool is_err);

struct WorkerLogFileInfo {
  std::string worker_id;
  std::string job_id;
  pid_t pid = 0;
  bool is_err = false;
};
// Parses a file name made by WorkerLogFileName; nullopt for anything else (rotated copies
// included).
std::optional<WorkerLogFileInfo> ParseWorkerLogFileName(const std::string& name);

// A marker line's kind and value, or nullopt if `line` is not a marker.
struct LogMarker {
  enum class Kind { kTaskName, kActorName, kJobId };
  Kind kind;
  std::string value;
};
std::optional<LogMarker> ParseLogMarker(const std::string& line);
std::string LogMarkerLine(LogMarker::Kind kind, const std::string& value);  // with the '\n'

// Shifts `path`.1..`path`.<backups-1> up by one (dropping `path`.<backups>) and renames `path`
// to `path`.1. backups == 0: `path` is removed. Missing files are skipped.
Status ShiftLogBackups(const std::string& path, int backups);

// Keeps `fd` (open on `path`, O_APPEND) under `max_bytes` by rotating: see the file comment.
class LogRotator {
 public:
  LogRotator(std::string path, int fd, uint64_t max_bytes, int backups);
  // Rotates if the file behind `fd` has reached max_bytes. True if it rotated.
  StatusOr<bool> MaybeRotate();

 private:
  std::string path_;
  int fd_;
  uint64_t max_bytes_;
  int backups_;
};

// The worker process's side: redirects fds 1 (unless keep_stdout) and 2 into the files and
// rotates them until destroyed.
class WorkerLogRedirect {
 public:
  // From ORRERY_LOG_DIR (unset or empty: returns nullptr, nothing redirected),
  // ORRERY_LOG_WORKER_PREFIX, ORRERY_JOB_ID, ORRERY_LOG_MAX_BYTES, ORRERY_LOG_BACKUP_COUNT.
  // Bad values of the last two are an InvalidArgument naming the variable.
  static StatusOr<std::unique_ptr<WorkerLogRedirect>> StartFromEnv(bool keep_stdout);
  ~WorkerLogRedirect();

  const std::string& out_path() const { return out_path_; }
  const std::string& err_path() const { return err_path_; }
  // Flushes stdio and writes the marker to both files (the one redirected fds).
  void WriteMarker(LogMarker::Kind kind, const std::string& value);

 private:
  WorkerLogRedirect() = default;
  void RotateLoop();

  std::string out_path_, err_path_;
  std::vector<LogRotator> rotators_;
  std::vector<int> fds_;  // the redirected fds (1 and/or 2)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Reads a byte count such as "1048576" from env var `name`; `fallback` if unset or empty.
StatusOr<uint64_t> LogBytesFromEnv(const char* name, uint64_t fallback);

}  // namespace orrery::live

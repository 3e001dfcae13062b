// JobLog: one job's driver output on the head, a capped and rotated file set:
//   <dir>/<submission id>.log      the newest bytes, at most max_bytes
//   <dir>/<submission id>.log.1    the max_bytes before them, ... up to .log.<backups>
// so a job never holds more than (backups + 1) * max_bytes of disk, however much its driver
// prints (defaults [100 MiB x (1 + 2)], `orrery start --head --job-log-max-bytes B
// --job-log-backups N`). Every rotated file holds exactly max_bytes (an append is split at the
// boundary), so a byte's place in the output is a stable offset: the count of bytes the job
// wrote before it. Bytes older than the oldest kept file are gone; a read from before it starts
// at the oldest kept byte and says so (Range::offset > the asked offset).
//
// Writing stops at Close() (the job ended): later appends are dropped, so a driver's output
// that arrives after its job is terminal never grows the log.
//
// Waiters: Wait(offset, fn) runs `fn` once the log holds bytes past `offset` or is closed
// (at once if it does already), on the appending/closing thread, outside the lock. A log
// follower reads a chunk, waits, reads the next: memory stays one chunk per follower.
//
// A log opened after a head restart (OpenExisting) counts offsets from its oldest kept file.
//
// Thread safety: all methods are thread-safe (one short lock; a read holds it while it reads
// at most `limit` bytes, so rotation cannot move a file under it).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace orrery::live {

struct JobLogOptions {
  uint64_t max_bytes = 100ull << 20;  // per file; REQUIRES: > 0
  int backups = 2;                    // rotated files kept; REQUIRES: >= 0
};

class JobLog {
 public:
  // A log at `path` (its rotated files are path.1, path.2, ...). Existing files are kept and
  // counted (a head restart); nothing is opened until the first append.
  JobLog(std::string path, JobLogOptions options);
  ~JobLog();
  JobLog(const JobLog&) = delete;
  JobLog& operator=(const JobLog&) = delete;

  // Appends, rotating at max_bytes. Dropped after Close(). Unavailable on a write error (the
  // bytes are dropped, the log stays usable).
  Status Append(std::string_view data);
  // --- head fault tolerance: as Append, and then records that the log now holds the driver's
  // output up to byte `source_end` as the node counts it (RunTaskReply.output_offset, before
  // redaction), in <path>.src beside the log. A restarted head asks the node for the output
  // from source_offset() on: written after the bytes, a crash between the two repeats at most
  // this append and never loses one.
  Status Append(std::string_view data, uint64_t source_end);
  // What the last Append(data, source_end) recorded (also by an earlier head); 0 if none.
  uint64_t source_offset() const;
  // No more appends; waiters run. Idempotent.
  void Close();
  bool closed() const;

  struct Range {
    std::string data;
    uint64_t offset = 0;        // offset of data[0] (>= the asked offset if older bytes are gone)
    uint64_t start_offset = 0;  // oldest byte still kept
    uint64_t end_offset = 0;    // bytes written so far (the next append's offset)
    bool closed = false;        // the job ended: end_offset is final
  };
  // Up to `limit` bytes from `offset` (clamped into [start_offset, end_offset]). O(limit).
  StatusOr<Range> Read(uint64_t offset, size_t limit) const;
  // The last `lines` lines (a trailing partial line counts as one), at most the last `limit`
  // bytes of them. O(limit).
  StatusOr<Range> Tail(int lines, size_t limit) const;
  // Runs `fn` once end_offset > offset or the log is closed (see the header comment).
  void Wait(uint64_t offset, std::function<void()> fn);
  // Removes every file of the log (Delete of a finished job); later appends are dropped.
  void Remove();
  // Removes the files of a log at `path` with up to `backups` rotated files (a fresh job whose
  // id an earlier, deleted job had).
  static void RemoveFiles(const std::string& path, int backups);

 private:
  std::string FileOf(uint64_t segment) const;  // REQUIRES: mu_ held
  uint64_t StartLocked() const;
  Status RotateLocked();
  StatusOr<Range> ReadLocked(uint64_t offset, size_t limit) const;

  const std::string path_;
  const JobLogOptions options_;
  mutable std::mutex mu_;
  int fd_ = -1;             // the current file, opened on first append
  int src_fd_ = -1;         // <path>.src, opened on the first Append(data, source_end)
  uint64_t source_offset_ = 0;
  uint64_t rotations_ = 0;  // files rotated away (segments before the current one)
  uint64_t current_ = 0;    // bytes in the current file
  bool closed_ = false;
  std::vector<std::pair<uint64_t, std::function<void()>>> waiters_;
};

}  // namespace orrery::live

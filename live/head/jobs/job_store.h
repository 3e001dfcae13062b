// JobStore: the head's persistent job table, an embedded SQLite database (one row per job: the
// submission id, its status and the whole JobInfo message). SQLite gives crash-safe, atomic
// updates (a record is either the old or the new one after a crash) without a hand-written file
// format.
//
// Writes are queued to the store's own thread (Put, Delete), so neither gRPC threads nor the
// head's loop wait for the disk; Flush() waits for everything queued so far.
//
// Thread safety: Open and LoadAll from one thread before the first Put/Delete; Put, Delete and
// Flush are thread-safe and applied in call order.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "live/rpc/event_loop.h"
#include "orrery.pb.h"

struct sqlite3;

namespace orrery::live {

class JobStore {
 public:
  // Opens (creating it and its table if needed) the database at `path`; an empty path keeps the
  // table in memory (lost at exit). Unavailable with SQLite's message if it cannot be opened.
  static StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  // Flushes queued writes and closes the database.
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Every stored job, by submission id. A row that cannot be parsed is skipped (and logged).
  StatusOr<std::vector<v1::JobInfo>> LoadAll();
  // Inserts or replaces the job's row (asynchronous; an error is logged to stderr).
  void Put(const v1::JobInfo& job);
  // Removes the job's row (asynchronous).
  void Delete(const std::string& submission_id);
  // Waits until every Put/Delete called before it is on disk (committed).
  void Flush();

  const std::string& path() const { return path_; }

 private:
  JobStore(sqlite3* db, std::string path);
  Status Exec(const std::string& sql, const std::vector<std::string>& params);

  sqlite3* db_;
  const std::string path_;
  EventLoop writer_;  // the store thread: every statement after Open runs here
};

}  // namespace orrery::live

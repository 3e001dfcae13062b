#include "live/head/jobs/job_store.h"

#include <sqlite3.h>

#include <iostream>

#include "live/common/sqlite_file.h"

namespace orrery::live {

namespace {
void Log(const std::string& line) { std::cerr << "[head] job store: " << line << std::endl; }
}  // namespace

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  // Owner-only (it holds runtime-env values), never through a symlink.
  auto db = OpenPrivateSqlite(path, "job store");
  if (!db.ok()) return db.status();
  std::unique_ptr<JobStore> store(new JobStore(*db, path));
  // WAL: a crash leaves the last committed state; readers never see a half-written row.
  ORRERY_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL", {}));
  ORRERY_RETURN_IF_ERROR(store->Exec(
      "CREATE TABLE IF NOT EXISTS jobs (submission_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
      "info BLOB NOT NULL)",
      {}));
  return store;
}

JobStore::JobStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

JobStore::~JobStore() {
  Flush();
  writer_.Stop();
  sqlite3_close(db_);
}

Status JobStore::Exec(const std::string& sql, const std::vector<std::string>& params) {
  return ExecSqlite(db_, "job store " + path_, sql, params);
}

StatusOr<std::vector<v1::JobInfo>> JobStore::LoadAll() {
  std::vector<v1::JobInfo> out;
  Status status;
  writer_.RunSync([&] {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT submission_id, info FROM jobs ORDER BY submission_id", -1,
                           &st, nullptr) != SQLITE_OK) {
      status = Internal("job store " + path_ + ": " + sqlite3_errmsg(db_));
      return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      const auto* data = static_cast<const char*>(sqlite3_column_blob(st, 1));
      const int n = sqlite3_column_bytes(st, 1);
      v1::JobInfo j;
      if (!j.ParseFromArray(data, n)) {
        Log("skipping an unreadable row " +
            std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))));
        continue;
      }
      out.push_back(std::move(j));
    }
    sqlite3_finalize(st);
  });
  if (!status.ok()) return status;
  return out;
}

void JobStore::Put(const v1::JobInfo& job) {
  writer_.Post([this, id = job.submission_id(), status = v1::JobStatus_Name(job.status()),
                blob = job.SerializeAsString()] {
    if (Status s =
            Exec("INSERT OR REPLACE INTO jobs (submission_id, status, info) VALUES (?, ?, ?)",
                 {id, status, blob});
        !s.ok()) {
      Log(s.ToString());
    }
  });
}

void JobStore::Delete(const std::string& submission_id) {
  writer_.Post([this, submission_id] {
    if (Status s = Exec("DELETE FROM jobs WHERE submission_id = ?", {submission_id}); !s.ok()) {
      Log(s.ToString());
    }
  });
}

void JobStore::Flush() {
  writer_.RunSync([] {});
}

}  // namespace orrery::live

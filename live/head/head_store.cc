#include "live/head/head_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <iostream>
#include <type_traits>

#include "live/common/sqlite_file.h"

namespace orrery::live {

namespace {
void Log(const std::string& line) { std::cerr << "[head] head store: " << line << std::endl; }

constexpr HeadStore::Table kTables[] = {HeadStore::Table::kNodes, HeadStore::Table::kActors,
                                        HeadStore::Table::kGroups};
}  // namespace

const char* HeadStoreTableName(HeadStore::Table t) {
  switch (t) {
    case HeadStore::Table::kNodes:
      return "head_nodes";
    case HeadStore::Table::kActors:
      return "head_actors";
    case HeadStore::Table::kGroups:
      return "head_groups";
  }
  return "?";
}

StatusOr<std::unique_ptr<HeadStore>> HeadStore::Open(const std::string& path) {
  if (path.empty()) return InvalidArgument("head store: empty path");
  // Owner-only, never through a symlink (live/common/sqlite_file.h).
  auto db = OpenPrivateSqlite(path, "head store");
  if (!db.ok()) return db.status();
  std::unique_ptr<HeadStore> store(new HeadStore(*db, path));
  // Any statement reads the header: a file that is not a database fails here, naming it.
  Status s;
  store->writer_.RunSync([&] {
    s = store->Exec("PRAGMA journal_mode=WAL");
    if (s.ok()) s = store->Exec("PRAGMA synchronous=NORMAL");
    if (s.ok()) {
      s = store->Exec(
          "CREATE TABLE IF NOT EXISTS head_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    }
    for (Table t : kTables) {
      if (!s.ok()) break;
      s = store->Exec(std::string("CREATE TABLE IF NOT EXISTS ") + HeadStoreTableName(t) +
                      " (id TEXT PRIMARY KEY, info BLOB NOT NULL)");
    }
  });
  if (!s.ok()) return Status(StatusCode::kUnavailable, s.message());
  for (const char* suffix : {"-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  return store;
}

HeadStore::HeadStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

HeadStore::~HeadStore() {
  Flush();
  writer_.Stop();
  sqlite3_close(db_);
}

Status HeadStore::Exec(const std::string& sql, const std::vector<std::string>& params) {
  return ExecSqlite(db_, "head store " + path_, sql, params);
}

StatusOr<HeadStoreSnapshot> HeadStore::Load() {
  HeadStoreSnapshot out;
  Status status;
  writer_.RunSync([&] {
    auto read = [&](const std::string& sql, auto&& row) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
        status = Internal("head store " + path_ + ": " + sqlite3_errmsg(db_));
        return;
      }
      int rc;
      while (status.ok() && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const auto* key = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        const auto* data = static_cast<const char*>(sqlite3_column_blob(st, 1));
        status = row(std::string(key ? key : ""), data, sqlite3_column_bytes(st, 1));
      }
      if (status.ok() && rc != SQLITE_DONE) {
        status = Internal("head store " + path_ + ": " + sqlite3_errmsg(db_));
      }
      sqlite3_finalize(st);
    };
    read("SELECT key, value FROM head_meta", [&](const std::string& k, const char* d, int n) {
      if (k == "session_dir") out.session_dir.assign(d ? d : "", d ? n : 0);
      return Status::Ok();
    });
    auto parse = [&](Table t, auto* list) {
      if (!status.ok()) return;
      read(std::string("SELECT id, info FROM ") + HeadStoreTableName(t) + " ORDER BY id",
           [&](const std::string& id, const char* d, int n) {
             typename std::remove_reference_t<decltype(*list)>::value_type m;
             if (!m.ParseFromArray(d, n)) {
               return Status(StatusCode::kDataLoss,
                             "head store " + path_ + ": table " + HeadStoreTableName(t) +
                                 ", row '" + id + "': not a readable " +
                                 std::string(m.GetDescriptor()->name()) +
                                 " record (a corrupt store: move the file aside to start a new "
                                 "cluster state)");
             }
             list->push_back(std::move(m));
             return Status::Ok();
           });
    };
    parse(Table::kNodes, &out.nodes);
    parse(Table::kActors, &out.actors);
    parse(Table::kGroups, &out.groups);
  });
  if (!status.ok()) return status;
  return out;
}

void HeadStore::Write(Batch batch) {
  if (batch.empty()) return;
  writer_.Post([this, batch = std::move(batch)] {
    Status s = Exec("BEGIN");
    if (s.ok() && !batch.session_dir.empty()) {
      s = Exec("INSERT OR REPLACE INTO head_meta (key, value) VALUES ('session_dir', ?)",
               {batch.session_dir});
    }
    for (const auto& [t, id, blob] : batch.put) {
      if (!s.ok()) break;
      s = Exec(std::string("INSERT OR REPLACE INTO ") + HeadStoreTableName(t) +
                   " (id, info) VALUES (?, ?)",
               {id, blob});
    }
    for (const auto& [t, id] : batch.del) {
      if (!s.ok()) break;
      s = Exec(std::string("DELETE FROM ") + HeadStoreTableName(t) + " WHERE id = ?", {id});
    }
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      Log(s.ToString());
      (void)Exec("ROLLBACK");
    }
  });
}

Status HeadStore::Clear() {
  Status s;
  writer_.RunSync([&] {
    s = Exec("BEGIN");
    if (s.ok()) s = Exec("DELETE FROM head_meta");
    for (Table t : kTables) {
      if (s.ok()) s = Exec(std::string("DELETE FROM ") + HeadStoreTableName(t));
    }
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) (void)Exec("ROLLBACK");
  });
  return s;
}

void HeadStore::Flush() {
  writer_.RunSync([] {});
}

}  // namespace orrery::live

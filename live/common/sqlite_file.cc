#include "live/common/sqlite_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace orrery::live {

StatusOr<sqlite3*> OpenPrivateSqlite(const std::string& path, const std::string& what) {
  const std::string target = path.empty() ? ":memory:" : path;
  if (!path.empty()) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status(StatusCode::kUnavailable,
                    what + " " + path + ": " + std::strerror(errno) +
                        (errno == ELOOP ? " (a symbolic link: refused)" : ""));
    }
    ::fchmod(fd, 0600);
    ::close(fd);
    for (const char* suffix : {"-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(target.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status(StatusCode::kUnavailable, what + " " + target + ": " + why);
  }
  sqlite3_busy_timeout(db, 2000);
  return db;
}

Status ExecSqlite(sqlite3* db, const std::string& what, const std::string& sql,
                  const std::vector<std::string>& params) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    return Internal(what + ": " + sqlite3_errmsg(db));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    sqlite3_bind_blob(st, static_cast<int>(i + 1), params[i].data(),
                      static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return Internal(what + ": " + sqlite3_errmsg(db));
  return Status::Ok();
}

}  // namespace orrery::live

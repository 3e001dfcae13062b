// The SQLite file of a daemon's store (the head's job store and its crash-safe head store): how
// it is opened and how a statement runs, so both stores do it the same way.
//
// Thread safety: plain functions; a connection is used by one thread at a time (each store runs
// every statement on its own writer thread).
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

#include "core/status.h"

namespace orrery::live {

// Opens (creating if missing) the database at `path`, or an in-memory one when `path` is empty.
// A file is created owner-only (0600) before SQLite touches it, so its -wal and -shm files take
// that mode (stores hold tokens' neighbours: runtime-env values, actor specs), and it is never
// opened through a symbolic link. Busy timeout 2 s. Unavailable naming `what` and the path
// ("job store /x/job_store.sqlite: ...") otherwise. The caller closes the connection.
StatusOr<sqlite3*> OpenPrivateSqlite(const std::string& path, const std::string& what);

// Runs `sql` with `params` bound as blobs to ?1, ?2, ..., stepping over any rows it returns.
// Internal naming `what` and SQLite's message on failure.
Status ExecSqlite(sqlite3* db, const std::string& what, const std::string& sql,
                  const std::vector<std::string>& params = {});

}  // namespace orrery::live

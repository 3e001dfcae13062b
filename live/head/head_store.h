// HeadStore: what the live head must not lose when its process dies (DESIGN section 12), in an
// embedded SQLite database kept like the job store (live/head/jobs/job_store.h: owner-only, WAL,
// its own writer thread), by default <session dir>/head_store.sqlite: one per session, so two
// heads on one temp dir never share it (the job store is shared on purpose: job records outlive
// sessions). SQLite gives atomic, crash-safe transactions without a hand-written file format;
// the job store already links it. Jobs themselves stay in the job store.
//
// Tables (one row per record; the value is the serialized proto message, the same one the head
// serves, so a restore is a parse and no second schema can drift):
//   head_meta(key, value)        "session_dir": the session the state below belongs to
//   head_nodes(id, info)         v1::NodeInfo   id, address, state, totals (committed bundles
//                                               included), labels, head-node flag, pid, metrics
//   head_actors(id, info)        v1::ActorInfo  the actor directory (class, node, worker pid,
//                                               state, restarts, max_restarts, job, driver)
//   head_groups(id, info)        v1::PlacementGroupInfo  strategy, bundles, state, node of
//                                               each bundle, attempts
// There is no KV store in the head today (Ray's internal KV has no counterpart here), so none is
// persisted. Tasks are not persisted either: nodes re-send what they hold (their heartbeats carry
// every task update the head has not acknowledged).
//
// Durability: journal_mode=WAL, synchronous=NORMAL. A committed transaction survives the head
// process dying (kill -9, a crash): the WAL is in the OS's page cache. It may be lost if the
// machine itself loses power before the next checkpoint (NORMAL does not fsync each commit);
// synchronous=FULL would fsync every commit and is not worth it for state that nodes and drivers
// re-report. Writes are batched: the head hands one Batch per loop tick (100 ms) to the store's
// own thread, which applies it as one transaction, so neither the loop nor gRPC threads wait for
// the disk, and a kill -9 loses at most the last tick's changes.
//
// Thread safety: Open and Load from one thread before the first Write; Write, Flush and Clear are
// thread-safe and applied in call order.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/status.h"
#include "live/rpc/event_loop.h"
#include "orrery.pb.h"

struct sqlite3;

namespace orrery::live {

// Everything a store holds.
struct HeadStoreSnapshot {
  std::string session_dir;  // empty: none recorded (a new store)
  std::vector<v1::NodeInfo> nodes;
  std::vector<v1::ActorInfo> actors;
  std::vector<v1::PlacementGroupInfo> groups;
  bool empty() const { return nodes.empty() && actors.empty() && groups.empty(); }
};

class HeadStore {
 public:
  enum class Table { kNodes, kActors, kGroups };

  // One transaction: rows to insert or replace (serialized messages) and rows to delete, by id.
  struct Batch {
    std::string session_dir;  // non-empty: recorded as the session the state belongs to
    std::vector<std::tuple<Table, std::string, std::string>> put;  // table, id, message bytes
    std::vector<std::pair<Table, std::string>> del;
    bool empty() const { return session_dir.empty() && put.empty() && del.empty(); }
  };

  // Opens (creating it and its tables if needed, owner-only) the database at `path`.
  // Unavailable naming the file if it cannot be opened or is not an SQLite database.
  static StatusOr<std::unique_ptr<HeadStore>> Open(const std::string& path);
  // Flushes queued writes and closes the database.
  ~HeadStore();
  HeadStore(const HeadStore&) = delete;
  HeadStore& operator=(const HeadStore&) = delete;

  // Every stored record. DataLoss naming the file, the table and the row if a row cannot be
  // parsed (a corrupt store is an error, never a partial restore).
  StatusOr<HeadStoreSnapshot> Load();
  // Applies `batch` as one transaction (asynchronous; an error is logged to stderr).
  void Write(Batch batch);
  // Removes every node, actor and group row and the session (synchronously): a clean stop, or a
  // new session that does not take over the old state.
  Status Clear();
  // Waits until every Write called before it is committed.
  void Flush();

  const std::string& path() const { return path_; }

 private:
  HeadStore(sqlite3* db, std::string path);
  Status Exec(const std::string& sql, const std::vector<std::string>& params = {});

  sqlite3* db_;
  const std::string path_;
  EventLoop writer_;  // the store thread: every statement after Open runs here
};

const char* HeadStoreTableName(HeadStore::Table t);  // "head_nodes" | "head_actors" | "head_groups"

}  // namespace orrery::live

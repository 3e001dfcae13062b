// HeadStore (live/head/head_store.h): the round trip of nodes, actors and placement groups through
// the SQLite file, batched writes and deletes, Clear, and bad input: a file that is not a
// database and a row that does not parse are errors naming the file (and the table and row).
#include "live/head/head_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace orrery::live {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(HeadStoreTest, RecordsSurviveReopenAndDeletesApply) {
  const fs::path path = TempDir("head_store_rt") / "store.sqlite";
  v1::NodeInfo n;
  n.set_node_id("n1");
  n.set_address("127.0.0.1:1234");
  n.set_state(v1::NODE_STATE_ALIVE);
  (*n.mutable_labels())["zone"] = "a";
  v1::ActorInfo a;
  a.set_actor_id("d1-actor-1");
  a.set_class_name("Counter");
  a.set_node_id("n1");
  a.set_worker_pid(42);
  a.set_state(v1::ACTOR_STATE_ALIVE);
  a.set_max_restarts(-1);
  v1::PlacementGroupInfo g;
  g.set_group_id("pg1");
  g.set_strategy("SPREAD");
  g.set_state(v1::PLACEMENT_GROUP_STATE_CREATED);
  g.add_bundle_nodes("n1");
  g.add_bundles();
  {
    auto store = HeadStore::Open(path.string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto empty = (*store)->Load();
    ASSERT_TRUE(empty.ok());
    EXPECT_TRUE(empty->empty());
    EXPECT_EQ(empty->session_dir, "");
    HeadStore::Batch b;
    b.session_dir = "/tmp/session_x";
    b.put.emplace_back(HeadStore::Table::kNodes, "n1", n.SerializeAsString());
    b.put.emplace_back(HeadStore::Table::kNodes, "n2", n.SerializeAsString());
    b.put.emplace_back(HeadStore::Table::kActors, a.actor_id(), a.SerializeAsString());
    b.put.emplace_back(HeadStore::Table::kGroups, "pg1", g.SerializeAsString());
    (*store)->Write(std::move(b));
    HeadStore::Batch del;
    del.del.emplace_back(HeadStore::Table::kNodes, "n2");
    (*store)->Write(std::move(del));
  }  // the destructor flushes
  // Owner-only: it holds the cluster's membership.
  EXPECT_EQ(fs::status(path).permissions() & (fs::perms::group_all | fs::perms::others_all),
            fs::perms::none);
  auto store = HeadStore::Open(path.string());
  ASSERT_TRUE(store.ok());
  auto snap = (*store)->Load();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->session_dir, "/tmp/session_x");
  ASSERT_EQ(snap->nodes.size(), 1u);
  EXPECT_EQ(snap->nodes[0].address(), "127.0.0.1:1234");
  EXPECT_EQ(snap->nodes[0].labels().at("zone"), "a");
  ASSERT_EQ(snap->actors.size(), 1u);
  EXPECT_EQ(snap->actors[0].worker_pid(), 42);
  EXPECT_EQ(snap->actors[0].max_restarts(), -1);
  ASSERT_EQ(snap->groups.size(), 1u);
  EXPECT_EQ(snap->groups[0].bundle_nodes(0), "n1");
  EXPECT_EQ(snap->groups[0].state(), v1::PLACEMENT_GROUP_STATE_CREATED);
  ASSERT_TRUE((*store)->Clear().ok());
  auto cleared = (*store)->Load();
  ASSERT_TRUE(cleared.ok());
  EXPECT_TRUE(cleared->empty());
  EXPECT_EQ(cleared->session_dir, "");
}

TEST(HeadStoreTest, AFileThatIsNotADatabaseIsAnErrorNamingIt) {
  const fs::path path = TempDir("head_store_bad") / "store.sqlite";
  {
    std::ofstream out(path);
    out << "this is not an SQLite database, just text that is long enough to have a header\n";
  }
  auto store = HeadStore::Open(path.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path.string()), std::string::npos)
      << store.status().ToString();
}

TEST(HeadStoreTest, AnUnreadableRowIsAnErrorNamingFileTableAndRow) {
  const fs::path path = TempDir("head_store_row") / "store.sqlite";
  ASSERT_TRUE(HeadStore::Open(path.string()).ok());
  {  // a row written by something else: bytes that are no ActorInfo
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO head_actors (id, info) VALUES ('bad', x'ffffffff0f')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = HeadStore::Open(path.string());
  ASSERT_TRUE(store.ok());
  auto snap = (*store)->Load();
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), StatusCode::kDataLoss);
  const std::string& m = snap.status().message();
  EXPECT_NE(m.find(path.string()), std::string::npos) << m;
  EXPECT_NE(m.find("head_actors"), std::string::npos) << m;
  EXPECT_NE(m.find("'bad'"), std::string::npos) << m;
}

TEST(HeadStoreTest, AnUnwritableLocationIsAnError) {
  auto store = HeadStore::Open("/nonexistent/dir/store.sqlite");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/nonexistent/dir/store.sqlite"), std::string::npos);
}

}  // namespace
}  // namespace orrery::live

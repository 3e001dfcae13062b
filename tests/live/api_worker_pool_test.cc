// ApiWorkerPool's start concurrency (live/worker/worker.h): at most max_starting workers start at
// once, the rest wait in FIFO order; a lease released while waiting never starts; a worker that
// hangs while starting frees its slot after start_slot_timeout. Real child processes through a
// real ProcessSupervisor: the "worker" is a shell script that logs when it starts and when it is
// ready, and speaks the pool's protocol (`ready <port>` on stdout, then waits for stdin EOF).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "live/common/process.h"
#include "live/worker/worker.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The node's loop, reduced to a queue the test pumps (closures and timers).
class TestLoop {
 public:
  void Post(std::function<void()> f) {
    std::lock_guard<std::mutex> l(mu_);
    q_.push_back(std::move(f));
    cv_.notify_all();
  }
  void PostAfter(milliseconds d, std::function<void()> f) {
    std::lock_guard<std::mutex> l(mu_);
    timers_.emplace(Clock::now() + d, std::move(f));
    cv_.notify_all();
  }
  // Runs closures and due timers until `done` or `limit` passed; true if done.
  bool RunUntil(const std::function<bool()>& done, milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() > end) return false;
      std::function<void()> f;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait_for(l, milliseconds(20), [&] { return !q_.empty(); });
        if (!q_.empty()) {
          f = std::move(q_.front());
          q_.pop_front();
        } else if (!timers_.empty() && timers_.begin()->first <= Clock::now()) {
          f = std::move(timers_.begin()->second);
          timers_.erase(timers_.begin());
        }
      }
      if (f) f();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  std::multimap<Clock::time_point, std::function<void()>> timers_;
};

class ApiWorkerPoolStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("orrery_pool_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    log_ = dir_ / "events";
    exe_ = dir_ / "fake_worker.sh";
    // argv: exe __api_worker --library LIB; LIB "hang" never gets ready.
    std::ofstream(exe_) << "#!/bin/sh\n"
                        << "echo \"start $$\" >> '" << log_.string() << "'\n"
                        << "if [ \"$3\" = hang ]; then exec sleep 60; fi\n"
                        << "sleep 0.5\n"
                        << "echo \"ready $$\" >> '" << log_.string() << "'\n"
                        << "echo 'ready 1'\n"
                        << "exec cat > /dev/null\n";
    fs::permissions(exe_, fs::perms::owner_all);
  }
  void TearDown() override {
    pool_.reset();
    supervisor_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void MakePool(int max_starting, milliseconds slot_timeout = milliseconds(10000)) {
    ApiWorkerPoolOptions o;
    o.exe = exe_.string();
    o.max_starting = max_starting;
    o.start_slot_timeout = slot_timeout;
    ApiWorkerPoolHooks h;
    h.post_after = [this](milliseconds d, std::function<void()> f) {
      loop_.PostAfter(d, std::move(f));
    };
    pool_ = std::make_unique<ApiWorkerPool>(
        supervisor_.get(), o, [this](std::function<void()> f) { loop_.Post(std::move(f)); }, h);
  }
  // Asks for a new worker for `lease`; its readiness lands in ready_[lease].
  void Acquire(const std::string& lease, const std::string& library = "lib.so") {
    ApiWorkerSpec spec;
    spec.library = library;
    pool_->Acquire(lease, 0, agent::WorkerAction::kStart, false, spec,
                   [this, lease](StatusOr<std::pair<pid_t, std::string>> r) {
                     ready_[lease] = r.ok() ? "ok" : r.status().ToString();
                   },
                   [](const std::string&) {});
  }
  // The most workers that had started and were not yet ready at one time, from the event log.
  int MaxConcurrentStarts(int* starts) const {
    std::ifstream in(log_);
    std::string kind, pid;
    int now = 0, most = 0;
    *starts = 0;
    while (in >> kind >> pid) {
      if (kind == "start") ++*starts;
      now += kind == "start" ? 1 : -1;
      most = std::max(most, now);
    }
    return most;
  }

  fs::path dir_, log_, exe_;
  TestLoop loop_;
  std::unique_ptr<ProcessSupervisor> supervisor_ = std::make_unique<ProcessSupervisor>();
  std::unique_ptr<ApiWorkerPool> pool_;
  std::map<std::string, std::string> ready_;
};

TEST_F(ApiWorkerPoolStartTest, StartsAtMostMaxStartingWorkersAtOnce) {
  MakePool(2);
  for (int i = 0; i < 6; ++i) Acquire("lease-" + std::to_string(i));
  EXPECT_EQ(pool_->num_starting(), 2u);
  EXPECT_EQ(pool_->num_start_queued(), 4u);
  ASSERT_TRUE(loop_.RunUntil([&] { return ready_.size() == 6; }, milliseconds(20000)));
  for (const auto& [lease, r] : ready_) EXPECT_EQ(r, "ok") << lease;
  int starts = 0;
  EXPECT_EQ(MaxConcurrentStarts(&starts), 2);
  EXPECT_EQ(starts, 6);
  EXPECT_EQ(pool_->num_starting(), 0u);
  EXPECT_EQ(pool_->num_workers(), 6u);
}

TEST_F(ApiWorkerPoolStartTest, UnlimitedWhenMaxStartingIsZero) {
  MakePool(0);
  for (int i = 0; i < 4; ++i) Acquire("lease-" + std::to_string(i));
  EXPECT_EQ(pool_->num_start_queued(), 0u);
  ASSERT_TRUE(loop_.RunUntil([&] { return ready_.size() == 4; }, milliseconds(20000)));
  int starts = 0;
  EXPECT_GE(MaxConcurrentStarts(&starts), 3);  // more at once than any limit of 2 allows
}

TEST_F(ApiWorkerPoolStartTest, LeaseReleasedWhileWaitingNeverStarts) {
  MakePool(1);
  Acquire("first");
  Acquire("released");
  Acquire("last");
  pool_->Release("released");
  EXPECT_EQ(pool_->num_start_queued(), 1u);
  ASSERT_TRUE(loop_.RunUntil([&] { return ready_.size() == 2; }, milliseconds(20000)));
  EXPECT_EQ(ready_.count("released"), 0u);
  EXPECT_EQ(ready_["first"], "ok");
  EXPECT_EQ(ready_["last"], "ok");
  int starts = 0;
  EXPECT_EQ(MaxConcurrentStarts(&starts), 1);
  EXPECT_EQ(starts, 2);
}

TEST_F(ApiWorkerPoolStartTest, HungStartFreesItsSlotAfterTheTimeout) {
  MakePool(1, milliseconds(300));
  Acquire("hangs", "hang");
  Acquire("next");
  EXPECT_EQ(pool_->num_start_queued(), 1u);
  ASSERT_TRUE(loop_.RunUntil([&] { return ready_.count("next") == 1; }, milliseconds(20000)));
  EXPECT_EQ(ready_["next"], "ok");
  EXPECT_EQ(ready_.count("hangs"), 0u);  // still starting; it just holds nobody back
  EXPECT_EQ(pool_->num_starting(), 0u);
}

}  // namespace
}  // namespace orrery::live

// LogHub: the head's log pub/sub. Node log monitors publish batches of worker lines
// (HeadService.PublishLogs); drivers subscribe to a job's lines (HeadService.SubscribeLogs).
//
// Publishing never waits for a subscriber: each subscription has its own bounded buffer
// [max_buffered_lines = 100000 lines and max_buffered_bytes = 16 MiB of line text]; when a slow
// subscriber's buffer is full the oldest lines are dropped and counted, and the next batch it
// receives carries the count (LogBatch.dropped_lines) so the driver can say "N lines dropped".
// Nothing is stored for later subscribers.
//
// The hub is its own piece of state, apart from the head's loop: its methods take a short lock
// (no I/O, no waiting), so the head's handlers call them directly.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "orrery.grpc.pb.h"

namespace orrery::live {

struct LogHubOptions {
  size_t max_buffered_lines = 100000;       // per subscription; REQUIRES: > 0
  size_t max_buffered_bytes = 16ull << 20;  // per subscription, line text; REQUIRES: > 0
  // --- dashboard: recent lines kept for the log pages, per job, per node and over all: the
  // last recent_lines of each (recent_keys jobs and nodes at most, the least recently written
  // forgotten first). Lines longer than 4 KiB are cut.
  size_t recent_lines = 2000;
  size_t recent_keys = 1000;
};

// --- dashboard: one published batch as kept in the recent rings, numbered in publish order.
struct RecentLogBatch {
  int64_t seq = 0;
  v1::LogBatch batch;
};

class LogSubscription;

class LogHub {
 public:
  explicit LogHub(LogHubOptions options = {});
  ~LogHub();

  // Hands each batch to every live subscription of its job (or of all jobs). O(subscriptions).
  void Publish(const v1::PublishLogsRequest& req);
  // A new subscription for `job_id` (empty: all), already holding the empty first batch. The
  // reactor belongs to gRPC (it goes when the call is done).
  grpc::ServerWriteReactor<v1::LogBatch>* Subscribe(const std::string& job_id);
  // Ends every subscription with `status` (head stopping); later Subscribe calls end at once.
  void CloseAll(const grpc::Status& status);
  size_t num_subscriptions() const;

  // --- dashboard: kept batches with seq > `after` of job `job_id` (or, when empty, of node
  // `node_id`; both empty: all), oldest first, at most `max_batches`.
  std::vector<std::shared_ptr<const RecentLogBatch>> Recent(const std::string& job_id,
                                                            const std::string& node_id,
                                                            int64_t after,
                                                            size_t max_batches) const;
  int64_t last_seq() const;

 private:
  struct Ring {
    std::deque<std::shared_ptr<const RecentLogBatch>> batches;
    size_t lines = 0;
    int64_t last_seq = 0;
  };
  void Keep(std::map<std::string, Ring>& rings, const std::string& key,
            const std::shared_ptr<const RecentLogBatch>& b);

  const LogHubOptions options_;
  mutable std::mutex mu_;
  int64_t next_seq_ = 1;
  std::map<std::string, Ring> by_job_, by_node_, all_;  // all_: one ring under ""
  bool closed_ = false;
  std::vector<std::shared_ptr<LogSubscription>> subs_;
};

}  // namespace orrery::live

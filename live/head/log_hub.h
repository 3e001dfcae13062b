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

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "orrery.grpc.pb.h"

namespace orrery::live {

struct LogHubOptions {
  size_t max_buffered_lines = 100000;       // per subscription; REQUIRES: > 0
  size_t max_buffered_bytes = 16ull << 20;  // per subscription, line text; REQUIRES: > 0
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

 private:
  const LogHubOptions options_;
  mutable std::mutex mu_;
  bool closed_ = false;
  std::vector<std::shared_ptr<LogSubscription>> subs_;
};

}  // namespace orrery::live

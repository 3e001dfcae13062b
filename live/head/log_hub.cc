#include "live/head/log_hub.h"

#include <deque>

namespace orrery::live {

// One SubscribeLogs call: a bounded queue of batches, one write in flight at a time.
class LogSubscription : public grpc::ServerWriteReactor<v1::LogBatch> {
 public:
  static std::shared_ptr<LogSubscription> Create(std::string job_id, size_t max_lines,
                                                 size_t max_bytes) {
    std::shared_ptr<LogSubscription> s(
        new LogSubscription(std::move(job_id), max_lines, max_bytes));
    s->self_ = s;
    return s;
  }

  const std::string& job_id() const { return job_id_; }

  void Push(const v1::LogBatch& b) {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ || closing_) return;
    queue_.push_back(b);
    queued_lines_ += static_cast<size_t>(b.lines_size());
    queued_bytes_ += BytesOf(b);
    // Full: drop the oldest lines, one at a time from the front.
    while ((queued_lines_ > max_lines_ || queued_bytes_ > max_bytes_) && !queue_.empty()) {
      v1::LogBatch& front = queue_.front();
      if (front.lines_size() == 0) {
        queue_.pop_front();
        continue;
      }
      // How many of the front batch's lines must go (at least one).
      int cut = 0;
      size_t lines = queued_lines_, bytes = queued_bytes_;
      while (cut < front.lines_size() && (lines > max_lines_ || bytes > max_bytes_)) {
        bytes -= front.lines(cut).size();
        --lines;
        ++cut;
      }
      front.mutable_lines()->DeleteSubrange(0, cut);
      dropped_ += cut;
      queued_lines_ = lines;
      queued_bytes_ = bytes;
      if (front.lines_size() == 0) queue_.pop_front();
    }
    MaybeWriteLocked();
  }
  void Close(const grpc::Status& status) {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ || closing_) return;
    closing_ = true;
    final_ = status;
    MaybeWriteLocked();
  }
  bool done() const {
    std::lock_guard<std::mutex> l(mu_);
    return done_ || closing_;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      queued_lines_ = 0;
      queued_bytes_ = 0;
      if (!closing_) {
        closing_ = true;
        final_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
      }
    }
    MaybeWriteLocked();
  }
  void OnCancel() override { Close(grpc::Status(grpc::StatusCode::CANCELLED, "canceled")); }
  void OnDone() override {
    std::shared_ptr<LogSubscription> keep;
    std::lock_guard<std::mutex> l(mu_);
    done_ = true;
    keep = std::move(self_);
    // `keep` may be the last reference; it is released after the lock (declared before it).
  }

 private:
  LogSubscription(std::string job_id, size_t max_lines, size_t max_bytes)
      : job_id_(std::move(job_id)),
        max_lines_(max_lines > 0 ? max_lines : 1),
        max_bytes_(max_bytes > 0 ? max_bytes : 1) {}

  static size_t BytesOf(const v1::LogBatch& b) {
    size_t n = 0;
    for (const auto& l : b.lines()) n += l.size();
    return n;
  }

  void MaybeWriteLocked() {
    if (writing_ || finished_) return;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      queued_lines_ -= static_cast<size_t>(current_.lines_size());
      queued_bytes_ -= BytesOf(current_);
      current_.set_dropped_lines(dropped_);
      dropped_ = 0;
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (closing_) {
      finished_ = true;
      Finish(final_);
    }
  }

  const std::string job_id_;
  const size_t max_lines_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::deque<v1::LogBatch> queue_;
  size_t queued_lines_ = 0;
  size_t queued_bytes_ = 0;
  int64_t dropped_ = 0;
  v1::LogBatch current_;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool done_ = false;
  grpc::Status final_;
  std::shared_ptr<LogSubscription> self_;
};

LogHub::LogHub(LogHubOptions options) : options_(options) {}

LogHub::~LogHub() { CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping")); }

void LogHub::Publish(const v1::PublishLogsRequest& req) {
  std::lock_guard<std::mutex> l(mu_);
  std::erase_if(subs_, [](const auto& s) { return s->done(); });
  for (const auto& b : req.batches()) {
    if (b.lines_size() == 0) continue;
    for (const auto& s : subs_) {
      if (s->job_id().empty() || s->job_id() == b.job_id()) s->Push(b);
    }
    // --- dashboard: the recent rings.
    auto kept = std::make_shared<RecentLogBatch>();
    kept->seq = next_seq_++;
    kept->batch = b;
    const size_t max_lines = options_.recent_lines;
    auto* lines = kept->batch.mutable_lines();
    if (static_cast<size_t>(lines->size()) > max_lines) {
      lines->DeleteSubrange(0, lines->size() - static_cast<int>(max_lines));
    }
    for (auto& line : *lines) {
      if (line.size() > 4096) line.resize(4096);
    }
    std::shared_ptr<const RecentLogBatch> c = std::move(kept);
    Keep(all_, "", c);
    if (!b.job_id().empty()) Keep(by_job_, b.job_id(), c);
    if (!b.node_id().empty()) Keep(by_node_, b.node_id(), c);
  }
}

void LogHub::Keep(std::map<std::string, Ring>& rings, const std::string& key,
                  const std::shared_ptr<const RecentLogBatch>& b) {
  Ring& r = rings[key];
  r.batches.push_back(b);
  r.lines += static_cast<size_t>(b->batch.lines_size());
  r.last_seq = b->seq;
  while (r.lines > options_.recent_lines && r.batches.size() > 1) {
    r.lines -= static_cast<size_t>(r.batches.front()->batch.lines_size());
    r.batches.pop_front();
  }
  if (rings.size() > options_.recent_keys) {  // forget the least recently written key
    auto oldest = rings.begin();
    for (auto it = rings.begin(); it != rings.end(); ++it) {
      if (it->second.last_seq < oldest->second.last_seq) oldest = it;
    }
    rings.erase(oldest);
  }
}

std::vector<std::shared_ptr<const RecentLogBatch>> LogHub::Recent(const std::string& job_id,
                                                                  const std::string& node_id,
                                                                  int64_t after,
                                                                  size_t max_batches) const {
  std::lock_guard<std::mutex> l(mu_);
  const std::map<std::string, Ring>& rings = !job_id.empty()    ? by_job_
                                             : !node_id.empty() ? by_node_
                                                                : all_;
  auto it = rings.find(!job_id.empty() ? job_id : node_id);
  std::vector<std::shared_ptr<const RecentLogBatch>> out;
  if (it == rings.end()) return out;
  for (const auto& b : it->second.batches) {
    if (b->seq <= after) continue;
    if (out.size() >= max_batches) break;
    out.push_back(b);
  }
  return out;
}

int64_t LogHub::last_seq() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_seq_ - 1;
}

grpc::ServerWriteReactor<v1::LogBatch>* LogHub::Subscribe(const std::string& job_id) {
  auto s =
      LogSubscription::Create(job_id, options_.max_buffered_lines, options_.max_buffered_bytes);
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) {
    s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
    return s.get();
  }
  s->Push(v1::LogBatch());  // the empty first batch: the subscription is in place
  subs_.push_back(s);
  return s.get();
}

void LogHub::CloseAll(const grpc::Status& status) {
  std::lock_guard<std::mutex> l(mu_);
  closed_ = true;
  for (const auto& s : subs_) s->Close(status);
  subs_.clear();
}

size_t LogHub::num_subscriptions() const {
  std::lock_guard<std::mutex> l(mu_);
  size_t n = 0;
  for (const auto& s : subs_) n += s->done() ? 0 : 1;
  return n;
}

}  // namespace orrery::live

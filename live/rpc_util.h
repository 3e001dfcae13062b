// Small gRPC helpers shared by the daemons and the client: the cluster token on both sides of a
// call, and StreamWriter, a server-streaming reactor that any thread can feed.
//
// Thread safety: CheckToken and AttachToken are pure. StreamWriter::Push/Close are thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace orrery::live {

// Metadata key and scheme of the cluster token: `authorization: Bearer <token>`.
inline constexpr const char* kAuthMetadataKey = "authorization";

// OK if the call carries `authorization: Bearer <token>`; UNAUTHENTICATED otherwise. Compares in
// time independent of where the strings differ.
grpc::Status CheckToken(const grpc::ServerContextBase& ctx, const std::string& token);
// Adds the token to an outgoing call.
void AttachToken(grpc::ClientContext* ctx, const std::string& token);

// A server-streaming call fed from any thread. Messages are written in Push order, one write in
// flight at a time; Close() finishes the call once everything pushed before it is written.
// With keep_latest_only, a message pushed while another waits replaces it (cluster-view
// broadcasts: a slow watcher gets the newest view, not a backlog).
//
// Lifetime: create with Create(); gRPC and every holder of the shared_ptr keep it alive; after
// the call is done (OnDone) Push/Close are no-ops and done() is true.
template <typename Msg>
class StreamWriter : public grpc::ServerWriteReactor<Msg> {
 public:
  static std::shared_ptr<StreamWriter> Create(bool keep_latest_only,
                                              std::function<void()> on_cancel = nullptr) {
    std::shared_ptr<StreamWriter> w(new StreamWriter(keep_latest_only, std::move(on_cancel)));
    w->self_ = w;
    return w;
  }

  // A bound on what waits to be written (a process's output: the reader may be slower than
  // the writer). `droppable_bytes` says how many bytes a message counts (0: never dropped);
  // once the waiting messages count more than `max_bytes`, the oldest droppable ones are
  // dropped and counted, and `marker(messages, bytes)` is written before the next message
  // (as the log hub does). Set before the first Push.
  struct Bound {
    size_t max_bytes = 0;
    std::function<size_t(const Msg&)> droppable_bytes;
    std::function<Msg(uint64_t dropped_messages, uint64_t dropped_bytes)> marker;
  };
  void SetBound(Bound b) {
    std::lock_guard<std::mutex> l(mu_);
    bound_ = std::move(b);
  }
  // `fn` runs (outside the lock, on a gRPC thread) each time a write completes with nothing
  // left to write and the call still open: a producer that pushes one message at a time keeps
  // one write in flight (flow control). Set before the first Push.
  void SetOnDrained(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    on_drained_ = std::move(fn);
  }

  void Push(Msg m) {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ || closing_) return;
    if (keep_latest_only_ && !queue_.empty()) queue_.pop_back();
    if (bound_.max_bytes > 0) {
      queued_bytes_ += bound_.droppable_bytes(m);
      queue_.push_back(std::move(m));
      for (auto it = queue_.begin(); queued_bytes_ > bound_.max_bytes && it != queue_.end();) {
        const size_t n = bound_.droppable_bytes(*it);
        if (n == 0) {
          ++it;
          continue;
        }
        queued_bytes_ -= n;
        ++dropped_messages_;
        dropped_bytes_ += n;
        it = queue_.erase(it);
      }
    } else {
      queue_.push_back(std::move(m));
    }
    MaybeWriteLocked();
  }
  void Close(grpc::Status status) {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ || closing_) return;
    closing_ = true;
    final_status_ = std::move(status);
    MaybeWriteLocked();
  }
  bool done() const {
    std::lock_guard<std::mutex> l(mu_);
    return done_ || closing_;
  }

  void OnWriteDone(bool ok) override {
    std::function<void()> drained;
    {
      std::lock_guard<std::mutex> l(mu_);
      writing_ = false;
      if (!ok) {
        // The client is gone: drop what is queued and finish.
        queue_.clear();
        queued_bytes_ = 0;
        if (!closing_) {
          closing_ = true;
          final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
        }
      }
      MaybeWriteLocked();
      if (!writing_ && !closing_ && !done_) drained = on_drained_;
    }
    if (drained) drained();
  }
  void OnCancel() override {
    if (on_cancel_) on_cancel_();
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "canceled by the client"));
  }
  void OnDone() override {
    std::shared_ptr<StreamWriter> keep;
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
      keep = std::move(self_);
    }
    // `keep` may be the last reference: this object is destroyed when it goes out of scope.
  }

 private:
  StreamWriter(bool keep_latest_only, std::function<void()> on_cancel)
      : keep_latest_only_(keep_latest_only), on_cancel_(std::move(on_cancel)) {}
  void MaybeWriteLocked() {
    if (writing_ || finished_) return;
    if (dropped_messages_ > 0) {
      current_ = bound_.marker(dropped_messages_, dropped_bytes_);
      dropped_messages_ = dropped_bytes_ = 0;
      writing_ = true;
      this->StartWrite(&current_);
      return;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      if (bound_.max_bytes > 0) queued_bytes_ -= bound_.droppable_bytes(current_);
      writing_ = true;
      this->StartWrite(&current_);
      return;
    }
    if (closing_) {
      finished_ = true;
      this->Finish(final_status_);
    }
  }

  const bool keep_latest_only_;
  std::function<void()> on_cancel_;
  mutable std::mutex mu_;
  std::deque<Msg> queue_;
  Msg current_;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool done_ = false;
  grpc::Status final_status_;
  std::shared_ptr<StreamWriter> self_;
  Bound bound_;
  size_t queued_bytes_ = 0;                            // droppable bytes in queue_
  uint64_t dropped_messages_ = 0, dropped_bytes_ = 0;  // since the last marker
  std::function<void()> on_drained_;
};

// A unary reactor that reports a client cancellation (deadline, disconnect) to its owner.
// Finish() must be called exactly once by the owner; the object deletes itself when done.
class NotifyingUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  explicit NotifyingUnaryReactor(std::function<void()> on_cancel)
      : on_cancel_(std::move(on_cancel)) {}
  void OnCancel() override {
    if (on_cancel_) on_cancel_();
  }
  void OnDone() override { delete this; }

 private:
  std::function<void()> on_cancel_;
};

}  // namespace orrery::live

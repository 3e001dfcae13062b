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

#include "core/status.h"

namespace orrery::live {

// --- TLS: the only factories of gRPC credentials in live/ (tests/live/tls_lint_test.sh keeps
// it so). With a TLS identity installed (ProcessTls(), live/common/tls.h) they make mutual-TLS
// credentials: servers require and verify a client certificate signed by the cluster CA, clients
// present theirs and verify the server's against the CA (not its host name: see the .cc);
// without one, plaintext. The cluster token is checked on top either way.
std::shared_ptr<grpc::ChannelCredentials> ClientCredentials();
std::shared_ptr<grpc::ServerCredentials> ServerCredentials();
// A channel to `address` with ClientCredentials() (and `args`).
std::shared_ptr<grpc::Channel> OpenChannel(const std::string& address,
                                           const grpc::ChannelArguments& args = {});

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
// Flow control (issue 12.3): the queue is bounded. A Push that would hold more than
// kMaxQueuedBytes unwritten (a client that does not read) finishes the call RESOURCE_EXHAUSTED
// and drops the queue. Producers of bulk data instead pull: SetOnDrained's callback runs each
// time a write completes with nothing queued, and they push the next message only then (see
// StreamFileChunks in live/common/file_stream.h), so at most one message per stream is in memory.
//
// Lifetime: create with Create(); gRPC and every holder of the shared_ptr keep it alive; after
// the call is done (OnDone) Push/Close are no-ops, done() is true, and the queue and both
// callbacks (with whatever they captured) are released.
template <typename Msg>
class StreamWriter : public grpc::ServerWriteReactor<Msg> {
 public:
  static constexpr size_t kMaxQueuedBytes = size_t{64} << 20;

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
  void Push(Msg m) {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ || closing_) return;
    if (keep_latest_only_ && !queue_.empty()) {
      queued_bytes_ -= queue_.back().ByteSizeLong();
      queue_.pop_back();
    }
    if (bound_.max_bytes > 0) {  // the oldest output goes first, long before the hard cap
      droppable_bytes_ += bound_.droppable_bytes(m);
      for (auto it = queue_.begin(); droppable_bytes_ > bound_.max_bytes && it != queue_.end();) {
        const size_t n = bound_.droppable_bytes(*it);
        if (n == 0) {
          ++it;
          continue;
        }
        droppable_bytes_ -= n;
        queued_bytes_ -= it->ByteSizeLong();
        ++dropped_messages_;
        dropped_bytes_ += n;
        it = queue_.erase(it);
      }
    }
    queued_bytes_ += m.ByteSizeLong();
    if (queued_bytes_ > kMaxQueuedBytes) {
      queue_.clear();
      queued_bytes_ = droppable_bytes_ = 0;
      closing_ = true;
      final_status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "the client does not read: more than " +
                                       std::to_string(kMaxQueuedBytes) + " bytes unsent");
      MaybeWriteLocked();
      return;
    }
    queue_.push_back(std::move(m));
    MaybeWriteLocked();
  }
  // `fn` runs (on a gRPC thread, no lock held) each time a write completes with nothing queued
  // while the stream is open. REQUIRES: `fn` does not block (post the work to a loop).
  void SetOnDrained(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    if (!done_) on_drained_ = std::move(fn);
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
        queued_bytes_ = droppable_bytes_ = 0;
        if (!closing_) {
          closing_ = true;
          final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
        }
      }
      MaybeWriteLocked();
      if (!writing_ && !closing_ && queue_.empty()) drained = on_drained_;
    }
    if (drained) drained();
  }
  void OnCancel() override {
    if (on_cancel_) on_cancel_();
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "canceled by the client"));
  }
  void OnDone() override {
    std::shared_ptr<StreamWriter> keep;
    std::function<void()> on_cancel, on_drained;
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
      keep = std::move(self_);
      std::deque<Msg>().swap(queue_);
      queued_bytes_ = droppable_bytes_ = 0;
      current_ = Msg();
      on_cancel = std::move(on_cancel_);
      on_drained = std::move(on_drained_);
    }
    // What the callbacks captured (a producer's file, buffers) is released here, unlocked.
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
      queued_bytes_ -= current_.ByteSizeLong();
      if (bound_.max_bytes > 0) droppable_bytes_ -= bound_.droppable_bytes(current_);
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
  size_t queued_bytes_ = 0;  // of queue_ (not current_)
  std::function<void()> on_drained_;
  Msg current_;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool done_ = false;
  grpc::Status final_status_;
  std::shared_ptr<StreamWriter> self_;
  Bound bound_;
  size_t droppable_bytes_ = 0;                         // Bound::droppable_bytes of queue_
  uint64_t dropped_messages_ = 0, dropped_bytes_ = 0;  // since the last marker
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

// Builds and starts the gRPC server of a daemon (`what`: "head", "node") serving `service` on
// bind:port (port 0: the OS chooses; *bound_port receives the port), never sharing the port
// (gRPC turns SO_REUSEPORT on by default, and two daemons on one port would each get a share of
// the connections). On failure, why: a port in use names its owner (CheckPortFree).
StatusOr<std::unique_ptr<grpc::Server>> StartDaemonServer(const std::string& bind, int port,
                                                          grpc::Service* service,
                                                          const std::string& what,
                                                          int* bound_port);

}  // namespace orrery::live

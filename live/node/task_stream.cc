#include "live/node/task_stream.h"

#include <string>

namespace orrery::live {

namespace {

const std::string& ChunkOf(const v1::RunTaskReply& m) {
  return m.has_stdout_chunk() ? m.stdout_chunk() : m.stderr_chunk();
}

}  // namespace

std::shared_ptr<TaskStream> TaskStream::Direct(std::shared_ptr<Writer> w) {
  return std::shared_ptr<TaskStream>(new TaskStream(std::move(w), false, 0));
}

std::shared_ptr<TaskStream> TaskStream::Detachable(std::shared_ptr<Writer> w, size_t replay_bytes) {
  return std::shared_ptr<TaskStream>(new TaskStream(std::move(w), true, replay_bytes));
}

void TaskStream::Push(v1::RunTaskReply m) {
  if (!detachable_) return w_->Push(std::move(m));
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) return;
  if (m.has_started_pid()) {
    pid_ = m.started_pid();
  } else if (m.has_stdout_chunk() || m.has_stderr_chunk()) {
    const size_t n = ChunkOf(m).size();
    m.set_output_offset(next_offset_);
    next_offset_ += n;
    kept_.push_back(m);
    kept_bytes_ += n;
    TrimLocked(replay_bytes_);
  } else if (m.has_exit()) {
    exit_ = m;
  }
  if (w_) w_->Push(std::move(m));
}

void TaskStream::Close(const grpc::Status& s) {
  if (!detachable_) return w_->Close(s);
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) return;
  closed_ = s;
  if (w_) w_->Close(s);
}

bool TaskStream::done() const {
  if (!detachable_) return w_->done();
  std::lock_guard<std::mutex> l(mu_);
  return closed_.has_value();
}

bool TaskStream::Detach(const std::weak_ptr<Writer>& w) {
  std::lock_guard<std::mutex> l(mu_);
  // The same writer (owner-equal: an address reused by a later writer does not match).
  if (w_ && !w.owner_before(w_) && !w_.owner_before(w)) w_ = nullptr;
  return w_ == nullptr;
}

bool TaskStream::attached() const {
  std::lock_guard<std::mutex> l(mu_);
  return w_ != nullptr;
}

bool TaskStream::closed() const {
  std::lock_guard<std::mutex> l(mu_);
  return closed_.has_value();
}

void TaskStream::Trim(size_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  TrimLocked(bytes);
}

void TaskStream::TrimLocked(size_t bytes) {
  while (kept_bytes_ > bytes && !kept_.empty()) {
    kept_bytes_ -= ChunkOf(kept_.front()).size();
    kept_.pop_front();
  }
}

void TaskStream::Attach(std::shared_ptr<Writer> w, uint64_t from_offset) {
  std::lock_guard<std::mutex> l(mu_);
  if (w_ && w_ != w) {
    w_->Close(grpc::Status(grpc::StatusCode::ABORTED, "another caller reattached to the task"));
  }
  w_ = nullptr;
  if (pid_) {
    v1::RunTaskReply m;
    m.set_started_pid(*pid_);
    w->Push(std::move(m));
  }
  const uint64_t oldest = kept_.empty() ? next_offset_ : kept_.front().output_offset();
  if (from_offset < oldest) {
    v1::RunTaskReply m;
    m.set_stderr_chunk("[orrery: " + std::to_string(oldest - from_offset) +
                       " bytes of output were not kept while the caller was away]\n");
    w->Push(std::move(m));
  }
  for (const v1::RunTaskReply& k : kept_) {
    const std::string& data = ChunkOf(k);
    const uint64_t start = k.output_offset(), end = start + data.size();
    if (end <= from_offset) continue;
    v1::RunTaskReply m = k;
    if (start < from_offset) {
      const std::string rest = data.substr(static_cast<size_t>(from_offset - start));
      if (m.has_stdout_chunk()) {
        m.set_stdout_chunk(rest);
      } else {
        m.set_stderr_chunk(rest);
      }
      m.set_output_offset(from_offset);
    }
    w->Push(std::move(m));
  }
  if (exit_) w->Push(*exit_);
  if (closed_) return w->Close(*closed_);
  w_ = std::move(w);
}

}  // namespace orrery::live

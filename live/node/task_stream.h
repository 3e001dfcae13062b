// TaskStream: where a command task's RunTask events go (the pid, output chunks, the exit).
//
// Direct (every task but a job's driver): a pass-through to the RunTask call's writer; the
// caller going away ends the task (NodeDaemon kills it).
//
// Detachable (--- head fault tolerance: RunTaskRequest.detachable, a job's driver): the task
// outlives its caller. Every output chunk gets `output_offset` (the count of output bytes,
// stdout and stderr together, before it) and is kept in a replay buffer of the last
// `replay_bytes` [4 MiB, as the RunTask stream's own bound, live/node/task_output.h]. When the
// caller goes away (the head died) the stream is detached: the process runs on, its output goes
// to the buffer only (the oldest dropped beyond the bound), its exit is kept. Attach (the
// restarted head's ReattachTask) sends the pid, the kept output from the caller's offset (a
// stderr marker first if bytes before the oldest kept one are asked for), the exit if there
// was one, and then the rest as it comes. A later Attach replaces the earlier caller (closed
// with ABORTED). Bytes the old caller had not read are sent again only from the offset it asks
// for, so nothing is doubled and nothing kept is lost.
//
// Thread safety: thread-safe (the supervisor thread pushes, the node's loop attaches).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "live/rpc/rpc_util.h"
#include "orrery.pb.h"

namespace orrery::live {

class TaskStream {
 public:
  using Writer = StreamWriter<v1::RunTaskReply>;

  static std::shared_ptr<TaskStream> Direct(std::shared_ptr<Writer> w);
  static std::shared_ptr<TaskStream> Detachable(std::shared_ptr<Writer> w, size_t replay_bytes);

  // A started_pid, an output chunk or the exit.
  void Push(v1::RunTaskReply m);
  // The end of the events (after the exit, or instead of a start). Idempotent.
  void Close(const grpc::Status& s);
  // Nothing more will be read: direct, the caller went away; detachable, Close was called.
  bool done() const;
  bool detachable() const { return detachable_; }

  // ---- detachable only ----
  // The caller `w` went away (its call was canceled): dropped if it is the current one (the
  // process runs on). True if the stream is now detached.
  bool Detach(const std::weak_ptr<Writer>& w);
  // A new caller, from output byte `from_offset` (see the header comment).
  void Attach(std::shared_ptr<Writer> w, uint64_t from_offset);
  bool attached() const;
  bool closed() const;
  // Keeps at most the last `bytes` of output (an ended task whose caller got the exit: only
  // what may still be in flight to it is worth keeping).
  void Trim(size_t bytes);

 private:
  TaskStream(std::shared_ptr<Writer> w, bool detachable, size_t replay_bytes)
      : w_(std::move(w)), detachable_(detachable), replay_bytes_(replay_bytes) {}

  void TrimLocked(size_t bytes);  // REQUIRES: mu_ held

  mutable std::mutex mu_;
  std::shared_ptr<Writer> w_;  // the caller; null while detached
  const bool detachable_;
  const size_t replay_bytes_;
  std::deque<v1::RunTaskReply> kept_;  // output chunks with offsets, oldest first
  size_t kept_bytes_ = 0;
  uint64_t next_offset_ = 0;
  std::optional<int32_t> pid_;
  std::optional<v1::RunTaskReply> exit_;
  std::optional<grpc::Status> closed_;
};

}  // namespace orrery::live

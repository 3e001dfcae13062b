// DriverRun: one job's driver run, driven by events on the head's loop, no thread of its own
// (issue 12.4: a thread per job made 300 head threads for 300 submissions).
//
// Steps, each an asynchronous gRPC call (callback API) whose completion is posted to the loop:
//   1. the node to ask first (`entry_address`, the head node if alive; retried every 200 ms
//      while no node is alive);
//   2. RequestWorkerLease with the entrypoint resources, following spillbacks (held while
//      queued; rejections retried with a backoff; 20 errors in a row fail the run);
//   3. RunTask `/bin/sh -c ENTRYPOINT` on the leased node (job_id, name "driver", the runtime env,
//      ORRERY_ADDRESS / ORRERY_TOKEN / ORRERY_JOB_ID / ORRERY_JOB_RUNTIME_ENV), detachable: the
//      driver outlives the head (live/node/task_stream.h). The output stream is read one message
//      at a time (gRPC flow control holds the rest on the node, whose buffer is bounded,
//      live/node/task_output.h) and appended to the job's JobLog on the gRPC thread that read it,
//      with the node's byte count (JobLog::source_offset); the loop sees no output.
//   --- head fault tolerance: Resume (a restarted head, for a job found RUNNING) starts at
//   ReattachTask(driver_task_id, the log's source offset) on the driver's node, which sends the
//   output the log misses, then the rest. A stream that breaks without an exit while the node
//   lives (UNAVAILABLE) is reattached the same way every kReattachEvery, until the node is
//   declared dead (OnNodeDead cancels the run: FAILED).
// Outcome (`on_finished`, once): exit 0 -> SUCCEEDED; exit N -> FAILED "entrypoint exited with
// code N, last output: ..."; lease canceled -> FAILED with the node's reason; Cancel(STOPPED)
// -> StopTask to the node (SIGTERM, SIGKILL after its grace), STOPPED once the exit arrives or
// the task table shows the driver ended (at most kStopWait); Cancel(FAILED) (its node died) ->
// FAILED; Cancel(UNSPECIFIED) (the head stops cleanly) -> StopTask, nothing is reported. A head
// that crashes sends nothing: its drivers run on.
//
// Threading: Start/Cancel/Kick on the loop. Callbacks are posted to the loop; after the
// context's `stopping` is set they touch nothing but the run itself. WaitIdle (any thread but
// the loop) returns once no call of any run of `context` is in flight, so the head may go.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/agent/submitter.h"
#include "live/rpc/event_loop.h"
#include "live/head/jobs/job_log.h"
#include "orrery.pb.h"

namespace orrery::live {

// What every run of one JobManager shares.
struct DriverContext {
  EventLoop* loop = nullptr;  // the head's loop; outlives every call (see WaitIdle)
  std::string head_address;   // ORRERY_ADDRESS of drivers
  std::string token;
  std::function<std::string()> entry_address;                  // loop: first node to ask
  std::function<bool(const std::string& task_id)> task_ended;  // loop: task table says ended
  // loop: the NodeService address of an alive (or restored) node; empty if unknown or dead.
  std::function<std::string(const std::string& node_id)> node_address;

  // Set by the manager's Shutdown: runs stop reporting.
  std::atomic<bool> stopping{false};
  // Calls in flight, over all runs.
  void CallStarted();
  void CallEnded();
  // Waits until no call is in flight, at most `timeout`; false on timeout.
  bool WaitIdle(std::chrono::milliseconds timeout);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
};

// What a run tells its owner, on the loop (never after the context's `stopping`).
struct DriverEvents {
  std::function<void(const std::string& node_id, const std::string& task_id)> on_running;
  std::function<void(int pid)> on_pid;
  std::function<void(v1::JobStatus status, const std::string& message, int exit_code)> on_finished;
};

class DriverRun : public std::enable_shared_from_this<DriverRun> {
 public:
  // Starts step 1. REQUIRES: on the loop; `log` is the job's log (closed by the owner).
  static std::shared_ptr<DriverRun> Start(std::shared_ptr<DriverContext> context, v1::JobInfo info,
                                          std::shared_ptr<JobLog> log, DriverEvents events);
  // --- head fault tolerance: a RUNNING job's driver (info.driver_node_id, driver_task_id) that
  // an earlier head started: reattaches to it. REQUIRES: on the loop.
  static std::shared_ptr<DriverRun> Resume(std::shared_ptr<DriverContext> context, v1::JobInfo info,
                                           std::shared_ptr<JobLog> log, DriverEvents events);
  // Cancels the call in flight (and any later step). `status` decides the outcome: STOPPED,
  // FAILED (with `message`) or UNSPECIFIED (nothing reported). First cancellation wins.
  void Cancel(v1::JobStatus status, const std::string& message);
  // The node at `address` died: a lease request held there is asked again at the entry node.
  void Kick(const std::string& address);
  bool finished() const { return finished_; }

  class Reader;  // the RunTask stream's reactor (job_driver.cc)
  DriverRun(std::shared_ptr<DriverContext> context, v1::JobInfo info, std::shared_ptr<JobLog> log,
            DriverEvents events);

 private:
  void ResolveEntry();
  void RequestLease(const std::string& address);
  void OnLeaseReply(const grpc::Status& s);
  void StartDriver();
  void Reattach();
  // Asks the driver's node to end it (best effort, bounded); `then` runs on the loop after.
  void StopDriver(const std::string& why, std::function<void()> then);
  void OnDriverDone(const grpc::Status& s, bool exited, int exit_code, int signal,
                    const std::string& node_error, const std::string& tail);
  void WaitStopped(std::chrono::steady_clock::time_point deadline);
  void ReturnLease(const std::string& address);
  void Finish(v1::JobStatus status, const std::string& message, int exit_code = 0);
  // Posts `fn` to the loop, run only while the context is not stopping.
  void PostToLoop(std::function<void()> fn);
  void PostToLoopAfter(std::chrono::milliseconds delay, std::function<void()> fn);

  const std::shared_ptr<DriverContext> context_;
  const v1::JobInfo info_;
  const std::string id_;
  const std::shared_ptr<JobLog> log_;
  const DriverEvents events_;
  // Loop-owned.
  bool canceled_ = false;
  v1::JobStatus cancel_status_ = v1::JOB_STATUS_UNSPECIFIED;
  std::string cancel_message_;
  bool finished_ = false;
  v1::RequestWorkerLeaseRequest lreq_;
  std::string entry_, address_, node_id_;
  int errors_ = 0;
  // The lease walk's rules (spillback limit, rejection backoff) are the core Submitter's, as for
  // every lease request of live/ (live/client/client.h); this run carries them out on the loop.
  agent::Submitter walk_;
  agent::LeaseHandle lease_ = 0;
  std::chrono::steady_clock::time_point walk_start_;
  // The call in flight (one at a time) and what it writes into.
  std::unique_ptr<grpc::ClientContext> call_;
  std::string call_address_;
  std::unique_ptr<v1::RequestWorkerLeaseReply> lrep_;
  v1::RunTaskRequest rreq_;
  v1::ReattachTaskRequest areq_;
  bool driver_started_ = false;  // RunTask was sent (or the run resumed): the driver may run
  bool resumed_ = false;         // started by Resume (an earlier head started the driver)
  std::string tail_;             // the driver's last output, over its streams
  bool stop_sent_ = false;
};

}  // namespace orrery::live

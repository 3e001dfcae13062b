#include "live/head/jobs/job_driver.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <vector>
#include <iostream>

#include "live/head/jobs/secret_redactor.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

using std::chrono::milliseconds;

namespace {

constexpr size_t kTailBytes = 4096;  // output kept for the failure message
// How long a stopped job waits for its driver to be gone (the node's grace period is 3 s).
constexpr milliseconds kStopWait{10000};
// --- head fault tolerance: how often a driver whose stream broke is reattached (until its node
// is declared dead).
constexpr milliseconds kReattachEvery{500};

int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The last `n` lines of `text` (without a trailing newline).
std::string LastLines(const std::string& text, int n) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  size_t pos = t.size();
  for (int i = 0; i < n && pos > 0; ++i) {
    const size_t nl = t.rfind('\n', pos - 1);
    if (nl == std::string::npos) return t;
    pos = nl;
    if (i == n - 1) return t.substr(nl + 1);
  }
  return t.substr(pos == 0 ? 0 : pos + 1);
}

std::shared_ptr<v1::NodeService::Stub> NodeStub(const std::string& address) {
  return v1::NodeService::NewStub(OpenChannel(address));
}

// A best-effort unary call to the node at `address` (a 2 s deadline), counted in the context's
// calls in flight: `start(async stub, ctx, req, rep, callback)` starts it; `done` (may be empty)
// runs on the gRPC thread once it ended, whatever the outcome.
template <typename Req, typename Rep, typename Start>
void BestEffortNodeCall(const std::shared_ptr<DriverContext>& context, const std::string& address,
                        Req req, Start start, std::function<void()> done) {
  struct Call {
    grpc::ClientContext ctx;
    Req req;
    Rep rep;
    std::shared_ptr<v1::NodeService::Stub> stub;
  };
  auto* c = new Call;
  AttachToken(&c->ctx, context->token);
  c->ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(2000));
  c->req = std::move(req);
  c->stub = NodeStub(address);
  context->CallStarted();
  start(c->stub->async(), &c->ctx, &c->req, &c->rep,
        [c, context, done = std::move(done)](grpc::Status) {
          delete c;
          if (done) done();
          context->CallEnded();
        });
}

}  // namespace

// ---- context -------------------------------------------------------------------------------

void DriverContext::CallStarted() {
  std::lock_guard<std::mutex> l(mu_);
  ++in_flight_;
}

void DriverContext::CallEnded() {
  std::lock_guard<std::mutex> l(mu_);
  if (--in_flight_ == 0) cv_.notify_all();
}

bool DriverContext::WaitIdle(milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, timeout, [&] { return in_flight_ == 0; });
}

// ---- the RunTask stream ----------------------------------------------------------------------

// Reads the driver's RunTask stream one message at a time: output goes to the job's log here
// (a gRPC thread; the loop never sees it), the pid and the end are posted to the loop.
class DriverRun::Reader : public grpc::ClientReadReactor<v1::RunTaskReply> {
 public:
  Reader(std::shared_ptr<DriverRun> run, std::shared_ptr<v1::NodeService::Stub> stub)
      : run_(std::move(run)),
        stub_(std::move(stub)),
        redactor_(run_->context_->token, "[cluster token redacted]") {}

  void Begin(grpc::ClientContext* ctx, const v1::RunTaskRequest* req) {
    stub_->async()->RunTask(ctx, req, this);
    StartRead(&m_);
    StartCall();
  }
  void Begin(grpc::ClientContext* ctx, const v1::ReattachTaskRequest* req) {
    stub_->async()->ReattachTask(ctx, req, this);
    StartRead(&m_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (m_.has_started_pid()) {
      run_->PostToLoop([run = run_, pid = m_.started_pid()] {
        if (!run->finished_) run->events_.on_pid(pid);
      });
    } else if (m_.has_stdout_chunk() || m_.has_stderr_chunk()) {
      // The driver's environment holds the cluster token: it never reaches the log.
      const std::string& raw = m_.has_stdout_chunk() ? m_.stdout_chunk() : m_.stderr_chunk();
      const std::string chunk = redactor_.Feed(raw);
      // What the log holds of the node's output count (bytes the redactor holds back are not
      // in it yet): a restarted head asks from there.
      const uint64_t end = m_.output_offset() + raw.size();
      auto s = m_.has_output_offset()
                   ? run_->log_->Append(chunk, end - std::min<uint64_t>(end, redactor_.held()))
                   : run_->log_->Append(chunk);
      if (!s.ok()) {
        std::cerr << "[head] job " << run_->id_ << ": " << s.message() << std::endl;
      }
      tail_ += chunk;
      if (tail_.size() > kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
    } else if (m_.has_exit()) {
      exited_ = true;
      exit_code_ = m_.exit().exit_code();
      signal_ = m_.exit().signal();
      node_error_ = m_.exit().error();
    }
    StartRead(&m_);
  }

  void OnDone(const grpc::Status& s) override {
    // A stream that broke is reattached from the log's source offset, which leaves out what the
    // redactor holds: those bytes come again.
    const bool reattach = !exited_ && s.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (const std::string rest = redactor_.Flush(); !rest.empty() && !reattach) {
      (void)run_->log_->Append(rest);
      tail_ += rest;
    }
    auto run = run_;
    auto context = run->context_;
    run->PostToLoop([run, s, exited = exited_, code = exit_code_, sig = signal_, err = node_error_,
                     tail = tail_] { run->OnDriverDone(s, exited, code, sig, err, tail); });
    delete this;
    context->CallEnded();
  }

 private:
  std::shared_ptr<DriverRun> run_;
  std::shared_ptr<v1::NodeService::Stub> stub_;
  v1::RunTaskReply m_;
  SecretRedactor redactor_;
  std::string tail_;
  bool exited_ = false;
  int exit_code_ = 0, signal_ = 0;
  std::string node_error_;  // why the node could not run the driver (e.g. runtime env setup)
};

// ---- run -------------------------------------------------------------------------------------

DriverRun::DriverRun(std::shared_ptr<DriverContext> context, v1::JobInfo info,
                     std::shared_ptr<JobLog> log, DriverEvents events)
    : context_(std::move(context)),
      info_(std::move(info)),
      id_(info_.submission_id()),
      log_(std::move(log)),
      events_(std::move(events)),
      walk_([] {
        agent::SubmitterOptions o;  // one request of one "task" (the driver)
        o.reuse_leases = false;
        return o;
      }()) {}

std::shared_ptr<DriverRun> DriverRun::Start(std::shared_ptr<DriverContext> context,
                                            v1::JobInfo info, std::shared_ptr<JobLog> log,
                                            DriverEvents events) {
  auto run = std::make_shared<DriverRun>(std::move(context), std::move(info), std::move(log),
                                         std::move(events));
  run->lreq_.set_task_id("driver-" + run->id_ + "-" + std::to_string(UnixMs()));
  run->lreq_.set_name("driver of job " + run->id_);
  *run->lreq_.mutable_resources() = run->info_.entrypoint_resources();
  run->lreq_.set_queue_timeout_ms(0);
  run->walk_start_ = std::chrono::steady_clock::now();
  std::vector<agent::SubmitDecision> ds;
  run->walk_.Submit(0, 0, 0.0, &ds);
  run->lease_ = ds.at(0).lease;
  run->ResolveEntry();
  return run;
}

void DriverRun::PostToLoop(std::function<void()> fn) {
  context_->loop->Post([context = context_, fn = std::move(fn)] {
    if (!context->stopping) fn();
  });
}

void DriverRun::PostToLoopAfter(milliseconds delay, std::function<void()> fn) {
  context_->loop->PostAfter(delay, [context = context_, fn = std::move(fn)] {
    if (!context->stopping) fn();
  });
}

void DriverRun::Cancel(v1::JobStatus status, const std::string& message) {
  if (canceled_ || finished_) return;
  canceled_ = true;
  cancel_status_ = status;
  cancel_message_ = message;
  if (call_ && driver_started_ && status != v1::JOB_STATUS_FAILED) {
    // The driver outlives its stream (detachable): the node is asked to end it, and its exit
    // comes through the stream. A head that stops cleanly does not wait for it.
    if (status == v1::JOB_STATUS_UNSPECIFIED) {
      StopDriver("the head is stopping", nullptr);
      call_->TryCancel();
      return;
    }
    StopDriver(message, [self = shared_from_this()] {
      // The exit did not come (the node did not answer, or the process outlived the node's
      // grace period): end the stream, WaitStopped bounds the rest.
      self->PostToLoopAfter(kStopWait, [self] {
        if (!self->finished_ && self->call_) self->call_->TryCancel();
      });
    });
    return;
  }
  if (call_) call_->TryCancel();
}

void DriverRun::StopDriver(const std::string& why, std::function<void()> then) {
  if (stop_sent_ || address_.empty()) {
    if (then) then();
    return;
  }
  stop_sent_ = true;
  v1::StopTaskRequest req;
  req.set_task_id(lreq_.task_id());
  req.set_reason(why);
  std::function<void()> done;
  if (then) done = [self = shared_from_this(), then = std::move(then)] { self->PostToLoop(then); };
  BestEffortNodeCall<v1::StopTaskRequest, v1::StopTaskReply>(
      context_, address_, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->StopTask(ctx, rq, rp, std::move(cb));
      },
      std::move(done));
}

void DriverRun::Kick(const std::string& address) {
  if (call_ && lrep_ && call_address_ == address) call_->TryCancel();
}

void DriverRun::Finish(v1::JobStatus status, const std::string& message, int exit_code) {
  if (finished_) return;
  finished_ = true;
  std::string msg = message;
  // A cancellation decides: STOPPED (a user's stop wins over whatever the driver did
  // meanwhile), FAILED (its node died), or nothing at all (the head is stopping).
  if (canceled_) {
    status = cancel_status_;
    msg = cancel_message_;
  }
  if (status != v1::JOB_STATUS_UNSPECIFIED && !context_->stopping) {
    events_.on_finished(status, msg, exit_code);
  }
}

// 1. The node to ask first: the head node if alive (waits while no node is alive).
void DriverRun::ResolveEntry() {
  if (canceled_) return Finish(v1::JOB_STATUS_STOPPED, "");
  entry_ = context_->entry_address();
  if (entry_.empty()) {
    PostToLoopAfter(milliseconds(200), [self = shared_from_this()] { self->ResolveEntry(); });
    return;
  }
  RequestLease(entry_);
}

// 2. A worker lease for the driver; the call is held while queued and canceled by Stop.
void DriverRun::RequestLease(const std::string& address) {
  if (canceled_) return Finish(v1::JOB_STATUS_STOPPED, "");
  address_ = address;
  call_ = std::make_unique<grpc::ClientContext>();
  AttachToken(call_.get(), context_->token);
  call_address_ = address;
  lrep_ = std::make_unique<v1::RequestWorkerLeaseReply>();
  auto stub = NodeStub(address);
  context_->CallStarted();
  stub->async()->RequestWorkerLease(call_.get(), &lreq_, lrep_.get(),
                                    [self = shared_from_this(), stub](grpc::Status s) {
                                      auto context = self->context_;
                                      self->PostToLoop([self, s] { self->OnLeaseReply(s); });
                                      context->CallEnded();
                                    });
}

void DriverRun::OnLeaseReply(const grpc::Status& s) {
  call_.reset();
  const v1::RequestWorkerLeaseReply reply = *lrep_;
  lrep_.reset();
  if (canceled_) {
    // A lease granted just before the stop goes back to the node.
    if (s.ok() && reply.has_granted()) ReturnLease(address_);
    return Finish(v1::JOB_STATUS_STOPPED, "");
  }
  if (!s.ok()) {
    // The node went away (or Kick canceled the call): ask the entry node again.
    if (++errors_ > 20) {
      return Finish(v1::JOB_STATUS_FAILED, "could not get a lease for the driver from " + address_ +
                                               ": " + s.error_message());
    }
    lreq_.set_grant_or_reject(false);
    PostToLoopAfter(milliseconds(200), [self = shared_from_this()] { self->ResolveEntry(); });
    return;
  }
  switch (reply.outcome_case()) {
    case v1::RequestWorkerLeaseReply::kGranted:
      node_id_ = reply.granted().node_id();
      events_.on_running(node_id_, lreq_.task_id());
      return StartDriver();
    case v1::RequestWorkerLeaseReply::kSpillback:
    case v1::RequestWorkerLeaseReply::kRejected: {
      const double now =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - walk_start_).count();
      std::vector<agent::SubmitDecision> ds;
      const bool spilled = reply.has_spillback();
      if (spilled) {
        if (reply.spillback().address().empty()) {
          return Finish(v1::JOB_STATUS_FAILED,
                        "could not place the driver: spilled to a node whose address is unknown");
        }
        walk_.OnLeaseSpilled(lease_, 0, reply.spillback().grant_or_reject(), now, &ds);
      } else {
        walk_.OnLeaseRejected(lease_, now, &ds);
      }
      if (ds.empty() || ds.back().kind != agent::SubmitDecision::Kind::kRequestLease) {
        return Finish(v1::JOB_STATUS_FAILED,
                      "could not place the driver: " +
                          (ds.empty() ? std::string("no next step") : ds.back().reason) +
                          (spilled ? std::string() : ": " + reply.rejected().reason()));
      }
      const agent::SubmitDecision d = ds.back();
      lreq_.set_grant_or_reject(d.grant_or_reject);
      lreq_.set_spillbacks(d.spillbacks);
      if (spilled) return RequestLease(reply.spillback().address());
      const auto wait = std::chrono::duration_cast<milliseconds>(
          std::chrono::duration<double>(std::max(0.0, d.not_before - now)));
      PostToLoopAfter(wait, [self = shared_from_this()] { self->RequestLease(self->entry_); });
      return;
    }
    case v1::RequestWorkerLeaseReply::kCanceled:
      return Finish(v1::JOB_STATUS_FAILED,
                    "the driver could not start: " + reply.canceled().reason());
    case v1::RequestWorkerLeaseReply::kQueued:
      return RequestLease(address_);  // ask again (held until decided)
    default:
      return Finish(v1::JOB_STATUS_FAILED, "lease reply without an outcome from " + address_);
  }
}

// Gives the driver's lease back to the node at `address` (best effort, bounded).
void DriverRun::ReturnLease(const std::string& address) {
  v1::ReturnWorkerLeaseRequest req;
  req.set_task_id(lreq_.task_id());
  BestEffortNodeCall<v1::ReturnWorkerLeaseRequest, v1::ReturnWorkerLeaseReply>(
      context_, address, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->ReturnWorkerLease(ctx, rq, rp, std::move(cb));
      },
      nullptr);
}

// 3. The driver: /bin/sh -c ENTRYPOINT on the leased node; its output is the job's log.
void DriverRun::StartDriver() {
  if (canceled_) {
    ReturnLease(address_);
    return Finish(v1::JOB_STATUS_STOPPED, "");
  }
  rreq_.set_task_id(lreq_.task_id());
  rreq_.add_argv("/bin/sh");
  rreq_.add_argv("-c");
  rreq_.add_argv(info_.entrypoint());
  auto& env = *rreq_.mutable_env();
  env["ORRERY_ADDRESS"] = context_->head_address;
  env["ORRERY_TOKEN"] = context_->token;
  env["ORRERY_JOB_ID"] = id_;
  if (!info_.runtime_env_json().empty()) env["ORRERY_JOB_RUNTIME_ENV"] = info_.runtime_env_json();
  rreq_.set_runtime_env_json(info_.runtime_env_json());
  rreq_.set_job_id(id_);
  rreq_.set_name("driver");
  rreq_.set_detachable(true);  // --- head fault tolerance: the driver outlives the head
  driver_started_ = true;
  call_ = std::make_unique<grpc::ClientContext>();
  AttachToken(call_.get(), context_->token);
  call_address_ = address_;
  context_->CallStarted();
  auto* reader = new Reader(shared_from_this(), NodeStub(address_));  // deletes itself
  reader->Begin(call_.get(), &rreq_);
}

std::shared_ptr<DriverRun> DriverRun::Resume(std::shared_ptr<DriverContext> context,
                                             v1::JobInfo info, std::shared_ptr<JobLog> log,
                                             DriverEvents events) {
  auto run = std::make_shared<DriverRun>(std::move(context), std::move(info), std::move(log),
                                         std::move(events));
  run->lreq_.set_task_id(run->info_.driver_task_id());
  run->node_id_ = run->info_.driver_node_id();
  run->driver_started_ = true;
  run->resumed_ = true;
  run->Reattach();
  return run;
}

// --- head fault tolerance: the driver's stream again, from what the log holds.
void DriverRun::Reattach() {
  if (canceled_) {
    if (cancel_status_ == v1::JOB_STATUS_FAILED) return Finish(v1::JOB_STATUS_FAILED, "");
    return StopDriver(cancel_message_, [self = shared_from_this()] {
      self->WaitStopped(std::chrono::steady_clock::now() + kStopWait);
    });
  }
  const std::string address = context_->node_address(node_id_);
  if (address.empty()) {
    return Finish(v1::JOB_STATUS_FAILED,
                  "lost the driver: its node " + node_id_ + " is not alive" +
                      (resumed_ ? " (the head restarted while the job was running)" : ""));
  }
  address_ = address;
  areq_.set_task_id(lreq_.task_id());
  areq_.set_output_offset(log_->source_offset());
  call_ = std::make_unique<grpc::ClientContext>();
  AttachToken(call_.get(), context_->token);
  call_address_ = address_;
  context_->CallStarted();
  auto* reader = new Reader(shared_from_this(), NodeStub(address_));  // deletes itself
  reader->Begin(call_.get(), &areq_);
}

void DriverRun::OnDriverDone(const grpc::Status& s, bool exited, int exit_code, int signal,
                             const std::string& node_error, const std::string& tail) {
  call_.reset();
  tail_ += tail;
  if (tail_.size() > kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
  if (!exited) {
    if (!canceled_ && s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      // The stream broke but the driver runs on in its node (detachable): read it again until
      // the node is declared dead (OnNodeDead cancels this run).
      PostToLoopAfter(kReattachEvery, [self = shared_from_this()] { self->Reattach(); });
      return;
    }
    if (canceled_) {
      // The node got the cancellation and stops the driver (SIGTERM, then SIGKILL after its
      // grace period): report STOPPED once the task table shows it ended (bounded).
      if (cancel_status_ == v1::JOB_STATUS_STOPPED) {
        return WaitStopped(std::chrono::steady_clock::now() + kStopWait);
      }
      return Finish(v1::JOB_STATUS_STOPPED, "");
    }
    // The stream ended without an exit: the node went away, or refused to start the driver
    // (then its lease is still granted there: give it back, best effort).
    if (resumed_ || s.error_code() == grpc::StatusCode::NOT_FOUND) {
      return Finish(v1::JOB_STATUS_FAILED,
                    "lost the driver on node " + node_id_ +
                        (resumed_ ? " (the head restarted while the job was running)" : "") + ": " +
                        s.error_message());
    }
    const bool lost = s.error_code() == grpc::StatusCode::CANCELLED;
    if (!lost) ReturnLease(address_);
    return Finish(v1::JOB_STATUS_FAILED,
                  (lost ? "lost the driver on node " : "the driver could not start on node ") +
                      node_id_ + ": " + s.error_message());
  }
  if (exit_code == 0) return Finish(v1::JOB_STATUS_SUCCEEDED, "the entrypoint exited with code 0");
  // The driver never started (its runtime env failed, ...): the node's reason is the message.
  if (!node_error.empty()) return Finish(v1::JOB_STATUS_FAILED, node_error, exit_code);
  std::string message = "entrypoint exited with code " + std::to_string(exit_code);
  if (signal > 0) message += " (killed by signal " + std::to_string(signal) + ")";
  const std::string last = LastLines(tail_, 10);
  if (!last.empty()) message += ", last output:\n" + last;
  Finish(v1::JOB_STATUS_FAILED, message, exit_code);
}

void DriverRun::WaitStopped(std::chrono::steady_clock::time_point deadline) {
  if (cancel_status_ != v1::JOB_STATUS_STOPPED || context_->task_ended(rreq_.task_id()) ||
      std::chrono::steady_clock::now() >= deadline) {
    return Finish(v1::JOB_STATUS_STOPPED, "");
  }
  PostToLoopAfter(milliseconds(50),
                  [self = shared_from_this(), deadline] { self->WaitStopped(deadline); });
}

}  // namespace orrery::live

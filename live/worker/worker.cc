#include "live/worker/worker.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "live/api/registry.h"
#include "live/common/process.h"
#include "live/rpc/rpc_util.h"
#include "live/node/worker_log.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

// ---- node side -------------------------------------------------------------------------------

ApiWorkerPool::ApiWorkerPool(ProcessSupervisor* supervisor, ApiWorkerPoolOptions options,
                             Post post, ApiWorkerPoolHooks hooks)
    : supervisor_(supervisor),
      options_(std::move(options)),
      post_(std::move(post)),
      hooks_(std::move(hooks)) {}

ApiWorkerPool::~ApiWorkerPool() {
  for (auto& [pid, w] : workers_) {
    if (w.stdin_fd >= 0) ::close(w.stdin_fd);
  }
}

std::string ApiWorkerPool::KeyOf(const ApiWorkerSpec& spec) {
  // NUL cannot occur in paths or environment strings: an unambiguous separator.
  std::string k = spec.library;
  for (const auto& [name, value] : spec.env) {
    k += '\0' + name + '=' + value;
  }
  k += std::string("\0cwd=", 5) + spec.cwd;  // runtime envs: same working_dir only
  return k;
}

size_t ApiWorkerPool::num_idle() const { return idle_.size(); }

void ApiWorkerPool::Acquire(const std::string& lease, int64_t env, agent::WorkerAction action,
                            bool gpu, const ApiWorkerSpec& spec, OnReady on_ready,
                            OnDied on_died) {
  if (action == agent::WorkerAction::kReuse) {
    // Which idle worker: the most recently used (its pages are warm).
    const pid_t pid = idle_.PopMostRecent(env, [this](pid_t p) {
      auto it = workers_.find(p);
      return it != workers_.end() && it->second.stdin_fd >= 0;
    });
    if (pid != 0) {
      Worker& w = workers_.at(pid);
      w.lease = lease;
      w.actor = spec.actor;
      w.gpu = gpu;
      w.on_died = std::move(on_died);
      by_lease_[lease] = pid;
      on_ready(std::make_pair(pid, w.address));
      return;
    }
  }
  PendingStart start{lease, env, gpu, spec, std::move(on_ready), std::move(on_died)};
  if (options_.max_starting > 0 && starting_ >= options_.max_starting) {
    start_queue_.push_back(std::move(start));
    return;
  }
  Start(std::move(start));
}

void ApiWorkerPool::Start(PendingStart start) {
  const std::string& lease = start.lease;
  const ApiWorkerSpec& spec = start.spec;
  OnReady& on_ready = start.on_ready;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    on_ready(Internal("pipe failed"));
    return;
  }
  ProcessSpec ps;
  ps.argv = {options_.exe, "__api_worker", "--library", spec.library};
  ps.env = options_.env;
  ps.env.insert(ps.env.end(), spec.env.begin(), spec.env.end());
  ps.cwd = spec.cwd;
  ps.env.emplace_back("ORRERY_WORKER_HOST", options_.bind_host);
  ps.env.emplace_back("ORRERY_WORKER_TOKEN", options_.token);
  ps.stdin_fd = p[0];
  ProcessCallbacks cb;
  auto cell = std::make_shared<pid_t>(0);
  cb.on_started = [cell](pid_t pid) { *cell = pid; };
  cb.on_stdout = [this, cell](std::string_view chunk) {
    post_([this, pid = *cell, c = std::string(chunk)] { OnControl(pid, c); });
  };
  cb.on_stderr = [cell](std::string_view chunk) {
    std::cerr << "[api worker " << *cell << "] " << chunk << std::flush;
  };
  cb.on_exit = [this, cell](int code, int sig) {
    post_([this, pid = *cell, code, sig] { OnExit(pid, code, sig); });
  };
  auto pid = supervisor_->Spawn(ps, std::move(cb));
  ::close(p[0]);
  if (!pid.ok()) {
    ::close(p[1]);
    on_ready(pid.status());
    return;
  }
  Worker w;
  w.key = KeyOf(spec);
  w.env = start.env;
  w.actor = spec.actor;
  w.gpu = start.gpu;
  w.stdin_fd = p[1];
  w.lease = lease;
  w.on_ready = std::move(on_ready);
  w.on_died = std::move(start.on_died);
  if (options_.max_starting > 0) {
    w.holds_slot = true;
    ++starting_;
    if (hooks_.post_after) {
      hooks_.post_after(options_.start_slot_timeout, [this, pid = *pid] {
        auto it = workers_.find(pid);
        if (it == workers_.end() || !it->second.holds_slot) return;
        FreeSlot(it->second);  // still not ready: it no longer holds the others back
        StartQueued();
      });
    }
  }
  workers_[*pid] = std::move(w);
  by_lease_[lease] = *pid;
}

void ApiWorkerPool::FreeSlot(Worker& w) {
  if (!w.holds_slot) return;
  w.holds_slot = false;
  --starting_;
}

void ApiWorkerPool::StartQueued() {
  while (!start_queue_.empty() &&
         (options_.max_starting <= 0 || starting_ < options_.max_starting)) {
    PendingStart next = std::move(start_queue_.front());
    start_queue_.pop_front();
    Start(std::move(next));  // an error calls its on_ready at once; the loop goes on
  }
}

void ApiWorkerPool::Release(const std::string& lease) {
  auto l = by_lease_.find(lease);
  if (l == by_lease_.end()) {
    // Still waiting for a start slot: it never gets a worker. O(queued).
    for (auto q = start_queue_.begin(); q != start_queue_.end(); ++q) {
      if (q->lease == lease) {
        start_queue_.erase(q);
        break;
      }
    }
    return;
  }
  const pid_t pid = l->second;
  by_lease_.erase(l);
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  w.lease.clear();
  w.on_died = nullptr;
  const bool ready = !w.address.empty() && !w.on_ready;
  w.on_ready = nullptr;
  // The agent decides whether a ready worker stays idle for its env's next lease.
  if (ready && w.stdin_fd >= 0 && hooks_.keep_idle &&
      hooks_.keep_idle(w.env, w.gpu,
                       w.actor ? agent::WorkerKind::kActor : agent::WorkerKind::kTask)) {
    idle_.Push(w.env, pid);
  } else {
    Retire(pid);
  }
}

void ApiWorkerPool::RetireIdleWithEnv(const std::string& name, const std::string& value) {
  // Keys are library, then '\0'NAME=VALUE per variable, then '\0'cwd=...: a value always ends
  // at a '\0'.
  const std::string needle = std::string(1, '\0') + name + "=" + value + std::string(1, '\0');
  idle_.EraseIf([&](int64_t env, pid_t pid) {
    auto it = workers_.find(pid);
    if (it == workers_.end() || it->second.key.find(needle) == std::string::npos) return false;
    Retire(pid);
    if (hooks_.idle_gone) hooks_.idle_gone(env);  // the agent stops counting on it
    return true;
  });
}

void ApiWorkerPool::OnControl(pid_t pid, const std::string& chunk) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  w.buffer += chunk;
  size_t nl;
  while ((nl = w.buffer.find('\n')) != std::string::npos) {
    const std::string line = w.buffer.substr(0, nl);
    w.buffer.erase(0, nl + 1);
    if (!w.on_ready) continue;
    OnReady ready = std::move(w.on_ready);
    w.on_ready = nullptr;
    FreeSlot(w);  // ready or failed: no longer starting
    if (line.rfind("ready ", 0) == 0) {
      w.address = options_.bind_host + ":" + line.substr(6);
      ready(std::make_pair(pid, w.address));
    } else {
      const std::string why = line.rfind("error ", 0) == 0 ? line.substr(6) : line;
      Retire(pid);
      ready(Status(StatusCode::kFailedPrecondition, "api worker: " + why));
    }
    StartQueued();
    return;  // `ready` may have released the lease
  }
}

void ApiWorkerPool::Retire(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  if (it->second.stdin_fd >= 0) ::close(it->second.stdin_fd);
  it->second.stdin_fd = -1;
}

void ApiWorkerPool::OnExit(pid_t pid, int code, int sig) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  Worker w = std::move(it->second);
  workers_.erase(it);
  if (w.holds_slot) --starting_;
  if (w.stdin_fd >= 0) ::close(w.stdin_fd);
  // An idle worker that died: the agent must not count on it any more.
  if (idle_.Take(pid, w.env) && hooks_.idle_gone) hooks_.idle_gone(w.env);
  if (!w.lease.empty()) by_lease_.erase(w.lease);
  const std::string why = "api worker " + std::to_string(pid) + " exited (" +
                          (sig > 0 ? "signal " + std::to_string(sig)
                                   : "code " + std::to_string(code)) +
                          ")";
  if (w.on_ready) {
    // Killed from outside (SIGTERM/SIGKILL: the node shutting down, an operator, the OOM
    // killer) before it was ready: the lease is lost, not the worker's fault (UNAVAILABLE, the
    // owner asks for another). Any other end is the worker's own failure (FAILED_PRECONDITION).
    const bool killed = sig == SIGTERM || sig == SIGKILL;
    w.on_ready(Status(killed ? StatusCode::kUnavailable : StatusCode::kFailedPrecondition, why));
  } else if (w.on_died) {
    w.on_died(why);
  }
  StartQueued();
}

// ---- worker process --------------------------------------------------------------------------

namespace {

using api::internal::Entry;
using api::internal::GlobalRegistry;

// Logging: "ns::Counter::Create" / "&ns::Counter::Add" -> "Counter"; "ns::Add" -> "Add".
std::string DisplayName(const Entry& e) {
  std::string n = e.name;
  if (!n.empty() && n[0] == '&') n.erase(0, 1);
  if (e.kind != Entry::Kind::kFunction) {
    const size_t last = n.rfind("::");
    if (last != std::string::npos) n.erase(last);
  }
  const size_t prev = n.rfind("::");
  return prev == std::string::npos ? n : n.substr(prev + 2);
}

// Runs calls one at a time; owns the actor instance (if a factory ran).
class Executor {
 public:
  explicit Executor(WorkerLogRedirect* log) : log_(log) {}

  v1::ApiResult Run(const v1::ApiTask& t) {
    std::lock_guard<std::mutex> l(mu_);
    v1::ApiResult r;
    r.set_seq(t.seq());
    const Entry* e = GlobalRegistry().Find(t.function());
    if (e == nullptr) {
      r.set_error("'" + t.function() + "' is not registered in the worker's library");
      return r;
    }
    MarkLog(*e);
    if (e->kind == Entry::Kind::kMethod && !instance_) {
      r.set_error(creation_error_.empty() ? "no actor instance on this worker"
                                          : "the actor was not created: " + creation_error_);
      return r;
    }
    try {
      r.set_value(e->invoke(t.args(), &instance_));
      r.set_ok(true);
    } catch (const std::exception& ex) {
      r.set_error(ex.what());
    } catch (...) {
      r.set_error("unknown exception");
    }
    if (e->kind == Entry::Kind::kFactory && !r.ok()) creation_error_ = r.error();
    // Logging: the call's output is in the files before its result leaves.
    std::fflush(stdout);
    std::fflush(stderr);
    std::cout.flush();
    std::cerr.flush();
    return r;
  }

 private:
  // Logging: a marker line tells the node's log monitor whose lines follow (live/node/worker_log.h).
  void MarkLog(const Entry& e) {
    if (log_ == nullptr) return;
    const auto kind =
        e.kind == Entry::Kind::kFunction ? LogMarker::Kind::kTaskName : LogMarker::Kind::kActorName;
    const std::string name = DisplayName(e);
    if (marked_ && kind == marked_kind_ && name == marked_name_) return;
    log_->WriteMarker(kind, name);
    marked_ = true;
    marked_kind_ = kind;
    marked_name_ = name;
  }

  WorkerLogRedirect* log_;
  bool marked_ = false;
  LogMarker::Kind marked_kind_ = LogMarker::Kind::kTaskName;
  std::string marked_name_;
  std::mutex mu_;
  std::shared_ptr<void> instance_;
  std::string creation_error_;
};

class WorkerService final : public v1::WorkerService::Service {
 public:
  WorkerService(std::string token, WorkerLogRedirect* log) : token_(std::move(token)), exec_(log) {}
  grpc::Status Push(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<v1::ApiResultBatch, v1::ApiTaskBatch>* stream) override {
    if (auto s = CheckToken(*ctx, token_); !s.ok()) return s;
    v1::ApiTaskBatch batch;
    while (stream->Read(&batch)) {
      v1::ApiResultBatch out;
      for (const auto& t : batch.tasks()) *out.add_results() = exec_.Run(t);
      if (!stream->Write(out)) break;
    }
    return grpc::Status::OK;
  }

 private:
  const std::string token_;
  Executor exec_;
};

void WriteControl(int fd, const std::string& line) {
  const std::string s = line + "\n";
  (void)!::write(fd, s.data(), s.size());
}

}  // namespace

int RunApiWorkerMain(const std::vector<std::string>& args) {
  DieWithParent();  // --- actors: workers die with their node daemon
  ::signal(SIGPIPE, SIG_IGN);
  // The control channel is the original stdout. User output goes to the worker's log files
  // (live/node/worker_log.h) when the node gives a log dir, else to stderr (the node's log).
  const int ctl = ::dup(1);
  auto log = WorkerLogRedirect::StartFromEnv(/*keep_stdout=*/false);
  if (!log.ok()) {  // e.g. the log dir was removed: run on, logging to the node's log
    std::cerr << "orrery __api_worker: no log files: " << log.status().message() << std::endl;
    log = std::unique_ptr<WorkerLogRedirect>();
  }
  if (*log == nullptr) ::dup2(2, 1);
  std::string library;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--library") library = args[i + 1];
  }
  std::string token, host = "127.0.0.1";
  if (const char* t = std::getenv("ORRERY_WORKER_TOKEN")) token = t;
  if (const char* h = std::getenv("ORRERY_WORKER_HOST"); h && *h) host = h;
  ::unsetenv("ORRERY_WORKER_TOKEN");  // user code must not see the cluster token
  if (library.empty() || token.empty()) {
    WriteControl(ctl, "error usage: __api_worker --library PATH (with ORRERY_WORKER_TOKEN)");
    return 2;
  }
  if (::dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* e = ::dlerror();
    WriteControl(ctl, std::string("error cannot load ") + library + ": " + (e ? e : "?"));
    return 1;
  }
  WorkerService service(token, log->get());
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(host + ":0", ServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  if (!server || port == 0) {
    WriteControl(ctl, "error cannot listen on " + host);
    return 1;
  }
  WriteControl(ctl, "ready " + std::to_string(port));
  // EOF on stdin: the node released this worker or went away.
  char buf[256];
  while (true) {
    const ssize_t n = ::read(0, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  // Calls in flight get a moment; a stuck user function does not hold the exit.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  std::cout.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(0);
}

}  // namespace orrery::live

#include "live/node/worker_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "live/node/object_store.h"
#include "live/node/worker_log.h"
#include "live/common/process.h"

namespace orrery::live {

const char* WorkloadKindName(WorkloadSpec::Kind k) {
  switch (k) {
    case WorkloadSpec::Kind::kSleep:
      return "sleep";
    case WorkloadSpec::Kind::kCpu:
      return "cpu";
    case WorkloadSpec::Kind::kMemory:
      return "memory";
    case WorkloadSpec::Kind::kProduce:
      return "produce";
  }
  return "?";
}

WorkerPool::WorkerPool(ProcessSupervisor* supervisor, WorkerPoolOptions options, Post post,
                       WorkerPoolHooks hooks)
    : supervisor_(supervisor),
      options_(std::move(options)),
      post_(std::move(post)),
      hooks_(std::move(hooks)) {}

WorkerPool::~WorkerPool() {
  // Closing stdin ends idle workers; the supervisor kills busy ones when it goes.
  for (auto& [pid, w] : workers_) {
    if (w.stdin_fd >= 0) ::close(w.stdin_fd);
  }
}

size_t WorkerPool::num_idle() const { return idle_.size(); }

StatusOr<pid_t> WorkerPool::StartWorker(int64_t env, const WorkerEnv& in_env) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  ProcessSpec spec;
  spec.argv = {options_.exe, "__worker"};
  spec.env = options_.env;
  for (const auto& kv : in_env.env) spec.env.push_back(kv);  // later entries win
  spec.cwd = in_env.cwd;
  spec.stdin_fd = p[0];
  ProcessCallbacks cb;
  // Callbacks run on the supervisor thread and hand everything to the loop. The pid is known only
  // after Spawn returns; callbacks capture a shared cell filled then.
  auto cell = std::make_shared<pid_t>(0);
  cb.on_started = [cell](pid_t pid) { *cell = pid; };
  cb.on_stdout = [this, cell](std::string_view chunk) {
    post_([this, pid = *cell, c = std::string(chunk)] { OnOutput(pid, c); });
  };
  cb.on_stderr = [](std::string_view chunk) { std::cerr << "[worker] " << chunk << std::flush; };
  cb.on_exit = [this, cell](int code, int sig) {
    post_([this, pid = *cell, code, sig] { OnExit(pid, code, sig); });
  };
  auto pid = supervisor_->Spawn(spec, std::move(cb));
  ::close(p[0]);
  if (!pid.ok()) {
    ::close(p[1]);
    return pid.status();
  }
  Worker w;
  w.env = env;
  w.vars = in_env.env;
  w.stdin_fd = p[1];
  workers_[*pid] = std::move(w);
  return *pid;
}

StatusOr<pid_t> WorkerPool::Run(int64_t env, agent::WorkerAction action, bool gpu,
                                const std::string& task_id, const WorkloadSpec& spec,
                                OnBegin on_begin, OnDone on_done, const WorkerEnv& in_env) {
  if (task_id.empty() || task_id.find_first_of(" \n") != std::string::npos) {
    return InvalidArgument("task id: empty or with blanks");
  }
  if (spec.output_path.find_first_of(" \n") != std::string::npos) {
    return InvalidArgument("output path: has blanks");
  }
  pid_t pid = 0;
  if (action == agent::WorkerAction::kReuse) {
    // Which idle worker: the most recently used (its pages are warm).
    pid = idle_.PopMostRecent(env, [this](pid_t p) { return workers_.count(p) > 0; });
  }
  if (pid == 0) {
    auto started = StartWorker(env, in_env);
    if (!started.ok()) return started.status();
    pid = *started;
  }
  Worker& w = workers_.at(pid);
  std::ostringstream line;
  line << "run " << task_id << " " << WorkloadKindName(spec.kind) << " " << spec.duration_ms << " "
       << spec.bytes << " " << (spec.output_path.empty() ? "-" : spec.output_path) << "\n";
  const std::string s = line.str();
  if (::write(w.stdin_fd, s.data(), s.size()) != static_cast<ssize_t>(s.size())) {
    Retire(pid);
    return Status(StatusCode::kUnavailable, "worker " + std::to_string(pid) + " is gone");
  }
  w.task = task_id;
  w.gpu = gpu;
  w.on_begin = std::move(on_begin);
  w.on_done = std::move(on_done);
  return pid;
}

void WorkerPool::OnOutput(pid_t pid, const std::string& chunk) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  it->second.buffer += chunk;
  size_t nl;
  while ((nl = it->second.buffer.find('\n')) != std::string::npos) {
    const std::string line = it->second.buffer.substr(0, nl);
    it->second.buffer.erase(0, nl + 1);
    std::istringstream in(line);
    std::string word, task;
    int code = 1;
    in >> word >> task >> code;
    std::string message;
    std::getline(in, message);
    if (!message.empty() && message[0] == ' ') message.erase(0, 1);
    Worker& w = it->second;
    if (task != w.task) continue;
    if (word == "begin") {
      OnBegin begin = std::move(w.on_begin);
      w.on_begin = nullptr;
      if (begin) begin();
      it = workers_.find(pid);  // the callback may have changed the pool
      if (it == workers_.end()) return;
      continue;
    }
    if (word != "done") continue;
    w.on_begin = nullptr;
    OnDone done = std::move(w.on_done);
    w.task.clear();
    w.on_done = nullptr;
    // The agent decides whether the worker stays idle for its env's next task.
    if (!w.retired && hooks_.keep_idle && hooks_.keep_idle(w.env, w.gpu)) {
      idle_.Push(w.env, pid);
    } else {
      Retire(pid);
    }
    if (done) done(code, code == 0 ? std::string() : message);
    return;  // `it` may be gone (Retire)
  }
}

void WorkerPool::RetireIdleWithEnv(const std::string& name, const std::string& value) {
  for (auto& [pid, w] : workers_) {
    bool match = false;
    for (const auto& [k, v] : w.vars) match = match || (k == name && v == value);
    if (!match) continue;
    w.retired = true;
    if (w.task.empty()) {
      if (idle_.Take(pid, w.env) && hooks_.idle_gone) hooks_.idle_gone(w.env);
      Retire(pid);
    }
  }
}

void WorkerPool::Retire(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  // EOF on stdin: the worker exits by itself; OnExit forgets it.
  if (it->second.stdin_fd >= 0) ::close(it->second.stdin_fd);
  it->second.stdin_fd = -1;
}

void WorkerPool::OnExit(pid_t pid, int code, int sig) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  OnDone done = std::move(it->second.on_done);
  const bool busy = !it->second.task.empty();
  const int64_t env = it->second.env;
  if (it->second.stdin_fd >= 0) ::close(it->second.stdin_fd);
  workers_.erase(it);
  // An idle worker that died: the agent must not count on it any more.
  if (idle_.Take(pid, env) && hooks_.idle_gone) hooks_.idle_gone(env);
  if (busy && done) {
    done(code == 0 ? 1 : code, "worker " + std::to_string(pid) + " died" +
                                   (sig > 0 ? " (signal " + std::to_string(sig) + ")" : ""));
  }
}

// ---- the worker process --------------------------------------------------------------------

namespace {

using WClock = std::chrono::steady_clock;

void SleepUntil(WClock::time_point t) {
  const auto now = WClock::now();
  if (t > now) std::this_thread::sleep_for(t - now);
}

// Runs one command; returns (exit code, message).
std::pair<int, std::string> Execute(const std::string& kind, int64_t duration_ms, uint64_t bytes,
                                    const std::string& output) {
  const auto deadline =
      WClock::now() + std::chrono::milliseconds(std::max<int64_t>(0, duration_ms));
  if (kind == "sleep") {
    SleepUntil(deadline);
    return {0, "ok"};
  }
  if (kind == "cpu") {
    volatile uint64_t x = 1;
    while (WClock::now() < deadline) {
      for (int i = 0; i < 100000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    return {0, "ok"};
  }
  if (kind == "memory") {
    std::unique_ptr<char[]> block(new (std::nothrow) char[bytes > 0 ? bytes : 1]);
    if (!block) return {1, "cannot allocate " + std::to_string(bytes) + " bytes"};
    const long page = ::sysconf(_SC_PAGESIZE);
    for (uint64_t i = 0; i < bytes; i += static_cast<uint64_t>(page > 0 ? page : 4096)) {
      block[i] = static_cast<char>(i);
    }
    SleepUntil(deadline);
    return {0, "ok"};
  }
  if (kind == "produce") {
    if (output.empty() || output == "-") return {1, "produce without an output path"};
    Status s = WriteObjectFile(output, bytes);
    if (!s.ok()) return {1, s.message()};
    SleepUntil(deadline);
    return {0, "ok"};
  }
  return {2, "unknown workload '" + kind + "'"};
}

}  // namespace

int RunWorkerMain() {
  DieWithParent();  // --- actors: workers die with their node daemon
  ::signal(SIGPIPE, SIG_IGN);
  // Logging: stderr goes to the worker's .err file when the node gives a log dir (stdout is the
  // command channel; the .out file stays empty).
  auto log = WorkerLogRedirect::StartFromEnv(/*keep_stdout=*/true);
  if (!log.ok()) {  // e.g. the log dir was removed: run on, logging to the node's log
    std::cerr << "orrery __worker: no log files: " << log.status().message() << std::endl;
    log = std::unique_ptr<WorkerLogRedirect>();
  }
  std::string marked;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string word, task, kind, output;
    int64_t duration_ms = 0;
    uint64_t bytes = 0;
    in >> word >> task >> kind >> duration_ms >> bytes >> output;
    if (word != "run" || task.empty() || in.fail()) {
      std::cerr << "bad command: " << line << std::endl;
      continue;
    }
    if (*log != nullptr && kind != marked) {
      (*log)->WriteMarker(LogMarker::Kind::kTaskName, kind);
      marked = kind;
    }
    // The node takes this as the task's start: a new worker's start-up is over.
    std::cout << "begin " << task << std::endl;
    const auto [code, message] = Execute(kind, duration_ms, bytes, output);
    std::cout << "done " << task << " " << code << " " << message << std::endl;
  }
  return 0;
}

}  // namespace orrery::live

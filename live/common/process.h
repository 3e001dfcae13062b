// ProcessSupervisor: runs task commands as real child processes and reports their output and
// exit, without blocking anyone.
//
// Spawn() starts the child with posix_spawnp (PATH lookup), in its own process group (so Kill
// reaches everything it started), stdin from /dev/null, stdout and stderr into pipes, and a clean
// signal mask and dispositions (the daemon blocks SIGTERM in its threads). One supervisor thread
// polls every child's pipes, hands chunks to the callbacks and reaps exited children
// (waitpid(WNOHANG)); a child is reported exited once it has exited and its pipes reached EOF
// (or 1 s after its exit if a grandchild keeps them open).
//
// Thread safety: Spawn/Kill/KillAll are thread-safe. Callbacks run on the supervisor thread and
// must not block (they post to a loop or a StreamWriter).
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"

namespace orrery::live {

struct ProcessSpec {
  std::vector<std::string> argv;  // REQUIRES: non-empty
  // Added to (or replacing in) the daemon's environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;  // empty: inherit
  // >= 0: the child's stdin (dup'ed; the caller keeps and closes its copy), else /dev/null.
  // Used by the worker pool to send commands to long-lived workers.
  int stdin_fd = -1;
};

struct ProcessCallbacks {
  // Called inside Spawn() once the child runs, before any other callback.
  std::function<void(pid_t)> on_started;
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  // exit_code: the exit status, or 128 + signal if killed (signal > 0 then).
  std::function<void(int exit_code, int signal)> on_exit;
};

class ProcessSupervisor {
 public:
  ProcessSupervisor();
  // Kills every child still running (SIGKILL to its group) and joins the thread.
  ~ProcessSupervisor();
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  // Starts a child. Returns its pid, or an error (e.g. the command was not found) with nothing
  // started and no callback called.
  StatusOr<pid_t> Spawn(const ProcessSpec& spec, ProcessCallbacks callbacks);
  // Sends `sig` to the child's process group. No-op if it is not a child of this supervisor.
  void Kill(pid_t pid, int sig);
  // SIGTERM to every child, then SIGKILL to those still running after `grace`. Blocks up to
  // `grace` + a little; for shutdown only.
  void KillAll(std::chrono::milliseconds grace);
  size_t NumRunning() const;
  // True if `pid` is a child this supervisor started and has not reported exited.
  bool IsChild(pid_t pid) const;

 private:
  struct Child {
    int out_fd = -1;
    int err_fd = -1;
    bool exited = false;
    int exit_code = 0;
    int signal = 0;
    std::chrono::steady_clock::time_point exited_at;
    ProcessCallbacks cb;
  };
  void Run();
  void Wake();

  mutable std::mutex mu_;
  std::map<pid_t, Child> children_;
  int wake_r_ = -1, wake_w_ = -1;
  bool stop_ = false;
  std::thread thread_;
};

// --- actors. Called first thing in a worker process (`__worker`, `__api_worker`): the process
// gets SIGKILL when the thread that spawned it (the node daemon's loop) goes away, so workers
// never outlive a node daemon that was SIGKILLed; exits at once if the parent is already gone.
// Linux only (PR_SET_PDEATHSIG).
void DieWithParent();

// Sets up `attr` (already initialised) for a clean child: no blocked signals, default
// dispositions for the stop signals, SIGPIPE and SIGCHLD (the daemons block or ignore them), and a
// process group of its own (so a timeout or stop can signal the child's whole tree).
void SetCleanChildAttributes(posix_spawnattr_t* attr);

}  // namespace orrery::live

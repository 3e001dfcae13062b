#include "live/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

extern char** environ;

namespace orrery::live {

ProcessSupervisor::ProcessSupervisor() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
    wake_r_ = p[0];
    wake_w_ = p[1];
  }
  thread_ = std::thread([this] { Run(); });
}

ProcessSupervisor::~ProcessSupervisor() {
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [pid, c] : children_) {
      if (!c.exited) ::kill(-pid, SIGKILL);
    }
    stop_ = true;
  }
  Wake();
  thread_.join();
  for (auto& [pid, c] : children_) {
    if (c.out_fd >= 0) ::close(c.out_fd);
    if (c.err_fd >= 0) ::close(c.err_fd);
    if (!c.exited) ::waitpid(pid, nullptr, 0);
  }
  if (wake_r_ >= 0) ::close(wake_r_);
  if (wake_w_ >= 0) ::close(wake_w_);
}

void ProcessSupervisor::Wake() {
  const char c = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_w_, &c, 1);
}

StatusOr<pid_t> ProcessSupervisor::Spawn(const ProcessSpec& spec, ProcessCallbacks callbacks) {
  if (spec.argv.empty()) return InvalidArgument("argv: empty");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return Internal(std::string("pipe: ") + std::strerror(errno));
  }
  // Environment: the daemon's, with spec.env replacing same-named entries.
  std::set<std::string> overridden;
  for (const auto& [k, v] : spec.env) overridden.insert(k);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv(*e);
    const std::string key = kv.substr(0, kv.find('='));
    if (!overridden.count(key)) env_s.push_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_s = spec.argv;
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (spec.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, spec.stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, spec.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  SetCleanChildAttributes(&attr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    return Status(StatusCode::kFailedPrecondition,
                  "cannot run '" + spec.argv[0] + "': " + std::strerror(rc));
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, O_NONBLOCK);
  if (callbacks.on_started) callbacks.on_started(pid);
  {
    std::lock_guard<std::mutex> l(mu_);
    Child c;
    c.out_fd = out[0];
    c.err_fd = err[0];
    c.cb = std::move(callbacks);
    children_.emplace(pid, std::move(c));
  }
  Wake();
  return pid;
}

void ProcessSupervisor::Kill(pid_t pid, int sig) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = children_.find(pid);
  if (it == children_.end() || it->second.exited) return;
  ::kill(-pid, sig);
}

void ProcessSupervisor::KillAll(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [pid, c] : children_) {
      if (!c.exited) ::kill(-pid, SIGTERM);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline && NumRunning() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [pid, c] : children_) {
    if (!c.exited) ::kill(-pid, SIGKILL);
  }
}

bool ProcessSupervisor::IsChild(pid_t pid) const {
  std::lock_guard<std::mutex> l(mu_);
  return children_.count(pid) != 0;
}

size_t ProcessSupervisor::NumRunning() const {
  std::lock_guard<std::mutex> l(mu_);
  return children_.size();
}

void ProcessSupervisor::Run() {
  using Clock = std::chrono::steady_clock;
  char buf[65536];
  while (true) {
    std::vector<pollfd> fds;
    std::vector<std::pair<pid_t, bool>> who;  // (pid, is_stdout) per fds[i], after the wake fd
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      fds.push_back({wake_r_, POLLIN, 0});
      for (const auto& [pid, c] : children_) {
        if (c.out_fd >= 0) {
          fds.push_back({c.out_fd, POLLIN, 0});
          who.emplace_back(pid, true);
        }
        if (c.err_fd >= 0) {
          fds.push_back({c.err_fd, POLLIN, 0});
          who.emplace_back(pid, false);
        }
      }
    }
    ::poll(fds.data(), fds.size(), 50);
    if (fds[0].revents & POLLIN) {
      while (::read(wake_r_, buf, sizeof(buf)) > 0) {
      }
    }
    // Read whatever is ready. Callbacks are called without the lock (they may Kill()).
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const auto [pid, is_out] = who[i - 1];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        std::function<void(std::string_view)> cb;
        {
          std::lock_guard<std::mutex> l(mu_);
          auto& c = children_.at(pid);
          cb = is_out ? c.cb.on_stdout : c.cb.on_stderr;
        }
        if (cb) cb(std::string_view(buf, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        std::lock_guard<std::mutex> l(mu_);
        auto& c = children_.at(pid);
        ::close(fds[i].fd);
        (is_out ? c.out_fd : c.err_fd) = -1;
      }
    }
    // Reap, and report children that exited and whose output is drained.
    std::vector<std::pair<std::function<void(int, int)>, std::pair<int, int>>> exits;
    {
      std::lock_guard<std::mutex> l(mu_);
      const auto now = Clock::now();
      for (auto it = children_.begin(); it != children_.end();) {
        Child& c = it->second;
        if (!c.exited) {
          int status = 0;
          if (::waitpid(it->first, &status, WNOHANG) == it->first) {
            c.exited = true;
            c.exited_at = now;
            if (WIFSIGNALED(status)) {
              c.signal = WTERMSIG(status);
              c.exit_code = 128 + c.signal;
            } else {
              c.exit_code = WEXITSTATUS(status);
            }
          }
        }
        const bool drained = c.out_fd < 0 && c.err_fd < 0;
        if (c.exited && (drained || now - c.exited_at > std::chrono::seconds(1))) {
          if (c.out_fd >= 0) ::close(c.out_fd);
          if (c.err_fd >= 0) ::close(c.err_fd);
          exits.push_back({std::move(c.cb.on_exit), {c.exit_code, c.signal}});
          it = children_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& [cb, code] : exits) {
      if (cb) cb(code.first, code.second);
    }
  }
}

void SetCleanChildAttributes(posix_spawnattr_t* attr) {
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(attr, &empty);
  posix_spawnattr_setsigdefault(attr, &defaults);
  posix_spawnattr_setpgroup(attr, 0);
  posix_spawnattr_setflags(attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
}

void DieWithParent() {
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died before prctl: then we were re-parented (to init or a subreaper).
  if (parent == 1 || ::getppid() != parent) ::_exit(1);
}

}  // namespace orrery::live

#include "live/node/orphan_reaper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "live/common/session.h"

namespace orrery::live {

namespace fs = std::filesystem;


Status OrphanReaper::BecomeSubreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return FailedPrecondition(std::string("prctl(PR_SET_CHILD_SUBREAPER): ") +
                              std::strerror(errno));
  }
  return Status::Ok();
}

std::vector<std::pair<pid_t, char>> ChildrenOfSelf() {
  std::vector<std::pair<pid_t, char>> out;
  const pid_t self = ::getpid();
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(it->path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    const char state = stat[close + 2];
    const pid_t ppid = static_cast<pid_t>(std::strtol(stat.c_str() + close + 4, nullptr, 10));
    if (ppid == self) out.emplace_back(static_cast<pid_t>(std::stol(name)), state);
  }
  return out;
}

std::vector<std::string> OrphanReaper::Sweep() {
  std::vector<std::string> killed;
  std::set<pid_t> unknown;
  for (const auto& [pid, state] : ChildrenOfSelf()) {
    if (is_known_(pid)) continue;
    if (state == 'Z') {  // an orphan that exited (or one we killed): reap it
      ::waitpid(pid, nullptr, WNOHANG);
      continue;
    }
    if (suspects_.count(pid) != 0) {
      const std::string cmd = ProcessCommandLine(pid, 200);
      if (::getpgid(pid) == pid) ::kill(-pid, SIGKILL);  // it made its own group: all of it
      ::kill(pid, SIGKILL);
      killed.push_back("pid " + std::to_string(pid) + " (" + cmd + ")");
    } else {
      unknown.insert(pid);
    }
  }
  suspects_ = std::move(unknown);
  return killed;
}

int OrphanReaper::KillAll(std::chrono::milliseconds deadline) {
  int killed = 0;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    const auto children = ChildrenOfSelf();
    if (children.empty()) break;
    for (const auto& [pid, state] : children) {
      if (state != 'Z') {
        if (::getpgid(pid) == pid) ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        ++killed;
      }
      ::waitpid(pid, nullptr, WNOHANG);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return killed;
}

}  // namespace orrery::live

#include "live/common/port_check.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "live/common/session.h"

namespace orrery::live {

namespace fs = std::filesystem;

namespace {

// Inodes of sockets listening on `port`, from /proc/net/tcp and tcp6 (state 0A = LISTEN).
std::set<std::string> ListeningInodes(int port) {
  std::set<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      if (!(f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >>
            inode)) {
        continue;
      }
      const size_t colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;
      if (std::strtol(local.c_str() + colon + 1, nullptr, 16) == port) inodes.insert(inode);
    }
  }
  return inodes;
}


}  // namespace

std::string DescribePortOwner(int port) {
  const std::set<std::string> inodes = ListeningInodes(port);
  if (inodes.empty()) return "";
  std::error_code ec;
  for (fs::directory_iterator p("/proc", ec), end; !ec && p != end; p.increment(ec)) {
    const std::string pid = p->path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fec;
    for (fs::directory_iterator fd(p->path() / "fd", fec), fend; !fec && fd != fend;
         fd.increment(fec)) {
      std::error_code lec;
      const std::string target = fs::read_symlink(fd->path(), lec).string();
      if (lec || target.rfind("socket:[", 0) != 0) continue;
      if (inodes.count(target.substr(8, target.size() - 9))) {
        return "pid " + pid + " (" + ProcessCommandLine(std::stoi(pid)) + ")";
      }
    }
  }
  return "";
}

ConnectProbe::ConnectProbe(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return;
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  if (::getaddrinfo(host.c_str(), address.substr(colon + 1).c_str(), &hints, &ai) != 0) return;
  fd_ = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ >= 0) {
    if (::connect(fd_, ai->ai_addr, ai->ai_addrlen) == 0) {
      result_ = Result::kListening;  // connected at once
    } else if (errno == ECONNREFUSED) {
      result_ = Result::kRefused;
    }
    if (result_ != Result::kPending || errno != EINPROGRESS) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ::freeaddrinfo(ai);
}

ConnectProbe::~ConnectProbe() {
  if (fd_ >= 0) ::close(fd_);
}

ConnectProbe::Result ConnectProbe::Check() {
  if (result_ != Result::kPending || fd_ < 0) return result_;
  pollfd p{fd_, POLLOUT, 0};
  if (::poll(&p, 1, 0) <= 0) return result_;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
    if (err == 0) result_ = Result::kListening;
    if (err == ECONNREFUSED) result_ = Result::kRefused;
  }
  ::close(fd_);
  fd_ = -1;
  return result_;
}

Status CheckPortFree(const std::string& host, int port, const std::string& what) {
  if (port == 0) return Status::Ok();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res) != 0 ||
      res == nullptr) {
    return InvalidArgument(what + ": cannot resolve the bind address '" + host + "'");
  }
  int err = 0;
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    const int one = 1;
    // SO_REUSEADDR as a server sets it (a port in TIME_WAIT is free), but not SO_REUSEPORT.
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 1) != 0) err = errno;
    ::close(fd);
  } else {
    err = errno;
  }
  ::freeaddrinfo(res);
  if (err == 0) return Status::Ok();
  const std::string where = what + " port " + std::to_string(port) + " on " + host;
  if (err != EADDRINUSE) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot listen on " + where + ": " + std::strerror(err));
  }
  const std::string owner = DescribePortOwner(port);
  return Status(StatusCode::kFailedPrecondition,
                where + " is in use by " + (owner.empty() ? "another process" : owner) +
                    "; pick another with --" + (what == "head" ? "port" : what + "-port") +
                    " or stop that process");
}

}  // namespace orrery::live

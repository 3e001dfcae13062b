// Who holds a TCP port: a clear "port in use" error before a daemon starts, instead of two
// servers sharing a port (gRPC sets SO_REUSEPORT unless told not to) or a raw gRPC error dump.
//
// Thread safety: free functions; they read /proc and open a probe socket.
#pragma once

#include <string>

#include "core/status.h"

namespace orrery::live {

// Ok if a listening TCP socket could bind `host:port` now (port 0 is always free). Otherwise
// FailedPrecondition: "<what> port P on HOST is in use by pid N (COMMAND)" — or "by another
// process" when /proc does not say which. InvalidArgument if `host` is not an IPv4/IPv6 address
// or a resolvable name. Racy by nature (the port may be taken right after): servers must still
// bind without SO_REUSEPORT.
Status CheckPortFree(const std::string& host, int port, const std::string& what);

// --- head fault tolerance: a non-blocking TCP connect to "HOST:PORT" (HOST a numeric IPv4 or
// IPv6 address), looked at later without waiting: whether something listens there, nothing does
// (the host answered the connect with a reset: the daemon that listened there is gone), or it is
// not known yet (no answer so far, a name instead of an address, or another error).
class ConnectProbe {
 public:
  enum class Result { kPending, kListening, kRefused };
  explicit ConnectProbe(const std::string& address);
  ~ConnectProbe();
  ConnectProbe(const ConnectProbe&) = delete;
  ConnectProbe& operator=(const ConnectProbe&) = delete;
  // Never blocks; once kListening or kRefused, stays so.
  Result Check();

 private:
  int fd_ = -1;
  Result result_ = Result::kPending;
};

// The pid and command line of the process listening on TCP `port` (any address), e.g.
// "pid 1234 (orrery __head --port 6379)"; "" if /proc does not tell.
std::string DescribePortOwner(int port);

}  // namespace orrery::live

// Health probes for every daemon (DESIGN section 11, the shared contract of issue 17):
//   GET /healthz  200 "ok": the process is alive and serving HTTP.
//   GET /readyz   200 "ok" when the daemon is ready (head: accepting RPCs with its job store open;
//                 node: registered with the head and not declared dead), else 503 with a one-line
//                 reason ("registering with the head at 198.18.0.10:6379").
// Both are unauthenticated (probes carry no token) and reveal nothing else. The head answers
// them on its dashboard/jobs port (live/head/jobs/job_http.h); a node on its own small server,
// HealthServer below (`orrery start --health-port P`).
//
// Thread safety: AnswerProbe is a pure function of its arguments plus one call of `not_ready`.
// HealthServer: Start/Stop from one controlling thread; `not_ready` runs on the server's thread
// and must be thread-safe and quick (it must not block on the daemon's loop for long).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace orrery::live {

// What keeps a daemon from being ready, one line; empty when it is ready.
using ReadinessCheck = std::function<std::string()>;

struct ProbeReply {
  int code = 200;    // 200, 503, or 405 for a probe path asked with another method than GET/HEAD
  std::string body;  // "ok\n" or the reason and a newline
};

// The reply for a probe path ("/healthz", "/readyz", query ignored); nullopt for any other path,
// which the caller answers as usual. `not_ready` is called only for /readyz.
std::optional<ProbeReply> AnswerProbe(std::string_view method, std::string_view target,
                                      const ReadinessCheck& not_ready);

// A tiny HTTP/1.1 server that answers only the probes (404 for anything else). One thread,
// asynchronous (Boost.Beast); a request has 5 s to arrive; at most 64 connections at once. With
// a certificate and key (the node's --tls-dir identity) it speaks HTTPS only, as the head's
// dashboard port does: no client certificate is asked for (probes carry none).
class HealthServer {
 public:
  // Listens on bind:port (port 0: the OS picks). Unavailable naming the address if it cannot;
  // InvalidArgument if the PEM certificate or key cannot be used.
  static StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& bind, int port,
                                                       ReadinessCheck not_ready,
                                                       const std::string& tls_cert_pem = "",
                                                       const std::string& tls_key_pem = "");
  ~HealthServer();
  int port() const;
  // Stops accepting and closes open connections. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit HealthServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orrery::live

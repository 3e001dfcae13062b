// HttpServer: the dashboard's HTTP/1.1 server (Boost.Beast), shared by the head (live dashboard +
// Ray's jobs REST API, port 8265) and `orrery dashboard RESULTS_DIR` (read-only results views).
//
// Routes it owns itself:
//   GET  /healthz, /readyz               text, no token (live/common/health.h)
//   GET  /assets/<path>                  an embedded static file (live/dashboard/assets.h)
//   GET  any other path not under /api/  the single-page app (options.index_asset); with
//        `?token=T` (the URL `orrery start --head` prints) the token is checked, exchanged for an
//        HttpOnly SameSite=Strict cookie and the browser is redirected (303) to the same address
//        without it
//   *    /api/...                        the handler given to Start, after auth
// Auth: every route but the probes needs the token, as `Authorization: Bearer T` or the cookie.
// Missing or wrong: 401, an HTML page saying how to get in for page paths, JSON for /api/.
// Requests other than GET/HEAD must be POST or DELETE and, when they carry an Origin header
// (browsers do), it must match the Host they were sent to (403 otherwise). read_only servers
// answer 405 to anything but GET/HEAD.
// HTTP/1.1 keep-alive; server-sent event streams for the head's live views (see Start).
//
// Thread safety: Start/Stop from one controlling thread; handlers run on the server's pool.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "live/common/health.h"
#include "live/dashboard/http_types.h"

namespace orrery::live::http {

struct HttpServerOptions {
  std::string bind = "127.0.0.1";
  int port = 8265;    // 0: the OS picks one (see port())
  std::string token;  // REQUIRES: non-empty
  // HTTPS when both are set (PEM). No client certificate is asked for: the token authenticates.
  std::string tls_cert_pem, tls_key_pem;
  ReadinessCheck not_ready;  // /readyz; unset: as /healthz
  std::string index_asset = "index.html";  // the page served for view paths
  bool read_only = false;
  // Shown on the 401 page: how to get the address with the token, e.g. "run `orrery dashboard-url`
  // on the head machine, or open the URL `orrery start --head` printed".
  std::string login_hint;
};

class HttpServer {
 public:
  // Binds and starts serving. Unavailable naming the address if it cannot listen.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                     Handler api);
  ~HttpServer();
  int port() const;
  // Stops accepting, closes open connections and streams, joins the threads. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orrery::live::http

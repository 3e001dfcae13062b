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
// HTTP/1.1 keep-alive; server-sent event streams for the head's live views
// (HttpServerOptions::stream).
// Limits: 256 open connections (503 beyond), 64 open streams (503 beyond), a request has 30 s to
// arrive (an idle keep-alive connection closes after 30 s) and a reply 30 s to be written, request
// bodies up to 1 MiB, at most 64 MiB of reply bodies not yet written over all connections (503
// beyond: slow clients cannot make the server hold unbounded memory).
//
// Threading: one IO thread accepts, reads and writes every connection asynchronously; requests
// are handled on a pool of 4 threads, so a slow handler never holds up the others.
// Thread safety: Start/Stop from one controlling thread; handlers run on the server's pool.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "live/common/health.h"
#include "live/dashboard/http_types.h"

namespace orrery::live::http {

// The writing end of one server-sent event stream (HttpServerOptions::stream).
// Thread safety: thread-safe; Send never blocks (it queues; the IO thread writes).
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues `event: EVENT\ndata: DATA\n\n` (DATA one line, e.g. JSON). False once the stream is
  // closed (the client went, the server stops, or the client fell 8 MiB behind): drop the sink.
  virtual bool Send(const std::string& event, const std::string& data) = 0;
  virtual bool closed() const = 0;
};

// Called (on a pool thread, after auth) for a GET under /api/ whose path ends in "/stream":
// nullopt accepts (the route keeps `sink` and sends on it from any thread until it is closed); a
// Response refuses (400 naming a bad parameter, 404 unknown id). Unset: such paths go to the
// Handler like any other.
using StreamHandler =
    std::function<std::optional<Response>(const Request&, std::shared_ptr<EventSink>)>;

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
  StreamHandler stream;  // server-sent event routes (the head's); unset: none
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

// JobHttpServer: the head's HTTP/JSON jobs API (Ray's dashboard job routes), Boost.Beast.
//
//   GET    /api/version              -> {"version": "4", "ray_version": "orrery", ...}
//   POST   /api/jobs/                {"entrypoint": "...", "submission_id"?, "runtime_env"?,
//                                     "metadata"?, "entrypoint_num_cpus"?, "entrypoint_num_gpus"?,
//                                     "entrypoint_resources"?}  -> {"submission_id": "..."}
//   GET    /api/jobs/                -> [job details, ...]            (live/head/jobs/job_manager.h)
//   GET    /api/jobs/{id}            -> job details
//   GET    /api/jobs/{id}/logs[?offset=N][&limit=M] | [?tail=N][&limit=M]
//                                    -> {"logs": "...", "offset", "next_offset", "start_offset",
//                                        "end_offset", "truncated", "complete"}
//          at most `limit` bytes [1 MiB, at most 8 MiB] from byte `offset` of the job's output
//          [0: the oldest kept byte], or its last N lines; page on with offset=next_offset
//          while "truncated". "complete": the job ended and this is the end of its log.
//   POST   /api/jobs/{id}/stop       -> {"stopped": true|false}
//   DELETE /api/jobs/{id}            -> {"deleted": true}
//
//   GET    /healthz, /readyz         -> "ok" | 503 "not ready: <reason>" (text; no token needed)
//
// Every other request needs `Authorization: Bearer <cluster token>` (401 otherwise). Errors are
// JSON `{"error": "..."}`: 400 for bad input (naming the field), 404 unknown job or route, 405 wrong
// method, 503 while the head stops, beyond 256 open connections or 64 MiB of log text in replies
// not yet written (slow clients). One request per connection
// (the server closes it); a request has 30 s to arrive and its reply 30 s to be written (with
// HTTPS the TLS handshake counts in the first 30 s).
//
// Threading: one server thread accepts, reads and writes every connection asynchronously; the
// requests themselves are handled on a pool of 4 threads, so a slow one (a large log chunk)
// never holds up the others. A handler runs its JobManager call on the head's loop through
// `run_on_loop` (short closures; log files are read on the pool thread, not on the loop) —
// gRPC threads are never involved.
//
// Thread safety: Start/Stop from one controlling thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "live/common/health.h"
#include "live/head/jobs/job_manager.h"

namespace orrery::live {

struct JobHttpOptions {
  std::string bind = "127.0.0.1";
  int port = 8265;  // 0: the OS picks one (see port())
  std::string token;
  // --- TLS: HTTPS when both are set (PEM; the head passes its --tls-dir identity). No client
  // certificate is asked for: the token authenticates, and probes and browsers have none.
  std::string tls_cert_pem, tls_key_pem;
  // GET /healthz and /readyz (live/common/health.h), answered without the token: why the head is
  // not ready ("" when it is). Unset: /readyz answers as /healthz.
  ReadinessCheck not_ready;
};

// The body of `POST /api/jobs/` as a request (Ray's JobSubmitRequest fields; null means unset).
// InvalidArgument naming the field for malformed JSON, a wrong type or an unknown field.
StatusOr<v1::SubmitJobRequest> SubmitRequestFromJson(const std::string& body);

class JobHttpServer {
 public:
  // Runs `fn` on the loop that owns `jobs` and waits; false if that loop is stopped.
  using RunOnLoop = std::function<bool(const std::function<void()>&)>;

  // Binds and starts serving. Unavailable naming the address if it cannot listen.
  // REQUIRES: `jobs` outlives the server (Stop before it goes).
  static StatusOr<std::unique_ptr<JobHttpServer>> Start(const JobHttpOptions& options,
                                                        RunOnLoop run_on_loop, JobManager* jobs);
  ~JobHttpServer();
  int port() const;
  // Stops accepting, drops open connections and joins the thread. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit JobHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orrery::live

// JobRoutes: the head's jobs API (Ray's dashboard job routes) as a route handler of the head's
// dashboard server (live/dashboard/http_server.h, which does auth, keep-alive and TLS):
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
// Errors are JSON `{"error": "..."}`: 400 for bad input (naming the field), 404 unknown job, 405
// wrong method, 503 while the head stops. (GET /api/jobs/{id}/logs/stream is the head routes'
// event stream: live/dashboard/head_routes.h.)
//
// A handler runs its JobManager call on the head's loop through `run_on_loop` (short closures;
// log files are read on the calling pool thread, not on the loop).
//
// Thread safety: Handle may be called from several threads at once.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "live/dashboard/http_types.h"
#include "live/head/jobs/job_manager.h"

namespace orrery::live {

// The body of `POST /api/jobs/` as a request (Ray's JobSubmitRequest fields; null means unset).
// InvalidArgument naming the field for malformed JSON, a wrong type or an unknown field.
StatusOr<v1::SubmitJobRequest> SubmitRequestFromJson(const std::string& body);

// The query of GET /api/jobs/{id}/logs: InvalidArgument naming an unknown or malformed parameter.
Status ParseLogQuery(const http::Request& req, uint64_t* offset, uint64_t* limit, uint64_t* tail);

class JobRoutes {
 public:
  // Runs `fn` on the loop that owns `jobs` and waits; false if that loop is stopped.
  using RunOnLoop = std::function<bool(const std::function<void()>&)>;

  // REQUIRES: `jobs` outlives the routes.
  JobRoutes(RunOnLoop run_on_loop, JobManager* jobs);

  // The reply to a jobs route; nullopt when `req` is not one (/api/version, /api/jobs[/...]).
  std::optional<http::Response> Handle(const http::Request& req);

  // The log of job `id` (NotFound; Unavailable while the head stops), for log streams.
  StatusOr<std::shared_ptr<JobLog>> LogOf(const std::string& id);

 private:
  http::Response Submit(const std::string& body);
  http::Response Logs(const std::string& id, const http::Request& req);

  const RunOnLoop run_;
  JobManager* const jobs_;
};

}  // namespace orrery::live

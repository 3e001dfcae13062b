#include "live/head/jobs/job_http.h"

#include <cmath>

#include "core/io/json_input.h"
#include "live/rpc/convert.h"

namespace orrery::live {

using nlohmann::json;

namespace {

constexpr long long kDefaultLogLimit = 1 << 20;  // GET .../logs without limit
constexpr long long kMaxLogLimit = 8 << 20;

StatusOr<double> Quantity01(const json& v, const std::string& field) {
  if (!v.is_number()) return InvalidArgument(field + ": expected a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > 1e12) {
    return InvalidArgument(field + ": expected a non-negative number");
  }
  return d;
}

}  // namespace

// The body of POST /api/jobs/ as a request (Ray's JobSubmitRequest fields). InvalidArgument
// naming the field for a wrong type or an unknown field.
StatusOr<v1::SubmitJobRequest> SubmitRequestFromJson(const std::string& body) {
  if (Status deep = io::CheckJsonNesting(body); !deep.ok()) {
    return InvalidArgument("request body: " + deep.message());
  }
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("request body: malformed JSON");
  if (!j.is_object()) return InvalidArgument("request body: expected a JSON object");
  v1::SubmitJobRequest req;
  std::map<std::string, Quantity> resources;
  for (const auto& [k, v] : j.items()) {
    if (v.is_null()) continue;  // Ray's clients send null for unset optional fields
    if (k == "entrypoint" || k == "submission_id" || k == "job_id") {
      if (!v.is_string()) return InvalidArgument(k + ": expected a string");
      if (k == "entrypoint") req.set_entrypoint(v.get<std::string>());
      if (k == "submission_id" || (k == "job_id" && req.submission_id().empty())) {
        req.set_submission_id(v.get<std::string>());
      }
    } else if (k == "runtime_env") {
      if (!v.is_object()) return InvalidArgument("runtime_env: expected a JSON object");
      if (!v.empty()) req.set_runtime_env_json(v.dump());
    } else if (k == "metadata") {
      if (!v.is_object()) return InvalidArgument("metadata: expected a JSON object of strings");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) return InvalidArgument("metadata." + mk + ": expected a string");
        (*req.mutable_metadata())[mk] = mv.get<std::string>();
      }
    } else if (k == "entrypoint_num_cpus" || k == "entrypoint_num_gpus" ||
               k == "entrypoint_memory") {
      auto d = Quantity01(v, k);
      if (!d.ok()) return d.status();
      const std::string name = k == "entrypoint_num_cpus"   ? "CPU"
                               : k == "entrypoint_num_gpus" ? "GPU"
                                                            : "memory";
      if (*d > 0) resources[name] = Quantity::FromDouble(*d);
    } else if (k == "entrypoint_resources") {
      if (!v.is_object()) return InvalidArgument("entrypoint_resources: expected a JSON object");
      for (const auto& [rk, rv] : v.items()) {
        if (rk.empty()) return InvalidArgument("entrypoint_resources: empty resource name");
        auto d = Quantity01(rv, "entrypoint_resources." + rk);
        if (!d.ok()) return d.status();
        if (*d > 0) resources[rk] = Quantity::FromDouble(*d);
      }
    } else {
      return InvalidArgument("unknown field '" + k +
                             "' (expected entrypoint, submission_id, runtime_env, metadata, "
                             "entrypoint_num_cpus, entrypoint_num_gpus, entrypoint_memory, "
                             "entrypoint_resources)");
    }
  }
  if (!j.contains("entrypoint")) return InvalidArgument("entrypoint: missing");
  ToProto(ResourceSet::FromMap(resources), req.mutable_entrypoint_resources());
  ORRERY_RETURN_IF_ERROR(ValidateSubmitJob(req));
  return req;
}

JobRoutes::JobRoutes(RunOnLoop run_on_loop, JobManager* jobs)
    : run_(std::move(run_on_loop)), jobs_(jobs) {}

namespace {

http::Response Unavailable() { return http::ErrorResponse(503, "the head is stopping"); }

}  // namespace

std::optional<http::Response> JobRoutes::Handle(const http::Request& req) {
  const std::string& path = req.path;
  const std::string& method = req.method;
  if (path == "/api/version") {
    if (method != "GET" && method != "HEAD") {
      return http::ErrorResponse(405, "/api/version: expected GET");
    }
    // Ray's job SDK asks this first; answering it never touches the loop.
    return http::JsonResponse(json{{"version", "4"}, {"ray_version", "orrery"}, {"ray_commit", ""},
                     {"server", "orrery"}});
  }
  const std::string prefix = "/api/jobs";
  if (path.rfind(prefix, 0) != 0 || (path.size() > prefix.size() && path[prefix.size()] != '/')) {
    return std::nullopt;
  }
  std::string rest = path.substr(prefix.size());
  if (!rest.empty()) rest.erase(0, 1);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const bool get = method == "GET" || method == "HEAD";
  if (rest.empty()) {
    if (method == "POST") return Submit(req.body);
    if (get) {
      json arr = json::array();
      if (!run_([&] {
            for (const auto& j : jobs_->List()) arr.push_back(JobInfoToJson(j));
          })) {
        return Unavailable();
      }
      return http::JsonResponse(arr);
    }
    return http::ErrorResponse(405, "/api/jobs/: expected GET or POST");
  }
  const auto slash = rest.find('/');
  const std::string id = rest.substr(0, slash);
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (action.empty()) {
    if (get) {
      StatusOr<v1::JobInfo> job = NotFound("");
      if (!run_([&] { job = jobs_->Get(id); })) return Unavailable();
      if (!job.ok()) return http::StatusResponse(job.status());
      return http::JsonResponse(JobInfoToJson(*job));
    }
    if (method == "DELETE") {
      Status s;
      if (!run_([&] { s = jobs_->Delete(id); })) return Unavailable();
      if (!s.ok()) return http::StatusResponse(s);
      return http::JsonResponse(json{{"deleted", true}});
    }
    return http::ErrorResponse(405, "/api/jobs/{id}: expected GET or DELETE");
  }
  if (action == "logs") {
    if (!get) return http::ErrorResponse(405, "/api/jobs/{id}/logs: expected GET");
    return Logs(id, req);
  }
  if (action == "stop") {
    if (method != "POST") return http::ErrorResponse(405, "/api/jobs/{id}/stop: expected POST");
    StatusOr<bool> stopped = NotFound("");
    if (!run_([&] { stopped = jobs_->Stop(id); })) return Unavailable();
    if (!stopped.ok()) return http::StatusResponse(stopped.status());
    return http::JsonResponse(json{{"stopped", *stopped}});
  }
  return http::ErrorResponse(404, "no route " + path);
}

http::Response JobRoutes::Submit(const std::string& body) {
  auto req = SubmitRequestFromJson(body);
  if (!req.ok()) return http::StatusResponse(req.status());
  StatusOr<std::string> id = NotFound("");
  if (!run_([&] { id = jobs_->Submit(*req); })) return Unavailable();
  if (!id.ok()) return http::StatusResponse(id.status());
  return http::JsonResponse(json{{"submission_id", *id}, {"job_id", *id}});
}

Status ParseLogQuery(const http::Request& req, uint64_t* offset, uint64_t* limit,
                     uint64_t* tail) {
  for (const auto& [key, value] : req.query) {
    if (key != "offset" && key != "limit" && key != "tail") {
      return InvalidArgument("unknown query parameter '" + key.substr(0, 64) +
                             "' (expected offset, limit, tail)");
    }
  }
  long long o = 0, l = 0, t = 0;
  std::string error;
  if (!http::QueryInt(req, "offset", 0, 1LL << 62, 0, &o, &error) ||
      !http::QueryInt(req, "limit", 1, kMaxLogLimit, kDefaultLogLimit, &l, &error) ||
      !http::QueryInt(req, "tail", 0, 1000000, 0, &t, &error)) {
    return InvalidArgument(error);
  }
  *offset = static_cast<uint64_t>(o);
  *limit = static_cast<uint64_t>(l);
  *tail = static_cast<uint64_t>(t);
  return Status::Ok();
}

// GET /api/jobs/{id}/logs[?offset=N][&limit=M] or [?tail=N][&limit=M]: a bounded chunk. Only the
// log handle is fetched on the loop; the file is read here (a pool thread).
http::Response JobRoutes::Logs(const std::string& id, const http::Request& req) {
  uint64_t offset = 0, limit = 0, tail = 0;
  if (Status s = ParseLogQuery(req, &offset, &limit, &tail); !s.ok()) return http::StatusResponse(s);
  StatusOr<std::shared_ptr<JobLog>> log = NotFound("");
  if (!run_([&] { log = jobs_->LogOf(id); })) return Unavailable();
  if (!log.ok()) return http::StatusResponse(log.status());
  auto r = tail > 0 ? (*log)->Tail(static_cast<int>(tail), limit) : (*log)->Read(offset, limit);
  if (!r.ok()) return http::StatusResponse(r.status());
  const uint64_t next = r->offset + r->data.size();
  return http::JsonResponse(json{{"logs", std::move(r->data)},
                   {"offset", r->offset},
                   {"next_offset", next},
                   {"start_offset", r->start_offset},
                   {"end_offset", r->end_offset},
                   {"truncated", next < r->end_offset},
                   {"complete", r->closed && next == r->end_offset}});
}

StatusOr<std::shared_ptr<JobLog>> JobRoutes::LogOf(const std::string& id) {
  StatusOr<std::shared_ptr<JobLog>> log = NotFound("");
  if (!run_([&] { log = jobs_->LogOf(id); })) return Status(StatusCode::kUnavailable, "the head is stopping");
  return log;
}

}  // namespace orrery::live

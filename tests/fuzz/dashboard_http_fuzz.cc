// Fuzz target: what the dashboard server hands the head's routes from outside input. The input
// is split into a request: the first line is the method, the second the target, then header
// lines up to an empty line, then the body. It goes through http::ParseTarget, QueryInt,
// SubmitRequestFromJson (the body of POST /api/jobs/), ParseLogQuery, and the job and head
// routes themselves (with a head whose loop is stopped, so every route validates its parameters
// and then answers 503 or the error). Nothing may crash, hang or leak; replies must be JSON.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "live/dashboard/head_routes.h"
#include "live/dashboard/http_types.h"
#include "live/head/jobs/job_http.h"

using namespace orrery::live;

namespace {

dashboard::HeadRoutes& Routes() {
  static JobRoutes* jobs = new JobRoutes([](const std::function<void()>&) { return false; },
                                         nullptr);
  static dashboard::EventRing* events = new dashboard::EventRing(16);
  static dashboard::MetricsHistory* metrics = new dashboard::MetricsHistory();
  static dashboard::HeadRoutes* routes = [] {
    dashboard::HeadSource src;
    src.run_on_loop = [](const std::function<void()>&) { return false; };  // a stopped head
    return new dashboard::HeadRoutes(std::move(src), jobs, events, metrics, nullptr);
  }();
  return *routes;
}

std::string_view Line(std::string_view* in) {
  const size_t nl = in->find('\n');
  std::string_view line = in->substr(0, nl);
  *in = nl == std::string_view::npos ? std::string_view() : in->substr(nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  http::Request req;
  req.method = std::string(Line(&in));
  const std::string target(Line(&in));
  while (!in.empty()) {
    const std::string_view h = Line(&in);
    if (h.empty()) break;
    const size_t colon = h.find(':');
    req.headers[std::string(h.substr(0, colon))] =
        colon == std::string_view::npos ? "" : std::string(h.substr(colon + 1));
  }
  req.body = std::string(in);
  std::string error;
  if (!http::ParseTarget(target, &req, &error)) {
    if (error.empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  long long v = 0;
  for (const char* name : {"offset", "limit", "tail", "after", "since"}) {
    error.clear();
    if (!http::QueryInt(req, name, -5, 1LL << 40, 7, &v, &error) && error.empty()) {
      __builtin_trap();
    }
  }
  (void)http::QueryEscape(req.path);
  (void)SubmitRequestFromJson(req.body);
  uint64_t offset = 0, limit = 0, tail = 0;
  (void)ParseLogQuery(req, &offset, &limit, &tail);
  const http::Response r = Routes().Handle(req);
  if (r.status < 200 || r.status > 599) __builtin_trap();
  if (r.content_type == "application/json" &&
      nlohmann::json::parse(r.body, nullptr, false).is_discarded()) {
    __builtin_trap();
  }
  return 0;
}

// The dashboard's HTTP request and reply as plain values, shared by the server
// (live/dashboard/http_server.h), the head's routes and `orrery dashboard RESULTS_DIR`'s routes.
// A route handler is a pure function of the request: no sockets, no threads, so it can be unit
// tested and fuzzed without a server.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace orrery::live::http {

struct Request {
  std::string method;  // "GET", "POST", "DELETE", ...
  std::string path;    // percent-decoded, without the query, e.g. "/api/nodes/abc"
  // Percent-decoded query parameters ('+' is a space). A repeated name keeps its last value.
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, e.g. Set-Cookie
};

// Answers a request under /api/ (auth already checked by the server).
using Handler = std::function<Response(const Request&)>;

// {"error": message} with `status` (400 bad input naming the parameter, 404 unknown id or route,
// 405 wrong method, 503 unavailable).
Response ErrorResponse(int status, const std::string& message);
// `body` as compact JSON with `status`. Text that is not UTF-8 (log lines, a chunk that cuts a
// character) is replaced, never thrown.
Response JsonResponse(const nlohmann::json& body, int status = 200);
// A failed Status as its error reply: NotFound 404; InvalidArgument, AlreadyExists and
// FailedPrecondition 400; Unavailable and DeadlineExceeded 503; anything else 500.
Response StatusResponse(const Status& s);

// Query parameter `name` as an integer in [min, max]; `fallback` when absent. InvalidArgument-style
// message (naming the parameter and what was expected) in `error` when malformed or out of range.
bool QueryInt(const Request& r, const std::string& name, long long min, long long max,
              long long fallback, long long* out, std::string* error);

// Splits a request target ("/a%20b/c?x=1&y=%2F") into the percent-decoded path and query
// parameters of `out` ('+' in the query is a space). False with a message for a target that is
// not an absolute path, a bad %-escape, or a path that decodes to a NUL byte or ".." segment.
bool ParseTarget(std::string_view target, Request* out, std::string* error);

// Percent-encodes `s` for a query value (unreserved characters stay).
std::string QueryEscape(std::string_view s);

}  // namespace orrery::live::http

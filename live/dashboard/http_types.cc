#include "live/dashboard/http_types.h"

#include <cctype>
#include <charconv>

#include <nlohmann/json.hpp>

namespace orrery::live::http {

Response ErrorResponse(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::replace);
  return r;
}

Response JsonResponse(const nlohmann::json& body, int status) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Response StatusResponse(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return ErrorResponse(404, std::string(s.message()));
    case StatusCode::kInvalidArgument:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return ErrorResponse(400, std::string(s.message()));
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return ErrorResponse(503, std::string(s.message()));
    default:
      return ErrorResponse(500, std::string(s.message()));
  }
}

bool QueryInt(const Request& r, const std::string& name, long long min, long long max,
              long long fallback, long long* out, std::string* error) {
  auto it = r.query.find(name);
  if (it == r.query.end()) {
    *out = fallback;
    return true;
  }
  const std::string& s = it->second;
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
    *error = "query parameter '" + name + "': expected an integer in [" + std::to_string(min) +
             ", " + std::to_string(max) + "], got '" + s.substr(0, 64) + "'";
    return false;
  }
  *out = v;
  return true;
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Decode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace

bool ParseTarget(std::string_view target, Request* out, std::string* error) {
  const size_t q = target.find('?');
  const std::string_view raw_path = target.substr(0, q);
  if (raw_path.empty() || raw_path[0] != '/') {
    *error = "request target: expected an absolute path";
    return false;
  }
  if (!Decode(raw_path, false, &out->path)) {
    *error = "request path: bad %-escape";
    return false;
  }
  if (out->path.find('\0') != std::string::npos) {
    *error = "request path: NUL byte";
    return false;
  }
  for (size_t pos = 0; pos != std::string::npos;) {  // no ".." segment anywhere
    const size_t next = out->path.find('/', pos + 1);
    if (out->path.substr(pos + 1, next == std::string::npos ? next : next - pos - 1) == "..") {
      *error = "request path: '..' segment";
      return false;
    }
    pos = next;
  }
  out->query.clear();
  if (q == std::string_view::npos) return true;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (kv.empty()) continue;
    const size_t eq = kv.find('=');
    std::string key, value;
    if (!Decode(kv.substr(0, eq), true, &key) ||
        (eq != std::string_view::npos && !Decode(kv.substr(eq + 1), true, &value))) {
      *error = "query: bad %-escape";
      return false;
    }
    out->query[key] = std::move(value);
  }
  return true;
}

std::string QueryEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace orrery::live::http

#include "live/dashboard/http_types.h"

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

}  // namespace orrery::live::http

// The JSON getters of the field-reader kit (json_fields.h), moved out of the explain-case loader.
#include "core/io/json_fields.h"

#include <cmath>
#include <cstdio>
#include <utility>

namespace orrery::io {
namespace {

using nlohmann::json;

#define JSON_FIELDS_CONCAT_INNER(a, b) a##b
#define JSON_FIELDS_CONCAT(a, b) JSON_FIELDS_CONCAT_INNER(a, b)
// Evaluates `expr` (a StatusOr); returns its Status from the enclosing function if not OK,
// otherwise moves the value into `lhs`.
#define JSON_FIELDS_ASSIGN_OR_RETURN(lhs, expr)               \
  auto JSON_FIELDS_CONCAT(fields_or_, __LINE__) = (expr);     \
  if (!JSON_FIELDS_CONCAT(fields_or_, __LINE__).ok()) {       \
    return JSON_FIELDS_CONCAT(fields_or_, __LINE__).status(); \
  }                                                           \
  lhs = std::move(JSON_FIELDS_CONCAT(fields_or_, __LINE__)).value()

// Shortest readable form of a bound in a message: 0, 1, 0.5.
std::string FormatNumber(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", x);
  return buf;
}

std::string JoinKeys(std::initializer_list<const char*> keys) {
  std::string out;
  for (const char* k : keys) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

}  // namespace

// `v` is an object whose keys are all in `allowed`.
Status JsonFields::Object(const json& v, const JsonPath& p,
                          std::initializer_list<const char*> allowed) const {
  if (!v.is_object()) return Fail(p, "expected an object, got " + DescribeJson(v));
  for (const auto& [key, value] : v.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    if (!known) {
      return Fail(p.Key(key), "unknown key (expected one of: " + JoinKeys(allowed) + ")");
    }
  }
  return Status::Ok();
}

// `obj[key]`, which must be present. REQUIRES: obj is an object.
StatusOr<const JsonFields::json*> JsonFields::Required(const json& obj, const JsonPath& p,
                                                       const char* key) const {
  auto it = obj.find(key);
  if (it == obj.end()) return Fail(p.Key(key), "required key is missing");
  return &*it;
}
// `obj[key]` or nullptr when absent. REQUIRES: obj is an object.
const JsonFields::json* JsonFields::Optional(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

StatusOr<std::string> JsonFields::String(const json& v, const JsonPath& p) const {
  if (!v.is_string()) return Fail(p, "expected a string, got " + DescribeJson(v));
  return v.get<std::string>();
}

StatusOr<bool> JsonFields::Bool(const json& v, const JsonPath& p) const {
  if (!v.is_boolean()) return Fail(p, "expected true or false, got " + DescribeJson(v));
  return v.get<bool>();
}

// A non-negative integer (written without a fraction or exponent).
StatusOr<uint64_t> JsonFields::Unsigned(const json& v, const JsonPath& p) const {
  if (!v.is_number_unsigned()) {
    return Fail(p, "expected an integer >= 0, got " + DescribeJson(v));
  }
  return v.get<uint64_t>();
}

// A number in [lo, hi].
StatusOr<double> JsonFields::Number(const json& v, const JsonPath& p, double lo, double hi) const {
  if (!v.is_number()) return Fail(p, "expected a number, got " + DescribeJson(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    return Fail(p, "expected a number between " + FormatNumber(lo) + " and " + FormatNumber(hi) +
                       ", got " + (std::isfinite(x) ? DescribeJson(v) : "an infinite number"));
  }
  return x;
}

// One of `choices` (written "a|b|c" in messages).
StatusOr<std::string> JsonFields::Enum(const json& v, const JsonPath& p,
                                       std::initializer_list<const char*> choices) const {
  std::string all;
  for (const char* c : choices) all += (all.empty() ? "" : "|") + std::string(c);
  if (!v.is_string()) return Fail(p, "expected one of " + all + ", got " + DescribeJson(v));
  const auto s = v.get<std::string>();
  for (const char* c : choices) {
    if (s == c) return s;
  }
  return Fail(p, "expected one of " + all + ", got " + DescribeJson(v));
}

// A well-formed node id: non-empty, at most 256 bytes, no white space or control characters.
StatusOr<NodeId> JsonFields::NodeIdValue(const json& v, const JsonPath& p) const {
  constexpr const char* kWant =
      "expected a node id (a non-empty string without spaces or control characters), got ";
  if (!v.is_string()) return Fail(p, kWant + DescribeJson(v));
  auto id = v.get<std::string>();
  bool ok = !id.empty() && id.size() <= kMaxNodeIdBytes;
  for (char c : id) ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
  if (!ok) return Fail(p, kWant + DescribeJson(v));
  return id;
}

// A resource quantity: a finite number in [0, 1e14] that does not round to 0 unless it is 0.
StatusOr<Quantity> JsonFields::QuantityValue(const json& v, const JsonPath& p) const {
  if (!v.is_number()) return Fail(p, "expected a quantity >= 0, got " + DescribeJson(v));
  const double x = v.get<double>();
  if (!std::isfinite(x)) return Fail(p, "quantity out of range (at most 1e14)");
  if (x < 0) return Fail(p, "expected a quantity >= 0, got " + DescribeJson(v));
  if (x > kMaxFileQuantity) {
    return Fail(p, "quantity out of range (at most 1e14), got " + DescribeJson(v));
  }
  const Quantity q = Quantity::FromDouble(x);
  if (x > 0 && q.IsZero()) {
    return Fail(p, "quantity " + DescribeJson(v) + " is below the 0.0001 resolution");
  }
  return q;
}

// {name: quantity}. Names must be non-empty and free of control characters.
StatusOr<std::map<std::string, Quantity>> JsonFields::Resources(const json& v,
                                                                const JsonPath& p) const {
  if (!v.is_object()) {
    return Fail(p, "expected an object of resource quantities, got " + DescribeJson(v));
  }
  std::map<std::string, Quantity> out;
  for (const auto& [name, value] : v.items()) {
    const JsonPath at = p.Key(name);
    bool ok = !name.empty();
    for (char c : name) ok = ok && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
    if (!ok) return Fail(at, "a resource name must be non-empty, without control characters");
    JSON_FIELDS_ASSIGN_OR_RETURN(out[name], QuantityValue(value, at));
  }
  return out;
}

// A resource request: Resources() plus the per-device rule for unit-instance names.
StatusOr<ResourceRequest> JsonFields::Request(const json& v, const JsonPath& p) const {
  JSON_FIELDS_ASSIGN_OR_RETURN(auto quantities, Resources(v, p));
  const UnitInstanceNames units;
  std::map<std::string, double> doubles;
  for (const auto& [name, q] : quantities) {
    if (units.Contains(name) && q > kOneUnit && !q.IsWhole()) {
      return Fail(p.Key(name), name +
                                   " is allocated per device: a request above 1 must be a "
                                   "whole number, got " +
                                   q.ToString());
    }
    doubles[name] = q.ToDouble();
  }
  // Everything Create() checks was checked above with a better message; this cannot fail.
  auto r = ResourceRequest::Create(doubles, units, p.ToString());
  if (!r.ok()) return Fail(p, r.status().message());
  return std::move(r).value();
}

}  // namespace orrery::io

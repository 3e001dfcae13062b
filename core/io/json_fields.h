// The JSON face of core/io's field-reader kit (the YAML face is yaml_fields.h): typed getters
// over a JsonDocument that turn every mismatch into an InvalidArgument naming the field's path,
// what was expected and where it is:
//   requests[1].resources.GPU: expected a quantity >= 0, got -1 (line 14, column 31)
// The explain-case loader (case_json.h) reads through it; any other JSON input can.
//
// Getters take the value and its path (the caller walks the document, so the path of every
// value is known) and return it converted, or the error.
//
// Thread safety: holds a reference to the document; use from one thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/cluster_view.h"
#include "core/io/json_input.h"
#include "core/resources.h"
#include "core/status.h"

namespace orrery::io {

// Largest quantity a file may give; keeps fixed-point sums far from overflow (as the core does).
inline constexpr double kMaxFileQuantity = 1e14;
// Node ids longer than this are certainly a mistake (Ray's are 56 hex digits).
inline constexpr size_t kMaxNodeIdBytes = 256;

class JsonFields {
 public:
  using json = nlohmann::json;

  // REQUIRES: `doc` outlives this reader.
  explicit JsonFields(const JsonDocument& doc) : doc_(doc) {}

  // "PATH: MESSAGE (line L, column C)".
  Status Fail(const JsonPath& p, const std::string& message) const {
    return doc_.Error(p, message);
  }

  // `v` is an object whose keys are all in `allowed`.
  Status Object(const json& v, const JsonPath& p, std::initializer_list<const char*> allowed) const;
  // `obj[key]`, which must be present. REQUIRES: obj is an object.
  StatusOr<const json*> Required(const json& obj, const JsonPath& p, const char* key) const;
  // `obj[key]` or nullptr when absent. REQUIRES: obj is an object.
  static const json* Optional(const json& obj, const char* key);

  StatusOr<std::string> String(const json& v, const JsonPath& p) const;
  StatusOr<bool> Bool(const json& v, const JsonPath& p) const;
  // A non-negative integer (written without a fraction or exponent).
  StatusOr<uint64_t> Unsigned(const json& v, const JsonPath& p) const;
  // A finite number in [lo, hi].
  StatusOr<double> Number(const json& v, const JsonPath& p, double lo, double hi) const;
  // One of `choices` (written "a|b|c" in messages); case-sensitive.
  StatusOr<std::string> Enum(const json& v, const JsonPath& p,
                             std::initializer_list<const char*> choices) const;
  // A well-formed node id: non-empty, at most kMaxNodeIdBytes, no white space or control
  // characters.
  StatusOr<NodeId> NodeIdValue(const json& v, const JsonPath& p) const;
  // A resource quantity: a finite number in [0, 1e14] that does not round to 0 unless it is 0.
  StatusOr<Quantity> QuantityValue(const json& v, const JsonPath& p) const;
  // {name: quantity}. Names must be non-empty and free of control characters.
  StatusOr<std::map<std::string, Quantity>> Resources(const json& v, const JsonPath& p) const;
  // A resource request: Resources() plus the per-device rule for unit-instance names.
  StatusOr<ResourceRequest> Request(const json& v, const JsonPath& p) const;

 private:
  const JsonDocument& doc_;
};

}  // namespace orrery::io

// Reading user-written JSON files for the command line: the file itself, the document, and where
// in the text each value came from, so that a bad field is reported as
//   case.json: requests[1].resources.GPU: expected a quantity >= 0, got -1 (line 14, column 31)
// (DESIGN section 5: a bad-input message names the file, the line and the field).
//
// Stricter than plain nlohmann::json::parse: empty files, files that are not UTF-8 text and
// objects with a repeated key are rejected instead of being read silently.
//
// Thread safety: value types; not synchronised.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace orrery::io {

// Offset of the first byte that makes `text` not well-formed UTF-8 (RFC 3629, Unicode table 3-7:
// no overlong forms, no surrogates, nothing above U+10FFFF), or npos. NUL is valid UTF-8 here.
// nlohmann's dump() throws on exactly these, so text that passes serialises. O(text).
size_t FirstInvalidUtf8(std::string_view text);

// A location inside a JSON document: object keys and array indexes from the root.
class JsonPath {
 public:
  JsonPath() = default;

  // This path extended by an object key / an array index. O(depth).
  JsonPath Key(std::string_view key) const;
  JsonPath Index(size_t index) const;
  // This path without its last step. REQUIRES: !empty().
  JsonPath Parent() const;
  bool empty() const { return steps_.empty(); }

  // The path as a user reads it: `requests[1].resources.GPU`. Keys that are not plain words
  // (letters, digits, `_`, `-`, `:`, `/`) are written quoted: `labels["a b"]`. The root is "".
  std::string ToString() const;

  friend auto operator<=>(const JsonPath&, const JsonPath&) = default;
  friend bool operator==(const JsonPath&, const JsonPath&) = default;

 private:
  std::vector<std::variant<std::string, size_t>> steps_;
};

// 1-based line and column (in bytes) of a position in a text.
struct TextPosition {
  int line = 1;
  int column = 1;
};

// A parsed JSON document that remembers where each value starts in its text.
class JsonDocument {
 public:
  // Parses `text`. InvalidArgument, with a message naming the line and column, when the text is
  // empty (or only white space), is not UTF-8 text (a NUL byte or an invalid sequence), is not
  // well-formed JSON, holds an object with a repeated key, or nests deeper than
  // kMaxInputNesting (CheckJsonNesting). A leading UTF-8 byte order mark is
  // skipped. Complexity O(text size + values * depth).
  static StatusOr<JsonDocument> Parse(std::string_view text);

  const nlohmann::json& root() const { return root_; }

  // Where the value at `path` starts; for a path that is absent from the document (a missing
  // key), where its nearest enclosing value starts.
  TextPosition PositionOf(const JsonPath& path) const;

  // An InvalidArgument whose message is "PATH: MESSAGE (line L, column C)", or
  // "MESSAGE (line L, column C)" for the root.
  Status Error(const JsonPath& path, const std::string& message) const;

 private:
  JsonDocument() = default;
  nlohmann::json root_;
  std::map<JsonPath, TextPosition> positions_;
};

// How deeply the values of a document from outside (a REST body, a runtime env, a case or
// scenario file) may nest: objects and arrays (JSON), maps and sequences (YAML). Deeper input is
// refused before anything recurses over it (nlohmann's dump and comparisons, yaml-cpp, our own
// walkers), so a crafted document is an error, never a stack overflow.
inline constexpr int kMaxInputNesting = 64;

// "nesting deeper than 64 levels": the words every refusal of too-deep input uses.
std::string NestingLimitMessage(int max_depth = kMaxInputNesting);

// A pre-scan of JSON text: InvalidArgument "nesting deeper than N levels (line L, column C)" when
// objects and arrays nest deeper than `max_depth` (brackets inside strings do not count). Says
// nothing about whether the text is well-formed; run it before json::parse. O(text size), no
// allocation, no recursion.
Status CheckJsonNesting(std::string_view text, int max_depth = kMaxInputNesting);

// Reads a whole file into memory. InvalidArgument naming the cause when it does not exist, is a
// directory, cannot be read or is larger than `max_bytes`. The message does not repeat the path.
StatusOr<std::string> ReadTextFile(const std::string& path, size_t max_bytes);

// A short rendering of a JSON value for "got ..." in messages: scalars as JSON text (cut to about
// 40 characters), containers as "an object" / "an array".
std::string DescribeJson(const nlohmann::json& value);

}  // namespace orrery::io

#include "core/io/json_input.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <system_error>

namespace orrery::io {
namespace {

using nlohmann::json;

bool IsPlainKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == ':' || c == '/';
    if (!word) return false;
  }
  return true;
}

// Dumps without throwing on invalid UTF-8 (which the parser never lets through, but messages must
// not be able to fail).
std::string SafeDump(const json& v) {
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Position of byte `offset` (0-based) in `text`.
TextPosition PositionAt(std::string_view text, size_t offset) {
  TextPosition p;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++p.line;
      line_start = i + 1;
    }
  }
  p.column = static_cast<int>(offset - line_start) + 1;
  return p;
}

std::string At(TextPosition p) {
  return "line " + std::to_string(p.line) + ", column " + std::to_string(p.column);
}


// The part of an nlohmann parse_error's what() after its "[json.exception...] parse error at line
// L, column C: " prefix, which we replace by our own position.
std::string ParseErrorDetail(const std::string& what) {
  const size_t pe = what.find("parse error");
  if (pe != std::string::npos) {
    const size_t colon = what.find(": ", pe);
    if (colon != std::string::npos) return what.substr(colon + 2);
  }
  return what;
}

// Walks a text that nlohmann has accepted and records where every value starts, keyed by its
// path; rejects objects with a repeated key. Iterative, so nesting depth costs heap, not stack.
class PositionScanner {
 public:
  explicit PositionScanner(std::string_view text) : t_(text) {}

  Status Run(std::map<JsonPath, TextPosition>& out) {
    if (t_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;
    SkipSpace();
    ORRERY_RETURN_IF_ERROR(BeginValue(JsonPath(), out));
    while (!stack_.empty()) {
      SkipSpace();
      if (i_ >= t_.size()) return Truncated();
      char c = t_[i_];
      if (c == '}' || c == ']') {
        ++i_;
        stack_.pop_back();
        continue;
      }
      if (c == ',') {
        ++i_;
        SkipSpace();
      }
      Frame& f = stack_.back();
      if (f.object) {
        const size_t key_start = i_;
        const TextPosition key_pos = Here();
        ORRERY_RETURN_IF_ERROR(SkipString());
        // The key's text is a valid JSON string literal: let the library unescape it.
        const std::string key =
            json::parse(t_.substr(key_start, i_ - key_start)).get<std::string>();
        JsonPath path = f.path.Key(key);
        if (!f.keys.insert(key).second) {
          return InvalidArgument(path.ToString() + ": duplicate key \"" + key + "\" (" +
                                 At(key_pos) + ")");
        }
        SkipSpace();
        if (i_ >= t_.size() || t_[i_] != ':') return Truncated();
        ++i_;
        SkipSpace();
        ORRERY_RETURN_IF_ERROR(BeginValue(path, out));  // may invalidate `f`
      } else {
        JsonPath path = f.path.Index(f.next_index++);
        ORRERY_RETURN_IF_ERROR(BeginValue(path, out));
      }
    }
    return Status::Ok();
  }

 private:
  struct Frame {
    bool object = false;
    JsonPath path;
    size_t next_index = 0;
    std::set<std::string> keys;
  };

  TextPosition Here() const { return {line_, static_cast<int>(i_ - line_start_) + 1}; }

  void SkipSpace() {
    while (i_ < t_.size()) {
      const char c = t_[i_];
      if (c == '\n') {
        ++line_;
        line_start_ = i_ + 1;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        break;
      }
      ++i_;
    }
  }

  // REQUIRES: t_[i_] == '"'. JSON strings hold no raw line breaks, so lines stay in step.
  Status SkipString() {
    if (i_ >= t_.size() || t_[i_] != '"') return Truncated();
    for (++i_; i_ < t_.size(); ++i_) {
      if (t_[i_] == '\\') {
        ++i_;
      } else if (t_[i_] == '"') {
        ++i_;
        return Status::Ok();
      }
    }
    return Truncated();
  }

  Status BeginValue(const JsonPath& path, std::map<JsonPath, TextPosition>& out) {
    if (i_ >= t_.size()) return Truncated();
    out[path] = Here();
    const char c = t_[i_];
    if (c == '{' || c == '[') {
      ++i_;
      stack_.push_back(Frame{.object = c == '{', .path = path});
      return Status::Ok();
    }
    if (c == '"') return SkipString();
    while (i_ < t_.size() && std::strchr(",]} \t\r\n", t_[i_]) == nullptr) ++i_;
    return Status::Ok();
  }

  // Unreachable for text the parser accepted; kept so a disagreement cannot read out of bounds.
  Status Truncated() const { return Internal("JSON position scan ran past the end of the text"); }

  std::string_view t_;
  size_t i_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
  std::vector<Frame> stack_;
};

}  // namespace

size_t FirstInvalidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + static_cast<size_t>(len) > n) return i;
    for (int k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(text[i + static_cast<size_t>(k)]);
      const unsigned char min = k == 1 ? lo : 0x80;
      const unsigned char max = k == 1 ? hi : 0xBF;
      if (c < min || c > max) return i;
    }
    i += static_cast<size_t>(len);
  }
  return std::string_view::npos;
}

std::string NestingLimitMessage(int max_depth) {
  return "nesting deeper than " + std::to_string(max_depth) + " levels";
}

Status CheckJsonNesting(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return InvalidArgument(NestingLimitMessage(max_depth) + " (" +
                               At(PositionAt(text, i)) + ")");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return Status::Ok();
}

JsonPath JsonPath::Key(std::string_view key) const {
  JsonPath p = *this;
  p.steps_.emplace_back(std::string(key));
  return p;
}

JsonPath JsonPath::Index(size_t index) const {
  JsonPath p = *this;
  p.steps_.emplace_back(index);
  return p;
}

JsonPath JsonPath::Parent() const {
  JsonPath p = *this;
  if (!p.steps_.empty()) p.steps_.pop_back();
  return p;
}

std::string JsonPath::ToString() const {
  std::string out;
  for (const auto& step : steps_) {
    if (const auto* index = std::get_if<size_t>(&step)) {
      out += "[" + std::to_string(*index) + "]";
      continue;
    }
    const std::string& key = std::get<std::string>(step);
    if (IsPlainKey(key)) {
      if (!out.empty()) out += ".";
      out += key;
    } else {
      out += "[" + SafeDump(json(key)) + "]";
    }
  }
  return out;
}

StatusOr<JsonDocument> JsonDocument::Parse(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return InvalidArgument("the file is empty: expected a JSON object");
  }
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument("not a text file: NUL byte at " + At(PositionAt(text, nul)));
  }
  if (size_t bad = FirstInvalidUtf8(text); bad != std::string_view::npos) {
    return InvalidArgument("not a UTF-8 text file: invalid byte 0x" + [&] {
      static const char* kHex = "0123456789abcdef";
      const auto b = static_cast<unsigned char>(text[bad]);
      return std::string{kHex[b >> 4], kHex[b & 15]};
    }() + " at " + At(PositionAt(text, bad)));
  }
  ORRERY_RETURN_IF_ERROR(CheckJsonNesting(text));
  JsonDocument doc;
  try {
    doc.root_ = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based index of the last byte read, i.e. where the parser gave up.
    const size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    return InvalidArgument("malformed JSON at " + At(PositionAt(text, offset)) + ": " +
                           ParseErrorDetail(e.what()));
  } catch (const json::exception& e) {
    // out_of_range.406 ("number overflow parsing '1e999'") carries no position.
    const std::string what = e.what();
    const size_t close = what.find("] ");
    return InvalidArgument("malformed JSON: " +
                           (close == std::string::npos ? what : what.substr(close + 2)));
  }
  PositionScanner scanner(text);
  ORRERY_RETURN_IF_ERROR(scanner.Run(doc.positions_));
  return doc;
}

TextPosition JsonDocument::PositionOf(const JsonPath& path) const {
  JsonPath p = path;
  while (true) {
    auto it = positions_.find(p);
    if (it != positions_.end()) return it->second;
    if (p.empty()) return TextPosition{};
    p = p.Parent();
  }
}

Status JsonDocument::Error(const JsonPath& path, const std::string& message) const {
  const std::string where = " (" + At(PositionOf(path)) + ")";
  if (path.empty()) return InvalidArgument(message + where);
  return InvalidArgument(path.ToString() + ": " + message + where);
}

StatusOr<std::string> ReadTextFile(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) {
    return InvalidArgument("cannot open: " +
                           (ec ? ec.message() : std::string("no such file or directory")));
  }
  if (std::filesystem::is_directory(st)) return InvalidArgument("cannot read: is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(std::string("cannot open: ") + std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > max_bytes) {
      return InvalidArgument("file is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  if (in.bad()) return InvalidArgument(std::string("cannot read: ") + std::strerror(errno));
  return data;
}

std::string DescribeJson(const nlohmann::json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  std::string s = SafeDump(value);
  if (s.size() > 40) {
    size_t cut = 37;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole chars
    s = s.substr(0, cut) + "...";
  }
  return s;
}

}  // namespace orrery::io

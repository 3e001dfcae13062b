#include "live/common/runtime_env.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/io/json_input.h"
#include "core/io/yaml_fields.h"
#include "core/io/yaml_input.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kUploadChunk = 1 << 20;

std::string TypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "a list";
    case json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

// Where a field came from: "ORIGIN: FIELD" or "ORIGIN:LINE: FIELD" (YAML knows lines).
using LineOf = std::function<int(const std::string& path)>;

std::string At(std::string_view origin, const LineOf& line_of, const std::string& path) {
  std::string s(origin);
  const int line = line_of ? line_of(path) : 0;
  if (line > 0) s += ":" + std::to_string(line);
  return s + ": " + path;
}

// Validates the parsed tree (JSON or YAML converted to JSON) and builds the env.
StatusOr<RuntimeEnv> FromTree(const json& j, std::string_view origin, const LineOf& line_of) {
  RuntimeEnv env;
  if (j.is_null()) return env;
  if (!j.is_object()) {
    return InvalidArgument(std::string(origin) + ": expected an object with the fields " +
                           kRuntimeEnvFields + ", got " + TypeName(j));
  }
  for (const auto& [key, v] : j.items()) {
    if (key == "env_vars") {
      if (v.is_null()) continue;
      if (!v.is_object()) {
        return InvalidArgument(At(origin, line_of, key) +
                               ": expected an object of NAME: \"value\" strings, got " +
                               TypeName(v));
      }
      for (const auto& [name, value] : v.items()) {
        const std::string field = "env_vars." + name;
        if (name.empty() || name.find('=') != std::string::npos ||
            name.find('\0') != std::string::npos) {
          return InvalidArgument(At(origin, line_of, field) +
                                 ": expected a variable name without '=' (and not empty)");
        }
        if (!value.is_string()) {
          return InvalidArgument(At(origin, line_of, field) + ": expected a string, got " +
                                 TypeName(value) + " (quote it)");
        }
        const std::string s = value.get<std::string>();
        if (s.find('\0') != std::string::npos) {
          return InvalidArgument(At(origin, line_of, field) + ": contains a NUL byte");
        }
        env.env_vars[name] = s;
      }
    } else if (key == "working_dir") {
      if (v.is_null()) continue;
      if (!v.is_string() || v.get<std::string>().empty()) {
        return InvalidArgument(At(origin, line_of, key) +
                               ": expected a directory path (a non-empty string), got " +
                               (v.is_string() ? std::string("an empty string") : TypeName(v)));
      }
      env.working_dir = v.get<std::string>();
    } else if (key == "setup") {
      if (v.is_null()) continue;
      if (!v.is_array()) {
        return InvalidArgument(At(origin, line_of, key) +
                               ": expected a list of shell commands (strings), got " + TypeName(v));
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string field = "setup[" + std::to_string(i) + "]";
        if (!v[i].is_string() || v[i].get<std::string>().empty()) {
          return InvalidArgument(
              At(origin, line_of, field) + ": expected a shell command (a non-empty string), got " +
              (v[i].is_string() ? std::string("an empty string") : TypeName(v[i])));
        }
        env.setup.push_back(v[i].get<std::string>());
      }
    } else if (key == "setup_timeout_s") {
      if (v.is_null()) continue;
      // At most a day: the node's --runtime-env-setup-timeout-s caps it further.
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0 ||
          v.get<double>() > kMaxSetupTimeoutS) {
        return InvalidArgument(At(origin, line_of, key) +
                               ": expected a number of seconds in (0, 86400], got " +
                               (v.is_number() ? v.dump() : TypeName(v)));
      }
      env.setup_timeout_s = v.get<double>();
    } else {
      return InvalidArgument(At(origin, line_of, key) +
                             ": unknown field (allowed: " + kRuntimeEnvFields + ")");
    }
  }
  return env;
}

// YAML -> JSON, recording the line of every path ("env_vars.FOO", "setup[1]").
StatusOr<json> YamlToJson(const YAML::Node& n, const std::string& path,
                          std::map<std::string, int>* lines, std::string_view origin) {
  if (!path.empty()) (*lines)[path] = n.Mark().line + 1;
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return json(s);  // quoted: always a string
      if (s == "true" || s == "True") return json(true);
      if (s == "false" || s == "False") return json(false);
      if (s == "null" || s == "~") return json(nullptr);
      if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' ||
                         s[0] == '+' || s[0] == '.')) {
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (end != nullptr && *end == '\0') return json(d);
      }
      return json(s);
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (size_t i = 0; i < n.size(); ++i) {
        auto v = YamlToJson(n[i], path + "[" + std::to_string(i) + "]", lines, origin);
        if (!v.ok()) return v.status();
        a.push_back(std::move(*v));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) {
          return InvalidArgument(std::string(origin) + ":" +
                                 std::to_string(kv.first.Mark().line + 1) +
                                 ": expected a field name");
        }
        const std::string key = kv.first.Scalar();
        const std::string sub = path.empty() ? key : path + "." + key;
        (*lines)[sub] = kv.first.Mark().line + 1;
        auto v = YamlToJson(kv.second, sub, lines, origin);
        if (!v.ok()) return v.status();
        (*lines)[sub] = kv.first.Mark().line + 1;
        o[key] = std::move(*v);
      }
      return o;
    }
  }
  return json(nullptr);
}

bool AllBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

// ---- packaging ----------------------------------------------------------------------------

struct Walker {
  fs::path root;
  uint64_t max_bytes;
  uint64_t total = 0;
  std::string out;

  Status Add(const fs::path& abs, const std::string& rel) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(abs, ec), end; !ec && it != end; it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec)
      return InvalidArgument("working_dir: cannot read " + abs.string() + ": " + ec.message());
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const fs::path p = abs / name;
      const std::string r = rel.empty() ? name : rel + "/" + name;
      if (r.find('\n') != std::string::npos) {
        return InvalidArgument("working_dir: file name with a newline: " + p.string());
      }
      struct stat st {};
      if (::lstat(p.c_str(), &st) != 0) {
        return InvalidArgument("working_dir: cannot stat " + p.string());
      }
      const unsigned mode = st.st_mode & 07777;
      char head[64];
      if (S_ISDIR(st.st_mode)) {
        std::snprintf(head, sizeof(head), "d %o 0 ", mode);
        out += head + r + "\n";
        ORRERY_RETURN_IF_ERROR(Add(p, r));
      } else if (S_ISREG(st.st_mode)) {
        total += static_cast<uint64_t>(st.st_size);
        if (total > max_bytes) {
          return InvalidArgument("working_dir: " + root.string() + " is larger than the limit of " +
                                 std::to_string(max_bytes) + " bytes (at " + r + ")");
        }
        std::ifstream in(p, std::ios::binary);
        std::ostringstream data;
        data << in.rdbuf();
        if (!in && !in.eof()) return InvalidArgument("working_dir: cannot read " + p.string());
        const std::string bytes = data.str();
        std::snprintf(head, sizeof(head), "f %o %zu ", mode, bytes.size());
        out += head + r + "\n" + bytes;
      } else if (S_ISLNK(st.st_mode)) {
        const std::string target = fs::read_symlink(p, ec).string();
        if (ec) return InvalidArgument("working_dir: cannot read the link " + p.string());
        std::snprintf(head, sizeof(head), "l %o %zu ", 0777u, target.size());
        out += head + r + "\n" + target;
      } else {
        return InvalidArgument("working_dir: " + p.string() +
                               " is not a file, directory or symlink");
      }
    }
    return Status::Ok();
  }
};

}  // namespace

StatusOr<RuntimeEnv> ParseRuntimeEnvJson(std::string_view text, std::string_view origin) {
  if (AllBlank(text)) return RuntimeEnv{};
  if (Status deep = io::CheckJsonNesting(text); !deep.ok()) {
    return InvalidArgument(std::string(origin) + ": " + deep.message());
  }
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // Line of the byte where parsing stopped.
    const size_t at = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
    std::string what = e.what();
    if (auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
    return InvalidArgument(std::string(origin) + ":" + std::to_string(line) + ": malformed JSON (" +
                           what + ")");
  } catch (const json::exception& e) {
    // out_of_range.406 ("number overflow parsing '1e999'") is not a parse_error and carries no
    // position (it once escaped and terminated the CLI: found by runtime_env_json_fuzz).
    return InvalidArgument(std::string(origin) + ": malformed JSON (" + e.what() + ")");
  }
  return FromTree(j, origin, nullptr);
}

StatusOr<RuntimeEnv> ParseRuntimeEnvYaml(std::string_view text, std::string_view origin) {
  if (AllBlank(text)) return RuntimeEnv{};
  // YAML takes any bytes in a scalar; the env travels as JSON, which takes only UTF-8 text (a
  // Latin-1 byte once crashed the canonical form, found by tests/fuzz/runtime_env_json_fuzz).
  if (auto bad = io::FirstNonTextByte(text)) {
    const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + *bad, '\n'));
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[*bad]));
    return InvalidArgument(std::string(origin) + ":" + std::to_string(line) +
                           ": not UTF-8 text (byte " + byte + " at offset " +
                           std::to_string(*bad) + ")");
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string(origin) + ":" + std::to_string(e.mark.line + 1) +
                           ": malformed YAML (" + io::YamlErrorMessage(e) + ")");
  }
  if (Status deep = io::CheckYamlNesting(root); !deep.ok()) {
    return InvalidArgument(std::string(origin) + ": " + deep.message());
  }
  std::map<std::string, int> lines;
  auto j = YamlToJson(root, "", &lines, origin);
  if (!j.ok()) return j.status();
  return FromTree(*j, origin, [&lines](const std::string& path) {
    auto it = lines.find(path);
    return it == lines.end() ? 0 : it->second;
  });
}

StatusOr<RuntimeEnv> LoadRuntimeEnvFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path.string() + ": cannot read the runtime env file");
  std::ostringstream s;
  s << in.rdbuf();
  if (path.extension() == ".json") return ParseRuntimeEnvJson(s.str(), path.string());
  return ParseRuntimeEnvYaml(s.str(), path.string());
}

RuntimeEnv MergeRuntimeEnv(const RuntimeEnv& job, const RuntimeEnv& task) {
  RuntimeEnv out = job;
  for (const auto& [k, v] : task.env_vars) out.env_vars[k] = v;
  if (!task.working_dir.empty()) out.working_dir = task.working_dir;
  if (!task.setup.empty()) out.setup = task.setup;
  if (task.setup_timeout_s > 0) out.setup_timeout_s = task.setup_timeout_s;
  return out;
}

std::string ToJson(const RuntimeEnv& env) {
  if (env.empty()) return "";
  json j = json::object();
  if (!env.env_vars.empty()) j["env_vars"] = env.env_vars;
  if (!env.working_dir.empty()) j["working_dir"] = env.working_dir;
  if (!env.setup.empty()) j["setup"] = env.setup;
  if (env.setup_timeout_s > 0) j["setup_timeout_s"] = env.setup_timeout_s;
  return j.dump();
}

std::string InstallHash(const RuntimeEnv& env) {
  if (env.working_dir.empty() && env.setup.empty()) return "";
  json j = json::object();
  j["working_dir"] = env.working_dir;
  j["setup"] = env.setup;
  return Sha256Hex(j.dump()).substr(0, 32);
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  return Hex(md, n);
}

std::string PackageUri(const std::string& sha256_hex) {
  return std::string(kPackageUriPrefix) + sha256_hex + ".pkg";
}

bool IsPackageUri(const std::string& s) { return PackageHashOf(s).ok(); }

StatusOr<std::string> PackageHashOf(const std::string& uri, std::string_view field) {
  const std::string prefix = kPackageUriPrefix;
  const bool ok = uri.size() == prefix.size() + 64 + 4 && uri.rfind(prefix, 0) == 0 &&
                  uri.compare(uri.size() - 4, 4, ".pkg") == 0;
  const std::string hash = ok ? uri.substr(prefix.size(), 64) : "";
  if (!ok || !std::all_of(hash.begin(), hash.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return InvalidArgument(std::string(field) +
                           ": expected a package URI pkg://<sha256>.pkg, got '" + uri + "'");
  }
  return hash;
}

StatusOr<Package> PackageDirectory(const fs::path& dir, uint64_t max_bytes) {
  std::error_code ec;
  const auto st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) {
    return InvalidArgument("working_dir: " + dir.string() + " does not exist");
  }
  if (!fs::is_directory(st)) {
    return InvalidArgument("working_dir: " + dir.string() + " is not a directory");
  }
  Walker w{dir, max_bytes, 0, std::string(kPackageHeader)};
  ORRERY_RETURN_IF_ERROR(w.Add(dir, ""));
  Package p;
  p.content_bytes = w.total;
  p.bytes = std::move(w.out);
  p.sha256 = Sha256Hex(p.bytes);
  return p;
}

StatusOr<RuntimeEnv> UploadWorkingDir(RuntimeEnv env, const std::string& head_address,
                                      const std::string& token, const UploadOptions& options) {
  if (env.working_dir.empty() || IsPackageUri(env.working_dir)) return env;
  if (env.working_dir.rfind(kPackageUriPrefix, 0) == 0)
    return PackageHashOf(env.working_dir).status();
  auto pkg = PackageDirectory(env.working_dir, options.max_bytes);
  if (!pkg.ok()) return pkg.status();
  auto stub = v1::HeadService::NewStub(
      OpenChannel(head_address));
  {
    grpc::ClientContext ctx;
    AttachToken(&ctx, token);
    ctx.set_deadline(std::chrono::system_clock::now() + options.timeout);
    v1::HasPackageRequest req;
    req.set_sha256(pkg->sha256);
    v1::HasPackageReply reply;
    grpc::Status s = stub->HasPackage(&ctx, req, &reply);
    if (!s.ok()) {
      return Status(static_cast<StatusCode>(s.error_code()),
                    "working_dir: asking the head at " + head_address +
                        " for the package: " + s.error_message());
    }
    if (reply.present()) {
      env.working_dir = PackageUri(pkg->sha256);
      return env;
    }
  }
  grpc::ClientContext ctx;
  AttachToken(&ctx, token);
  ctx.set_deadline(std::chrono::system_clock::now() + options.timeout);
  v1::UploadPackageReply reply;
  auto writer = stub->UploadPackage(&ctx, &reply);
  size_t off = 0;
  bool first = true;
  while (first || off < pkg->bytes.size()) {
    v1::PackageChunk c;
    if (first) {
      c.set_sha256(pkg->sha256);
      c.set_total_bytes(pkg->bytes.size());
    }
    const size_t n = std::min(kUploadChunk, pkg->bytes.size() - off);
    c.set_data(pkg->bytes.data() + off, n);
    off += n;
    first = false;
    if (!writer->Write(c)) break;
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) {
    return Status(static_cast<StatusCode>(s.error_code()),
                  "working_dir: uploading " + env.working_dir + " to the head at " + head_address +
                      ": " + s.error_message());
  }
  env.working_dir = reply.uri();
  return env;
}

}  // namespace orrery::live

// Runtime environments (DESIGN section 4): what a task, actor or job needs on the node that runs
// it, beyond resources.
//
//   env_vars         added to the process environment (merge key by key: task over job)
//   working_dir      a local directory, packaged by content hash and uploaded to the head by the
//                    submitting client (UploadWorkingDir), then named by its URI
//                    `pkg://<sha256>.pkg`; each node downloads and unpacks it once, and it becomes
//                    the process's working directory
//   setup            shell commands (`/bin/sh -c`) run once per install on a node, in order,
//                    inside the env directory; `<env dir>/bin` is put first on PATH, so e.g.
//                    `python3 -m venv .` makes the venv's python the task's python
//   setup_timeout_s  per setup command [the node's default, 600 s]
//
// An *install* (what a node's runtime-env agent creates and caches, live/node/runtime_env_agent.h) is
// identified by InstallHash: working_dir URI + setup. env_vars and the timeout need no install.
// Setup runs with the node's environment (not the env's env_vars), so one install serves every
// env that differs only in env_vars.
//
// The package format (PackageDirectory / UnpackPackage): a plain, uncompressed serialisation of
// the directory tree, entries in byte order of their relative paths:
//   "ORRPKG1\n" then per entry  "<type> <mode octal> <size> <path>\n" <size bytes>
// with type d (directory, size 0), f (regular file: its bytes) or l (symlink: its target). The
// URI's hash is the SHA-256 of these bytes, so it is a content hash over sorted relative paths,
// modes and bytes (no timestamps, owners or archive metadata), and the head can verify an upload
// by hashing what it received.
//
// Thread safety: free functions, no shared state. UploadWorkingDir blocks (client side only).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace orrery::live {

inline constexpr uint64_t kDefaultWorkingDirLimitBytes = uint64_t{100} << 20;  // 100 MiB
inline constexpr const char* kRuntimeEnvFields = "env_vars, working_dir, setup, setup_timeout_s";
// The largest setup_timeout_s an env (or the node's --runtime-env-setup-timeout-s) may ask for:
// one day. An env's own value is further capped by the node's.
inline constexpr double kMaxSetupTimeoutS = 86400.0;
inline constexpr const char* kPackageUriPrefix = "pkg://";
inline constexpr std::string_view kPackageHeader = "ORRPKG1\n";  // first bytes of a package

struct RuntimeEnv {
  std::map<std::string, std::string> env_vars;
  // A local directory as the user gave it, or a package URI (pkg://<sha256>.pkg) once uploaded.
  // Empty: none (the task runs where the node's default working directory is).
  std::string working_dir;
  std::vector<std::string> setup;  // empty: nothing to run
  double setup_timeout_s = 0;      // 0: the node's default

  bool empty() const {
    return env_vars.empty() && working_dir.empty() && setup.empty() && setup_timeout_s == 0;
  }
  friend bool operator==(const RuntimeEnv&, const RuntimeEnv&) = default;
};

// Parses a runtime env given as JSON text. `origin` names where it came from in error messages
// ("--runtime-env-json", a file name, "runtime_env_json"). Errors (InvalidArgument) name the
// origin, the line for malformed JSON, the field and what was expected; unknown fields are
// errors that list the allowed ones. An empty or all-blank text is an empty env.
StatusOr<RuntimeEnv> ParseRuntimeEnvJson(std::string_view json, std::string_view origin);
// Parses a YAML runtime env (same fields); errors carry `origin:line:`.
StatusOr<RuntimeEnv> ParseRuntimeEnvYaml(std::string_view yaml, std::string_view origin);
// Reads a file: `.json` is parsed as JSON, anything else as YAML (a superset of JSON). NotFound
// naming the file if it cannot be read.
StatusOr<RuntimeEnv> LoadRuntimeEnvFile(const std::filesystem::path& yaml_or_json);

// `job` with `task`'s fields over it: env_vars merge key by key (task wins), working_dir, setup
// and setup_timeout_s are replaced when the task sets them (non-empty / non-zero).
RuntimeEnv MergeRuntimeEnv(const RuntimeEnv& job, const RuntimeEnv& task);
// Canonical JSON: keys sorted, unset fields left out, no blanks. ParseRuntimeEnvJson(ToJson(e))
// == e. "" for an empty env.
std::string ToJson(const RuntimeEnv& env);
// What identifies one install on a node: 32 hex digits of SHA-256 over working_dir and setup;
// "" when the env needs no install (neither is set). REQUIRES for a meaningful hash: working_dir
// is a package URI (a local path hashes by its name, not its content).
std::string InstallHash(const RuntimeEnv& env);

// SHA-256 of `bytes`, 64 lowercase hex digits (OpenSSL libcrypto).
std::string Sha256Hex(std::string_view bytes);

// "pkg://<hash>.pkg" and back (InvalidArgument naming `field` if `uri` is not one).
std::string PackageUri(const std::string& sha256_hex);
StatusOr<std::string> PackageHashOf(const std::string& uri, std::string_view field = "working_dir");
bool IsPackageUri(const std::string& s);

struct Package {
  std::string sha256;          // of `bytes`
  std::string bytes;           // the serialised tree (format above)
  uint64_t content_bytes = 0;  // sum of the regular files' sizes
};
// Packages `dir` deterministically. InvalidArgument naming `working_dir` if it is missing, not a
// directory, holds something other than files, directories and symlinks, or its files exceed
// `max_bytes` in total.
StatusOr<Package> PackageDirectory(const std::filesystem::path& dir,
                                   uint64_t max_bytes = kDefaultWorkingDirLimitBytes);
// Recreates a package's tree under `dest` (created if missing; REQUIRES: nothing else writes
// under it meanwhile). Never follows a link: every entry is created relative to a directory fd,
// parents opened with O_NOFOLLOW, files with O_EXCL. DataLoss if the bytes are not a well-formed
// package (an entry before its directory, an empty or NUL link target, an unknown type);
// InvalidArgument for a path that would leave `dest` (absolute, "..", NUL, or through a link or
// a file) or an entry that would replace an existing one. Modes keep permission bits only
// (setuid, setgid and sticky are dropped); directories stay owner-writable. Defined in
// live/common/package_unpack.cc. On error, what was created so far stays (the caller removes `dest`).
Status UnpackPackage(std::string_view bytes, const std::filesystem::path& dest);

struct UploadOptions {
  uint64_t max_bytes = kDefaultWorkingDirLimitBytes;
  std::chrono::milliseconds timeout{60000};  // per RPC
};
// Client side: if env.working_dir is a local directory, packages it, uploads it to the head at
// `head_address` unless the head already has that hash (HeadService.HasPackage / UploadPackage),
// and returns the env with working_dir = the package URI. An env without working_dir, or whose
// working_dir is already a URI, comes back unchanged. Errors name `working_dir`.
StatusOr<RuntimeEnv> UploadWorkingDir(RuntimeEnv env, const std::string& head_address,
                                      const std::string& token, const UploadOptions& options = {});

}  // namespace orrery::live

// UnpackPackage (declared in live/common/runtime_env.h): recreates a package's tree under a directory
// without ever following a link. Its own translation unit, needing nothing but core/status, so
// the libFuzzer target (tests/fuzz/) can build it alone with clang.
//
// Why this shape (issue 12.6): path-string checks ("no ../", "not through a link we made") were
// not enough; an entry with the same name as an earlier link wrote through it, and a directory
// entry chmod-ed through one. Here every step is relative to a directory fd: each parent is
// opened with O_NOFOLLOW|O_DIRECTORY (a link or a file on the way fails), the last component is
// created with O_CREAT|O_EXCL|O_NOFOLLOW, mkdirat or symlinkat (all refuse to replace anything),
// and modes are set with fchmod on the fd just created, minus setuid, setgid and sticky bits.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "live/common/runtime_env.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;

// Owns one file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

Status DataLoss(const std::string& m) { return Status(StatusCode::kDataLoss, m); }

// The path's components; empty if the path is not a plain relative path (absolute, empty
// components, ".", "..", a NUL byte).
std::vector<std::string> Components(const std::string& rel) {
  std::vector<std::string> parts;
  if (rel.empty() || rel[0] == '/' || rel.find('\0') != std::string::npos) return {};
  size_t b = 0;
  while (true) {
    const size_t e = rel.find('/', b);
    std::string part = rel.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (part.empty() || part == "." || part == "..") return {};
    parts.push_back(std::move(part));
    if (e == std::string::npos) return parts;
    b = e + 1;
  }
}

Status WriteAll(int fd, std::string_view data, const std::string& rel) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status(StatusCode::kUnavailable, "cannot write " + rel);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// One entry of the package, created under `root` (an open directory).
Status CreateEntry(int root, char type, unsigned mode, const std::string& rel,
                   std::string_view data) {
  const std::vector<std::string> parts = Components(rel);
  if (parts.empty()) return InvalidArgument("package path leaves the directory: " + rel);
  // Walk the parents one component at a time; none may be a link (O_NOFOLLOW) or a file.
  Fd parent;
  int at = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    Fd next(::openat(at, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.ok()) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return InvalidArgument("package path goes through a symlink or a file: " + rel);
      }
      return DataLoss("package entry " + rel + " comes before its directory");
    }
    parent = std::move(next);
    at = parent.get();
  }
  const char* name = parts.back().c_str();
  // Permission bits only: setuid, setgid and sticky bits never survive an unpack.
  const mode_t perms = static_cast<mode_t>(mode) & 0777;
  const auto exists = [&rel] {
    return InvalidArgument("package entry " + rel + " would replace an existing entry");
  };
  if (type == 'd') {
    if (::mkdirat(at, name, 0700) != 0) {
      if (errno == EEXIST) return exists();
      return Status(StatusCode::kUnavailable, "cannot create " + rel + ": " + std::strerror(errno));
    }
    Fd dir(::openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.ok() || ::fchmod(dir.get(), perms | 0700) != 0) {
      return Status(StatusCode::kUnavailable, "cannot set the mode of " + rel);
    }
    return Status::Ok();
  }
  if (type == 'f') {
    Fd file(::openat(at, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file.ok()) {
      if (errno == EEXIST) return exists();
      return Status(StatusCode::kUnavailable, "cannot write " + rel + ": " + std::strerror(errno));
    }
    ORRERY_RETURN_IF_ERROR(WriteAll(file.get(), data, rel));
    if (::fchmod(file.get(), perms) != 0) {
      return Status(StatusCode::kUnavailable, "cannot set the mode of " + rel);
    }
    return Status::Ok();
  }
  if (type == 'l') {
    // The target is stored, never followed here; a NUL would silently shorten it.
    if (data.empty() || data.find('\0') != std::string_view::npos) {
      return DataLoss("package link " + rel + " has an empty target or a NUL byte");
    }
    if (::symlinkat(std::string(data).c_str(), at, name) != 0) {
      if (errno == EEXIST) return exists();
      return Status(StatusCode::kUnavailable, "cannot link " + rel + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }
  return DataLoss("bad package entry type '" + std::string(1, type) + "' for " + rel);
}

}  // namespace

Status UnpackPackage(std::string_view bytes, const fs::path& dest) {
  if (bytes.substr(0, kPackageHeader.size()) != kPackageHeader) {
    return DataLoss("not an Orrery package (bad header)");
  }
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + dest.string());
  const Fd root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.ok()) return Status(StatusCode::kUnavailable, "cannot open " + dest.string());
  size_t pos = kPackageHeader.size();
  while (pos < bytes.size()) {
    const size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) return DataLoss("truncated package");
    const std::string head(bytes.substr(pos, nl - pos));
    pos = nl + 1;
    char type = 0;
    unsigned mode = 0;
    size_t size = 0;
    int consumed = 0;
    if (head.find('\0') != std::string::npos ||
        std::sscanf(head.c_str(), "%c %o %zu %n", &type, &mode, &size, &consumed) < 3 ||
        consumed <= 0 || size > bytes.size() - pos) {
      return DataLoss("bad package entry '" + head + "'");
    }
    const std::string rel = head.substr(static_cast<size_t>(consumed));
    const std::string_view data = bytes.substr(pos, size);
    pos += size;
    ORRERY_RETURN_IF_ERROR(CreateEntry(root.get(), type, mode, rel, data));
  }
  return Status::Ok();
}

}  // namespace orrery::live

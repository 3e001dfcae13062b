#include "live/node/object_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace orrery::live {

namespace fs = std::filesystem;

StatusOr<std::unique_ptr<ObjectStore>> ObjectStore::Open(const fs::path& dir,
                                                         bool remove_on_close) {
  std::error_code ec;
  fs::path d = dir;
  if (d.empty()) {
    // No session (an embedded daemon): a private dir in the system's temp dir ($TMPDIR).
    std::string tmpl = (fs::temp_directory_path(ec) / "orrery_objects_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Status(StatusCode::kUnavailable,
                    "cannot create an object store dir: " + std::string(std::strerror(errno)));
    }
    d = tmpl;
  } else {
    fs::create_directories(d, ec);
    if (!ec) fs::permissions(d, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    "cannot create object store dir " + d.string() + ": " + ec.message());
    }
  }
  return std::unique_ptr<ObjectStore>(new ObjectStore(d, remove_on_close));
}

ObjectStore::~ObjectStore() {
  if (!remove_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

Status ObjectStore::ValidateId(const std::string& id, const std::string& field) {
  if (id.empty() || id.size() > 200) return InvalidArgument(field + ": expected 1..200 characters");
  if (id == "." || id == "..") return InvalidArgument(field + ": '" + id + "' is not an id");
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return InvalidArgument(field + ": '" + id + "' has a character outside [A-Za-z0-9._-]");
  }
  if (id.size() >= 5 && id.substr(id.size() - 5) == ".part") {
    return InvalidArgument(field + ": ids may not end in .part");
  }
  return Status::Ok();
}

StatusOr<uint64_t> ObjectStore::Size(const std::string& id) const {
  std::error_code ec;
  const auto n = fs::file_size(PathOf(id), ec);
  if (ec) return Status(StatusCode::kNotFound, "object " + id + " is not in this node's store");
  return static_cast<uint64_t>(n);
}

Status ObjectStore::WriteSynthetic(const std::string& id, uint64_t bytes) {
  ORRERY_RETURN_IF_ERROR(ValidateId(id, "object_id"));
  return WriteObjectFile(PathOf(id), bytes);
}

Status WriteObjectFile(const fs::path& path, uint64_t bytes) {
  const std::string part = path.string() + ".part";
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot write " + part + ": " + std::string(std::strerror(errno)));
  }
  std::vector<char> chunk(1 << 20);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + i % 26);
  uint64_t left = bytes;
  while (left > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
    const ssize_t w = ::write(fd, chunk.data(), n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(part.c_str());
      return Status(StatusCode::kUnavailable, "cannot write " + part + ": " + why);
    }
    left -= static_cast<uint64_t>(w);
  }
  ::close(fd);
  if (::rename(part.c_str(), path.c_str()) != 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot rename " + part + ": " + std::string(std::strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace orrery::live

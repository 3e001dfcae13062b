#include "live/common/session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>

namespace orrery::live {

namespace fs = std::filesystem;

namespace {
Status Errno(const std::string& what) {
  return Status(StatusCode::kUnavailable, what + ": " + std::strerror(errno));
}
}  // namespace

fs::path TempRoot(const std::string& dir) {
  return dir.empty() ? fs::path(kDefaultTempRoot) : fs::path(dir);
}

Status EnsurePrivateRoot(const fs::path& root) {
  std::error_code ec;
  struct stat st {};
  if (::lstat(root.c_str(), &st) != 0) {
    if (errno != ENOENT) return Errno("cannot inspect " + root.string());
    if (root.has_parent_path()) fs::create_directories(root.parent_path(), ec);
    if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
      return Errno("cannot create " + root.string());
    }
    if (::lstat(root.c_str(), &st) != 0) return Errno("cannot inspect " + root.string());
  }
  if (S_ISLNK(st.st_mode)) {
    return FailedPrecondition("temp dir " + root.string() +
                              " is a symbolic link: refused (it could redirect the cluster's "
                              "token and logs); pass --temp-dir with a real directory");
  }
  if (!S_ISDIR(st.st_mode)) {
    return FailedPrecondition("temp dir " + root.string() + " is not a directory");
  }
  if (st.st_uid != ::geteuid()) {
    return FailedPrecondition("temp dir " + root.string() + " belongs to uid " +
                              std::to_string(st.st_uid) + ", not to you (uid " +
                              std::to_string(::geteuid()) +
                              "): refused; pass --temp-dir with a directory of your own");
  }
  if ((st.st_mode & 077) != 0 && ::chmod(root.c_str(), 0700) != 0) {
    return Errno("cannot make " + root.string() + " private (chmod 0700)");
  }
  return Status::Ok();
}

StatusOr<fs::path> CreateSession(const fs::path& root) {
  std::error_code ec;
  ORRERY_RETURN_IF_ERROR(EnsurePrivateRoot(root));
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
  const fs::path dir = root / ("session_" + std::string(stamp) + "_" + std::to_string(getpid()));
  fs::create_directories(dir / "pids", ec);
  if (!ec) fs::create_directories(dir / "logs", ec);
  if (ec)
    return Status(StatusCode::kUnavailable, "cannot create " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  // Point session_latest at it atomically: a new link, renamed over the old one.
  const fs::path link = root / "session_latest";
  const fs::path tmp = root / ("session_latest.tmp." + std::to_string(getpid()));
  fs::remove(tmp, ec);
  fs::create_directory_symlink(dir.filename(), tmp, ec);
  if (!ec) fs::rename(tmp, link, ec);
  if (ec)
    return Status(StatusCode::kUnavailable, "cannot link " + link.string() + ": " + ec.message());
  return dir;
}

StatusOr<fs::path> LatestSession(const fs::path& root) {
  std::error_code ec;
  const fs::path link = root / "session_latest";
  fs::path target = fs::read_symlink(link, ec);
  if (ec) return NotFound("no Orrery session in " + root.string());
  if (target.is_relative()) target = root / target;
  if (!fs::is_directory(target, ec)) return NotFound("no Orrery session in " + root.string());
  return target;
}

std::vector<fs::path> ListSessions(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("session_", 0) == 0 && name != "session_latest" &&
        it->is_directory(ec) && !it->is_symlink(ec)) {
      out.push_back(it->path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

int CleanStaleSessions(const fs::path& root) {
  int cleaned = 0;
  for (const fs::path& session : ListSessions(root)) {
    const auto pids = ReadPidFiles(session);
    const bool running = std::any_of(pids.begin(), pids.end(),
                                     [](const auto& p) { return IsDaemonProcess(p.second); });
    std::error_code ec;
    if (running || !fs::exists(session / "objects", ec)) continue;
    fs::remove_all(session / "objects", ec);
    cleaned += ec ? 0 : 1;
  }
  return cleaned;
}

Status ValidateNodeName(const std::string& name, const std::string& what) {
  const bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](unsigned char c) {
                    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
                  });
  if (ok) return Status::Ok();
  std::string shown = name.substr(0, 80);
  for (char& c : shown) {
    if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
  }
  return InvalidArgument(what + ": '" + shown +
                         "' is not a valid node name (expected 1 to 64 characters from "
                         "A-Z a-z 0-9 . _ -, starting with a letter or digit)");
}

StatusOr<std::string> GenerateToken() {
  unsigned char buf[32];
  std::ifstream f("/dev/urandom", std::ios::binary);
  if (!f.read(reinterpret_cast<char*>(buf), sizeof(buf))) {
    return Status(StatusCode::kUnavailable, "cannot read /dev/urandom");
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : buf) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

Status WriteNewFile(const fs::path& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Errno("cannot create " + path.string());
  ::fchmod(fd, mode);  // not subject to the umask
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Errno("cannot write " + path.string());
    }
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

Status WriteFileAtomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  ORRERY_RETURN_IF_ERROR(WriteNewFile(tmp, text, 0644));
  fs::rename(tmp, path, ec);
  if (ec)
    return Status(StatusCode::kUnavailable, "cannot write " + path.string() + ": " + ec.message());
  return Status::Ok();
}

StatusOr<std::string> ReadFileTrimmed(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot read " + path.string());
  std::ostringstream s;
  s << f.rdbuf();
  std::string t = s.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ' || t.back() == '\r')) t.pop_back();
  return t;
}

std::vector<std::pair<std::string, pid_t>> ReadPidFiles(const fs::path& session) {
  std::vector<std::pair<std::string, pid_t>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(session / "pids", ec)) {
    if (e.path().extension() != ".pid") continue;
    auto text = ReadFileTrimmed(e.path());
    if (!text.ok()) continue;
    char* end = nullptr;
    const long pid = std::strtol(text->c_str(), &end, 10);
    if (end == text->c_str() || pid <= 1) continue;
    out.emplace_back(e.path().stem().string(), static_cast<pid_t>(pid));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool IsProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie has exited; only its parent's wait() is missing.
  auto stat = ReadFileTrimmed("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  const size_t p = stat->rfind(')');
  if (p == std::string::npos || p + 2 >= stat->size()) return true;
  const char state = (*stat)[p + 2];
  return state != 'Z' && state != 'X';
}

bool IsDaemonProcess(pid_t pid) {
  if (!IsProcessAlive(pid)) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  const std::string cmd = s.str();
  return cmd.find(std::string("__head") + '\0') != std::string::npos ||
         cmd.find(std::string("__node") + '\0') != std::string::npos;
}

std::string ProcessCommandLine(pid_t pid, size_t max_chars) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  for (char& c : cmd) c = c == '\0' ? ' ' : c;
  if (cmd.size() > max_chars && max_chars > 3) cmd = cmd.substr(0, max_chars - 3) + "...";
  return cmd;
}

}  // namespace orrery::live

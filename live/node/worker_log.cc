#include "live/node/worker_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>

namespace orrery::live {

namespace {

std::string SanitizeJob(const std::string& job) {
  if (job.empty()) return "none";
  std::string s = job;
  for (char& c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) c = '_';
  }
  return s;
}

bool IsHex(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// 8 hex digits from the OS's randomness (a worker id's random half).
std::string RandomHex8() {
  uint32_t v = 0;
  std::ifstream in("/dev/urandom", std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(&v), sizeof(v))) {
    v = static_cast<uint32_t>(::getpid()) * 2654435761u ^
        static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

int OpenLog(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

}  // namespace

std::string WorkerLogFileName(const std::string& worker_id, const std::string& job_id, pid_t pid,
                              bool is_err) {
  return "worker-" + worker_id + "-" + SanitizeJob(job_id) + "-" + std::to_string(pid) +
         (is_err ? ".err" : ".out");
}

std::optional<WorkerLogFileInfo> ParseWorkerLogFileName(const std::string& name) {
  const std::string prefix = "worker-";
  if (name.rfind(prefix, 0) != 0 || name.size() < prefix.size() + 4) return std::nullopt;
  WorkerLogFileInfo info;
  std::string rest;
  if (name.ends_with(".out")) {
    info.is_err = false;
  } else if (name.ends_with(".err")) {
    info.is_err = true;
  } else {
    return std::nullopt;
  }
  rest = name.substr(prefix.size(), name.size() - prefix.size() - 4);
  const size_t first = rest.find('-');
  const size_t last = rest.rfind('-');
  if (first == std::string::npos || last == first) return std::nullopt;
  info.worker_id = rest.substr(0, first);
  info.job_id = rest.substr(first + 1, last - first - 1);
  const std::string pid = rest.substr(last + 1);
  if (!IsHex(info.worker_id) || info.job_id.empty() || pid.empty() || pid.size() > 9) {
    return std::nullopt;
  }
  for (char c : pid) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  info.pid = static_cast<pid_t>(std::stol(pid));
  return info;
}

std::optional<LogMarker> ParseLogMarker(const std::string& line) {
  static const std::pair<const char*, LogMarker::Kind> kMarkers[] = {
      {":task_name:", LogMarker::Kind::kTaskName},
      {":actor_name:", LogMarker::Kind::kActorName},
      {":job_id:", LogMarker::Kind::kJobId}};
  for (const auto& [prefix, kind] : kMarkers) {
    const std::string p = prefix;
    if (line.rfind(p, 0) == 0) return LogMarker{kind, line.substr(p.size())};
  }
  return std::nullopt;
}

std::string LogMarkerLine(LogMarker::Kind kind, const std::string& value) {
  switch (kind) {
    case LogMarker::Kind::kTaskName:
      return ":task_name:" + value + "\n";
    case LogMarker::Kind::kActorName:
      return ":actor_name:" + value + "\n";
    case LogMarker::Kind::kJobId:
      return ":job_id:" + value + "\n";
  }
  return "";
}

Status ShiftLogBackups(const std::string& path, int backups) {
  if (backups <= 0) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Internal("remove " + path + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }
  (void)::unlink((path + "." + std::to_string(backups)).c_str());
  for (int i = backups - 1; i >= 1; --i) {
    const std::string from = path + "." + std::to_string(i);
    const std::string to = path + "." + std::to_string(i + 1);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return Internal("rename " + from + ": " + std::strerror(errno));
    }
  }
  if (::rename(path.c_str(), (path + ".1").c_str()) != 0 && errno != ENOENT) {
    return Internal("rename " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

LogRotator::LogRotator(std::string path, int fd, uint64_t max_bytes, int backups)
    : path_(std::move(path)), fd_(fd), max_bytes_(max_bytes), backups_(backups) {}

StatusOr<bool> LogRotator::MaybeRotate() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return Internal(std::string("fstat: ") + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) < max_bytes_) return false;
  ORRERY_RETURN_IF_ERROR(ShiftLogBackups(path_, backups_));
  const int fresh = OpenLog(path_);
  if (fresh < 0) return Internal("open " + path_ + ": " + std::strerror(errno));
  // Atomic: every write goes either to the old file (now <path>.1) or to the new one.
  const int rc = ::dup2(fresh, fd_);
  ::close(fresh);
  if (rc < 0) return Internal(std::string("dup2: ") + std::strerror(errno));
  return true;
}

StatusOr<uint64_t> LogBytesFromEnv(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
    return InvalidArgument(std::string(name) + ": expected a whole number of bytes, got '" + v +
                           "'");
  }
  return static_cast<uint64_t>(n);
}

StatusOr<std::unique_ptr<WorkerLogRedirect>> WorkerLogRedirect::StartFromEnv(bool keep_stdout) {
  const char* dir = std::getenv("ORRERY_LOG_DIR");
  if (dir == nullptr || *dir == '\0') return std::unique_ptr<WorkerLogRedirect>();
  auto max_bytes = LogBytesFromEnv("ORRERY_LOG_MAX_BYTES", kDefaultLogMaxBytes);
  if (!max_bytes.ok()) return max_bytes.status();
  if (*max_bytes == 0) return InvalidArgument("ORRERY_LOG_MAX_BYTES: expected > 0, got 0");
  auto backups = LogBytesFromEnv("ORRERY_LOG_BACKUP_COUNT", kDefaultLogBackups);
  if (!backups.ok()) return backups.status();
  if (*backups > 1000) return InvalidArgument("ORRERY_LOG_BACKUP_COUNT: expected <= 1000");
  std::string prefix;
  if (const char* p = std::getenv("ORRERY_LOG_WORKER_PREFIX")) prefix = p;
  if (prefix.size() != 8 || !IsHex(prefix)) prefix = RandomHex8();
  std::string job;
  if (const char* j = std::getenv("ORRERY_JOB_ID")) job = j;
  const std::string id = prefix + RandomHex8();
  const pid_t pid = ::getpid();
  std::unique_ptr<WorkerLogRedirect> r(new WorkerLogRedirect());
  r->out_path_ = std::string(dir) + "/" + WorkerLogFileName(id, job, pid, false);
  r->err_path_ = std::string(dir) + "/" + WorkerLogFileName(id, job, pid, true);
  for (const auto& [path, fd] : {std::pair{r->out_path_, 1}, std::pair{r->err_path_, 2}}) {
    const int f = OpenLog(path);
    if (f < 0) return Internal("open " + path + ": " + std::strerror(errno));
    if (fd == 1 && keep_stdout) {  // the file exists (empty), stdout stays the channel
      ::close(f);
      continue;
    }
    std::fflush(fd == 1 ? stdout : stderr);
    if (::dup2(f, fd) < 0) {
      ::close(f);
      return Internal(std::string("dup2: ") + std::strerror(errno));
    }
    ::close(f);
    // Line-buffered stdout (Ray runs workers unbuffered): a long call's lines show up as they
    // are printed, not when 4 KiB have gathered.
    if (fd == 1) std::setvbuf(stdout, nullptr, _IOLBF, 0);
    r->fds_.push_back(fd);
    r->rotators_.emplace_back(path, fd, *max_bytes, static_cast<int>(*backups));
  }
  if (!job.empty()) r->WriteMarker(LogMarker::Kind::kJobId, job);
  r->thread_ = std::thread([p = r.get()] { p->RotateLoop(); });
  return r;
}

WorkerLogRedirect::~WorkerLogRedirect() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WorkerLogRedirect::WriteMarker(LogMarker::Kind kind, const std::string& value) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::cout.flush();
  std::cerr.flush();
  const std::string line = LogMarkerLine(kind, value);
  for (int fd : fds_) WriteAll(fd, line);
}

void WorkerLogRedirect::RotateLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, std::chrono::milliseconds(200));
    if (stop_) break;
    for (auto& r : rotators_) (void)r.MaybeRotate();
  }
}

}  // namespace orrery::live

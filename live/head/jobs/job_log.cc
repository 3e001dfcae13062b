#include "live/head/jobs/job_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace orrery::live {

namespace fs = std::filesystem;

namespace {
JobLogOptions Sane(JobLogOptions o) {
  o.max_bytes = std::max<uint64_t>(o.max_bytes, 1);
  o.backups = std::max(o.backups, 0);
  return o;
}
}  // namespace

JobLog::JobLog(std::string path, JobLogOptions options)
    : path_(std::move(path)), options_(Sane(options)) {
  // A restarted head finds the files of an earlier run: count them (offsets then start at the
  // oldest kept file).
  std::error_code ec;
  const auto size = fs::file_size(path_, ec);
  current_ = ec ? 0 : std::min<uint64_t>(size, options_.max_bytes);
  while (rotations_ < static_cast<uint64_t>(options_.backups) &&
         fs::exists(path_ + "." + std::to_string(rotations_ + 1), ec)) {
    ++rotations_;
  }
  if (FILE* f = std::fopen((path_ + ".src").c_str(), "re")) {
    unsigned long long v = 0;
    if (std::fscanf(f, "%llu", &v) == 1) source_offset_ = v;
    std::fclose(f);
  }
}

JobLog::~JobLog() {
  if (fd_ >= 0) ::close(fd_);
  if (src_fd_ >= 0) ::close(src_fd_);
}

Status JobLog::Append(std::string_view data, uint64_t source_end) {
  Status s = Append(data);
  std::lock_guard<std::mutex> l(mu_);
  if (closed_ || !s.ok()) return s;
  if (src_fd_ < 0) {
    src_fd_ = ::open((path_ + ".src").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (src_fd_ < 0) {
      return Status(StatusCode::kUnavailable, "open " + path_ + ".src: " + std::strerror(errno));
    }
  }
  // Fixed width: one pwrite replaces the whole value.
  char buf[24];
  const int n =
      std::snprintf(buf, sizeof buf, "%020llu\n", static_cast<unsigned long long>(source_end));
  if (::pwrite(src_fd_, buf, static_cast<size_t>(n), 0) != n) {
    return Status(StatusCode::kUnavailable, "write " + path_ + ".src: " + std::strerror(errno));
  }
  source_offset_ = source_end;
  return s;
}

uint64_t JobLog::source_offset() const {
  std::lock_guard<std::mutex> l(mu_);
  return source_offset_;
}

std::string JobLog::FileOf(uint64_t segment) const {
  return segment >= rotations_ ? path_ : path_ + "." + std::to_string(rotations_ - segment);
}

uint64_t JobLog::StartLocked() const {
  const uint64_t kept = std::min<uint64_t>(rotations_, static_cast<uint64_t>(options_.backups));
  return (rotations_ - kept) * options_.max_bytes;
}

Status JobLog::RotateLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  const int n = options_.backups;
  if (n == 0) {
    fs::remove(path_, ec);
  } else {
    fs::remove(path_ + "." + std::to_string(n), ec);
    for (int i = n - 1; i >= 1; --i) {
      fs::rename(path_ + "." + std::to_string(i), path_ + "." + std::to_string(i + 1), ec);
    }
    fs::rename(path_, path_ + ".1", ec);
    if (ec) return Status(StatusCode::kUnavailable, "rotate " + path_ + ": " + ec.message());
  }
  ++rotations_;
  current_ = 0;
  return Status::Ok();
}

Status JobLog::Append(std::string_view data) {
  std::vector<std::function<void()>> ready;
  Status status;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return Status::Ok();
    while (!data.empty()) {
      if (fd_ < 0) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd_ < 0) {
          status = Status(StatusCode::kUnavailable, "open " + path_ + ": " + std::strerror(errno));
          break;
        }
      }
      // Split at the file boundary: every rotated file holds exactly max_bytes.
      const size_t n = std::min<uint64_t>(data.size(), options_.max_bytes - current_);
      const ssize_t w = ::write(fd_, data.data(), n);
      if (w <= 0) {
        status = Status(StatusCode::kUnavailable, "write " + path_ + ": " + std::strerror(errno));
        break;
      }
      current_ += static_cast<uint64_t>(w);
      data.remove_prefix(static_cast<size_t>(w));
      if (current_ >= options_.max_bytes) {
        status = RotateLocked();
        if (!status.ok()) break;
      }
    }
    const uint64_t end = rotations_ * options_.max_bytes + current_;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->first < end) {
        ready.push_back(std::move(it->second));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& fn : ready) fn();
  return status;
}

void JobLog::Close() {
  std::vector<std::pair<uint64_t, std::function<void()>>> ready;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return;
    closed_ = true;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ready.swap(waiters_);
  }
  for (auto& [off, fn] : ready) fn();
}

bool JobLog::closed() const {
  std::lock_guard<std::mutex> l(mu_);
  return closed_;
}

void JobLog::Wait(uint64_t offset, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!closed_ && rotations_ * options_.max_bytes + current_ <= offset) {
      waiters_.emplace_back(offset, std::move(fn));
      return;
    }
  }
  fn();
}

StatusOr<JobLog::Range> JobLog::ReadLocked(uint64_t offset, size_t limit) const {
  Range r;
  r.start_offset = StartLocked();
  r.end_offset = rotations_ * options_.max_bytes + current_;
  r.closed = closed_;
  uint64_t off = std::clamp(offset, r.start_offset, r.end_offset);
  r.offset = off;
  limit = static_cast<size_t>(std::min<uint64_t>(limit, r.end_offset - off));
  r.data.resize(limit);
  size_t got = 0;
  while (got < limit) {
    const uint64_t segment = off / options_.max_bytes;
    const uint64_t in_file = off % options_.max_bytes;
    const std::string file = FileOf(segment);
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return Status(StatusCode::kUnavailable, "open " + file + ": " + std::strerror(errno));
    }
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(limit - got, options_.max_bytes - in_file));
    const ssize_t n = ::pread(fd, r.data.data() + got, want, static_cast<off_t>(in_file));
    ::close(fd);
    if (n <= 0) break;  // shorter than counted (removed by hand): return what there is
    got += static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  r.data.resize(got);
  return r;
}

StatusOr<JobLog::Range> JobLog::Read(uint64_t offset, size_t limit) const {
  std::lock_guard<std::mutex> l(mu_);
  return ReadLocked(offset, limit);
}

StatusOr<JobLog::Range> JobLog::Tail(int lines, size_t limit) const {
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t end = rotations_ * options_.max_bytes + current_;
  const uint64_t from = std::max(StartLocked(), end > limit ? end - limit : 0);
  auto r = ReadLocked(from, limit);
  if (!r.ok()) return r;
  // Keep the last `lines` lines: find the lines-th newline from the end (a final newline ends
  // the last line, it does not start a new one).
  const std::string& d = r->data;
  size_t pos = d.size();
  if (pos > 0 && d[pos - 1] == '\n') --pos;
  size_t cut = 0;
  for (int i = 0; i < lines && pos > 0; ++i) {
    const size_t nl = d.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
    if (i == lines - 1) cut = nl + 1;
  }
  if (lines <= 0) cut = d.size();
  r->data.erase(0, cut);
  r->offset += cut;
  return r;
}

void JobLog::Remove() {
  std::lock_guard<std::mutex> l(mu_);
  if (fd_ >= 0) ::close(fd_);
  if (src_fd_ >= 0) ::close(src_fd_);
  fd_ = src_fd_ = -1;
  closed_ = true;
  RemoveFiles(path_, options_.backups);
}

void JobLog::RemoveFiles(const std::string& path, int backups) {
  std::error_code ec;
  fs::remove(path, ec);
  fs::remove(path + ".src", ec);
  for (int i = 1; i <= backups + 1; ++i) fs::remove(path + "." + std::to_string(i), ec);
}

}  // namespace orrery::live

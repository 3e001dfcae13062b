#include "live/node/log_monitor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "live/common/session.h"
#include "live/node/worker_log.h"

namespace orrery::live {

namespace fs = std::filesystem;

// ---- LogTailer -------------------------------------------------------------------------------

LogTailer::LogTailer(std::string path, size_t max_line_bytes)
    : path_(std::move(path)), max_line_(max_line_bytes > 0 ? max_line_bytes : 1) {}

LogTailer::~LogTailer() {
  if (fd_ >= 0) ::close(fd_);
  if (old_fd_ >= 0) ::close(old_fd_);
}

void LogTailer::Split(std::vector<std::string>* lines) {
  size_t start = 0;
  while (true) {
    const size_t nl = partial_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(partial_.data() + start, nl - start);
    while (line.size() > max_line_) {
      lines->emplace_back(line.substr(0, max_line_));
      line.remove_prefix(max_line_);
    }
    lines->emplace_back(line);
    start = nl + 1;
  }
  partial_.erase(0, start);
  while (partial_.size() > max_line_) {  // a runaway line without a newline
    lines->push_back(partial_.substr(0, max_line_));
    partial_.erase(0, max_line_);
  }
}

size_t LogTailer::ReadFd(int fd, size_t max_bytes, std::vector<std::string>* lines) {
  char buf[64 * 1024];
  size_t total = 0;
  while (total < max_bytes) {
    const ssize_t n = ::read(fd, buf, std::min(sizeof(buf), max_bytes - total));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial_.append(buf, static_cast<size_t>(n));
    total += static_cast<size_t>(n);
  }
  Split(lines);
  return total;
}

void LogTailer::Poll(std::vector<std::string>* lines, size_t max_bytes) {
  backlog_ = false;
  size_t budget = max_bytes;
  if (old_fd_ >= 0) {
    // Writes that raced the writer's switch to the new file land here; then the old file is done.
    budget -= ReadFd(old_fd_, budget, lines);
    if (budget == 0) {
      backlog_ = true;
      return;
    }
    ::close(old_fd_);
    old_fd_ = -1;
    if (!OpenNext()) return;
  }
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    ino_ = st.st_ino;
    dev_ = st.st_dev;
    offset_ = 0;
  } else {
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < offset_) {
      // Truncated in place (copytruncate): start over.
      (void)::lseek(fd_, 0, SEEK_SET);
      offset_ = 0;
    }
  }
  const size_t n = ReadFd(fd_, budget, lines);
  offset_ += n;
  if (n == budget) {
    backlog_ = true;
    return;
  }
  // Rotated? The path names another file now: finish this one first (next Poll).
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && (st.st_ino != ino_ || st.st_dev != dev_)) {
    old_fd_ = fd_;
    fd_ = -1;
    backlog_ = true;  // the new file is waiting
  }
}

bool LogTailer::OpenNext() {
  // The files from oldest to newest: <path>.N .. <path>.1, <path>. The one after ours (ino_) is
  // next; if ours is gone (rotated past the last backup), the oldest there is.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<std::pair<std::string, struct stat>> chain;
    for (int k = 1; k <= 1000; ++k) {
      struct stat st {};
      const std::string p = path_ + "." + std::to_string(k);
      if (::stat(p.c_str(), &st) != 0) break;
      chain.emplace_back(p, st);
    }
    std::reverse(chain.begin(), chain.end());
    struct stat cur {};
    if (::stat(path_.c_str(), &cur) == 0) chain.emplace_back(path_, cur);
    if (chain.empty()) return false;
    size_t next = 0;
    for (size_t i = 0; i < chain.size(); ++i) {
      if (chain[i].second.st_ino == ino_ && chain[i].second.st_dev == dev_) next = i + 1;
    }
    if (next >= chain.size()) return false;  // ours is still the newest: nothing to switch to
    const int fd = ::open(chain[next].first.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_ino != chain[next].second.st_ino) {
      if (fd >= 0) ::close(fd);
      continue;  // renamed meanwhile (the writer rotated again): look again
    }
    fd_ = fd;
    ino_ = st.st_ino;
    dev_ = st.st_dev;
    offset_ = 0;
    return true;
  }
  return false;
}

void LogTailer::Finish(std::vector<std::string>* lines) {
  if (!partial_.empty()) lines->push_back(std::move(partial_));
  partial_.clear();
}

// ---- LogMonitor ------------------------------------------------------------------------------

namespace {

std::string DefaultTag(const std::string& node_id) {
  const size_t h = std::hash<std::string>{}(node_id + ":" + std::to_string(::getpid()));
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", static_cast<unsigned>(h ^ (h >> 32)));
  return buf;
}

}  // namespace

StatusOr<std::unique_ptr<LogMonitor>> LogMonitor::Start(LogMonitorOptions options) {
  std::unique_ptr<LogMonitor> m(new LogMonitor(std::move(options)));
  if (m->options_.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/orrery-logs-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Internal("cannot create a log dir from " + tmpl + ": " + std::strerror(errno));
    }
    m->options_.dir = tmpl;
    m->remove_dir_ = true;
  } else {
    std::error_code ec;
    fs::create_directories(m->options_.dir, ec);
    if (ec) return Internal("cannot create the log dir " + m->options_.dir + ": " + ec.message());
  }
  if (m->options_.tag.empty()) m->options_.tag = DefaultTag(m->options_.node_id);
  if (m->options_.period.count() <= 0) m->options_.period = std::chrono::milliseconds(100);
  m->thread_ = std::thread([p = m.get()] { p->Loop(); });
  return m;
}

LogMonitor::~LogMonitor() { Stop(); }

std::vector<std::pair<std::string, std::string>> LogMonitor::WorkerEnv() const {
  return {{"ORRERY_LOG_DIR", options_.dir}, {"ORRERY_LOG_WORKER_PREFIX", options_.tag}};
}

void LogMonitor::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    stopped_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  RunOnce();
  files_.clear();
  if (remove_dir_) {
    std::error_code ec;
    fs::remove_all(options_.dir, ec);
  }
}

void LogMonitor::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, options_.period);
    if (stop_) break;
    l.unlock();
    RunOnce();
    l.lock();
  }
}

void LogMonitor::RunOnce() {
  std::lock_guard<std::mutex> run(run_mu_);
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (files_.count(name) || done_.count(name)) continue;
    auto info = ParseWorkerLogFileName(name);
    if (!info || info->worker_id.rfind(options_.tag, 0) != 0) continue;
    File f;
    f.tailer = std::make_unique<LogTailer>(it->path().string());
    f.pid = info->pid;
    f.is_err = info->is_err;
    f.job_id = info->job_id == "none" ? "" : info->job_id;
    files_.emplace(name, std::move(f));
  }
  std::vector<LogBatchData> out;
  for (auto it = files_.begin(); it != files_.end();) {
    File& f = it->second;
    // Checked before reading: if the worker is gone now, all it wrote is in the file.
    const bool alive = IsProcessAlive(f.pid);
    std::vector<std::string> lines;
    f.tailer->Poll(&lines, options_.max_read_bytes);
    const bool finished = !alive && !f.tailer->backlog();
    if (!alive && f.tailer->backlog()) f.tailer->Poll(&lines, options_.max_read_bytes);
    if (finished) f.tailer->Finish(&lines);
    LogBatchData* cur = nullptr;
    for (auto& line : lines) {
      if (auto m = ParseLogMarker(line)) {
        if (m->kind == LogMarker::Kind::kJobId) {
          f.job_id = m->value;
        } else {
          f.name = m->value;
        }
        cur = nullptr;
        continue;
      }
      if (cur == nullptr) {
        LogBatchData b;
        b.node_id = options_.node_id;
        b.pid = f.pid;
        b.job_id = f.job_id;
        b.name = f.name;
        b.is_err = f.is_err;
        out.push_back(std::move(b));
        cur = &out.back();
      }
      cur->lines.push_back(std::move(line));
    }
    if (finished) {
      done_[it->first] = true;
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
  if (!out.empty() && options_.publish) options_.publish(std::move(out));
}

}  // namespace orrery::live

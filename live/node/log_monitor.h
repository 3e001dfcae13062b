// The node's log monitor: tails its workers' log files (live/node/worker_log.h) and publishes new
// lines in batches to the head (HeadService.PublishLogs), which fans them out to drivers.
//
// LogTailer follows one file by path: each Poll() reads what was appended since the last one and
// returns the complete lines (a partial last line waits for its newline, or for Finish()). It
// survives rotation (the path now names another inode: the old file is read to its end, then
// once more on the next poll for writes that raced the switch, then the file written after it —
// <path>.k-1 if the writer rotated several times between polls, else <path> — from its start)
// and truncation (the file got shorter than what was read: read again from 0).
//
// LogMonitor runs one thread (never the node's state loop: it does file I/O and a blocking RPC):
// every period it lists the log dir, starts a tailer for each new `worker-<id>-...` file whose
// worker id starts with this node's tag (other nodes of the machine may share the dir), polls
// every tailer, turns marker lines into the name/job of the lines after them, and hands the
// batches to `publish`. A file whose worker has exited is read to its end, its partial line
// flushed, and then forgotten. Lines are read at most `max_read_bytes` per file per period.
//
// Thread safety: LogTailer none. LogMonitor: Start/Stop from one thread; `publish` runs on the
// monitor's thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace orrery::live {

class LogTailer {
 public:
  explicit LogTailer(std::string path, size_t max_line_bytes = 64 * 1024);
  ~LogTailer();
  LogTailer(const LogTailer&) = delete;
  LogTailer& operator=(const LogTailer&) = delete;

  // Appends the complete lines read since the last call (without '\n') to `lines`; reads at most
  // `max_bytes`. A line longer than max_line_bytes is cut into pieces of that size. A path that
  // does not exist (yet, or between a rotation's rename and create) yields nothing.
  void Poll(std::vector<std::string>* lines, size_t max_bytes = 1 << 20);
  // Appends the partial last line, if any (the writer is gone).
  void Finish(std::vector<std::string>* lines);
  // True if the last Poll stopped at max_bytes (more is waiting).
  bool backlog() const { return backlog_; }

 private:
  size_t ReadFd(int fd, size_t max_bytes, std::vector<std::string>* lines);
  void Split(std::vector<std::string>* lines);
  // After the file at fd_ was finished: opens the file written after it (a backup if the writer
  // rotated more than once since, else the path). False if there is none.
  bool OpenNext();

  std::string path_;
  size_t max_line_;
  int fd_ = -1;
  ino_t ino_ = 0;
  dev_t dev_ = 0;
  uint64_t offset_ = 0;
  int old_fd_ = -1;  // the file before a rotation: drained once more, then closed
  std::string partial_;
  bool backlog_ = false;
};

// One publishable batch: consecutive lines of one file with the same attribution.
struct LogBatchData {
  std::string node_id;
  int32_t pid = 0;
  std::string job_id;
  std::string name;  // from the last :task_name:/:actor_name: marker; empty before any
  bool is_err = false;
  std::vector<std::string> lines;
};

struct LogMonitorOptions {
  std::string dir;      // the log dir. Empty: a private temp dir, removed on Stop()
  std::string node_id;  // put on every batch
  // 8 hex digits: only files of worker ids starting with it are tailed. Empty: derived from
  // node_id and this process's pid (LogMonitor::tag()).
  std::string tag;
  std::chrono::milliseconds period{100};
  size_t max_read_bytes = 1 << 20;  // per file per period
  // Called on the monitor thread with each period's batches (non-empty). May block (an RPC);
  // should bound its wait.
  std::function<void(std::vector<LogBatchData>)> publish;
};

class LogMonitor {
 public:
  // Creates the dir if needed and starts the thread.
  static StatusOr<std::unique_ptr<LogMonitor>> Start(LogMonitorOptions options);
  // Stops (see Stop).
  ~LogMonitor();

  const std::string& dir() const { return options_.dir; }
  const std::string& tag() const { return options_.tag; }
  // The environment a worker needs to log here: ORRERY_LOG_DIR, ORRERY_LOG_WORKER_PREFIX.
  std::vector<std::pair<std::string, std::string>> WorkerEnv() const;
  // One last scan and publish (so lines written just before are not lost), then joins the thread.
  // Idempotent.
  void Stop();

  // One scan-poll-publish round, on the caller's thread (the thread calls it every period).
  // REQUIRES: not concurrently with itself (the thread holds a lock while it runs).
  void RunOnce();

 private:
  explicit LogMonitor(LogMonitorOptions options) : options_(std::move(options)) {}
  void Loop();
  struct File {
    std::unique_ptr<LogTailer> tailer;
    int32_t pid = 0;
    bool is_err = false;
    std::string job_id;
    std::string name;
  };

  LogMonitorOptions options_;
  bool remove_dir_ = false;
  std::mutex run_mu_;                  // RunOnce
  std::map<std::string, File> files_;  // by file name
  std::map<std::string, bool> done_;   // file names finished (never tailed again)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace orrery::live

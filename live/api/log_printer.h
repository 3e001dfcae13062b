// LogPrinter: the driver's end of log streaming. Subscribes to the head's logs of the driver's
// job (HeadService.SubscribeLogs) and prints each worker line to the driver's stdout (stderr
// lines to its stderr) as `(<task or actor> pid=<pid>, node=<node>) <line>`, the node left out
// for workers on the driver's own node; identical lines from several workers go through
// LogDeduplicator (live/common/log_dedup.h) unless dedup is off. A batch that reports lines dropped by
// the head (this driver read too slowly) prints `(orrery) N log lines dropped ...` on stderr.
//
// Threads: one reads the stream (blocking reads; ends when the call is canceled or the head
// goes), one closes dedup windows every 250 ms. Both print under one lock, so lines never
// interleave.
//
// Stop() drains first: lines reach the driver some time after a worker writes them (the node's
// monitor polls every 100 ms), so Stop waits until no line has arrived for `quiet` [300 ms],
// at most `max_drain` [2 s], then ends the subscription and prints every held line.
//
// Thread safety: Start/Stop from one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "live/common/log_dedup.h"

namespace orrery::live {

struct LogPrinterOptions {
  std::string head_address;  // REQUIRES: non-empty
  std::string token;
  std::string job_id;      // the subscription's filter; REQUIRES: non-empty
  std::string local_node;  // lines from this node are printed without `, node=`
  bool dedup = true;
  LogDedupOptions dedup_options;
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  std::chrono::milliseconds subscribe_timeout{3000};  // Start waits this long for the head
  std::chrono::milliseconds quiet{300};
  std::chrono::milliseconds max_drain{2000};
};

class LogPrinter {
 public:
  // Subscribes and waits for the head's first (empty) batch, so no line written after Start
  // returns is missed. Unavailable (or the head's error) if the subscription fails.
  static StatusOr<std::unique_ptr<LogPrinter>> Start(LogPrinterOptions options);
  ~LogPrinter();
  // Drains (see the file comment; skipped if !drain: no worker of this driver ever ran), ends
  // the subscription, prints held lines. Idempotent.
  void Stop(bool drain = true);

  class Impl;

 private:
  explicit LogPrinter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True unless env var `name` is "0", "false", "no" or "off" (any case); `fallback` if unset.
bool EnvFlag(const char* name, bool fallback);

}  // namespace orrery::live

// LogDeduplicator: collapses identical worker log lines from many workers before a driver prints
// them (Ray's log deduplication, `[repeated Nx across cluster]`).
//
// Behaviour (Ray's, window [5 s]):
//   - A line is compared by its canonical form: every run of digits becomes one '0' and runs of
//     blanks become one space, trimmed (so "step 12 took 3.5 ms" and "step 13 took 3.4 ms" are
//     the same line). A line whose canonical form is empty is never deduplicated.
//   - The first occurrence of a canonical line is printed at once and opens a window.
//   - Within the window, a repeat from the same source (node, pid) that alone printed it so far is
//     printed too; once a second source has printed it, every further occurrence (from any
//     source) is held and counted.
//   - When the window closes (Flush with a later `now`, or Flush(all=true) at shutdown), a line
//     held N > 1 times prints once as `<last text> [repeated Nx across cluster]`; a line held
//     once prints as it was.
// Windows are closed in the order they were opened, so output is deterministic for a given input.
//
// Pure: no clock (time comes in as `now_s`), no I/O.
// Thread safety: none; the owner serialises calls.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace orrery::live {

// One line of a worker's output, with where it came from.
struct LogRecord {
  std::string node_id;
  int32_t pid = 0;
  std::string name;  // the task or actor name; empty if unknown
  bool is_err = false;
  std::string text;  // without the trailing newline
};

struct LogDedupOptions {
  double window_s = 5.0;  // REQUIRES: > 0
};

// The canonical form used for comparison (see the file comment).
std::string CanonicalLogLine(std::string_view line);

class LogDeduplicator {
 public:
  explicit LogDeduplicator(LogDedupOptions options = {});

  // Closes the windows that ended by `now_s` (their lines come first in the result), then takes
  // `r`: the result holds `r` if it is to be printed now. REQUIRES: now_s non-decreasing.
  // O(log n) in the lines held.
  std::vector<LogRecord> Add(const LogRecord& r, double now_s);
  // The lines of windows that ended by `now_s` (all windows if `all`), in window order.
  std::vector<LogRecord> Flush(double now_s, bool all = false);
  // Canonical lines whose window is still open.
  size_t open_windows() const { return windows_.size(); }

 private:
  struct Window {
    double opened_s = 0;
    std::set<std::pair<std::string, int32_t>> sources;
    int64_t held = 0;
    LogRecord last;  // the last held occurrence (what the summary line prints)
  };
  LogDedupOptions options_;
  std::map<std::string, Window> windows_;  // by canonical line
  std::deque<std::string> order_;          // canonical lines by window opening
};

// `(<name> pid=<pid>, node=<node>) <text>`; `, node=...` is left out when the line came from
// `local_node`, and `<name> ` when the name is unknown.
std::string FormatLogLine(const LogRecord& r, const std::string& local_node);

}  // namespace orrery::live

// What the head keeps for its dashboard besides its own state: a ring of cluster events and a
// bounded history of its metrics. Both have their own lock, so the dashboard's routes read them
// without the head's loop; the loop only appends (short, no I/O).
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace orrery::live::dashboard {

// One cluster event (API.md /api/events).
struct Event {
  int64_t seq = 0;      // set by EventRing::Add: 1, 2, ...
  int64_t time_ms = 0;  // Unix ms; 0: set by Add to now
  std::string severity = "INFO";  // INFO | WARNING | ERROR
  std::string kind;     // node_joined, node_draining, node_died, job_submitted, ...
  std::string message;  // one sentence for humans
  std::string node_id, job_id, actor_id;  // empty: not about one
};

nlohmann::json EventToJson(const Event& e);

// The kinds /api/events knows (a filter naming another is a 400).
const std::set<std::string>& EventKinds();

// The last `capacity` events.
class EventRing {
 public:
  explicit EventRing(size_t capacity = 10000) : capacity_(capacity) {}
  // Numbers and keeps `e` (dropping the oldest beyond capacity); its seq.
  int64_t Add(Event e);
  // Events with seq > `after`, oldest first, at most `max`.
  std::vector<Event> After(int64_t after, size_t max) const;
  // Every kept event, oldest first.
  std::vector<Event> All() const;
  int64_t last_seq() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Event> ring_;
  int64_t next_seq_ = 1;
};

// A bounded in-memory history of metric samples: one point per series per report period, the
// last `window_ms`; histograms are kept as their latest value.
class MetricsHistory {
 public:
  struct Sample {
    std::string metric;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  struct Histogram {
    std::string metric;
    std::map<std::string, std::string> labels;
    std::vector<std::pair<double, uint64_t>> buckets;  // (le, cumulative count); le may be inf
    double sum = 0;
    uint64_t count = 0;
  };

  explicit MetricsHistory(int64_t window_ms = 15 * 60 * 1000, double interval_s = 1)
      : window_ms_(window_ms), interval_s_(interval_s) {}
  // One sampling round at `time_ms` (Unix ms); drops points older than the window.
  void Add(int64_t time_ms, const std::vector<Sample>& samples,
           std::vector<Histogram> histograms = {});
  // API.md /api/metrics: the series named in `names` (all when empty) with points at or after
  // `since_ms`, and the histograms.
  nlohmann::json Query(const std::set<std::string>& names, int64_t since_ms) const;
  // Names of every metric kept (series and histograms).
  std::set<std::string> Names() const;

 private:
  struct Series {
    std::string metric;
    std::map<std::string, std::string> labels;
    std::deque<std::pair<int64_t, double>> points;
  };
  const int64_t window_ms_;
  const double interval_s_;
  mutable std::mutex mu_;
  std::map<std::string, Series> series_;  // by metric + labels
  std::vector<Histogram> histograms_;
};

}  // namespace orrery::live::dashboard

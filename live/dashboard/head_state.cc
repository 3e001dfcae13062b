#include "live/dashboard/head_state.h"

#include <chrono>
#include <cmath>

namespace orrery::live::dashboard {

using nlohmann::json;

json EventToJson(const Event& e) {
  json j{{"seq", e.seq},         {"time_ms", e.time_ms}, {"severity", e.severity},
         {"kind", e.kind},       {"message", e.message}};
  if (!e.node_id.empty()) j["node_id"] = e.node_id;
  if (!e.job_id.empty()) j["job_id"] = e.job_id;
  if (!e.actor_id.empty()) j["actor_id"] = e.actor_id;
  return j;
}

const std::set<std::string>& EventKinds() {
  static const std::set<std::string> kKinds = {
      "node_joined",       "node_draining",           "node_died",
      "job_submitted",     "job_finished",            "actor_restarted",
      "actor_died",        "placement_group_created", "placement_group_failed",
      "autoscaler_launch", "autoscaler_terminate"};
  return kKinds;
}

int64_t EventRing::Add(Event e) {
  if (e.time_ms == 0) {
    e.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  }
  std::lock_guard<std::mutex> l(mu_);
  e.seq = next_seq_++;
  ring_.push_back(std::move(e));
  while (ring_.size() > capacity_) ring_.pop_front();
  return ring_.back().seq;
}

std::vector<Event> EventRing::After(int64_t after, size_t max) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Event> out;
  if (ring_.empty() || ring_.back().seq <= after) return out;
  // seqs are consecutive: index of the first one after `after`.
  const int64_t first = ring_.front().seq;
  size_t i = after < first ? 0 : static_cast<size_t>(after - first + 1);
  for (; i < ring_.size() && out.size() < max; ++i) out.push_back(ring_[i]);
  return out;
}

std::vector<Event> EventRing::All() const {
  std::lock_guard<std::mutex> l(mu_);
  return {ring_.begin(), ring_.end()};
}

int64_t EventRing::last_seq() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_seq_ - 1;
}

namespace {
std::string SeriesKey(const std::string& metric, const std::map<std::string, std::string>& labels) {
  std::string k = metric;
  for (const auto& [n, v] : labels) k += "\x1f" + n + "=" + v;
  return k;
}
}  // namespace

void MetricsHistory::Add(int64_t time_ms, const std::vector<Sample>& samples,
                         std::vector<Histogram> histograms) {
  std::lock_guard<std::mutex> l(mu_);
  for (const Sample& s : samples) {
    Series& series = series_[SeriesKey(s.metric, s.labels)];
    if (series.metric.empty()) {
      series.metric = s.metric;
      series.labels = s.labels;
    }
    series.points.emplace_back(time_ms, s.value);
  }
  const int64_t oldest = time_ms - window_ms_;
  for (auto it = series_.begin(); it != series_.end();) {
    auto& pts = it->second.points;
    while (!pts.empty() && pts.front().first < oldest) pts.pop_front();
    it = pts.empty() ? series_.erase(it) : std::next(it);
  }
  if (!histograms.empty()) histograms_ = std::move(histograms);
}

json MetricsHistory::Query(const std::set<std::string>& names, int64_t since_ms) const {
  json series = json::array(), hists = json::array();
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [key, s] : series_) {
    if (!names.empty() && !names.count(s.metric)) continue;
    json points = json::array();
    for (const auto& [t, v] : s.points) {
      if (t >= since_ms) points.push_back(json::array({t, std::isfinite(v) ? json(v) : json()}));
    }
    series.push_back(json{{"metric", s.metric}, {"labels", s.labels}, {"points", points}});
  }
  for (const Histogram& h : histograms_) {
    if (!names.empty() && !names.count(h.metric)) continue;
    json buckets = json::array();
    for (const auto& [le, c] : h.buckets) {
      buckets.push_back(json{{"le", std::isinf(le) ? json("+Inf") : json(le)}, {"count", c}});
    }
    hists.push_back(json{{"metric", h.metric}, {"labels", h.labels}, {"buckets", buckets},
                         {"sum", h.sum}, {"count", h.count}});
  }
  return json{{"interval_s", interval_s_}, {"series", series}, {"histograms", hists}};
}

std::set<std::string> MetricsHistory::Names() const {
  std::lock_guard<std::mutex> l(mu_);
  std::set<std::string> out;
  for (const auto& [k, s] : series_) out.insert(s.metric);
  for (const auto& h : histograms_) out.insert(h.metric);
  return out;
}

}  // namespace orrery::live::dashboard

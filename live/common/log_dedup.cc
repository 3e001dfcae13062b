#include "live/common/log_dedup.h"

#include <cctype>

namespace orrery::live {

std::string CanonicalLogLine(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  bool in_digits = false;
  bool pending_space = false;
  for (const char ch : line) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c)) {
      pending_space = !out.empty();
      in_digits = false;
      continue;
    }
    if (pending_space) {
      out += ' ';
      pending_space = false;
    }
    if (std::isdigit(c)) {
      if (!in_digits) out += '0';
      in_digits = true;
      continue;
    }
    in_digits = false;
    out += ch;
  }
  return out;
}

LogDeduplicator::LogDeduplicator(LogDedupOptions options) : options_(options) {}

std::vector<LogRecord> LogDeduplicator::Add(const LogRecord& r, double now_s) {
  std::vector<LogRecord> out = Flush(now_s);
  const std::string key = CanonicalLogLine(r.text);
  if (key.empty()) {
    out.push_back(r);
    return out;
  }
  auto it = windows_.find(key);
  if (it == windows_.end()) {
    Window w;
    w.opened_s = now_s;
    w.sources.emplace(r.node_id, r.pid);
    windows_.emplace(key, std::move(w));
    order_.push_back(key);
    out.push_back(r);
    return out;
  }
  Window& w = it->second;
  w.sources.emplace(r.node_id, r.pid);
  if (w.sources.size() > 1) {
    ++w.held;
    w.last = r;
  } else {
    out.push_back(r);  // the same worker repeating itself: not a cross-cluster repeat
  }
  return out;
}

std::vector<LogRecord> LogDeduplicator::Flush(double now_s, bool all) {
  std::vector<LogRecord> out;
  while (!order_.empty()) {
    auto it = windows_.find(order_.front());
    if (it != windows_.end()) {
      if (!all && now_s < it->second.opened_s + options_.window_s) break;
      const Window& w = it->second;
      if (w.held > 1) {
        LogRecord summary = w.last;
        summary.text += " [repeated " + std::to_string(w.held) + "x across cluster]";
        out.push_back(std::move(summary));
      } else if (w.held == 1) {
        out.push_back(w.last);
      }
      windows_.erase(it);
    }
    order_.pop_front();
  }
  return out;
}

std::string FormatLogLine(const LogRecord& r, const std::string& local_node) {
  std::string s = "(";
  if (!r.name.empty()) s += r.name + " ";
  s += "pid=" + std::to_string(r.pid);
  if (!r.node_id.empty() && r.node_id != local_node) s += ", node=" + r.node_id;
  s += ") ";
  s += r.text;
  return s;
}

}  // namespace orrery::live

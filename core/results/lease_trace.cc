#include "core/results/lease_trace.h"

#include <algorithm>
#include <map>

#include "core/results/csv.h"

namespace orrery::results {
namespace {

constexpr const char* kHeader = "t_s,lease,name,event,node,task_id,attempt,detail,view_age_s";

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  size_t used = 0;
  try {
    *out = std::stod(s, &used);
  } catch (...) {
    return false;
  }
  return used == s.size();
}

bool ParseUint(const std::string& s, uint64_t* out) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
  try {
    *out = std::stoull(s);
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

void LeaseTraceRecorder::Add(double t_s, uint64_t handle, std::string_view event,
                             std::string_view name, std::string_view node, std::string_view task_id,
                             int attempt, std::string_view detail, double view_age_s) {
  auto [it, fresh] = ids_.try_emplace(handle);
  if (fresh) it->second.id = ids_.size() - 1;
  if (it->second.name.empty()) it->second.name = std::string(name);
  LeaseEvent e;
  e.t_s = t_s;
  e.lease = it->second.id;
  e.name = it->second.name;
  e.event = std::string(event);
  e.node = std::string(node);
  e.task_id = std::string(task_id);
  e.attempt = attempt;
  e.detail = std::string(detail);
  e.view_age_s = view_age_s;
  events_.push_back(std::move(e));
}

std::string RenderLeasesCsv(std::vector<LeaseEvent> events) {
  std::stable_sort(events.begin(), events.end(),
                   [](const LeaseEvent& a, const LeaseEvent& b) { return a.t_s < b.t_s; });
  std::string out = std::string(kHeader) + "\n";
  for (const auto& e : events) {
    out += FixedNum(e.t_s, 6) + "," + std::to_string(e.lease) + "," + CsvQuote(e.name) + "," +
           e.event + "," + CsvQuote(e.node) + "," + CsvQuote(e.task_id) + "," +
           (e.task_id.empty() ? std::string() : std::to_string(e.attempt)) + "," +
           CsvQuote(e.detail) + "," +
           (e.view_age_s < 0 ? std::string() : FixedNum(e.view_age_s, 6)) + "\n";
  }
  return out;
}

StatusOr<std::vector<LeaseEvent>> ParseLeasesCsv(const std::string& text, const std::string& file) {
  std::vector<LeaseEvent> out;
  size_t pos = 0;
  int line_no = 0;
  bool header = true;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const std::string where = file + ":" + std::to_string(line_no) + ": ";
    if (header) {
      header = false;
      std::string h = line;
      if (!h.empty() && h.back() == '\r') h.pop_back();
      if (h != kHeader) {
        return Status(StatusCode::kInvalidArgument,
                      where + "expected the header '" + std::string(kHeader) + "'");
      }
      continue;
    }
    if (line.empty() || line == "\r") continue;
    const auto f = SplitCsvLine(line);
    if (f.size() != 9) {
      return Status(StatusCode::kInvalidArgument,
                    where + "expected 9 fields, got " + std::to_string(f.size()));
    }
    LeaseEvent e;
    if (!ParseDouble(f[0], &e.t_s)) {
      return Status(StatusCode::kInvalidArgument,
                    where + "t_s: expected a number, got '" + f[0] + "'");
    }
    if (!ParseUint(f[1], &e.lease)) {
      return Status(StatusCode::kInvalidArgument,
                    where + "lease: expected a non-negative integer, got '" + f[1] + "'");
    }
    e.name = f[2];
    e.event = f[3];
    if (e.event.empty()) return Status(StatusCode::kInvalidArgument, where + "event: empty");
    e.node = f[4];
    e.task_id = f[5];
    if (!f[6].empty()) {
      uint64_t a = 0;
      if (!ParseUint(f[6], &a) || a > 1000000) {
        return Status(StatusCode::kInvalidArgument,
                      where + "attempt: expected a small non-negative integer, got '" + f[6] + "'");
      }
      e.attempt = static_cast<int>(a);
    }
    e.detail = f[7];
    if (!f[8].empty() && (!ParseDouble(f[8], &e.view_age_s) || e.view_age_s < 0)) {
      return Status(StatusCode::kInvalidArgument,
                    where + "view_age_s: expected a non-negative number, got '" + f[8] + "'");
    }
    out.push_back(std::move(e));
  }
  if (header) return Status(StatusCode::kInvalidArgument, file + ": empty (expected a header)");
  return out;
}

std::vector<ClassLegs> ComputeLeaseLegs(const std::vector<LeaseEvent>& events,
                                        const std::vector<AttemptTimes>& attempts) {
  struct LeaseInfo {
    std::string name;
    double first_request = -1, granted = -1;
    int hops = 0;
    bool hop_before_grant = false;
  };
  std::map<uint64_t, LeaseInfo> leases;
  std::map<std::pair<std::string, int>, const AttemptTimes*> by_id;
  for (const auto& a : attempts) by_id[{a.task_id, a.attempt}] = &a;

  struct Acc {
    ClassLegs legs;
    std::vector<double> grant_wait, owner_wait, start_after_push, queue, view_age;
    std::vector<double> submits, pushes;  // of pushed attempts, for "tasks waited"
    double hops = 0;
    size_t at_entry = 0;
  };
  std::map<std::string, Acc> acc;
  std::vector<std::pair<std::string, double>> returned;  // class, time

  for (const auto& e : events) {
    LeaseInfo& l = leases[e.lease];
    if (l.name.empty()) l.name = e.name;
    if (e.event == "request") {
      if (l.first_request < 0) l.first_request = e.t_s;
    } else if (e.event == "spilled" || e.event == "rejected" || e.event == "unreachable") {
      ++l.hops;
      if (e.event == "spilled" && e.view_age_s >= 0) acc[l.name].view_age.push_back(e.view_age_s);
      if (l.granted < 0) l.hop_before_grant = true;
    } else if (e.event == "granted") {
      if (l.granted < 0) l.granted = e.t_s;
    } else if (e.event == "returned") {
      returned.emplace_back(l.name, e.t_s);
    } else if (e.event == "push") {
      auto it = by_id.find({e.task_id, e.attempt});
      const std::string name = it != by_id.end() ? it->second->name : e.name;
      Acc& c = acc[name];
      ++c.legs.tasks;
      if (it == by_id.end()) continue;
      const AttemptTimes& a = *it->second;
      c.owner_wait.push_back(e.t_s - a.submit_s);
      c.submits.push_back(a.submit_s);
      c.pushes.push_back(e.t_s);
      if (a.start_s >= 0) {
        c.start_after_push.push_back(a.start_s - e.t_s);
        c.queue.push_back(a.start_s - a.submit_s);
      }
    }
  }
  for (const auto& [id, l] : leases) {
    if (l.granted < 0) continue;
    Acc& c = acc[l.name];
    ++c.legs.leases;
    c.hops += l.hops;
    if (!l.hop_before_grant) ++c.at_entry;
    if (l.first_request >= 0) c.grant_wait.push_back(l.granted - l.first_request);
  }
  for (auto& [name, c] : acc) {
    std::sort(c.submits.begin(), c.submits.end());
    std::sort(c.pushes.begin(), c.pushes.end());
  }
  for (const auto& [name, t] : returned) {
    auto it = acc.find(name);
    if (it == acc.end()) continue;
    Acc& c = it->second;
    // Tasks of the class submitted by t and pushed after it: they waited while the lease went.
    const auto submitted =
        std::upper_bound(c.submits.begin(), c.submits.end(), t) - c.submits.begin();
    const auto pushed = std::upper_bound(c.pushes.begin(), c.pushes.end(), t) - c.pushes.begin();
    if (submitted > pushed) ++c.legs.returned_busy;
  }
  std::vector<ClassLegs> out;
  for (auto& [name, c] : acc) {
    ClassLegs l = c.legs;
    l.name = name;
    if (l.leases > 0) {
      l.tasks_per_lease = static_cast<double>(l.tasks) / static_cast<double>(l.leases);
      l.hops_per_lease = c.hops / static_cast<double>(l.leases);
      l.granted_at_entry = static_cast<double>(c.at_entry) / static_cast<double>(l.leases);
    }
    l.grant_wait = Summarise(std::move(c.grant_wait));
    l.owner_wait = Summarise(std::move(c.owner_wait));
    l.start_after_push = Summarise(std::move(c.start_after_push));
    l.queue = Summarise(std::move(c.queue));
    l.view_ages = c.view_age.size();
    l.view_age = Summarise(std::move(c.view_age));
    out.push_back(std::move(l));
  }
  return out;
}

std::string RenderLegsCsv(const std::vector<std::pair<std::string, std::vector<ClassLegs>>>& runs) {
  std::string out =
      "run,name,tasks,leases,tasks_per_lease,hops_per_lease,granted_at_entry,returned_busy,"
      "grant_wait_mean_s,grant_wait_p95_s,owner_wait_mean_s,owner_wait_p95_s,"
      "start_after_push_mean_s,start_after_push_p95_s,queue_mean_s,queue_p95_s,"
      "view_age_mean_s,view_age_p95_s\n";
  for (const auto& [run, classes] : runs) {
    for (const auto& c : classes) {
      out += CsvQuote(run) + "," + CsvQuote(c.name) + "," + std::to_string(c.tasks) + "," +
             std::to_string(c.leases) + "," + FixedNum(c.tasks_per_lease, 3) + "," +
             FixedNum(c.hops_per_lease, 3) + "," + FixedNum(c.granted_at_entry, 3) + "," +
             std::to_string(c.returned_busy) + "," + FixedNum(c.grant_wait.mean, 6) + "," +
             FixedNum(c.grant_wait.p95, 6) + "," + FixedNum(c.owner_wait.mean, 6) + "," +
             FixedNum(c.owner_wait.p95, 6) + "," + FixedNum(c.start_after_push.mean, 6) + "," +
             FixedNum(c.start_after_push.p95, 6) + "," + FixedNum(c.queue.mean, 6) + "," +
             FixedNum(c.queue.p95, 6) + "," + FixedNum(c.view_age.mean, 6) + "," +
             FixedNum(c.view_age.p95, 6) + "\n";
    }
  }
  return out;
}

std::string RenderLegsTable(const std::vector<ClassLegs>& candidate,
                            const std::vector<std::vector<ClassLegs>>& references,
                            std::string_view candidate_label, std::string_view reference_label) {
  std::map<std::string, std::pair<const ClassLegs*, std::vector<const ClassLegs*>>> rows;
  for (const auto& c : candidate) rows[c.name].first = &c;
  for (const auto& run : references) {
    for (const auto& c : run) rows[c.name].second.push_back(&c);
  }
  // The mean of the references' values (those that have the class and the value: >= 0).
  auto ref = [](const std::vector<const ClassLegs*>& rs, auto get) {
    double sum = 0;
    int n = 0;
    for (const ClassLegs* r : rs) {
      const double v = get(*r);
      if (v < 0) continue;
      sum += v;
      ++n;
    }
    return n == 0 ? -1.0 : sum / n;
  };

  auto pair = [](double a, double b, int decimals, double scale = 1.0) {
    auto f = [&](double x) { return x < 0 ? std::string("-") : FixedNum(x * scale, decimals); };
    return f(a) + " | " + f(b);
  };
  std::string out = "  where the queue delay goes, per class (" + std::string(candidate_label) +
                    " | " + std::string(reference_label);
  if (references.size() > 1) out += ", mean of " + std::to_string(references.size()) + " runs";
  out += "; seconds)\n";
  out += "    " + Pad("class", 12, false) + Pad("leases", 14, true) + Pad("tasks/lease", 15, true) +
         Pad("hops/lease", 14, true) + Pad("at entry %", 13, true) +
         Pad("request->grant", 17, true) + Pad("submit->push", 17, true) +
         Pad("push->start", 17, true) + Pad("returned busy", 15, true) +
         Pad("view age at spill", 19, true) + "\n";
  for (const auto& [name, r] : rows) {
    const ClassLegs* c = r.first;
    const auto& rs = r.second;
    auto cv = [&](auto get) { return c ? get(*c) : -1.0; };
    auto col = [&](auto get, int decimals, size_t w, double scale = 1.0) {
      return Pad(pair(cv(get), ref(rs, get), decimals, scale), w, true);
    };
    out += "    " + Pad(name, 12, false) +
           col([](const ClassLegs& x) { return static_cast<double>(x.leases); }, 1, 14) +
           col([](const ClassLegs& x) { return x.tasks_per_lease; }, 1, 15) +
           col([](const ClassLegs& x) { return x.hops_per_lease; }, 2, 14) +
           col([](const ClassLegs& x) { return x.granted_at_entry; }, 0, 13, 100.0) +
           col([](const ClassLegs& x) { return x.grant_wait.mean; }, 3, 17) +
           col([](const ClassLegs& x) { return x.owner_wait.mean; }, 3, 17) +
           col([](const ClassLegs& x) { return x.start_after_push.mean; }, 3, 17) +
           col([](const ClassLegs& x) { return static_cast<double>(x.returned_busy); }, 1, 15) +
           col([](const ClassLegs& x) { return x.view_ages ? x.view_age.mean : -1.0; }, 3, 19) +
           "\n";
  }
  return out;
}

}  // namespace orrery::results

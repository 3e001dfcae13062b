#include "core/results/fidelity.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "core/results/csv.h"

namespace orrery::results {
namespace {

// Fixed, locale-free: up to 3 decimals, trailing zeros dropped.
std::string Num(double x) { return FixedNum(x, 3); }

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string r = "\"";
  for (char c : s) r += c == '"' ? std::string("\"\"") : std::string(1, c);
  return r + "\"";
}

struct Ref {
  double mean = 0, spread = 0;
  int n = 0;  // references that have the value
};

template <typename F>
Ref Reference(const std::vector<RunStats>& refs, F value) {
  Ref r;
  double lo = 0, hi = 0, sum = 0;
  for (const auto& s : refs) {
    double v = 0;
    if (!value(s, &v)) continue;
    if (r.n == 0 || v < lo) lo = v;
    if (r.n == 0 || v > hi) hi = v;
    sum += v;
    ++r.n;
  }
  if (r.n > 0) {
    r.mean = sum / r.n;
    r.spread = hi - lo;
  }
  return r;
}

Ref ClassRef(const std::vector<RunStats>& refs, const std::string& name, bool jct, bool p95) {
  return Reference(refs, [&](const RunStats& s, double* v) {
    const ClassStats* c = s.Find(name);
    if (c == nullptr) return false;
    const Percentiles& p = jct ? c->jct : c->queue;
    *v = p95 ? p.p95 : p.mean;
    return true;
  });
}

std::set<std::string> ClassNames(const RunStats& candidate, const std::vector<RunStats>& refs) {
  std::set<std::string> names;
  for (const auto& c : candidate.classes) names.insert(c.name);
  for (const auto& r : refs) {
    for (const auto& c : r.classes) names.insert(c.name);
  }
  return names;
}

const std::string kClassPrefix = "class ";
const std::string kClassSuffix = ": mean queue delay";

// One row of the per-class renderings: the candidate's class, the references' means and spreads,
// and the class's check (nullptr when the class is only in the candidate).
struct ClassRow {
  std::string name;
  size_t tasks = 0;
  const ClassStats* mine = nullptr;
  Ref q, q95, j, j95;
  const FidelityCheck* check = nullptr;
};

std::vector<ClassRow> ClassRows(const RunStats& candidate, const std::vector<RunStats>& references,
                                const FidelityVerdict& verdict) {
  std::map<std::string, const FidelityCheck*> check_of;
  for (const auto& c : verdict.checks) {
    if (c.what.rfind(kClassPrefix, 0) == 0) {
      const size_t end = c.what.find(kClassSuffix);
      check_of[c.what.substr(kClassPrefix.size(), end - kClassPrefix.size())] = &c;
    }
  }
  std::vector<ClassRow> rows;
  for (const auto& name : ClassNames(candidate, references)) {
    ClassRow r;
    r.name = name;
    r.mine = candidate.Find(name);
    r.q = ClassRef(references, name, false, false);
    r.q95 = ClassRef(references, name, false, true);
    r.j = ClassRef(references, name, true, false);
    r.j95 = ClassRef(references, name, true, true);
    const ClassStats* any = r.mine;
    for (const auto& ref : references) {
      if (any == nullptr) any = ref.Find(name);
    }
    r.tasks = any ? any->tasks : 0;
    if (auto it = check_of.find(name); it != check_of.end()) r.check = it->second;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

const ClassStats* RunStats::Find(std::string_view name) const {
  auto it = std::lower_bound(classes.begin(), classes.end(), name,
                             [](const ClassStats& c, std::string_view n) { return c.name < n; });
  return it != classes.end() && it->name == name ? &*it : nullptr;
}

RunStats ComputeRunStats(const std::vector<AttemptTimes>& attempts, double makespan_s) {
  RunStats out;
  out.makespan_s = makespan_s;
  struct Task {
    double first_submit = 0;
    const AttemptTimes* last = nullptr;
  };
  std::unordered_map<std::string, Task> tasks;
  std::map<std::string, std::vector<double>> queue_by_class, jct_by_class;
  std::map<std::string, size_t> count_by_class;
  std::vector<double> queue;
  tasks.reserve(attempts.size());
  for (const auto& a : attempts) {
    auto [it, fresh] = tasks.try_emplace(a.task_id);
    Task& t = it->second;
    if (fresh || a.submit_s < t.first_submit) t.first_submit = a.submit_s;
    if (t.last == nullptr || a.attempt >= t.last->attempt) t.last = &a;
    if (a.start_s >= 0) {
      queue.push_back(a.start_s - a.submit_s);
      queue_by_class[a.name].push_back(a.start_s - a.submit_s);
    }
  }
  for (const auto& [id, t] : tasks) {
    ++count_by_class[t.last->name];
    if (t.last->finished && t.last->end_s >= 0) {
      jct_by_class[t.last->name].push_back(t.last->end_s - t.first_submit);
    }
  }
  out.queue = Summarise(std::move(queue));
  for (const auto& [name, n] : count_by_class) {
    ClassStats c;
    c.name = name;
    c.tasks = n;
    if (auto q = queue_by_class.find(name); q != queue_by_class.end()) {
      c.queue = Summarise(std::move(q->second));
    }
    if (auto j = jct_by_class.find(name); j != jct_by_class.end()) {
      c.jct = Summarise(std::move(j->second));
    }
    out.classes.push_back(std::move(c));
  }
  return out;
}

RunStats MeanRunStats(const std::vector<RunStats>& runs) {
  if (runs.size() == 1) return runs.front();
  auto add = [](Percentiles& sum, const Percentiles& p) {
    sum.mean += p.mean;
    sum.p50 += p.p50;
    sum.p95 += p.p95;
    sum.p99 += p.p99;
  };
  auto divide = [](Percentiles& p, double n) {
    p.mean /= n;
    p.p50 /= n;
    p.p95 /= n;
    p.p99 /= n;
  };
  RunStats out;
  struct Sum {
    ClassStats stats;
    int runs = 0;
  };
  std::map<std::string, Sum> by_name;
  for (const auto& r : runs) {
    out.makespan_s += r.makespan_s;
    add(out.queue, r.queue);
    for (const auto& c : r.classes) {
      Sum& s = by_name[c.name];
      s.stats.tasks = std::max(s.stats.tasks, c.tasks);
      add(s.stats.queue, c.queue);
      add(s.stats.jct, c.jct);
      ++s.runs;
    }
  }
  const double n = static_cast<double>(runs.size());
  out.makespan_s /= n;
  divide(out.queue, n);
  for (auto& [name, s] : by_name) {
    s.stats.name = name;
    divide(s.stats.queue, s.runs);
    divide(s.stats.jct, s.runs);
    out.classes.push_back(std::move(s.stats));
  }
  return out;
}

FidelityBars RayBars() {
  FidelityBars b;
  b.class_mean_rel = 0.25;
  b.class_mean_abs_s = 0.2;
  return b;
}

FidelityVerdict JudgeFidelity(const RunStats& candidate, const std::vector<RunStats>& references,
                              const FidelityBars& bars) {
  FidelityVerdict v;
  auto add = [&](std::string what, double cand, const Ref& ref, double allowed, bool widened) {
    FidelityCheck c;
    c.what = std::move(what);
    c.candidate = cand;
    c.reference = ref.mean;
    c.spread = ref.spread;
    c.allowed = allowed;
    c.widened = widened;
    c.pass = std::fabs(c.diff()) <= allowed + 1e-9;
    v.pass = v.pass && c.pass;
    v.checks.push_back(std::move(c));
  };
  const Ref makespan = Reference(references, [](const RunStats& s, double* x) {
    *x = s.makespan_s;
    return true;
  });
  add("makespan_s", candidate.makespan_s, makespan, bars.makespan_rel * makespan.mean, false);
  const Ref p95 = Reference(references, [](const RunStats& s, double* x) {
    *x = s.queue.p95;
    return true;
  });
  add("queue_delay_s.p95", candidate.queue.p95, p95, bars.queue_p95_rel * p95.mean, false);

  struct Judged {
    std::string name;
    double cand = 0, ref = 0, allowed = 0;
  };
  std::vector<Judged> judged;
  for (const auto& c : references.front().classes) {
    const Ref ref = ClassRef(references, c.name, false, false);
    double allowed = std::max(bars.class_mean_rel * ref.mean, bars.class_mean_abs_s);
    bool widened = false;
    if (ref.n > 1 && ref.spread > bars.live_spread_rel * ref.mean &&
        bars.spread_widen * ref.spread > allowed) {
      allowed = bars.spread_widen * ref.spread;
      widened = true;
    }
    const ClassStats* mine = candidate.Find(c.name);
    if (mine == nullptr) {
      add(kClassPrefix + c.name + kClassSuffix + " (missing from the candidate)",
          std::nan(""), ref, allowed, widened);
      v.checks.back().pass = false;
      v.pass = false;
      continue;
    }
    add(kClassPrefix + c.name + kClassSuffix, mine->queue.mean, ref, allowed, widened);
    judged.push_back({c.name, mine->queue.mean, ref.mean, allowed});
  }
  if (bars.same_class_order) {
    for (size_t i = 0; i < judged.size(); ++i) {
      for (size_t j = 0; j < judged.size(); ++j) {
        const Judged &a = judged[i], &b = judged[j];
        // The reference clearly puts a below b; the candidate puts a above b.
        if (b.ref - a.ref > std::max(a.allowed, b.allowed) && a.cand > b.cand) {
          v.order_violations.push_back(a.name + " waits less than " + b.name +
                                       " in the reference (" + Num(a.ref) + " s < " +
                                       Num(b.ref) + " s) but more in the candidate (" +
                                       Num(a.cand) + " s > " + Num(b.cand) + " s)");
          v.pass = false;
        }
      }
    }
  }
  return v;
}

std::string FidelityVerdict::Line() const {
  size_t ok = 0;
  const FidelityCheck* worst = nullptr;
  double worst_ratio = 0;
  for (const auto& c : checks) {
    if (c.pass) {
      ++ok;
      continue;
    }
    const double ratio = c.allowed > 0 ? std::fabs(c.diff()) / c.allowed : INFINITY;
    if (worst == nullptr || !(ratio <= worst_ratio)) {
      worst = &c;
      worst_ratio = ratio;
    }
  }
  std::string s = "fidelity: ";
  s += pass ? "PASS" : "FAIL";
  s += " (" + std::to_string(ok) + "/" + std::to_string(checks.size()) + " checks within bars";
  if (!order_violations.empty()) {
    s += ", " + std::to_string(order_violations.size()) + " class pair(s) ordered differently";
  }
  s += ")";
  if (worst != nullptr) {
    s += "; worst: " + worst->what + " " + Num(worst->candidate) + " vs " +
         Num(worst->reference) + " (allowed +-" + Num(worst->allowed) + ")";
  } else if (!order_violations.empty()) {
    s += "; " + order_violations.front();
  }
  return s;
}

std::string RenderClassesCsv(const RunStats& candidate, const std::vector<RunStats>& references,
                             const FidelityVerdict& verdict) {
  std::string out =
      "class,tasks,sim_queue_mean,sim_queue_p95,ref_queue_mean,ref_queue_p95,ref_queue_spread,"
      "sim_jct_mean,sim_jct_p95,ref_jct_mean,ref_jct_p95,allowed,pass\n";
  for (const ClassRow& r : ClassRows(candidate, references, verdict)) {
    const ClassStats* m = r.mine;
    out += CsvField(r.name) + "," + std::to_string(r.tasks) + "," + (m ? Num(m->queue.mean) : "") +
           "," + (m ? Num(m->queue.p95) : "") + "," + (r.q.n ? Num(r.q.mean) : "") + "," +
           (r.q95.n ? Num(r.q95.mean) : "") + "," + (r.q.n ? Num(r.q.spread) : "") + "," +
           (m ? Num(m->jct.mean) : "") + "," + (m ? Num(m->jct.p95) : "") + "," +
           (r.j.n ? Num(r.j.mean) : "") + "," + (r.j95.n ? Num(r.j95.mean) : "") + "," +
           (r.check ? Num(r.check->allowed) : "") + "," +
           (r.check ? (r.check->pass ? "1" : "0") : "") + "\n";
  }
  return out;
}

std::string RenderClassesTable(const RunStats& candidate, const std::vector<RunStats>& references,
                               const FidelityVerdict& verdict, const std::string& candidate_label,
                               const std::string& reference_label) {
  const std::string& c = candidate_label;
  const std::string& r = reference_label;
  std::string out = "  per class (queue delay and JCT in s; " + r +
                    (references.size() > 1
                         ? " = mean of " + std::to_string(references.size()) + " runs, +- = spread"
                         : "") +
                    ")\n";
  out += "  " + Pad("class", 16, false) + Pad("tasks", 6, true) + Pad(c + " q.mean", 13, true) +
         Pad(r + " q.mean", 13, true) + Pad("+-", 7, true) + Pad(c + " q.p95", 12, true) +
         Pad(r + " q.p95", 12, true) + Pad(c + " jct", 10, true) + Pad(r + " jct", 10, true) +
         "  bar\n";
  for (const ClassRow& row : ClassRows(candidate, references, verdict)) {
    const ClassStats* m = row.mine;
    std::string bar = "-";
    if (row.check != nullptr) {
      bar = std::string(row.check->pass ? "ok" : "MISS") + " (+-" + Num(row.check->allowed) +
            (row.check->widened ? ", widened" : "") + ")";
    }
    out += "  " + Pad(row.name, 16, false) + Pad(std::to_string(row.tasks), 6, true) +
           Pad(m ? Num(m->queue.mean) : "-", 13, true) +
           Pad(row.q.n ? Num(row.q.mean) : "-", 13, true) +
           Pad(row.q.n > 1 ? Num(row.q.spread) : "", 7, true) +
           Pad(m ? Num(m->queue.p95) : "-", 12, true) +
           Pad(row.q95.n ? Num(row.q95.mean) : "-", 12, true) +
           Pad(m ? Num(m->jct.mean) : "-", 10, true) +
           Pad(row.j.n ? Num(row.j.mean) : "-", 10, true) + "  " + bar + "\n";
  }
  for (const auto& ch : verdict.checks) {
    if (ch.what.rfind(kClassPrefix, 0) == 0) continue;
    out += "  " + Pad(ch.what, 22, false) + Pad(c + " " + Num(ch.candidate), 16, true) +
           Pad(r + " " + Num(ch.reference), 16, true) +
           (references.size() > 1 ? Pad("+-" + Num(ch.spread), 10, true) : std::string()) + "  " +
           (ch.pass ? "ok" : "MISS") + " (+-" + Num(ch.allowed) + ")\n";
  }
  for (const auto& o : verdict.order_violations) out += "  order: " + o + "\n";
  out += verdict.Line() + "\n";
  return out;
}

}  // namespace orrery::results

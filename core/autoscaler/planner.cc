#include "core/autoscaler/planner.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

namespace orrery::autoscaler {

const char* ProviderNodeStateName(ProviderNodeState s) {
  switch (s) {
    case ProviderNodeState::kPending:
      return "pending";
    case ProviderNodeState::kRunning:
      return "running";
    case ProviderNodeState::kTerminating:
      return "terminating";
  }
  return "?";
}

const char* TerminateReasonName(TerminateReason r) {
  switch (r) {
    case TerminateReason::kMaxWorkersPerType:
      return "max_workers_per_type";
    case TerminateReason::kMaxWorkersCluster:
      return "max_workers_cluster";
    case TerminateReason::kIdle:
      return "idle";
  }
  return "?";
}

int64_t AutoscalePlan::LaunchCount(const std::string& type) const {
  for (const auto& l : launches) {
    if (l.type == type) return l.count;
  }
  return 0;
}

namespace {

// min_workers above this is a configuration mistake: the round materialises min-worker nodes.
constexpr int64_t kMaxMinWorkers = 1'000'000;
// The upscaling cap never asks for fewer than this many pending nodes of a type (Ray's
// "initial" upscaling allowance).
constexpr int64_t kMinPendingAllowance = 5;

// Shortest decimal form of `x` for messages: 400, 0.25.
std::string Num(double x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  return std::string(buf, r.ptr);
}

// a + b and a * b for non-negative values, saturating instead of overflowing.
int64_t SatAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}
int64_t SatMul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > std::numeric_limits<int64_t>::max() / b ? std::numeric_limits<int64_t>::max() : a * b;
}

// ---------------------------------------------------------------------------------------------
// Demand shapes in the round's dense resource space.

// The names some demand or bundle requests, by name; a node's resources outside them never matter
// for fitting, so vectors over these "dims" are all the planner compares.
struct Shape {
  std::vector<std::pair<int, int64_t>> dims;  // (dim, raw quantity > 0), by dim = by name
  ResourceSet set;
  int64_t total = 0;  // raw sum over names, saturating
  int names = 0;
};

// Compares quantities name by name: +1 if `a` is larger at the first name where they differ,
// -1 if `b` is, 0 if the shapes are equal.
int CompareQuantities(const Shape& a, const Shape& b) {
  size_t i = 0;
  size_t j = 0;
  constexpr int kEnd = std::numeric_limits<int>::max();
  while (i < a.dims.size() || j < b.dims.size()) {
    const int da = i < a.dims.size() ? a.dims[i].first : kEnd;
    const int db = j < b.dims.size() ? b.dims[j].first : kEnd;
    const int d = std::min(da, db);
    int64_t qa = 0;
    int64_t qb = 0;
    if (da == d) qa = a.dims[i++].second;
    if (db == d) qb = b.dims[j++].second;
    if (qa != qb) return qa > qb ? 1 : -1;
  }
  return 0;
}

// Demand order: more resource names first, then larger total, then larger quantities by name.
bool DemandBefore(const Shape& a, const Shape& b) {
  if (a.names != b.names) return a.names > b.names;
  if (a.total != b.total) return a.total > b.total;
  return CompareQuantities(a, b) > 0;
}

// How many units of `s` (at most `limit`) fit in `free`.
int64_t FitCount(const int64_t* free, const Shape& s, int64_t limit) {
  int64_t n = limit;
  for (const auto& [d, q] : s.dims) {
    const int64_t f = free[d];
    if (f < q) return 0;
    if (n > 1) n = std::min(n, f / q);
  }
  return n;
}

bool Fits(const int64_t* free, const Shape& s) { return FitCount(free, s, 1) == 1; }

void Take(int64_t* free, const Shape& s, int64_t n) {
  for (const auto& [d, q] : s.dims) free[d] -= n * q;
}

void Give(int64_t* free, const Shape& s, int64_t n) {
  for (const auto& [d, q] : s.dims) free[d] += n * q;
}

// Distinct shapes in demand order with the units of each still to place.
struct DemandList {
  struct Entry {
    Shape shape;
    int64_t count = 0;
    int first = 0;  // index of the first input entry with this shape (reporting order)
  };
  std::vector<Shape> shapes;
  std::vector<int64_t> rem;
  std::vector<int> first;
  // Per dim: how many shapes with rem > 0 request it ("the remaining demands request X").
  std::vector<int> dim_users;
  // Shapes with rem > 0, in order; compacted lazily.
  std::vector<int> active;
  int64_t units = 0;

  // Sorts and merges `entries`. `num_dims` is the size of the dense space.
  static DemandList Build(std::vector<Entry> entries, int num_dims) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return DemandBefore(a.shape, b.shape); });
    DemandList dl;
    dl.dim_users.assign(static_cast<size_t>(num_dims), 0);
    for (auto& e : entries) {
      if (e.count <= 0 || e.shape.dims.empty()) continue;
      if (!dl.shapes.empty() && CompareQuantities(dl.shapes.back(), e.shape) == 0) {
        dl.rem.back() = SatAdd(dl.rem.back(), e.count);
        dl.first.back() = std::min(dl.first.back(), e.first);
      } else {
        dl.shapes.push_back(std::move(e.shape));
        dl.rem.push_back(e.count);
        dl.first.push_back(e.first);
      }
    }
    for (size_t i = 0; i < dl.shapes.size(); ++i) {
      for (const auto& [d, q] : dl.shapes[i].dims) ++dl.dim_users[d];
      dl.active.push_back(static_cast<int>(i));
      dl.units = SatAdd(dl.units, dl.rem[i]);
    }
    return dl;
  }

  // Removes `n` units of shape `i`. REQUIRES: 0 < n <= rem[i].
  void Remove(int i, int64_t n) {
    rem[i] -= n;
    units -= n;
    if (rem[i] == 0) {
      for (const auto& [d, q] : shapes[i].dims) --dim_users[d];
    }
  }

  void Compact() {
    std::erase_if(active, [&](int i) { return rem[i] == 0; });
  }

  bool Requests(int dim) const { return dim >= 0 && dim_users[dim] > 0; }
};

// (shape index, units) a node takes.
using Takes = std::vector<std::pair<int, int64_t>>;

// The score of one node type for the remaining demands; higher wins, compared in member order.
struct Score {
  bool gpu_ok = true;
  int names = 0;
  double min_contribution = 0.0;
  double mean_contribution = 0.0;
  auto Tuple() const { return std::tie(gpu_ok, names, min_contribution, mean_contribution); }
};

// ---------------------------------------------------------------------------------------------
// One planning round.

class Round {
 public:
  Round(const AutoscalerConfig& cfg, const AutoscalerInput& in) : cfg_(cfg), in_(in) {}

  AutoscalePlan Run() {
    IndexTypesAndNodes();
    CollectDims();
    PrepareTypes();
    PlanMinWorkers();
    EnforceMaxWorkers();
    BuildWorkingNodes();
    for (size_t g = 0; g < in_.gangs.size(); ++g) PlaceGang(static_cast<int>(g));
    PlaceDemands();
    ApplyUpscalingCap();
    TerminateIdle();
    return Finish();
  }

 private:
  struct TypeState {
    std::string name;
    const NodeTypeConfig* cfg = nullptr;
    std::vector<int64_t> cap;  // dense
    struct ScoreResource {
      double capacity = 0.0;
      int64_t raw = 0;
      int dim = -1;  // -1: no demand requests it (u = 0)
    };
    std::vector<ScoreResource> score_resources;  // capacity >= 1, by name
    bool gpu = false;
    bool launchable = false;
    // Managed snapshot nodes still alive in the round, and of them running / pending.
    int64_t existing = 0;
    int64_t running = 0;
    int64_t pending = 0;
    int64_t launch_min = 0;
    int64_t launch_gang = 0;
    int64_t launch_demand = 0;  // before the upscaling cap
    int64_t launch_demand_kept = 0;

    int64_t Total() const { return existing + launch_min + launch_gang + launch_demand; }
  };

  struct WorkNode {
    int snapshot = -1;  // index into in_.nodes; -1 for a node launched this round
    int type = -1;
    bool received = false;  // got demand (a task unit or a bundle) this round
  };

  // A node type's simulated packing, during the choice of a new node.
  struct Candidate {
    int type = -1;
    Score score;
    Takes takes;
  };

  struct Pick {
    int type = -1;
    int64_t nodes = 0;  // how many identical nodes (each takes `takes`)
    Takes takes;
  };

  // ---- setup

  void IndexTypesAndNodes() {
    for (const auto& [name, t] : cfg_.node_types) {
      type_index_.emplace(name, static_cast<int>(types_.size()));
      TypeState ts;
      ts.name = name;
      ts.cfg = &t;
      ts.launchable = t.max_workers > 0 && cfg_.max_workers > 0;
      types_.push_back(std::move(ts));
    }
    const size_t n = in_.nodes.size();
    node_type_.assign(n, -1);
    alive_.assign(n, false);
    terminated_.assign(n, false);
    for (size_t i = 0; i < n; ++i) {
      const SnapshotNode& node = in_.nodes[i];
      if (node.state == ProviderNodeState::kTerminating) continue;
      alive_[i] = true;
      if (node.type.empty()) continue;
      const int t = type_index_.at(node.type);
      node_type_[i] = t;
      ++types_[t].existing;
      ++(node.state == ProviderNodeState::kPending ? types_[t].pending : types_[t].running);
    }
  }

  void CollectDims() {
    std::set<std::string, std::less<>> names;
    auto add = [&](const ResourceSet& s) {
      s.ForEach([&](std::string_view name, Quantity) {
        if (names.find(name) == names.end()) names.emplace(name);
      });
    };
    for (const auto& d : in_.demands) {
      if (d.count > 0) add(d.shape);
    }
    for (const auto& g : in_.gangs) {
      for (const auto& b : g.bundles) add(b);
    }
    dims_.assign(names.begin(), names.end());
    for (size_t d = 0; d < dims_.size(); ++d) dim_index_.emplace(dims_[d], static_cast<int>(d));
    gpu_dim_ = DimOf(kGPU);
  }

  int DimOf(std::string_view name) const {
    auto it = dim_index_.find(name);
    return it == dim_index_.end() ? -1 : it->second;
  }
  int num_dims() const { return static_cast<int>(dims_.size()); }

  std::vector<int64_t> Dense(const ResourceSet& s) const {
    std::vector<int64_t> v(dims_.size());
    for (size_t d = 0; d < dims_.size(); ++d) v[d] = std::max<int64_t>(0, s.Get(dims_[d]).raw());
    return v;
  }

  Shape MakeShape(const ResourceSet& s) const {
    Shape out;
    out.set = s;
    s.ForEach([&](std::string_view name, Quantity q) {
      if (q <= Quantity()) return;
      out.dims.emplace_back(DimOf(name), q.raw());
      out.total = SatAdd(out.total, q.raw());
      ++out.names;
    });
    std::sort(out.dims.begin(), out.dims.end());
    return out;
  }

  void PrepareTypes() {
    for (auto& t : types_) {
      const ResourceSet& r = t.cfg->resources;
      t.cap = Dense(r);
      t.gpu = r.Get(Predefined::kGPU) > Quantity();
      r.ForEach([&](std::string_view name, Quantity q) {
        if (q < kOneUnit) return;
        t.score_resources.push_back({q.ToDouble(), q.raw(), DimOf(name)});
      });
    }
  }

  // ---- steps 1 and 2: min_workers and max_workers

  void PlanMinWorkers() {
    for (auto& t : types_) t.launch_min = std::max<int64_t>(0, t.cfg->min_workers - t.existing);
  }

  int64_t ClusterTotal() const {
    int64_t n = 0;
    for (const auto& t : types_) n += t.Total();
    return n;
  }

  // Room for one more node of type t (per type and cluster-wide).
  int64_t Room(int t) const {
    return std::min(types_[t].cfg->max_workers - types_[t].Total(), cfg_.max_workers - cluster_);
  }

  // What a node is, for termination messages and ordering.
  std::string Describe(int i) const {
    const SnapshotNode& n = in_.nodes[i];
    if (n.state == ProviderNodeState::kPending) return "pending (not running yet)";
    if (n.idle_since_s) return "idle for " + Num(std::max(0.0, in_.now_s - *n.idle_since_s)) + " s";
    return "busy, utilisation " + Num(Utilisation(i));
  }

  // max over the node's resources of used / total.
  double Utilisation(int i) const {
    const SnapshotNode& n = in_.nodes[i];
    double u = 0.0;
    n.total.ForEach([&](std::string_view name, Quantity total) {
      if (total <= Quantity()) return;
      const Quantity used = total - std::min(total, std::max(Quantity(), n.available.Get(name)));
      u = std::max(u, static_cast<double>(used.raw()) / static_cast<double>(total.raw()));
    });
    return u;
  }

  // Managed alive nodes in termination order: pending first (newest launch first), then idle
  // (longest idle first), then busy (least utilised first); ties by node id.
  std::vector<int> TerminationOrder() const {
    struct Key {
      int group;
      double primary;
      const std::string* id;
      int index;
    };
    std::vector<Key> keys;
    for (size_t i = 0; i < in_.nodes.size(); ++i) {
      if (!alive_[i] || node_type_[i] < 0) continue;
      const SnapshotNode& n = in_.nodes[i];
      Key k{2, 0.0, &n.id, static_cast<int>(i)};
      if (n.state == ProviderNodeState::kPending) {
        k.group = 0;
        k.primary = -n.launch_time_s;  // newest launch first
      } else if (n.idle_since_s) {
        k.group = 1;
        k.primary = *n.idle_since_s;  // idle since the earliest = idle the longest first
      } else {
        k.primary = Utilisation(static_cast<int>(i));  // least utilised first
      }
      keys.push_back(k);
    }
    std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
      if (a.group != b.group) return a.group < b.group;
      if (a.primary != b.primary) return a.primary < b.primary;
      return *a.id < *b.id;
    });
    std::vector<int> out;
    out.reserve(keys.size());
    for (const auto& k : keys) out.push_back(k.index);
    return out;
  }

  void TerminateNode(int i, TerminateReason reason, std::string detail) {
    terminated_[i] = true;
    TypeState& t = types_[node_type_[i]];
    --t.existing;
    --(in_.nodes[i].state == ProviderNodeState::kPending ? t.pending : t.running);
    plan_.terminations.push_back({in_.nodes[i].id, reason, std::move(detail)});
  }

  void EnforceMaxWorkers() {
    const std::vector<int> order = TerminationOrder();
    for (size_t ti = 0; ti < types_.size(); ++ti) {
      TypeState& t = types_[ti];
      const int64_t before = t.Total();
      if (before <= t.cfg->max_workers) continue;
      for (int i : order) {
        if (t.Total() <= t.cfg->max_workers) break;
        if (node_type_[i] != static_cast<int>(ti) || terminated_[i]) continue;
        TerminateNode(i, TerminateReason::kMaxWorkersPerType,
                      "type " + t.name + " has " + std::to_string(before) + " nodes, max_workers " +
                          std::to_string(t.cfg->max_workers) + "; " + Describe(i));
      }
    }
    const int64_t before = ClusterTotal();
    if (before > cfg_.max_workers) {
      for (int i : order) {
        if (ClusterTotal() <= cfg_.max_workers) break;
        if (terminated_[i]) continue;
        const TypeState& t = types_[node_type_[i]];
        if (t.Total() <= t.cfg->min_workers) continue;  // never below min_workers
        TerminateNode(i, TerminateReason::kMaxWorkersCluster,
                      "the cluster has " + std::to_string(before) + " nodes, max_workers " +
                          std::to_string(cfg_.max_workers) + "; " + Describe(i));
      }
    }
    cluster_ = ClusterTotal();
  }

  // ---- working nodes: the round's capacity

  void BuildWorkingNodes() {
    std::vector<int> ids;
    for (size_t i = 0; i < in_.nodes.size(); ++i) {
      if (alive_[i] && !terminated_[i]) ids.push_back(static_cast<int>(i));
    }
    std::sort(ids.begin(), ids.end(),
              [&](int a, int b) { return in_.nodes[a].id < in_.nodes[b].id; });
    for (int i : ids) {
      work_.push_back({i, node_type_[i], false});
      const std::vector<int64_t> v = Dense(in_.nodes[i].available);
      free_.insert(free_.end(), v.begin(), v.end());
    }
    for (size_t t = 0; t < types_.size(); ++t) {
      for (int64_t k = 0; k < types_[t].launch_min; ++k) AddNewNode(static_cast<int>(t));
    }
  }

  int64_t* FreeOf(size_t node) { return free_.data() + node * dims_.size(); }

  // Appends an empty node of type t to the working nodes; returns its index.
  size_t AddNewNode(int t) {
    work_.push_back({-1, t, false});
    free_.insert(free_.end(), types_[t].cap.begin(), types_[t].cap.end());
    return work_.size() - 1;
  }

  // Fits the shape on a snapshot node's totals or an empty node of a type that may launch.
  bool Feasible(const Shape& s) const {
    for (const auto& t : types_) {
      if (t.launchable && Fits(t.cap.data(), s)) return true;
    }
    for (const auto& w : work_) {
      if (w.snapshot < 0) continue;
      const ResourceSet& total = in_.nodes[w.snapshot].total;
      bool fits = true;
      for (const auto& [d, q] : s.dims) fits = fits && total.Get(dims_[d]).raw() >= q;
      if (fits) return true;
    }
    return false;
  }

  // ---- choosing new nodes

  // Fits the remaining demands, in order, on one empty node of type t; returns the takes in
  // c.takes and leaves the node's free resources in sim_free_.
  bool Simulate(int t, const DemandList& dl, Candidate& c) {
    c.takes.clear();
    sim_free_ = types_[t].cap;
    for (int i : dl.active) {
      const int64_t n = FitCount(sim_free_.data(), dl.shapes[i], dl.rem[i]);
      if (n == 0) continue;
      Take(sim_free_.data(), dl.shapes[i], n);
      c.takes.emplace_back(i, n);
    }
    return !c.takes.empty();
  }

  Score ScoreOf(int t, const DemandList& dl) const {
    const TypeState& ts = types_[t];
    Score s;
    s.gpu_ok = !(ts.gpu && !dl.Requests(gpu_dim_));
    double min_c = 0.0;
    double sum_c = 0.0;
    bool first = true;
    for (const auto& r : ts.score_resources) {
      double u = 0.0;
      if (r.dim >= 0) {
        u = static_cast<double>(r.raw - sim_free_[r.dim]) / static_cast<double>(r.raw);
        if (dl.Requests(r.dim)) ++s.names;
      }
      const double c = r.capacity * u * u * u;
      min_c = first ? c : std::min(min_c, c);
      first = false;
      sum_c += c;
    }
    s.min_contribution = min_c;
    s.mean_contribution =
        ts.score_resources.empty() ? 0.0 : sum_c / static_cast<double>(ts.score_resources.size());
    return s;
  }

  // The best node type for the remaining demands, and how many nodes of it can be added before
  // any candidate's packing (hence any score) could change. nullopt if no type with room fits any
  // remaining demand.
  std::optional<Pick> ChooseNext(DemandList& dl) {
    dl.Compact();
    if (dl.active.empty()) return std::nullopt;
    size_t used = 0;
    int best = -1;
    Score best_score;
    for (size_t t = 0; t < types_.size(); ++t) {
      if (Room(static_cast<int>(t)) <= 0) continue;
      if (candidates_.size() <= used) candidates_.emplace_back();
      Candidate& c = candidates_[used];
      if (!Simulate(static_cast<int>(t), dl, c)) continue;
      c.type = static_cast<int>(t);
      c.score = ScoreOf(static_cast<int>(t), dl);
      // Types are visited by ascending name, so on a tie the later (larger) name wins.
      if (best < 0 || !(c.score.Tuple() < best_score.Tuple())) {
        best = static_cast<int>(used);
        best_score = c.score;
      }
      ++used;
    }
    if (best < 0) return std::nullopt;
    Pick p;
    p.type = candidates_[best].type;
    p.takes = candidates_[best].takes;
    // Repeating the pick j more times keeps every candidate's packing (so every score and the
    // winner) unchanged as long as each candidate's take of a shape stays <= what remains of it.
    per_shape_.assign(dl.shapes.size(), 0);
    for (const auto& [i, n] : p.takes) per_shape_[i] = n;
    int64_t nodes = Room(p.type);
    for (size_t k = 0; k < used; ++k) {
      for (const auto& [i, n] : candidates_[k].takes) {
        const int64_t pi = per_shape_[i];
        if (pi > 0) nodes = std::min(nodes, 1 + (dl.rem[i] - n) / pi);
      }
    }
    p.nodes = std::max<int64_t>(1, nodes);
    return p;
  }

  // Removes what `p` takes from `dl` and counts its nodes against the room.
  void Apply(DemandList& dl, const Pick& p) {
    for (const auto& [i, n] : p.takes) dl.Remove(i, n * p.nodes);
    cluster_ += p.nodes;
  }

  // ---- step 3: gangs

  void ReportInfeasible(const Shape& s, int64_t count, int gang, int first) {
    infeasible_.push_back({{s.set, count, gang}, gang >= 0 ? -1 : first});
  }

  void PlaceGang(int g) {
    const GangDemand& gang = in_.gangs[g];
    const bool strict_spread = gang.strategy == PlacementStrategy::kStrictSpread;
    std::vector<Shape> items;
    if (gang.strategy == PlacementStrategy::kStrictPack) {
      ResourceSet sum;
      for (const auto& b : gang.bundles) sum += b;
      items.push_back(MakeShape(sum));
    } else {
      for (const auto& b : gang.bundles) items.push_back(MakeShape(b));
    }
    // Infeasible bundles, one report per distinct shape.
    std::vector<DemandList::Entry> bad;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!Feasible(items[i])) bad.push_back({items[i], 1, static_cast<int>(i)});
    }
    if (!bad.empty()) {
      DemandList dl = DemandList::Build(std::move(bad), num_dims());
      std::vector<int> by_first(dl.shapes.size());
      std::iota(by_first.begin(), by_first.end(), 0);
      std::sort(by_first.begin(), by_first.end(),
                [&](int a, int b) { return dl.first[a] < dl.first[b]; });
      for (int i : by_first) ReportInfeasible(dl.shapes[i], dl.rem[i], g, 0);
      return;
    }

    std::vector<int> order(items.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return DemandBefore(items[a], items[b]); });

    // Tentative placement; undone unless every item is placed.
    const size_t nodes_before = work_.size();
    std::vector<int64_t> gang_launch_before;
    for (const auto& t : types_) gang_launch_before.push_back(t.launch_gang);
    const int64_t cluster_before = cluster_;
    std::vector<std::pair<size_t, int>> taken;  // (node, item) on nodes that existed before
    std::vector<int> residual;
    for (int idx : order) {
      const Shape& s = items[idx];
      int found = -1;
      for (size_t n = 0; n < nodes_before && found < 0; ++n) {
        if (strict_spread && std::any_of(taken.begin(), taken.end(),
                                         [&](const auto& tk) { return tk.first == n; })) {
          continue;
        }
        if (Fits(FreeOf(n), s)) found = static_cast<int>(n);
      }
      if (found < 0) {
        residual.push_back(idx);
        continue;
      }
      Take(FreeOf(static_cast<size_t>(found)), s, 1);
      taken.emplace_back(static_cast<size_t>(found), idx);
    }

    bool placed = true;
    if (strict_spread) {
      // Each bundle left gets a node of its own, the type chosen for that bundle alone.
      for (int idx : residual) {
        DemandList one = DemandList::Build({{items[idx], 1, 0}}, num_dims());
        std::optional<Pick> p = ChooseNext(one);
        if (!p) {
          placed = false;
          break;
        }
        p->nodes = 1;
        AddGangNodes(*p, one);
        Apply(one, *p);
      }
    } else if (!residual.empty()) {
      std::vector<DemandList::Entry> entries;
      for (int idx : residual) entries.push_back({items[idx], 1, idx});
      DemandList dl = DemandList::Build(std::move(entries), num_dims());
      while (dl.units > 0) {
        std::optional<Pick> p = ChooseNext(dl);
        if (!p) {
          placed = false;
          break;
        }
        AddGangNodes(*p, dl);
        Apply(dl, *p);
      }
    }

    if (placed) {
      for (const auto& [n, idx] : taken) work_[n].received = true;
      return;
    }
    for (const auto& [n, idx] : taken) Give(FreeOf(n), items[idx], 1);
    work_.resize(nodes_before);
    free_.resize(nodes_before * dims_.size());
    for (size_t t = 0; t < types_.size(); ++t) types_[t].launch_gang = gang_launch_before[t];
    cluster_ = cluster_before;
    plan_.waiting_gangs.push_back(g);
  }

  // Materialises p.nodes nodes of p.type, each holding p.takes, for later gangs and demands.
  void AddGangNodes(const Pick& p, const DemandList& dl) {
    for (int64_t k = 0; k < p.nodes; ++k) {
      const size_t n = AddNewNode(p.type);
      for (const auto& [i, units] : p.takes) Take(FreeOf(n), dl.shapes[i], units);
      work_[n].received = true;
    }
    types_[p.type].launch_gang += p.nodes;
  }

  // ---- step 4: task and actor demands

  void PlaceDemands() {
    std::vector<DemandList::Entry> entries;
    for (size_t i = 0; i < in_.demands.size(); ++i) {
      const ResourceDemand& d = in_.demands[i];
      if (d.count <= 0 || d.shape.IsEmpty()) continue;
      entries.push_back({MakeShape(d.shape), d.count, static_cast<int>(i)});
    }
    DemandList dl = DemandList::Build(std::move(entries), num_dims());

    for (int i : dl.active) {
      if (!Feasible(dl.shapes[i])) {
        ReportInfeasible(dl.shapes[i], dl.rem[i], -1, dl.first[i]);
        dl.Remove(i, dl.rem[i]);
      }
    }
    dl.Compact();

    // First fit onto the round's nodes. max_free bounds every node's free quantity (free only
    // shrinks), so a shape above it in some name is skipped without a scan.
    const size_t nd = dims_.size();
    std::vector<int64_t> max_free(nd, 0);
    for (size_t n = 0; n < work_.size(); ++n) {
      for (size_t d = 0; d < nd; ++d) max_free[d] = std::max(max_free[d], FreeOf(n)[d]);
    }
    for (int i : dl.active) {
      const Shape& s = dl.shapes[i];
      if (!Fits(max_free.data(), s)) continue;
      for (size_t n = 0; n < work_.size() && dl.rem[i] > 0; ++n) {
        const int64_t k = FitCount(FreeOf(n), s, dl.rem[i]);
        if (k == 0) continue;
        Take(FreeOf(n), s, k);
        work_[n].received = true;
        dl.Remove(i, k);
      }
    }

    // New nodes for what is left.
    while (dl.units > 0) {
      std::optional<Pick> p = ChooseNext(dl);
      if (!p) break;
      int64_t units = 0;
      for (const auto& [i, n] : p->takes) units += n;
      demand_picks_.push_back({p->type, p->nodes, units});
      types_[p->type].launch_demand += p->nodes;
      Apply(dl, *p);
    }
    plan_.waiting_units = dl.units;
  }

  // ---- step 5: upscaling speed

  void ApplyUpscalingCap() {
    for (auto& t : types_) {
      const double scaled =
          std::floor(cfg_.upscaling_speed * static_cast<double>(std::max<int64_t>(t.running, 1)));
      const int64_t cap =
          std::max<int64_t>(kMinPendingAllowance, scaled >= 1e15 ? int64_t{1'000'000'000'000'000}
                                                                 : static_cast<int64_t>(scaled));
      const int64_t allowed = std::max<int64_t>(0, cap - t.pending - t.launch_min - t.launch_gang);
      t.launch_demand_kept = std::min(t.launch_demand, allowed);
      if (t.launch_demand_kept < t.launch_demand) {
        plan_.deferred[t.name] = t.launch_demand - t.launch_demand_kept;
      }
    }
    // The nodes cut are the last chosen: their units wait.
    std::vector<int64_t> kept(types_.size(), 0);
    for (const auto& p : demand_picks_) {
      TypeState& t = types_[p.type];
      const int64_t keep = std::clamp<int64_t>(t.launch_demand_kept - kept[p.type], 0, p.nodes);
      kept[p.type] += keep;
      plan_.waiting_units = SatAdd(plan_.waiting_units, SatMul(p.nodes - keep, p.units_per_node));
    }
  }

  // ---- step 6: idle termination

  void TerminateIdle() {
    std::vector<size_t> idle;
    for (size_t n = 0; n < work_.size(); ++n) {
      const WorkNode& w = work_[n];
      if (w.snapshot < 0 || w.type < 0 || w.received) continue;
      const SnapshotNode& node = in_.nodes[w.snapshot];
      if (node.state != ProviderNodeState::kRunning || !node.idle_since_s) continue;
      if (in_.now_s - *node.idle_since_s > cfg_.idle_timeout_s) idle.push_back(n);
    }
    std::sort(idle.begin(), idle.end(), [&](size_t a, size_t b) {
      const SnapshotNode& x = in_.nodes[work_[a].snapshot];
      const SnapshotNode& y = in_.nodes[work_[b].snapshot];
      if (*x.idle_since_s != *y.idle_since_s) return *x.idle_since_s < *y.idle_since_s;
      return x.id < y.id;
    });
    for (size_t n : idle) {
      const int i = work_[n].snapshot;
      TypeState& t = types_[work_[n].type];
      const int64_t total = t.existing + t.launch_min + t.launch_gang + t.launch_demand_kept;
      if (total <= t.cfg->min_workers) continue;
      TerminateNode(i, TerminateReason::kIdle,
                    Describe(i) + " (idle_timeout " + Num(cfg_.idle_timeout_s) + " s)");
    }
  }

  AutoscalePlan Finish() {
    for (const auto& t : types_) {
      Launch l{t.name, 0, t.launch_min, t.launch_gang, t.launch_demand_kept};
      l.count = l.for_min_workers + l.for_gangs + l.for_demands;
      if (l.count > 0) plan_.launches.push_back(std::move(l));
    }
    // Gangs in gang order (already), then task shapes by first appearance in the input.
    std::stable_sort(infeasible_.begin(), infeasible_.end(), [](const auto& a, const auto& b) {
      const bool ga = a.first.gang >= 0;
      const bool gb = b.first.gang >= 0;
      if (ga != gb) return ga;
      return !ga && a.second < b.second;
    });
    for (auto& [inf, first] : infeasible_) plan_.infeasible.push_back(std::move(inf));
    return std::move(plan_);
  }

  const AutoscalerConfig& cfg_;
  const AutoscalerInput& in_;
  AutoscalePlan plan_;

  std::vector<TypeState> types_;  // by name
  std::map<std::string, int, std::less<>> type_index_;
  std::vector<int> node_type_;  // per snapshot node: type index or -1 (unmanaged)
  std::vector<bool> alive_;     // not terminating
  std::vector<bool> terminated_;

  std::vector<std::string> dims_;
  std::map<std::string, int, std::less<>> dim_index_;
  int gpu_dim_ = -1;

  std::vector<WorkNode> work_;
  std::vector<int64_t> free_;  // work_.size() x dims_.size()
  int64_t cluster_ = 0;        // managed nodes in the round, launches included

  struct DemandPick {
    int type;
    int64_t nodes;
    int64_t units_per_node;
  };
  std::vector<DemandPick> demand_picks_;
  std::vector<std::pair<InfeasibleDemand, int>> infeasible_;  // (report, first input index)

  // Scratch reused across choices.
  std::vector<Candidate> candidates_;
  std::vector<int64_t> sim_free_;
  std::vector<int64_t> per_shape_;
};

bool Finite(double x) { return std::isfinite(x); }

Status CheckResources(const ResourceSet& s, const std::string& what) {
  if (s.HasNegative())
    return InvalidArgument(what + ": quantities must be >= 0, got " + s.ToString());
  return Status::Ok();
}

}  // namespace

StatusOr<AutoscalerPlanner> AutoscalerPlanner::Create(AutoscalerConfig config) {
  int64_t min_sum = 0;
  for (const auto& [name, t] : config.node_types) {
    const std::string where = "node type \"" + name + "\"";
    if (name.empty()) return InvalidArgument("a node type name must not be empty");
    ORRERY_RETURN_IF_ERROR(CheckResources(t.resources, where + " resources"));
    if (t.min_workers < 0 || t.min_workers > kMaxMinWorkers) {
      return InvalidArgument(where + ": min_workers must be between 0 and " +
                             std::to_string(kMaxMinWorkers) + ", got " +
                             std::to_string(t.min_workers));
    }
    if (t.max_workers < t.min_workers) {
      return InvalidArgument(where + ": max_workers " + std::to_string(t.max_workers) +
                             " is below min_workers " + std::to_string(t.min_workers));
    }
    min_sum += t.min_workers;
  }
  if (config.max_workers < 0) {
    return InvalidArgument("max_workers must be >= 0, got " + std::to_string(config.max_workers));
  }
  if (config.max_workers < min_sum) {
    return InvalidArgument("max_workers " + std::to_string(config.max_workers) +
                           " is below the sum of the node types' min_workers (" +
                           std::to_string(min_sum) + ")");
  }
  if (!Finite(config.upscaling_speed) || config.upscaling_speed < 0) {
    return InvalidArgument("upscaling_speed must be a finite number >= 0");
  }
  if (!Finite(config.idle_timeout_s) || config.idle_timeout_s < 0) {
    return InvalidArgument("idle_timeout_s must be a finite number >= 0");
  }
  return AutoscalerPlanner(std::move(config));
}

StatusOr<AutoscalePlan> AutoscalerPlanner::Plan(const AutoscalerInput& input) const {
  if (!Finite(input.now_s)) return InvalidArgument("now_s must be finite");
  std::vector<const std::string*> ids;
  for (size_t i = 0; i < input.nodes.size(); ++i) {
    const SnapshotNode& n = input.nodes[i];
    const std::string where = "nodes[" + std::to_string(i) + "]";
    if (n.id.empty()) return InvalidArgument(where + ": the node id must not be empty");
    if (!n.type.empty() && config_.node_types.count(n.type) == 0) {
      return InvalidArgument(where + " (" + n.id + "): node type \"" + n.type +
                             "\" is not configured");
    }
    ORRERY_RETURN_IF_ERROR(CheckResources(n.total, where + " total"));
    ORRERY_RETURN_IF_ERROR(CheckResources(n.available, where + " available"));
    if ((n.idle_since_s && !Finite(*n.idle_since_s)) || !Finite(n.launch_time_s)) {
      return InvalidArgument(where + ": times must be finite");
    }
    ids.push_back(&n.id);
  }
  std::sort(ids.begin(), ids.end(), [](const auto* a, const auto* b) { return *a < *b; });
  for (size_t i = 1; i < ids.size(); ++i) {
    if (*ids[i] == *ids[i - 1]) return InvalidArgument("duplicate node id \"" + *ids[i] + "\"");
  }
  for (size_t i = 0; i < input.demands.size(); ++i) {
    const std::string where = "demands[" + std::to_string(i) + "]";
    ORRERY_RETURN_IF_ERROR(CheckResources(input.demands[i].shape, where));
    if (input.demands[i].count < 0) return InvalidArgument(where + ": count must be >= 0");
  }
  for (size_t g = 0; g < input.gangs.size(); ++g) {
    const std::string where = "gangs[" + std::to_string(g) + "]";
    if (input.gangs[g].bundles.empty()) return InvalidArgument(where + ": a gang needs bundles");
    for (size_t b = 0; b < input.gangs[g].bundles.size(); ++b) {
      const std::string bw = where + ".bundles[" + std::to_string(b) + "]";
      ORRERY_RETURN_IF_ERROR(CheckResources(input.gangs[g].bundles[b], bw));
      if (input.gangs[g].bundles[b].IsEmpty()) {
        return InvalidArgument(bw + ": a bundle must request at least one resource");
      }
    }
  }
  Round round(config_, input);
  return round.Run();
}

}  // namespace orrery::autoscaler

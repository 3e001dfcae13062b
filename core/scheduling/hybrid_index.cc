#include "core/scheduling/hybrid_index.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "core/scheduling/hybrid_policy.h"

namespace orrery {
namespace {

// Per-slot class of a node within one partition.
constexpr uint8_t kNoClass = 0;
constexpr uint8_t kAvailable = 1;
constexpr uint8_t kFeasibleOnly = 2;

// Minimum chunk size before a chunk tries to merge with a neighbour; chunks built by Assign()
// start three quarters full so that inserts rarely split right away.
constexpr size_t kMinChunk = OrderStatisticSet::kMaxChunk / 4;
constexpr size_t kAssignChunk = OrderStatisticSet::kMaxChunk * 3 / 4;

uint64_t Mix(uint64_t h, uint64_t v) {
  // SplitMix64's finaliser over h ^ v: cheap and good enough for a 64-entry table.
  uint64_t x = h ^ (v + 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hash of a request's value. Only used to find a shape faster: equality is always checked on the
// value, so a collision costs time, never a wrong answer.
uint64_t HashShape(const ResourceRequest& r) {
  uint64_t h = 0;
  for (int i = 0; i < kNumPredefined; ++i) {
    h = Mix(h, static_cast<uint64_t>(r.set().Get(static_cast<Predefined>(i)).raw()));
  }
  for (const auto& [name, q] : r.set().custom()) {
    uint64_t fnv = 0xcbf29ce484222325ULL;  // FNV-1a of the name
    for (char ch : name) fnv = (fnv ^ static_cast<unsigned char>(ch)) * 0x100000001b3ULL;
    h = Mix(Mix(h, fnv), static_cast<uint64_t>(q.raw()));
  }
  return h;
}

// Node::HasGpu() without the name lookup (GPU is a predefined slot).
bool HasGpu(const Node& n) { return !n.resources.total().Get(Predefined::kGPU).IsZero(); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// OrderStatisticSet

void OrderStatisticSet::Clear() {
  chunks_.clear();
  last_.clear();
  counts_.clear();
  RebuildFenwick();
  size_ = 0;
}

void OrderStatisticSet::RebuildFenwick() {
  const size_t n = counts_.size();
  fenwick_.assign(n + 1, 0);
  for (size_t j = 1; j <= n; ++j) {
    fenwick_[j] += counts_[j - 1];
    const size_t parent = j + (j & (~j + 1));
    if (parent <= n) fenwick_[parent] += fenwick_[j];
  }
  fenwick_top_ = 0;
  while (n > 0 && fenwick_top_ * 2 <= n) fenwick_top_ = fenwick_top_ == 0 ? 1 : fenwick_top_ * 2;
}

void OrderStatisticSet::FenwickAdd(size_t c, int32_t delta) {
  for (size_t j = c + 1; j < fenwick_.size(); j += j & (~j + 1)) {
    fenwick_[j] = static_cast<uint32_t>(static_cast<int64_t>(fenwick_[j]) + delta);
  }
}

void OrderStatisticSet::Assign(const std::vector<Key>& sorted) {
  Clear();
  for (size_t i = 0; i < sorted.size(); i += kAssignChunk) {
    const size_t end = std::min(sorted.size(), i + kAssignChunk);
    std::vector<Key> chunk;
    chunk.reserve(kMaxChunk + 1);
    chunk.assign(sorted.begin() + static_cast<std::ptrdiff_t>(i),
                 sorted.begin() + static_cast<std::ptrdiff_t>(end));
    last_.push_back(chunk.back());
    counts_.push_back(static_cast<uint32_t>(chunk.size()));
    chunks_.push_back(std::move(chunk));
  }
  RebuildFenwick();
  size_ = sorted.size();
}

size_t OrderStatisticSet::ChunkFor(const Key& k) const {
  return static_cast<size_t>(std::lower_bound(last_.begin(), last_.end(), k, Less) -
                             last_.begin());
}

void OrderStatisticSet::Insert(const Key& k) {
  ++size_;
  if (chunks_.empty()) {
    std::vector<Key> chunk;
    chunk.reserve(kMaxChunk + 1);
    chunk.push_back(k);
    chunks_.push_back(std::move(chunk));
    last_.push_back(k);
    counts_.push_back(1);
    RebuildFenwick();
    return;
  }
  // Past every last key: append to the last chunk.
  const size_t c = std::min(ChunkFor(k), chunks_.size() - 1);
  std::vector<Key>& chunk = chunks_[c];
  chunk.insert(std::lower_bound(chunk.begin(), chunk.end(), k, Less), k);
  last_[c] = chunk.back();
  ++counts_[c];
  if (chunk.size() > kMaxChunk) {
    Split(c);
  } else {
    FenwickAdd(c, +1);
  }
}

void OrderStatisticSet::Erase(const Key& k) {
  const size_t c = ChunkFor(k);
  assert(c < chunks_.size());
  std::vector<Key>& chunk = chunks_[c];
  auto it = std::lower_bound(chunk.begin(), chunk.end(), k, Less);
  assert(it != chunk.end() && it->rank == k.rank);
  chunk.erase(it);
  --size_;
  --counts_[c];
  if (chunk.empty()) {
    RemoveChunk(c);
    return;
  }
  last_[c] = chunk.back();
  FenwickAdd(c, -1);
  if (chunk.size() < kMinChunk) MaybeMerge(c);
}

void OrderStatisticSet::Split(size_t c) {
  std::vector<Key>& chunk = chunks_[c];
  const size_t half = chunk.size() / 2;
  std::vector<Key> upper;
  upper.reserve(kMaxChunk + 1);
  upper.assign(chunk.begin() + static_cast<std::ptrdiff_t>(half), chunk.end());
  chunk.resize(half);
  last_[c] = chunk.back();
  counts_[c] = static_cast<uint32_t>(chunk.size());
  const auto at = static_cast<std::ptrdiff_t>(c + 1);
  last_.insert(last_.begin() + at, upper.back());
  counts_.insert(counts_.begin() + at, static_cast<uint32_t>(upper.size()));
  chunks_.insert(chunks_.begin() + at, std::move(upper));
  RebuildFenwick();
}

void OrderStatisticSet::MaybeMerge(size_t c) {
  // Merge with a neighbour when both fit in one chunk, so a set that shrank does not keep many
  // nearly empty chunks (which would slow down At() and ChunkFor()).
  size_t into = c;
  size_t from = c + 1;
  if (from >= chunks_.size() || counts_[into] + counts_[from] > kMaxChunk) {
    if (c == 0 || counts_[c - 1] + counts_[c] > kMaxChunk) return;
    into = c - 1;
    from = c;
  }
  std::vector<Key>& dst = chunks_[into];
  dst.insert(dst.end(), chunks_[from].begin(), chunks_[from].end());
  last_[into] = dst.back();
  counts_[into] = static_cast<uint32_t>(dst.size());
  RemoveChunk(from);
}

void OrderStatisticSet::RemoveChunk(size_t c) {
  const auto at = static_cast<std::ptrdiff_t>(c);
  chunks_.erase(chunks_.begin() + at);
  last_.erase(last_.begin() + at);
  counts_.erase(counts_.begin() + at);
  RebuildFenwick();
}

const OrderStatisticSet::Key& OrderStatisticSet::At(size_t i) const {
  if (i < counts_[0]) return chunks_[0][i];
  // Fenwick descent: the largest prefix of chunks holding at most i keys.
  size_t pos = 0;
  for (size_t step = fenwick_top_; step > 0; step /= 2) {
    const size_t next = pos + step;
    if (next < fenwick_.size() && fenwick_[next] <= i) {
      pos = next;
      i -= fenwick_[next];
    }
  }
  return chunks_[pos][i];
}

size_t OrderStatisticSet::CountLess(const Key& k) const {
  const size_t c = ChunkFor(k);
  size_t n = 0;
  for (size_t j = c; j > 0; j -= j & (~j + 1)) n += fenwick_[j];  // keys in chunks [0, c)
  if (c < chunks_.size()) {
    const std::vector<Key>& chunk = chunks_[c];
    n += static_cast<size_t>(std::lower_bound(chunk.begin(), chunk.end(), k, Less) -
                             chunk.begin());
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// HybridIndex

// The candidates of one shape under one filter, split by class.
struct HybridIndex::Partition {
  HybridFilter filter = HybridFilter::kAny;
  // Keep the feasible-only class. Off for the GPU-avoidance pass, which always requires
  // availability: it then skips the churn of nodes moving in and out of that class.
  bool track_feasible = true;
  bool stale = true;    // rebuild from the whole view at the next query
  uint64_t cursor = 0;  // log position consumed up to (absolute)
  OrderStatisticSet available;
  OrderStatisticSet feasible;
  std::vector<uint8_t> cls;    // slot -> kNoClass / kAvailable / kFeasibleOnly
  std::vector<double> score;   // slot -> score as stored in its set (valid when cls != kNoClass)
};

struct HybridIndex::Shape {
  ResourceRequest request;
  uint64_t last_used = 0;
  std::unique_ptr<Partition> parts[2];  // by HybridFilter, created on first use
};

HybridIndex::HybridIndex(const HybridOptions& options, HybridIndexOptions index_options)
    : options_(options), index_options_(index_options) {
  recent_misses_.assign(static_cast<size_t>(std::max(8, 2 * index_options_.max_shapes)), 0);
}

HybridIndex::~HybridIndex() {
  if (view_ != nullptr) view_->RemoveObserver(this);
}

void HybridIndex::Bind(const ClusterView& view) {
  if (view_ == &view) return;
  if (view_ != nullptr) view_->RemoveObserver(this);
  view_ = &view;
  view.AddObserver(this);
  MarkAllStale();
}

void HybridIndex::OnViewDestroyed() {
  view_ = nullptr;
  MarkAllStale();
}

void HybridIndex::OnTopologyChanged() { MarkAllStale(); }

void HybridIndex::OnNodeChanged(int slot) {
  const auto s = static_cast<size_t>(slot);
  if (s >= last_logged_.size()) last_logged_.resize(s + 1, 0);
  // Already logged at or after synced_upto_: every partition will still see that entry.
  if (last_logged_[s] > synced_upto_) return;
  log_.push_back(slot);
  last_logged_[s] = LogEnd();
}

void HybridIndex::MarkAllStale() {
  for (auto& shape : shapes_) {
    for (auto& p : shape->parts) {
      if (p) p->stale = true;
    }
  }
  // Nothing before this point matters any more: stale partitions rebuild from the view.
  log_base_ = LogEnd();
  log_.clear();
  synced_upto_ = log_base_;
}

int HybridIndex::Lookup(const ResourceRequest& shape) {
  ++tick_;
  const uint64_t h = HashShape(shape);
  for (size_t i = 0; i < shapes_.size(); ++i) {
    if (shape_hashes_[i] == h && shapes_[i]->request == shape) {
      shapes_[i]->last_used = tick_;
      ++stats_.indexed_lookups;
      return static_cast<int>(i);
    }
  }
  // Not indexed. Admit it only if it missed recently too, so one-off shapes stay out.
  auto seen = std::find(recent_misses_.begin(), recent_misses_.end(), h);
  if (index_options_.max_shapes <= 0 || seen == recent_misses_.end()) {
    recent_misses_[recent_next_] = h;
    recent_next_ = (recent_next_ + 1) % recent_misses_.size();
    ++stats_.scan_lookups;
    return -1;
  }
  *seen = 0;
  size_t at = shapes_.size();
  if (shapes_.size() < static_cast<size_t>(index_options_.max_shapes)) {
    shapes_.push_back(std::make_unique<Shape>());
    shape_hashes_.push_back(h);
  } else {
    at = 0;
    for (size_t i = 1; i < shapes_.size(); ++i) {
      if (shapes_[i]->last_used < shapes_[at]->last_used) at = i;
    }
    shapes_[at] = std::make_unique<Shape>();
    ++stats_.shapes_evicted;
  }
  shapes_[at]->request = shape;
  shapes_[at]->last_used = tick_;
  shape_hashes_[at] = h;
  ++stats_.shapes_admitted;
  ++stats_.indexed_lookups;
  return static_cast<int>(at);
}

HybridIndex::Partition& HybridIndex::PartitionFor(int shape, HybridFilter filter,
                                                  bool need_feasible) {
  std::unique_ptr<Partition>& p = shapes_[static_cast<size_t>(shape)]->parts[
      static_cast<int>(filter)];
  if (!p) {
    p = std::make_unique<Partition>();
    p->filter = filter;
    p->track_feasible = filter == HybridFilter::kAny;
  }
  if (need_feasible && !p->track_feasible) {
    p->track_feasible = true;
    p->stale = true;
  }
  Sync(*p, shapes_[static_cast<size_t>(shape)]->request);
  return *p;
}

void HybridIndex::Sync(Partition& p, const ResourceRequest& request) {
  if (p.stale) {
    Rebuild(p, request);
  } else {
    const uint64_t end = LogEnd();
    for (uint64_t pos = p.cursor; pos < end; ++pos) {
      Update(p, request, log_[static_cast<size_t>(pos - log_base_)]);
    }
    p.cursor = end;
  }
  synced_upto_ = p.cursor;
  TrimLog();
}

void HybridIndex::Rebuild(Partition& p, const ResourceRequest& request) {
  ++stats_.rebuilds;
  const ClusterView& view = *view_;
  const auto capacity = static_cast<size_t>(view.slot_capacity());
  p.cls.assign(capacity, kNoClass);
  p.score.assign(capacity, 0.0);
  std::vector<OrderStatisticSet::Key> available;
  std::vector<OrderStatisticSet::Key> feasible;
  const std::vector<int>& order = view.ordered_slots();
  for (size_t rank = 0; rank < order.size(); ++rank) {
    const int slot = order[rank];
    const Node& n = view.at(slot);
    if (!IsCandidate(n, request)) continue;
    if (p.filter == HybridFilter::kNonGpu && HasGpu(n)) continue;
    const double score = HybridScore(n, options_.spread_threshold);
    const OrderStatisticSet::Key key{score, static_cast<int32_t>(rank), slot};
    if (n.resources.IsAvailable(request)) {
      available.push_back(key);
      p.cls[static_cast<size_t>(slot)] = kAvailable;
    } else if (p.track_feasible) {
      feasible.push_back(key);
      p.cls[static_cast<size_t>(slot)] = kFeasibleOnly;
    } else {
      continue;
    }
    p.score[static_cast<size_t>(slot)] = score;
  }
  // Keys are already by rank: a stable sort by score gives (score, rank) order.
  auto by_score = [](const OrderStatisticSet::Key& a, const OrderStatisticSet::Key& b) {
    return a.score < b.score;
  };
  std::stable_sort(available.begin(), available.end(), by_score);
  std::stable_sort(feasible.begin(), feasible.end(), by_score);
  p.available.Assign(available);
  p.feasible.Assign(feasible);
  p.stale = false;
  p.cursor = LogEnd();
}

void HybridIndex::Update(Partition& p, const ResourceRequest& request, int slot) {
  ++stats_.node_updates;
  const auto s = static_cast<size_t>(slot);
  const Node& n = view_->at(slot);
  uint8_t cls = kNoClass;
  double score = 0.0;
  if (IsCandidate(n, request) && (p.filter == HybridFilter::kAny || !HasGpu(n))) {
    score = HybridScore(n, options_.spread_threshold);
    if (n.resources.IsAvailable(request)) {
      cls = kAvailable;
    } else if (p.track_feasible) {
      cls = kFeasibleOnly;
    }
  }
  const uint8_t old = p.cls[s];
  if (old == cls && (cls == kNoClass || p.score[s] == score)) return;
  const auto rank = static_cast<int32_t>(view_->RankOf(slot));
  if (old != kNoClass) {
    (old == kAvailable ? p.available : p.feasible).Erase({p.score[s], rank, slot});
  }
  if (cls != kNoClass) (cls == kAvailable ? p.available : p.feasible).Insert({score, rank, slot});
  p.cls[s] = cls;
  p.score[s] = score;
}

void HybridIndex::TrimLog() {
  // Keep the log short: a partition lagging by more than half the limit is made stale (its
  // rebuild costs about what replaying that many entries would), then the prefix every live
  // partition has consumed is dropped. Amortised O(1) per logged change.
  const size_t limit = std::max<size_t>(1024, 2 * static_cast<size_t>(view_->size()));
  if (log_.size() <= limit) return;
  const uint64_t end = LogEnd();
  uint64_t keep_from = end;
  for (auto& shape : shapes_) {
    for (auto& p : shape->parts) {
      if (!p || p->stale) continue;
      if (end - p->cursor > limit / 2) {
        p->stale = true;
      } else {
        keep_from = std::min(keep_from, p->cursor);
      }
    }
  }
  log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(keep_from - log_base_));
  log_base_ = keep_from;
}

HybridPick HybridIndex::Pick(int shape, HybridFilter filter, const PolicyRequest& req,
                             bool require_available, Rng& rng) {
  Partition& p = PartitionFor(shape, filter, /*need_feasible=*/!require_available);
  const int ex = req.excluded_slot;
  const uint8_t ex_cls = ex >= 0 ? p.cls[static_cast<size_t>(ex)] : kNoClass;

  // The class chosen from, without the excluded node.
  const OrderStatisticSet* cls = nullptr;
  uint8_t tag = kNoClass;
  if (p.available.size() > (ex_cls == kAvailable ? 1u : 0u)) {
    cls = &p.available;
    tag = kAvailable;
  } else if (!require_available && p.feasible.size() > (ex_cls == kFeasibleOnly ? 1u : 0u)) {
    cls = &p.feasible;
    tag = kFeasibleOnly;
  } else {
    return {};
  }
  const bool ex_in = ex_cls == tag;
  HybridPick pick;
  pick.from_available = tag == kAvailable;

  const int pref = req.preferred_slot;
  if (pref >= 0 && pref != ex && p.cls[static_cast<size_t>(pref)] == tag) {
    const OrderStatisticSet::Key& first = cls->Front();
    const double best = ex_in && first.slot == ex ? cls->At(1).score : first.score;
    if (p.score[static_cast<size_t>(pref)] <= best) {
      pick.kind = HybridPick::Kind::kPreferred;
      pick.slot = pref;
      return pick;
    }
  }
  const uint64_t size = cls->size() - (ex_in ? 1 : 0);
  const uint64_t k =
      std::min<uint64_t>(size, static_cast<uint64_t>(HybridTopK(options_, view_->live_size())));
  uint64_t i = k > 1 ? rng.UniformIndex(k) : 0;
  // The i-th node of the class without the excluded one: skip it if it comes at or before i.
  if (ex_in && cls->CountLess({p.score[static_cast<size_t>(ex)], view_->RankOf(ex), ex}) <= i) {
    ++i;
  }
  pick.kind = HybridPick::Kind::kDrawn;
  pick.slot = i == 0 ? cls->Front().slot : cls->At(static_cast<size_t>(i)).slot;
  pick.k = k;
  return pick;
}

bool HybridIndex::AnyFeasible(int shape) {
  Partition& p = PartitionFor(shape, HybridFilter::kAny, /*need_feasible=*/true);
  return !p.available.empty() || !p.feasible.empty();
}

}  // namespace orrery

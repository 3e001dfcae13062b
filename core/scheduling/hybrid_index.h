// An incremental index that answers the hybrid policy's question ("which node?") without scanning
// the cluster, with exactly the reference scan's answer (hybrid_policy.h).
//
// Idea: the hybrid order of candidates is (score, node-id rank), and the score of a node does not
// depend on the request. What depends on the request *shape* (the ResourceRequest value) is the
// class of each node: not a candidate, "available" (fits what is free now) or "feasible only"
// (fits the totals). So for every shape seen often, and for each node filter (all nodes / nodes
// without GPUs), the index keeps the candidates of each class in an order-statistic set keyed by
// (score, rank). A pass then needs the class sizes, the first element, the preferred node's class
// and score, and the i-th element for the random draw: O(log n) instead of O(n log n).
//
// Maintenance is lazy. The index observes the view: OnNodeChanged appends the slot to a change
// log; each (shape, filter) partition keeps its own cursor into the log and re-evaluates only the
// nodes changed since its last query (a node whose class and score did not move costs one
// availability check and no set update). A topology change (node added or removed: slots and the
// id order move) marks every partition stale; a stale partition is rebuilt from the whole view at
// its next query, O(n log n). A partition that falls far behind the log is also made stale
// rather than holding the log.
//
// Shapes: at most HybridIndexOptions::max_shapes are indexed, least recently used dropped. A
// shape is indexed the second time it is looked up within a short window; the first time,
// Lookup() says "not indexed" and the caller answers with the reference scan (which costs about
// what building the partition would, and keeps one-off shapes from evicting hot ones).
//
// Thread safety: none. The index, the policy that owns it and the view it observes belong to one
// event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"
#include "core/rng.h"
#include "core/scheduling/policy.h"

namespace orrery {

// Which nodes one hybrid pass considers.
enum class HybridFilter : uint8_t { kAny, kNonGpu };

// What one hybrid pass chose, as data (the policy turns it into a PolicyResult and a reason).
struct HybridPick {
  enum class Kind : uint8_t {
    kNone,       // the filtered candidates hold no node of the class required
    kPreferred,  // the preferred node: in the class chosen and as good as the best
    kDrawn,      // drawn uniformly among the first k of the class chosen
  };
  Kind kind = Kind::kNone;
  int slot = -1;
  // The class chosen from: available (true) or feasible only (false).
  bool from_available = false;
  // kDrawn: how many nodes the draw was among (the Rng was called iff k > 1).
  uint64_t k = 0;
};

// A set of (score, rank) keys with selection by position: the i-th smallest, and the number of
// keys below a given one. Ordered by score, then rank; each rank occurs at most once.
//
// Stored as a list of sorted chunks of at most kMaxChunk keys, with each chunk's last key and size
// kept in flat arrays and a Fenwick tree over the sizes: locating a key is a binary search over
// chunks plus one inside a chunk, selecting by position a descent of the Fenwick tree. For the
// sizes the hybrid policy sees (10^2..10^5 nodes) this beats a pointer-based balanced tree by
// keeping the search structures in a few cache lines. Splitting, merging or dropping a chunk
// rebuilds the Fenwick tree, O(n / kMaxChunk), once per ~kMaxChunk / 4 updates at worst.
//
// Thread safety: a value type; not synchronised.
class OrderStatisticSet {
 public:
  struct Key {
    double score = 0.0;
    int32_t rank = 0;  // node-id rank in the view: the tie-breaker, unique within a set
    int32_t slot = -1;  // payload: the node's slot
  };
  static bool Less(const Key& a, const Key& b) {
    return a.score < b.score || (a.score == b.score && a.rank < b.rank);
  }
  static constexpr size_t kMaxChunk = 128;

  // Replaces the contents. REQUIRES: `sorted` is strictly increasing by Less. O(n).
  void Assign(const std::vector<Key>& sorted);
  void Clear();
  // REQUIRES: no key with the same rank is present. O(log n + kMaxChunk).
  void Insert(const Key& k);
  // Removes the key with k's (score, rank). REQUIRES: it is present. O(log n + kMaxChunk), plus
  // O(n / kMaxChunk) when a chunk empties or merges.
  void Erase(const Key& k);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The smallest key. REQUIRES: !empty(). O(1).
  const Key& Front() const { return chunks_.front().front(); }
  // The i-th smallest key (0-based). REQUIRES: i < size(). O(log n).
  const Key& At(size_t i) const;
  // Number of keys Less than k. O(log n).
  size_t CountLess(const Key& k) const;

 private:
  void Split(size_t c);
  void MaybeMerge(size_t c);
  void RemoveChunk(size_t c);
  // First chunk whose last key is not Less than k; chunks_.size() if none.
  size_t ChunkFor(const Key& k) const;
  void RebuildFenwick();
  void FenwickAdd(size_t c, int32_t delta);


  std::vector<std::vector<Key>> chunks_;  // each sorted and non-empty, in order
  std::vector<Key> last_;                 // last_[c] == chunks_[c].back()
  std::vector<uint32_t> counts_;          // counts_[c] == chunks_[c].size()
  // 1-based Fenwick tree over counts_: fenwick_[j] = sum of counts_ over (j - lowbit(j), j].
  std::vector<uint32_t> fenwick_;
  size_t fenwick_top_ = 0;  // highest power of two <= chunks_.size() (0 if none)
  size_t size_ = 0;
};

// Options of the index (defaults in brackets).
struct HybridIndexOptions {
  // Request shapes indexed at once [64]; the least recently used is dropped beyond that. Memory
  // is O(max_shapes * nodes). 0 disables the index: every Lookup() says "not indexed".
  int max_shapes = 64;
};

// The index. Construct it with the policy's options; it binds to a view on Bind().
class HybridIndex final : public ClusterViewObserver {
 public:
  // What the index did, for tests, `orrery explain` and benchmarks. Counters only grow.
  struct Stats {
    uint64_t indexed_lookups = 0;  // Lookup() answered with an indexed shape
    uint64_t scan_lookups = 0;     // Lookup() said "not indexed": the caller scanned
    uint64_t shapes_admitted = 0;
    uint64_t shapes_evicted = 0;
    uint64_t rebuilds = 0;      // partitions rebuilt from the whole view
    uint64_t node_updates = 0;  // changed nodes re-evaluated by a partition
  };

  explicit HybridIndex(const HybridOptions& options, HybridIndexOptions index_options = {});
  // Unregisters from the bound view, if any.
  ~HybridIndex() override;
  HybridIndex(const HybridIndex&) = delete;
  HybridIndex& operator=(const HybridIndex&) = delete;

  // Observes `view` from now on, unregistering from the previously bound view; indexed shapes are
  // kept but every partition is rebuilt at its next query. No-op if already bound to `view`.
  // A view destroyed while bound tells the index, which then holds no pointer to it. O(1).
  void Bind(const ClusterView& view);
  // The bound view, or nullptr (never bound, or the view was destroyed).
  const ClusterView* bound_view() const { return view_; }

  // The handle (>= 0) of `shape` if it is indexed, admitting it if it was looked up recently;
  // -1 if it is not indexed this time: the caller must answer this request itself (a scan).
  // A handle is valid until the next Lookup(). O(max_shapes + shape size).
  int Lookup(const ResourceRequest& shape);

  // One pass of the hybrid algorithm over the nodes passing `filter`, for the request
  // req.resources (whose shape `shape` is), as HybridReferencePolicy does it: the available class
  // if non-empty, else (unless require_available) the feasible-only class; excluded_slot is never
  // a candidate; the preferred node wins if in the class and as good as the best; otherwise a
  // uniform draw among the first k (one rng.UniformIndex(k) call iff k > 1).
  // REQUIRES: bound; `shape` from the last Lookup(*req.resources); req's slots valid for the view.
  // Complexity: O(changed nodes since this partition's last query * (log n + kMaxChunk)) to catch
  // up (O(n log n) if stale), then O(log n).
  HybridPick Pick(int shape, HybridFilter filter, const PolicyRequest& req, bool require_available,
                  Rng& rng);
  // Some schedulable node could ever hold the shape (AnyFeasible() of policy.h), from the class
  // sizes. REQUIRES: as Pick. Same catch-up cost as Pick, then O(1).
  bool AnyFeasible(int shape);

  const Stats& stats() const { return stats_; }

  // ClusterViewObserver. O(1) each, apart from OnViewDestroyed / OnTopologyChanged which are
  // O(indexed shapes).
  void OnNodeChanged(int slot) override;
  void OnTopologyChanged() override;
  void OnViewDestroyed() override;

 private:
  struct Partition;
  struct Shape;

  Partition& PartitionFor(int shape, HybridFilter filter, bool need_feasible);
  void Sync(Partition& p, const ResourceRequest& request);
  void Rebuild(Partition& p, const ResourceRequest& request);
  void Update(Partition& p, const ResourceRequest& request, int slot);
  void TrimLog();
  void MarkAllStale();
  uint64_t LogEnd() const { return log_base_ + log_.size(); }

  HybridOptions options_;
  HybridIndexOptions index_options_;
  const ClusterView* view_ = nullptr;

  std::vector<std::unique_ptr<Shape>> shapes_;
  std::vector<uint64_t> shape_hashes_;  // parallel to shapes_, for a fast scan
  std::vector<uint64_t> recent_misses_;  // hashes of shapes recently not indexed (a ring)
  size_t recent_next_ = 0;
  uint64_t tick_ = 0;  // Lookup() count, for least-recently-used eviction

  // Change log: slots changed since the slowest live partition's cursor. Positions are absolute
  // (log_base_ is the position of log_[0]) so trimming the front does not move cursors.
  std::vector<int> log_;
  uint64_t log_base_ = 0;
  // Some partition has consumed the log up to here; a slot with an entry at or after it is
  // already pending for every partition, so it is not logged again.
  uint64_t synced_upto_ = 0;
  std::vector<uint64_t> last_logged_;  // slot -> 1 + position of its last log entry (0: none)

  Stats stats_;
};

}  // namespace orrery

// The runtime-environment cache of one node (DESIGN section 4), as a state machine that answers
// with decisions; the node's backend (the env agent in live/, the node model in sim/) carries
// them out.
//
// Entries are keyed by URI (a content hash: the same URI always has the same content and size)
// and belong to a *kind* ("pip", "conda", "working_dir", "py_modules", ...). Each kind has its
// own byte limit [10 GiB] and its own instance of the eviction policy.
//
// Life cycle of an entry:
//   absent --Acquire--> Installing --ReportInstalled--> Ready --(unused, over the limit)--> evicted
//                           |  ^
//                           |  +-- ReportFailed / timed out, attempt < max_attempts: next attempt
//                           +----- ReportFailed / timed out, last attempt --> Failed
//   Failed --Acquire--> Installing (a fresh round of attempts, from attempt 1)
// Creation is deduplicated: an Acquire while the entry is Installing joins the waiters of the
// install in flight instead of starting another. When the install succeeds every waiter gets a
// reference (EnvReady); when the last attempt fails every waiter gets EnvFailed with a message
// that carries the setup log tail, which the backend turns into a canceled lease.
//
// References: each task, actor or job using an env holds one reference (Acquire, then Release
// when done). An entry with references is *in use* and is never evicted. Bytes are charged when
// an install succeeds (the size is known then). Whenever the total of a kind exceeds its limit
// (after an install succeeded, or a Release made an entry unused), unused Ready entries of that
// kind are evicted, in the policy's order, until the kind is within its limit or nothing unused
// is left. So the total may stay above the limit while entries are in use.
//
// Eviction policies (EvictionPolicy, below; by name with MakeEvictionPolicy):
//   "arbitrary"  what Ray does (it evicts some unused entry), made deterministic: the unused entry
//                that was inserted (became Ready) longest ago. Wins: simplest, no bookkeeping.
//   "lru"        the unused entry whose last use (Acquire or Release) is the oldest. Wins: envs
//                reused in bursts (a job's tasks), where recency predicts the next use.
//   "gdsf"       Greedy-Dual-Size-Frequency (Cherkasova 1998): priority H = L + uses / bytes,
//                computed at every use, where `uses` counts acquisitions since insertion and L
//                is the highest priority evicted so far (0 at first); the lowest H goes first.
//                Small, frequently used entries stay; big, rarely used ones go; L ages entries
//                that stopped being used. Wins: mixed sizes (a 5 GiB conda env beside 1 MiB
//                working dirs), maximising hits per byte.
// Ties are broken by insertion order (older first), so every decision is reproducible.
//
// Time: no clock; `now_s` arguments are seconds on the backend's clock. An attempt's deadline is
// now_s + setup_timeout_s when it starts; the backend reports a timeout itself (ReportFailed with
// timed_out) or lets ExpireOverdue(now_s) find attempts past their deadline.
//
// Thread safety: none; the node's event loop owns an EnvCache.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace orrery::envcache {

using Uri = std::string;
// Who waits for / holds an env: a task, actor or job id (opaque to the cache).
using WaiterId = std::string;

inline constexpr uint64_t kDefaultLimitBytes = uint64_t{10} << 30;  // 10 GiB

// What an eviction policy may look at.
struct EntryStats {
  Uri uri;
  std::string kind;
  uint64_t bytes = 0;
  // Logical times (a counter the cache advances on every event), not clock readings.
  uint64_t inserted_seq = 0;   // when it became Ready
  uint64_t last_used_seq = 0;  // last Acquire or Release
  uint64_t uses = 0;           // acquisitions since it became Ready (its install's waiters count)
};

// Chooses which unused entry of one kind goes first. One instance per kind; it only ever sees
// that kind's entries. Calls for one URI come in this pattern:
//   OnUse* (OnEvictable (OnUse+ OnEvictable)*)? (PopVictim returning it | OnRemoved)
// i.e. an entry is evictable from OnEvictable until the next OnUse, PopVictim or OnRemoved.
class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual std::string_view name() const = 0;
  // The entry was acquired (it is in use, hence not evictable now). O(log n).
  virtual void OnUse(const EntryStats& e) = 0;
  // The entry is Ready and unused: it may be evicted from now on. O(log n).
  virtual void OnEvictable(const EntryStats& e) = 0;
  // The entry left the cache other than by PopVictim: forget it. O(log n).
  virtual void OnRemoved(const Uri& uri) = 0;
  // Removes and returns the evictable entry to evict next; nullopt if none is evictable. O(log n).
  virtual std::optional<Uri> PopVictim() = 0;
};

// "arbitrary" | "lru" | "gdsf".
inline constexpr const char* kEvictionPolicyNames = "arbitrary|lru|gdsf";
// InvalidArgument naming the accepted names for anything else.
StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name);

struct EnvCacheOptions {
  // Limit of every kind not listed in `limit_bytes`.
  uint64_t default_limit_bytes = kDefaultLimitBytes;
  // Per-kind limits, e.g. {"pip", 2 GiB}.
  std::map<std::string, uint64_t> limit_bytes;
  // Eviction policy by name (see kEvictionPolicyNames); ignored when Create() gets a factory.
  std::string policy = "arbitrary";
  // An attempt not reported within this many seconds has timed out.
  double setup_timeout_s = 600.0;
  // Attempts per install round, the first included (Ray tries 3 times).
  int max_attempts = 3;
  // The setup log tail kept in a failure message: its last this many bytes.
  size_t max_log_tail_bytes = 4096;
};

// ---- Decisions (what the backend must do), in the order they are returned.

// Start (or restart) installing `uri`; report the outcome with this attempt number.
struct StartInstall {
  Uri uri;
  std::string kind;
  int attempt = 1;
  double deadline_s = 0.0;
  friend bool operator==(const StartInstall&, const StartInstall&) = default;
};
// `uri` is Ready; each of `waiters` now holds one reference (and must Release it when done).
struct EnvReady {
  Uri uri;
  std::vector<WaiterId> waiters;
  friend bool operator==(const EnvReady&, const EnvReady&) = default;
};
// Setting up `uri` failed for good; each of `waiters` is canceled with `message`.
struct EnvFailed {
  Uri uri;
  std::vector<WaiterId> waiters;
  std::string message;
  friend bool operator==(const EnvFailed&, const EnvFailed&) = default;
};
// Delete `uri` from disk: it was evicted and its bytes are no longer charged.
struct Evict {
  Uri uri;
  std::string kind;
  uint64_t bytes = 0;
  friend bool operator==(const Evict&, const Evict&) = default;
};
using CacheDecision = std::variant<StartInstall, EnvReady, EnvFailed, Evict>;
using CacheDecisions = std::vector<CacheDecision>;

enum class EntryState : uint8_t { kInstalling, kReady, kFailed };
const char* EntryStateName(EntryState s);  // "installing" | "ready" | "failed"

// Counters since creation (DESIGN section 6, summary.json "env_cache").
struct CacheCounters {
  uint64_t hits = 0;    // Acquire of a Ready entry
  uint64_t misses = 0;  // Acquire of anything else (started or joined an install)
  uint64_t joins = 0;   // misses that joined an install in flight (deduplicated)
  uint64_t evictions = 0;
  uint64_t bytes_installed = 0;  // sum of the sizes of successful installs
  uint64_t install_attempts = 0;
  uint64_t install_failures = 0;  // install rounds that failed for good
};

class EnvCache {
 public:
  using PolicyFactory = std::function<std::unique_ptr<EvictionPolicy>()>;

  // InvalidArgument if options.policy is unknown, setup_timeout_s is not a finite number > 0, or
  // max_attempts < 1.
  static StatusOr<EnvCache> Create(EnvCacheOptions options = {});
  // With a custom policy: `factory` makes one instance per kind. REQUIRES: factory returns
  // non-null.
  static StatusOr<EnvCache> Create(EnvCacheOptions options, PolicyFactory factory);

  // `waiter` needs env `uri` of `kind`.
  //   Ready       a hit: the waiter holds a reference now; returns EnvReady{uri, {waiter}}.
  //   Installing  a miss that joins the install in flight; returns nothing (EnvReady or EnvFailed
  //               comes with the install's outcome).
  //   absent or Failed  a miss: returns StartInstall (attempt 1).
  // InvalidArgument if `uri` or `kind` is empty, or `uri` is known under another kind.
  StatusOr<CacheDecisions> Acquire(const Uri& uri, const std::string& kind, const WaiterId& waiter,
                                   double now_s);

  // Drops one reference to `uri`; may evict (returns Evict decisions). NotFound if `uri` is not
  // cached; FailedPrecondition if it is not Ready or holds no reference.
  StatusOr<CacheDecisions> Release(const Uri& uri);

  // `waiter` no longer waits for `uri` (its task was canceled). The install goes on (its result
  // is cached). NotFound if `waiter` is not waiting for `uri`.
  Status Abandon(const Uri& uri, const WaiterId& waiter);

  // The backend's report on attempt `attempt` of installing `uri`.
  // ReportInstalled: the entry turns Ready, charged `bytes`; returns EnvReady for its waiters
  // (if any) then Evict decisions if its kind is over the limit.
  // ReportFailed: `timed_out` says whether the attempt ran past its deadline; `log_tail` is the
  // end of the setup log. Returns StartInstall for the next attempt, or, after the last,
  // EnvFailed for every waiter (the entry turns Failed).
  // A report for an earlier attempt than the current one is stale and ignored (no decisions).
  // NotFound if `uri` is not cached; FailedPrecondition if it is not Installing; InvalidArgument
  // if `attempt` is not one that was started.
  StatusOr<CacheDecisions> ReportInstalled(const Uri& uri, int attempt, uint64_t bytes,
                                           double now_s);
  StatusOr<CacheDecisions> ReportFailed(const Uri& uri, int attempt, bool timed_out,
                                        const std::string& log_tail, double now_s);

  // Treats every attempt whose deadline is <= now_s as timed out (no log tail), in URI order.
  // O(entries).
  CacheDecisions ExpireOverdue(double now_s);

  // ---- Queries.
  std::optional<EntryState> State(const Uri& uri) const;
  // The kind `uri` is cached as (nullopt if absent).
  std::optional<std::string> KindOf(const Uri& uri) const;
  // References held (0 if absent or not Ready).
  int64_t RefCount(const Uri& uri) const;
  // Charged bytes of `uri` (0 unless Ready).
  uint64_t BytesOf(const Uri& uri) const;
  // Charged bytes of one kind / of every kind.
  uint64_t TotalBytes(const std::string& kind) const;
  uint64_t TotalBytes() const;
  // Every cached URI (any state), in order. O(entries). (The dashboard's node page.)
  std::vector<Uri> Uris() const {
    std::vector<Uri> out;
    out.reserve(entries_.size());
    for (const auto& [uri, e] : entries_) out.push_back(uri);
    return out;
  }
  uint64_t LimitBytes(const std::string& kind) const;
  // Waiters of an install in flight (empty unless Installing), in arrival order.
  std::vector<WaiterId> Waiters(const Uri& uri) const;
  // Ready URIs, by URI.
  std::vector<Uri> ReadyUris() const;
  const CacheCounters& counters() const { return counters_; }
  const EnvCacheOptions& options() const { return options_; }

 private:
  struct Entry {
    std::string kind;
    EntryState state = EntryState::kInstalling;
    uint64_t bytes = 0;
    int64_t refs = 0;
    int attempt = 0;
    double deadline_s = 0.0;
    std::vector<WaiterId> waiters;
    std::vector<std::string> attempt_outcomes;  // "failed" | "timed out", per finished attempt
    std::string message;                        // kFailed: the failure message
    EntryStats stats;
  };
  struct Kind {
    std::unique_ptr<EvictionPolicy> policy;
    uint64_t total = 0;
  };

  EnvCache(EnvCacheOptions options, PolicyFactory factory)
      : options_(std::move(options)), factory_(std::move(factory)) {}
  Kind& KindState(const std::string& kind);
  StartInstall StartAttempt(const Uri& uri, Entry& e, double now_s);
  // Evicts unused entries of `kind` while it is over its limit.
  void EvictIfNeeded(const std::string& kind, CacheDecisions& out);
  StatusOr<Entry*> Installing(const Uri& uri, int attempt, bool* stale);

  EnvCacheOptions options_;
  PolicyFactory factory_;
  std::map<Uri, Entry> entries_;  // by URI: ExpireOverdue walks it in a defined order
  std::map<std::string, Kind> kinds_;
  uint64_t seq_ = 0;
  CacheCounters counters_;
};

}  // namespace orrery::envcache

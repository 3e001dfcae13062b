#include "core/envcache/env_cache.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <tuple>

namespace orrery::envcache {
namespace {

std::string Num(double x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  return std::string(buf, r.ptr);
}

// The evictable entries of one kind, ordered by (key, insertion seq): the front goes first.
template <typename Key>
class Victims {
 public:
  void Insert(const Uri& uri, Key key, uint64_t seq) {
    Erase(uri);
    where_[uri] = order_.emplace(key, seq, uri).first;
  }
  void Erase(const Uri& uri) {
    auto it = where_.find(uri);
    if (it == where_.end()) return;
    order_.erase(it->second);
    where_.erase(it);
  }
  // Removes the front; nullopt if empty.
  std::optional<std::pair<Uri, Key>> PopFront() {
    if (order_.empty()) return std::nullopt;
    auto front = order_.begin();
    std::pair<Uri, Key> out{std::get<2>(*front), std::get<0>(*front)};
    where_.erase(out.first);
    order_.erase(front);
    return out;
  }

 private:
  using Order = std::set<std::tuple<Key, uint64_t, Uri>>;
  Order order_;
  std::map<Uri, typename Order::iterator> where_;
};

// Ray's choice (any unused entry), made deterministic: the oldest inserted.
class ArbitraryPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "arbitrary"; }
  void OnUse(const EntryStats& e) override { victims_.Erase(e.uri); }
  void OnEvictable(const EntryStats& e) override {
    victims_.Insert(e.uri, e.inserted_seq, e.inserted_seq);
  }
  void OnRemoved(const Uri& uri) override { victims_.Erase(uri); }
  std::optional<Uri> PopVictim() override {
    auto v = victims_.PopFront();
    if (!v) return std::nullopt;
    return v->first;
  }

 private:
  Victims<uint64_t> victims_;
};

// Least recently used: the oldest last use (Acquire or Release) goes first.
class LruPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "lru"; }
  void OnUse(const EntryStats& e) override { victims_.Erase(e.uri); }
  void OnEvictable(const EntryStats& e) override {
    victims_.Insert(e.uri, e.last_used_seq, e.inserted_seq);
  }
  void OnRemoved(const Uri& uri) override { victims_.Erase(uri); }
  std::optional<Uri> PopVictim() override {
    auto v = victims_.PopFront();
    if (!v) return std::nullopt;
    return v->first;
  }

 private:
  Victims<uint64_t> victims_;
};

// Greedy-Dual-Size-Frequency with a uniform cost: H = L + uses / bytes, set at every use; the
// lowest H goes first and L rises to it (never falls). The inflation L makes an entry that is no
// longer used eventually lose to newer ones however often it was used before.
class GdsfPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "gdsf"; }
  void OnUse(const EntryStats& e) override {
    priority_[e.uri] = Priority(e);
    victims_.Erase(e.uri);
  }
  void OnEvictable(const EntryStats& e) override {
    auto it = priority_.find(e.uri);
    if (it == priority_.end()) it = priority_.emplace(e.uri, Priority(e)).first;
    victims_.Insert(e.uri, it->second, e.inserted_seq);
  }
  void OnRemoved(const Uri& uri) override {
    victims_.Erase(uri);
    priority_.erase(uri);
  }
  std::optional<Uri> PopVictim() override {
    auto v = victims_.PopFront();
    if (!v) return std::nullopt;
    // With pinned entries the victim's priority may date from before the last rise of L; L
    // never decreases, so priorities set later always start at least as high.
    inflation_ = std::max(inflation_, v->second);
    priority_.erase(v->first);
    return v->first;
  }

 private:
  double Priority(const EntryStats& e) const {
    // A zero-byte entry costs nothing to keep: treat it as one byte so it ranks high, not inf.
    return inflation_ +
           static_cast<double>(e.uses) / static_cast<double>(std::max<uint64_t>(e.bytes, 1));
  }

  double inflation_ = 0.0;  // L
  std::map<Uri, double> priority_;
  Victims<double> victims_;
};

// The last `max_bytes` bytes of `tail`, cut at a UTF-8 character boundary, "..." in front if cut.
std::string Tail(const std::string& tail, size_t max_bytes) {
  if (tail.size() <= max_bytes) return tail;
  size_t start = tail.size() - max_bytes;
  while (start < tail.size() && (static_cast<unsigned char>(tail[start]) & 0xC0) == 0x80) ++start;
  return "..." + tail.substr(start);
}

}  // namespace

const char* EntryStateName(EntryState s) {
  switch (s) {
    case EntryState::kInstalling:
      return "installing";
    case EntryState::kReady:
      return "ready";
    case EntryState::kFailed:
      return "failed";
  }
  return "?";
}

StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name) {
  if (name == "arbitrary") return std::unique_ptr<EvictionPolicy>(new ArbitraryPolicy());
  if (name == "lru") return std::unique_ptr<EvictionPolicy>(new LruPolicy());
  if (name == "gdsf") return std::unique_ptr<EvictionPolicy>(new GdsfPolicy());
  return InvalidArgument("unknown eviction policy \"" + std::string(name) + "\" (expected " +
                         kEvictionPolicyNames + ")");
}

StatusOr<EnvCache> EnvCache::Create(EnvCacheOptions options) {
  auto probe = MakeEvictionPolicy(options.policy);
  if (!probe.ok()) return probe.status();
  const std::string policy = options.policy;
  return Create(std::move(options), [policy] { return *MakeEvictionPolicy(policy); });
}

StatusOr<EnvCache> EnvCache::Create(EnvCacheOptions options, PolicyFactory factory) {
  if (!std::isfinite(options.setup_timeout_s) || options.setup_timeout_s <= 0) {
    return InvalidArgument("setup_timeout_s must be a finite number > 0");
  }
  if (options.max_attempts < 1) {
    return InvalidArgument("max_attempts must be >= 1, got " +
                           std::to_string(options.max_attempts));
  }
  if (!factory) return InvalidArgument("the eviction policy factory is empty");
  return EnvCache(std::move(options), std::move(factory));
}

EnvCache::Kind& EnvCache::KindState(const std::string& kind) {
  auto it = kinds_.find(kind);
  if (it == kinds_.end()) it = kinds_.emplace(kind, Kind{factory_(), 0}).first;
  return it->second;
}

uint64_t EnvCache::LimitBytes(const std::string& kind) const {
  auto it = options_.limit_bytes.find(kind);
  return it == options_.limit_bytes.end() ? options_.default_limit_bytes : it->second;
}

StartInstall EnvCache::StartAttempt(const Uri& uri, Entry& e, double now_s) {
  ++e.attempt;
  e.deadline_s = now_s + options_.setup_timeout_s;
  ++counters_.install_attempts;
  return StartInstall{uri, e.kind, e.attempt, e.deadline_s};
}

StatusOr<CacheDecisions> EnvCache::Acquire(const Uri& uri, const std::string& kind,
                                           const WaiterId& waiter, double now_s) {
  if (uri.empty()) return InvalidArgument("the URI must not be empty");
  if (kind.empty()) return InvalidArgument("the kind of " + uri + " must not be empty");
  CacheDecisions out;
  auto it = entries_.find(uri);
  if (it != entries_.end() && it->second.kind != kind) {
    return InvalidArgument(uri + " is cached as kind \"" + it->second.kind + "\", not \"" + kind +
                           "\"");
  }
  if (it != entries_.end() && it->second.state == EntryState::kReady) {
    Entry& e = it->second;
    ++counters_.hits;
    ++e.refs;
    ++e.stats.uses;
    e.stats.last_used_seq = ++seq_;
    KindState(kind).policy->OnUse(e.stats);
    out.push_back(EnvReady{uri, {waiter}});
    return out;
  }
  ++counters_.misses;
  if (it != entries_.end() && it->second.state == EntryState::kInstalling) {
    ++counters_.joins;
    it->second.waiters.push_back(waiter);
    return out;
  }
  if (it == entries_.end()) {
    it = entries_.emplace(uri, Entry{}).first;
    it->second.kind = kind;
    KindState(kind);  // the kind's policy exists before its first entry turns Ready
  }
  Entry& e = it->second;  // new, or Failed: a fresh round of attempts
  e.state = EntryState::kInstalling;
  e.attempt = 0;
  e.attempt_outcomes.clear();
  e.message.clear();
  e.waiters = {waiter};
  out.push_back(StartAttempt(uri, e, now_s));
  return out;
}

StatusOr<CacheDecisions> EnvCache::Release(const Uri& uri) {
  auto it = entries_.find(uri);
  if (it == entries_.end()) return NotFound(uri + " is not in the cache");
  Entry& e = it->second;
  if (e.state != EntryState::kReady) {
    return FailedPrecondition(uri + " is " + EntryStateName(e.state) + ", not ready");
  }
  if (e.refs <= 0) return FailedPrecondition(uri + " holds no reference");
  --e.refs;
  e.stats.last_used_seq = ++seq_;
  CacheDecisions out;
  if (e.refs == 0) {
    const std::string kind = e.kind;
    KindState(kind).policy->OnEvictable(e.stats);
    EvictIfNeeded(kind, out);
  }
  return out;
}

Status EnvCache::Abandon(const Uri& uri, const WaiterId& waiter) {
  auto it = entries_.find(uri);
  if (it != entries_.end() && it->second.state == EntryState::kInstalling) {
    auto& w = it->second.waiters;
    auto pos = std::find(w.begin(), w.end(), waiter);
    if (pos != w.end()) {
      w.erase(pos);
      return Status::Ok();
    }
  }
  return NotFound(waiter + " is not waiting for " + uri);
}

StatusOr<EnvCache::Entry*> EnvCache::Installing(const Uri& uri, int attempt, bool* stale) {
  *stale = false;
  auto it = entries_.find(uri);
  if (it == entries_.end()) return NotFound(uri + " is not in the cache");
  Entry& e = it->second;
  if (attempt >= 1 && attempt < e.attempt) {
    *stale = true;  // a later attempt is under way (or finished): this report is old news
    return &e;
  }
  if (e.state != EntryState::kInstalling) {
    return FailedPrecondition(uri + " is " + EntryStateName(e.state) + ", not installing");
  }
  if (attempt != e.attempt) {
    return InvalidArgument("attempt " + std::to_string(attempt) + " of " + uri +
                           " was never started (current attempt " + std::to_string(e.attempt) +
                           ")");
  }
  return &e;
}

StatusOr<CacheDecisions> EnvCache::ReportInstalled(const Uri& uri, int attempt, uint64_t bytes,
                                                   double /*now_s*/) {
  bool stale = false;
  auto found = Installing(uri, attempt, &stale);
  if (!found.ok()) return found.status();
  CacheDecisions out;
  if (stale) return out;
  Entry& e = **found;
  e.state = EntryState::kReady;
  e.bytes = bytes;
  e.refs = static_cast<int64_t>(e.waiters.size());
  e.stats = EntryStats{uri, e.kind, bytes, ++seq_, seq_, e.waiters.size()};
  counters_.bytes_installed += bytes;
  Kind& k = KindState(e.kind);
  k.total += bytes;
  if (e.refs > 0) {
    k.policy->OnUse(e.stats);
    out.push_back(EnvReady{uri, std::move(e.waiters)});
  } else {
    k.policy->OnEvictable(e.stats);
  }
  e.waiters.clear();
  const std::string kind = e.kind;
  EvictIfNeeded(kind, out);
  return out;
}

StatusOr<CacheDecisions> EnvCache::ReportFailed(const Uri& uri, int attempt, bool timed_out,
                                                const std::string& log_tail, double now_s) {
  bool stale = false;
  auto found = Installing(uri, attempt, &stale);
  if (!found.ok()) return found.status();
  CacheDecisions out;
  if (stale) return out;
  Entry& e = **found;
  e.attempt_outcomes.push_back(timed_out ? "timed out after " + Num(options_.setup_timeout_s) + " s"
                                         : "failed");
  if (e.attempt < options_.max_attempts) {
    out.push_back(StartAttempt(uri, e, now_s));
    return out;
  }
  std::string history;
  for (size_t i = 0; i < e.attempt_outcomes.size(); ++i) {
    history += (i == 0 ? "" : ", ") + std::to_string(i + 1) + ": " + e.attempt_outcomes[i];
  }
  const std::string tail = Tail(log_tail, options_.max_log_tail_bytes);
  e.message = "runtime env " + uri + " (" + e.kind +
              ") could not be set up: " + std::to_string(e.attempt) + " of " +
              std::to_string(options_.max_attempts) + " attempts failed (" + history +
              "). Setup log tail:\n" + (tail.empty() ? std::string("(empty)") : tail);
  e.state = EntryState::kFailed;
  ++counters_.install_failures;
  out.push_back(EnvFailed{uri, std::move(e.waiters), e.message});
  e.waiters.clear();
  return out;
}

CacheDecisions EnvCache::ExpireOverdue(double now_s) {
  std::vector<std::pair<Uri, int>> overdue;
  for (const auto& [uri, e] : entries_) {
    if (e.state == EntryState::kInstalling && e.deadline_s <= now_s) {
      overdue.emplace_back(uri, e.attempt);
    }
  }
  CacheDecisions out;
  for (const auto& [uri, attempt] : overdue) {
    auto d = ReportFailed(uri, attempt, /*timed_out=*/true, "", now_s);
    if (!d.ok()) continue;  // cannot happen: the entry was found installing just above
    for (auto& x : *d) out.push_back(std::move(x));
  }
  return out;
}

void EnvCache::EvictIfNeeded(const std::string& kind, CacheDecisions& out) {
  Kind& k = KindState(kind);
  const uint64_t limit = LimitBytes(kind);
  // Bounded by the number of entries, whatever a custom policy answers.
  for (size_t guard = entries_.size(); k.total > limit && guard > 0; --guard) {
    std::optional<Uri> victim = k.policy->PopVictim();
    if (!victim) return;
    auto it = entries_.find(*victim);
    if (it == entries_.end() || it->second.kind != kind || it->second.state != EntryState::kReady ||
        it->second.refs > 0) {
      return;  // a policy bug: never evict something in use or unknown
    }
    const uint64_t bytes = it->second.bytes;
    k.total -= bytes;
    ++counters_.evictions;
    out.push_back(Evict{*victim, kind, bytes});
    entries_.erase(it);
  }
}

std::optional<EntryState> EnvCache::State(const Uri& uri) const {
  auto it = entries_.find(uri);
  if (it == entries_.end()) return std::nullopt;
  return it->second.state;
}

std::optional<std::string> EnvCache::KindOf(const Uri& uri) const {
  auto it = entries_.find(uri);
  if (it == entries_.end()) return std::nullopt;
  return it->second.kind;
}

int64_t EnvCache::RefCount(const Uri& uri) const {
  auto it = entries_.find(uri);
  return it == entries_.end() || it->second.state != EntryState::kReady ? 0 : it->second.refs;
}

uint64_t EnvCache::BytesOf(const Uri& uri) const {
  auto it = entries_.find(uri);
  return it == entries_.end() || it->second.state != EntryState::kReady ? 0 : it->second.bytes;
}

uint64_t EnvCache::TotalBytes(const std::string& kind) const {
  auto it = kinds_.find(kind);
  return it == kinds_.end() ? 0 : it->second.total;
}

uint64_t EnvCache::TotalBytes() const {
  uint64_t sum = 0;
  for (const auto& [name, k] : kinds_) sum += k.total;
  return sum;
}

std::vector<WaiterId> EnvCache::Waiters(const Uri& uri) const {
  auto it = entries_.find(uri);
  if (it == entries_.end() || it->second.state != EntryState::kInstalling) return {};
  return it->second.waiters;
}

std::vector<Uri> EnvCache::ReadyUris() const {
  std::vector<Uri> out;
  for (const auto& [uri, e] : entries_) {
    if (e.state == EntryState::kReady) out.push_back(uri);
  }
  return out;
}

}  // namespace orrery::envcache

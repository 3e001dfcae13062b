#include "core/placement/two_phase.h"

#include <algorithm>
#include <cassert>

namespace orrery {

// ---------------------------------------------------------------------------------------------
// RetryBackoff

RetryBackoff::RetryBackoff(RetryBackoffOptions options)
    : options_(options), next_s_(options.initial_s) {
  assert(options_.initial_s >= 0.0 && options_.initial_s <= options_.max_s);
  assert(options_.multiplier >= 1.0);
}

double RetryBackoff::NextDelay() {
  const double delay = std::min(next_s_, options_.max_s);
  // Clamp the stored value too, so it cannot grow without bound (and overflow to inf) over a long
  // run of failures.
  next_s_ = std::min(next_s_ * options_.multiplier, options_.max_s);
  ++failures_;
  return delay;
}

void RetryBackoff::Reset() {
  next_s_ = options_.initial_s;
  failures_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Bundle resource names

std::string WildcardBundleResourceName(std::string_view resource, std::string_view group_id) {
  std::string out(resource);
  out += "_group_";
  out += group_id;
  return out;
}

std::string IndexedBundleResourceName(std::string_view resource, int bundle_index,
                                      std::string_view group_id) {
  std::string out(resource);
  out += "_group_";
  out += std::to_string(bundle_index);
  out += '_';
  out += group_id;
  return out;
}

ResourceSet CommittedBundleResources(const ResourceRequest& bundle, int bundle_index,
                                     std::string_view group_id) {
  ResourceSet out;
  auto add = [&](std::string_view name, Quantity q) {
    std::string wildcard = WildcardBundleResourceName(name, group_id);
    out.Set(wildcard, out.Get(wildcard) + q);
    std::string indexed = IndexedBundleResourceName(name, bundle_index, group_id);
    out.Set(indexed, out.Get(indexed) + q);
  };
  bundle.set().ForEach(add);
  add(kBundleMarkerResource, kBundleMarkerQuantity);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Names

const char* ReservationStateName(ReservationState s) {
  switch (s) {
    case ReservationState::kPending:
      return "pending";
    case ReservationState::kPreparing:
      return "preparing";
    case ReservationState::kCommitting:
      return "committing";
    case ReservationState::kCreated:
      return "created";
    case ReservationState::kFailed:
      return "failed";
    case ReservationState::kRemoved:
      return "removed";
  }
  return "pending";
}

const char* TwoPhaseCommandKindName(TwoPhaseCommand::Kind k) {
  switch (k) {
    case TwoPhaseCommand::Kind::kPrepare:
      return "prepare";
    case TwoPhaseCommand::Kind::kCommit:
      return "commit";
    case TwoPhaseCommand::Kind::kCancel:
      return "cancel";
  }
  return "cancel";
}

// ---------------------------------------------------------------------------------------------
// TwoPhaseReservation

TwoPhaseReservation::TwoPhaseReservation(std::string group_id, std::vector<ResourceRequest> bundles,
                                         RetryBackoffOptions backoff)
    : group_id_(std::move(group_id)),
      bundles_(std::move(bundles)),
      backoff_(backoff),
      phase_(bundles_.size(), Phase::kNone) {}

TwoPhaseCommand TwoPhaseReservation::Command(TwoPhaseCommand::Kind kind, int bundle) const {
  return {.kind = kind,
          .group = group_id_,
          .bundle = bundle,
          .node = placement_[bundle],
          .resources = bundles_[bundle]};
}

// One node per bundle, none empty (Start and RestoreCreated take the same placement).
Status TwoPhaseReservation::CheckPlacement(const std::vector<NodeId>& placement) const {
  if (placement.size() != bundles_.size()) {
    return InvalidArgument("placement names " + std::to_string(placement.size()) + " node(s) for " +
                           std::to_string(bundles_.size()) + " bundle(s)");
  }
  for (size_t b = 0; b < placement.size(); ++b) {
    if (placement[b].empty()) {
      return InvalidArgument("placement[" + std::to_string(b) + "]: node id is empty");
    }
  }
  return Status::Ok();
}

Status TwoPhaseReservation::RestoreCreated(const std::vector<NodeId>& placement, int attempts) {
  if (state_ != ReservationState::kPending) {
    return FailedPrecondition("placement group " + group_id_ + " is " +
                              ReservationStateName(state_) + "; only a pending group is restored");
  }
  ORRERY_RETURN_IF_ERROR(CheckPlacement(placement));
  attempts_ = std::max(1, attempts);
  placement_ = placement;
  attempt_failed_ = false;
  reason_.clear();
  for (auto& p : phase_) p = Phase::kCommitted;
  state_ = ReservationState::kCreated;
  return Status::Ok();
}

StatusOr<std::vector<TwoPhaseCommand>> TwoPhaseReservation::Start(
    const std::vector<NodeId>& placement) {
  if (state_ != ReservationState::kPending && state_ != ReservationState::kFailed) {
    return FailedPrecondition("placement group " + group_id_ + " is " +
                              ReservationStateName(state_) +
                              "; an attempt can start only when it is pending or failed");
  }
  ORRERY_RETURN_IF_ERROR(CheckPlacement(placement));
  ++attempts_;
  placement_ = placement;
  attempt_failed_ = false;
  reason_.clear();
  std::vector<TwoPhaseCommand> out;
  if (bundles_.empty()) {
    state_ = ReservationState::kCreated;
    backoff_.Reset();
    return out;
  }
  state_ = ReservationState::kPreparing;
  for (int b = 0; b < static_cast<int>(bundles_.size()); ++b) {
    phase_[b] = Phase::kPreparing;
    out.push_back(Command(TwoPhaseCommand::Kind::kPrepare, b));
  }
  return out;
}

StatusOr<std::vector<TwoPhaseCommand>> TwoPhaseReservation::OnPrepared(int bundle, bool ok,
                                                                       double now_s) {
  return OnAnswer(bundle, ok, now_s, Phase::kPreparing);
}

StatusOr<std::vector<TwoPhaseCommand>> TwoPhaseReservation::OnCommitted(int bundle, bool ok,
                                                                        double now_s) {
  return OnAnswer(bundle, ok, now_s, Phase::kCommitting);
}

StatusOr<std::vector<TwoPhaseCommand>> TwoPhaseReservation::OnAnswer(int bundle, bool ok,
                                                                     double now_s, Phase expected) {
  const bool is_prepare = expected == Phase::kPreparing;
  const char* what = is_prepare ? "Prepare" : "Commit";
  if (bundle < 0 || bundle >= static_cast<int>(bundles_.size())) {
    return InvalidArgument("placement group " + group_id_ + " has no bundle " +
                           std::to_string(bundle));
  }
  if (phase_[bundle] != expected) {
    return FailedPrecondition("placement group " + group_id_ + " has no " + what +
                              " in flight for bundle " + std::to_string(bundle));
  }
  std::vector<TwoPhaseCommand> out;
  if (state_ == ReservationState::kRemoved) {
    // The group is gone; nothing is in flight for this bundle any more, so a Cancel cannot
    // overtake anything. A failed Prepare took nothing; a failed Commit may have left the
    // prepared resources behind, so it is cancelled too.
    if (ok || !is_prepare) out.push_back(Command(TwoPhaseCommand::Kind::kCancel, bundle));
    phase_[bundle] = Phase::kNone;
    return out;
  }
  if (ok) {
    phase_[bundle] = is_prepare ? Phase::kPrepared : Phase::kCommitted;
  } else {
    phase_[bundle] = Phase::kNone;
    if (!is_prepare) out.push_back(Command(TwoPhaseCommand::Kind::kCancel, bundle));
    NoteFailure("bundle " + std::to_string(bundle) + " could not be " +
                (is_prepare ? "prepared" : "committed") + " on node " + placement_[bundle]);
  }
  SettleIfDone(now_s, out);
  return out;
}

void TwoPhaseReservation::NoteFailure(std::string reason) {
  // The first failure explains the attempt; later ones are usually its consequences.
  if (!attempt_failed_) reason_ = std::move(reason);
  attempt_failed_ = true;
}

bool TwoPhaseReservation::Settled() const {
  return std::none_of(phase_.begin(), phase_.end(),
                      [](Phase p) { return p == Phase::kPreparing || p == Phase::kCommitting; });
}

void TwoPhaseReservation::SettleIfDone(double now_s, std::vector<TwoPhaseCommand>& out) {
  // Decisions wait for the *last* answer: cancelling a bundle whose Prepare is still in flight
  // could let the Cancel overtake the Prepare on the node and leak the reservation.
  if (!Settled()) return;
  if (attempt_failed_ &&
      (state_ == ReservationState::kPreparing || state_ == ReservationState::kCommitting)) {
    FailAttempt(now_s, out);
  } else if (state_ == ReservationState::kPreparing) {
    state_ = ReservationState::kCommitting;
    for (int b = 0; b < static_cast<int>(bundles_.size()); ++b) {
      phase_[b] = Phase::kCommitting;
      out.push_back(Command(TwoPhaseCommand::Kind::kCommit, b));
    }
  } else if (state_ == ReservationState::kCommitting) {
    state_ = ReservationState::kCreated;
    backoff_.Reset();
  }
}

void TwoPhaseReservation::FailAttempt(double now_s, std::vector<TwoPhaseCommand>& out) {
  for (int b = 0; b < static_cast<int>(bundles_.size()); ++b) {
    if (phase_[b] == Phase::kPrepared || phase_[b] == Phase::kCommitted) {
      out.push_back(Command(TwoPhaseCommand::Kind::kCancel, b));
    }
    phase_[b] = Phase::kNone;
  }
  state_ = ReservationState::kFailed;
  retry_at_s_ = now_s + backoff_.NextDelay();
}

std::vector<TwoPhaseCommand> TwoPhaseReservation::OnNodeDead(const NodeId& node, double now_s) {
  std::vector<TwoPhaseCommand> out;
  if (placement_.empty()) return out;
  bool lost = false;
  for (int b = 0; b < static_cast<int>(bundles_.size()); ++b) {
    if (placement_[b] != node || phase_[b] == Phase::kNone) continue;
    // Whatever was held or in flight there is gone with the node; no answer will come.
    phase_[b] = Phase::kNone;
    lost = true;
    if (state_ != ReservationState::kRemoved) {
      NoteFailure("node " + node + " died holding bundle " + std::to_string(b));
    }
  }
  if (!lost) return out;
  if (state_ == ReservationState::kCreated) {
    FailAttempt(now_s, out);
  } else {
    SettleIfDone(now_s, out);
  }
  return out;
}

Status TwoPhaseReservation::OnPlacementFailed(double now_s, std::string reason) {
  if (state_ != ReservationState::kPending && state_ != ReservationState::kFailed) {
    return FailedPrecondition("placement group " + group_id_ + " is " +
                              ReservationStateName(state_) +
                              "; only a pending or failed group can wait for a placement");
  }
  state_ = ReservationState::kFailed;
  reason_ = std::move(reason);
  retry_at_s_ = now_s + backoff_.NextDelay();
  return Status::Ok();
}

std::vector<TwoPhaseCommand> TwoPhaseReservation::Remove() {
  std::vector<TwoPhaseCommand> out;
  if (state_ == ReservationState::kRemoved) return out;
  for (int b = 0; b < static_cast<int>(bundles_.size()); ++b) {
    // Bundles with a command in flight keep their phase: OnAnswer cancels them on arrival.
    if (phase_[b] == Phase::kPrepared || phase_[b] == Phase::kCommitted) {
      out.push_back(Command(TwoPhaseCommand::Kind::kCancel, b));
      phase_[b] = Phase::kNone;
    }
  }
  state_ = ReservationState::kRemoved;
  reason_.clear();
  return out;
}

std::vector<int> TwoPhaseReservation::BundlesOn(const NodeId& node) const {
  std::vector<int> out;
  for (int b = 0; b < static_cast<int>(phase_.size()); ++b) {
    if (phase_[b] != Phase::kNone && placement_[b] == node) out.push_back(b);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ViewBundleHost

bool ViewBundleHost::Apply(const TwoPhaseCommand& cmd) {
  const auto key = std::make_pair(cmd.group, cmd.bundle);
  auto it = held_.find(key);
  switch (cmd.kind) {
    case TwoPhaseCommand::Kind::kPrepare: {
      if (it != held_.end()) return it->second.node == cmd.node;
      const int slot = view_.FindSlot(cmd.node);
      if (slot < 0 || !view_.at(slot).IsSchedulable()) return false;
      std::optional<Allocation> a = view_.Allocate(slot, cmd.resources);
      if (!a) return false;
      held_.emplace(key, Held{cmd.node, std::move(*a), false});
      return true;
    }
    case TwoPhaseCommand::Kind::kCommit:
      if (it == held_.end() || it->second.node != cmd.node) return false;
      it->second.committed = true;
      return true;
    case TwoPhaseCommand::Kind::kCancel:
      if (it == held_.end()) return true;
      // A node that left the view took its resources with it: nothing to give back there.
      if (const int slot = view_.FindSlot(it->second.node); slot >= 0) {
        view_.Release(slot, it->second.allocation);
      }
      held_.erase(it);
      return true;
  }
  return false;
}

const Allocation* ViewBundleHost::Find(const std::string& group, int bundle) const {
  auto it = held_.find(std::make_pair(group, bundle));
  return it == held_.end() ? nullptr : &it->second.allocation;
}

bool ViewBundleHost::IsCommitted(const std::string& group, int bundle) const {
  auto it = held_.find(std::make_pair(group, bundle));
  return it != held_.end() && it->second.committed;
}

// ---------------------------------------------------------------------------------------------
// Synchronous drivers

namespace {

// Carries out `wave` and everything it leads to, wave by wave, so that all commands issued
// together (an attempt's Prepares) are applied before any answer is fed back, as they would be
// by nodes answering in parallel.
void Drive(ViewBundleHost& host, TwoPhaseReservation& group, std::vector<TwoPhaseCommand> wave,
           double now_s) {
  while (!wave.empty()) {
    // Apply the whole wave, then feed the answers back in bundle order.
    std::vector<std::pair<const TwoPhaseCommand*, bool>> answers;
    for (const TwoPhaseCommand& cmd : wave) {
      const bool ok = host.Apply(cmd);
      if (cmd.kind != TwoPhaseCommand::Kind::kCancel) answers.emplace_back(&cmd, ok);
    }
    std::vector<TwoPhaseCommand> next_wave;
    for (const auto& [cmd, ok] : answers) {
      auto next = cmd->kind == TwoPhaseCommand::Kind::kPrepare
                      ? group.OnPrepared(cmd->bundle, ok, now_s)
                      : group.OnCommitted(cmd->bundle, ok, now_s);
      // Every answer here matches a command the group just issued, so it is always expected.
      assert(next.ok());
      if (next.ok()) next_wave.insert(next_wave.end(), next->begin(), next->end());
    }
    wave = std::move(next_wave);
  }
}

}  // namespace

ViewReservation ReserveOnView(ViewBundleHost& host, TwoPhaseReservation& group,
                              const std::vector<NodeId>& placement, double now_s) {
  ViewReservation result;
  auto first = group.Start(placement);
  if (!first.ok()) {
    result.reason = first.status().ToString();
    return result;
  }
  Drive(host, group, std::move(*first), now_s);
  if (group.state() != ReservationState::kCreated) {
    result.retry_at_s = group.retry_at_s();
    result.reason = group.reason();
    return result;
  }
  result.reserved = true;
  for (int b = 0; b < static_cast<int>(group.bundles().size()); ++b) {
    const Allocation* a = host.Find(group.group_id(), b);
    assert(a != nullptr);
    result.allocations.push_back(a != nullptr ? *a : Allocation{});
  }
  return result;
}

ViewReservation ReserveOnView(ClusterView& view, const std::vector<ResourceRequest>& bundles,
                              const std::vector<int>& placement, double now_s) {
  ViewBundleHost host(view);
  TwoPhaseReservation group("", bundles);
  // On success the host is dropped without cancelling: the allocations pass to the caller.
  return ReserveOnView(host, group, NodeIdsOf(view, placement), now_s);
}

void ReleaseOnView(ClusterView& view, const std::vector<int>& placement,
                   const std::vector<Allocation>& allocations) {
  for (size_t b = 0; b < placement.size() && b < allocations.size(); ++b) {
    view.Release(placement[b], allocations[b]);
  }
}

void RemoveOnView(ViewBundleHost& host, TwoPhaseReservation& group) {
  for (const TwoPhaseCommand& cmd : group.Remove()) host.Apply(cmd);
}

std::vector<NodeId> NodeIdsOf(const ClusterView& view, const std::vector<int>& slots) {
  std::vector<NodeId> out;
  out.reserve(slots.size());
  for (int slot : slots) {
    const bool present =
        slot >= 0 && slot < view.slot_capacity() && view.FindSlot(view.at(slot).id) == slot;
    out.push_back(present ? view.at(slot).id : NodeId());
  }
  return out;
}

}  // namespace orrery

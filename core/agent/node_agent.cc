#include "core/agent/node_agent.h"

#include <algorithm>

#include "core/placement/two_phase.h"

namespace orrery::agent {

std::string BundleLeaseKey(const std::string& group, int index) {
  return "pg:" + group + ":" + std::to_string(index);
}

NodeAgent::NodeAgent(NodeId node, const NodeAgentOptions* options, ClusterView* shared)
    : node_(std::move(node)),
      options_(options),
      shared_(shared),
      max_idle_(options->max_idle_workers_per_env) {
  if (shared_ != nullptr) shared_slot_ = shared_->FindSlot(node_);
}

// ---------------------------------------------------------------------------------------------
// The manager

void NodeAgent::AdoptAll() {
  // Leases and bundles taken from the shared view before the manager existed become its leases,
  // so returning them gives the resources back to the manager's view of this node.
  for (auto it = own_.begin(); it != own_.end();) {
    if (it->second.from_bundle) {
      ++it;
      continue;
    }
    (void)lm_->AdoptLease(it->first, std::move(it->second.allocation));
    it = own_.erase(it);
  }
  for (const auto& [key, b] : bundles_) {
    (void)lm_->AdoptLease(BundleLeaseKey(key.first, key.second), b.allocation);
  }
}

Status NodeAgent::CreateManager(ClusterView view) {
  auto lm = LeaseManager::Create(node_, std::move(view), options_->scheduler);
  if (!lm.ok()) return lm.status();
  lm_ = std::move(lm).value();
  AdoptAll();
  return Status::Ok();
}

LeaseManager& NodeAgent::Manager() {
  if (!lm_) {
    // A node starts deciding with the cluster as it is now; from then on it only learns about
    // other nodes through reports.
    lm_ = std::move(LeaseManager::Create(node_, *shared_, options_->scheduler)).value();
    AdoptAll();
  }
  return *lm_;
}

// ---------------------------------------------------------------------------------------------
// Leases

LeaseReply NodeAgent::RequestLease(LeaseRequest req, Rng& rng) {
  if (!lm_ && req.grant_or_reject && shared_ != nullptr) {
    const SpilledAnswer answer = AnswerSpilled(req.task_id, req.sched.resources);
    if (answer != SpilledAnswer::kWaits) {
      LeaseReply r;
      r.node = node_;
      r.kind = answer == SpilledAnswer::kGranted ? LeaseReply::Kind::kGranted
                                                 : LeaseReply::Kind::kRejected;
      if (answer == SpilledAnswer::kGranted) r.allocation = own_[req.task_id].allocation;
      r.task_id = std::move(req.task_id);
      return r;
    }
    // It waits here: the node starts deciding (below).
  }
  return Manager().RequestLease(std::move(req), rng);
}

NodeAgent::SpilledAnswer NodeAgent::AnswerSpilled(const TaskId& task,
                                                  const ResourceRequest& shape) {
  if (GrantHere(task, shape)) return SpilledAnswer::kGranted;
  return options_->scheduler.wait_at_best_node && SpilledRequestWaits(*shared_, shared_slot_, shape)
             ? SpilledAnswer::kWaits
             : SpilledAnswer::kRejected;
}

bool NodeAgent::GrantHere(const TaskId& task, const ResourceRequest& shape) {
  // Spilled here to a node that never decided: it grants if it can, from its true state.
  if (!shared_->at(shared_slot_).IsSchedulable()) return false;
  auto alloc = shared_->Allocate(shared_slot_, shape);
  if (!alloc) return false;
  own_[task].allocation = std::move(*alloc);
  return true;
}

std::vector<LeaseReply> NodeAgent::SchedulePending(Rng& rng) {
  if (!lm_ || lm_->NumQueued() == 0) return {};
  return lm_->SchedulePending(rng);
}

std::optional<LeaseReply> NodeAgent::CancelLease(const TaskId& task, const std::string& reason) {
  if (!lm_) return std::nullopt;
  return lm_->CancelLease(task, reason);
}

bool NodeAgent::ReturnLease(const TaskId& task) {
  // Once the manager decides, the agent's own table only holds bundle leases: mostly empty, and
  // then not even hashed (this runs once per finished task).
  auto it = own_.empty() ? own_.end() : own_.find(task);
  if (it != own_.end()) {
    OwnLease& l = it->second;
    if (l.from_bundle) {
      auto b = bundles_.find(BundleRef(l.bundle.first, l.bundle.second));
      if (b != bundles_.end()) b->second.pool.Release(l.allocation);
    } else {
      shared_->Release(shared_slot_, l.allocation);
    }
    own_.erase(it);
    return true;
  }
  return lm_ && lm_->ReturnLease(task).ok();
}

size_t NodeAgent::NumLeases() const {
  size_t n = own_.size();
  if (lm_) n += lm_->NumGranted() - bundles_.size();
  return n;
}

// ---------------------------------------------------------------------------------------------
// The head's view of the other nodes

Status NodeAgent::ApplyReport(
    const NodeId& node, const ResourceSet& available, NodeState state,
    const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices) {
  if (!lm_) return Status::Ok();
  return lm_->ApplyReport(node, available, state, devices);
}

Status NodeAgent::ReplaceNodeResources(const NodeId& node, NodeResources resources) {
  if (!lm_) return Status::Ok();
  return lm_->ReplaceNodeResources(node, std::move(resources));
}

Status NodeAgent::AddNode(Node node) {
  if (!lm_) return Status::Ok();
  return lm_->AddNode(std::move(node));
}

Status NodeAgent::SetNodeState(const NodeId& node, NodeState state) {
  if (!lm_) return Status::Ok();
  return lm_->SetNodeState(node, state);
}

// ---------------------------------------------------------------------------------------------
// Bundles

bool NodeAgent::PrepareBundle(const std::string& group, int index,
                              const ResourceRequest& resources, Rng& rng, std::string* why) {
  if (HoldsBundle(group, index)) return true;
  std::optional<Allocation> alloc;
  if (lm_) {
    LeaseRequest req;
    req.task_id = BundleLeaseKey(group, index);
    req.sched.resources = resources;
    req.grant_or_reject = true;
    LeaseReply lr = lm_->RequestLease(std::move(req), rng);
    if (lr.kind == LeaseReply::Kind::kGranted) {
      alloc = std::move(lr.allocation);
    } else if (why != nullptr) {
      *why = lr.reason.empty() ? "not available on " + node_ : lr.reason;
    }
  } else if (shared_ != nullptr) {
    alloc = shared_->Allocate(shared_slot_, resources);
    if (!alloc && why != nullptr) *why = "not available on " + node_;
  } else if (why != nullptr) {
    *why = "node " + node_ + " does not decide yet";
  }
  if (!alloc) return false;
  Bundle& b = bundles_[BundleKey(group, index)];
  b.resources = resources;
  b.allocation = std::move(*alloc);
  return true;
}

bool NodeAgent::CommitBundle(const std::string& group, int index, Rng& rng, std::string* why) {
  auto it = bundles_.find(BundleRef(group, index));
  if (it == bundles_.end()) {
    if (why != nullptr) {
      *why = "bundle " + std::to_string(index) + " of group " + group + " is not prepared on " +
             node_;
    }
    return false;
  }
  Bundle& b = it->second;
  if (b.committed) return true;
  b.pool = std::move(NodeResources::Create(b.resources.set())).value();
  if (options_->expose_committed_bundles) {
    b.exposed = CommittedBundleResources(b.resources, index, group);
    if (Status s = ResizeLocal(b.exposed, /*add=*/true, rng); !s.ok()) {
      if (why != nullptr) *why = s.ToString();
      return false;
    }
  }
  b.committed = true;
  return true;
}

bool NodeAgent::CancelBundle(const std::string& group, int index, Rng& rng) {
  auto it = bundles_.find(BundleRef(group, index));
  if (it == bundles_.end()) return false;
  Bundle held = std::move(it->second);
  bundles_.erase(it);
  if (lm_) {
    (void)lm_->ReturnLease(BundleLeaseKey(group, index));
    if (held.committed && options_->expose_committed_bundles) {
      (void)ResizeLocal(held.exposed, /*add=*/false, rng);
    }
  } else if (shared_ != nullptr) {
    shared_->Release(shared_slot_, held.allocation);
  }
  return true;
}

bool NodeAgent::HoldsBundle(const std::string& group, int index) const {
  return bundles_.find(BundleRef(group, index)) != bundles_.end();
}

bool NodeAgent::BundleFits(const std::string& group, int index,
                           const ResourceRequest& shape) const {
  auto it = bundles_.find(BundleRef(group, index));
  return it != bundles_.end() && it->second.committed && it->second.pool.IsAvailable(shape);
}

const Allocation* NodeAgent::GrantFromBundle(const TaskId& task, const std::string& group,
                                             int index, const ResourceRequest& shape) {
  auto it = bundles_.find(BundleRef(group, index));
  if (it == bundles_.end() || !it->second.committed) return nullptr;
  auto alloc = it->second.pool.Allocate(shape);
  if (!alloc) return nullptr;
  OwnLease& l = own_[task];
  l.allocation = std::move(*alloc);
  l.from_bundle = true;
  l.bundle = it->first;
  return &l.allocation;
}

// The LeaseManager has no way to resize its node, so it is rebuilt on a copy of its view with the
// resized node: every lease it held is adopted again and every queued request the lookup knows
// is asked again, in arrival order (the replies go to TakeReplies()). Removing clamps at zero.
Status NodeAgent::ResizeLocal(const ResourceSet& delta, bool add, Rng& rng) {
  LeaseManager& old = Manager();
  ClusterView view = old.view();
  const int slot = view.FindSlot(node_);
  const NodeResources& cur = view.at(slot).resources;
  ResourceSet total = cur.total();
  ResourceSet available = cur.available();
  if (add) {
    total += delta;
    available += delta;
  } else {
    total -= delta;
    available -= delta;
    total.ClampNegativeToZero();
    available.ClampNegativeToZero();
  }
  auto resized = NodeResources::Create(total);
  if (!resized.ok()) return resized.status();
  resized->SetAvailable(available, cur.all_devices());
  view.SetResources(slot, std::move(*resized));
  auto m = LeaseManager::Create(node_, std::move(view), options_->scheduler);
  if (!m.ok()) return m.status();
  const std::vector<PendingLease> queued = old.Pending();
  std::unique_ptr<LeaseManager> prev = std::move(lm_);
  lm_ = std::move(*m);
  lm_->TrackWaitReasonChanges();
  for (const auto& [id, alloc] : prev->granted()) (void)lm_->AdoptLease(id, alloc);
  for (const auto& p : queued) {
    const LeaseRequest* req = lookup_ ? lookup_(p.task_id) : nullptr;
    if (req == nullptr) continue;
    LeaseReply lr = lm_->RequestLease(*req, rng);
    if (lr.kind != LeaseReply::Kind::kQueued) replies_.push_back(std::move(lr));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Runtime envs and workers

envcache::EnvCache& NodeAgent::Envs() {
  if (!envs_) {
    envs_ = std::make_unique<envcache::EnvCache>(
        std::move(envcache::EnvCache::Create(options_->env_cache)).value());
  }
  return *envs_;
}

envcache::CacheDecisions NodeAgent::OnTimer(double now_s) {
  if (!envs_) return {};
  return envs_->ExpireOverdue(now_s);
}

envcache::CacheCounters NodeAgent::EnvCounters() const {
  envcache::CacheCounters c = envs_lost_;
  if (envs_) {
    const auto& e = envs_->counters();
    c.hits += e.hits;
    c.misses += e.misses;
    c.joins += e.joins;
    c.evictions += e.evictions;
    c.bytes_installed += e.bytes_installed;
    c.install_attempts += e.install_attempts;
    c.install_failures += e.install_failures;
  }
  return c;
}

WorkerAction NodeAgent::AcquireWorker(int64_t env, bool gpu, WorkerKind kind) {
  if (kind == WorkerKind::kActor) return WorkerAction::kStart;  // an actor's own worker
  int& idle = idle_workers_[env];
  if (idle > 0 && (!gpu || options_->reuse_gpu_workers)) {
    --idle;
    return WorkerAction::kReuse;
  }
  return WorkerAction::kStart;
}

bool NodeAgent::ReleaseWorker(int64_t env, bool gpu, WorkerKind kind) {
  if (kind == WorkerKind::kActor) return false;  // its state goes with it: never reused
  int& idle = idle_workers_[env];
  if ((gpu && !options_->reuse_gpu_workers) || idle >= std::max(1, max_idle_)) return false;
  ++idle;
  return true;
}

bool NodeAgent::IdleWorkerGone(int64_t env) {
  auto it = idle_workers_.find(env);
  if (it == idle_workers_.end() || it->second <= 0) return false;
  --it->second;
  return true;
}

int NodeAgent::IdleWorkers(int64_t env) const {
  auto it = idle_workers_.find(env);
  return it == idle_workers_.end() ? 0 : it->second;
}

// ---------------------------------------------------------------------------------------------
// Reports and death

const NodeResources* NodeAgent::LocalChange(const NodeResources& reported) const {
  if (!lm_) return nullptr;
  const NodeResources& mine = lm_->view().at(lm_->local_slot()).resources;
  if (mine.available() == reported.available() && mine.all_devices() == reported.all_devices()) {
    return nullptr;
  }
  return &mine;
}

std::vector<PendingLease> NodeAgent::Reset() {
  std::vector<PendingLease> queued;
  if (lm_) queued = lm_->Pending();
  lm_.reset();
  own_.clear();
  bundles_.clear();
  if (envs_) {
    envs_lost_ = EnvCounters();
    envs_.reset();
  }
  ++generation_;
  idle_workers_.clear();
  replies_.clear();
  return queued;
}

}  // namespace orrery::agent

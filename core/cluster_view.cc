#include "core/cluster_view.h"

#include <algorithm>

namespace orrery {

const char* NodeStateName(NodeState s) {
  switch (s) {
    case NodeState::kAlive: return "alive";
    case NodeState::kDraining: return "draining";
    case NodeState::kDead: return "dead";
  }
  return "dead";
}

ClusterView::ClusterView(const ClusterView& o)
    : nodes_(o.nodes_),
      present_(o.present_),
      free_slots_(o.free_slots_),
      order_(o.order_),
      rank_(o.rank_),
      order_dirty_(o.order_dirty_),
      live_count_(o.live_count_),
      by_id_(o.by_id_) {}

ClusterView::~ClusterView() {
  // Moved out first so an observer may call RemoveObserver from its callback.
  std::vector<ClusterViewObserver*> observers = std::move(observers_);
  for (auto* obs : observers) obs->OnViewDestroyed();
}

ClusterView& ClusterView::operator=(const ClusterView& o) {
  if (this == &o) return *this;
  nodes_ = o.nodes_;
  present_ = o.present_;
  free_slots_ = o.free_slots_;
  order_ = o.order_;
  rank_ = o.rank_;
  order_dirty_ = o.order_dirty_;
  live_count_ = o.live_count_;
  by_id_ = o.by_id_;
  for (auto* obs : observers_) obs->OnTopologyChanged();
  return *this;
}

Status ClusterView::AddNode(Node node) {
  if (node.id.empty()) return InvalidArgument("node id must not be empty");
  if (by_id_.count(node.id) != 0) return AlreadyExists("node " + node.id + " is already in the view");
  int slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    nodes_[slot] = std::move(node);
    present_[slot] = true;
  } else {
    slot = static_cast<int>(nodes_.size());
    nodes_.push_back(std::move(node));
    present_.push_back(true);
  }
  by_id_[nodes_[slot].id] = slot;
  if (nodes_[slot].state != NodeState::kDead) ++live_count_;
  order_.push_back(slot);
  order_dirty_ = true;
  for (auto* obs : observers_) obs->OnTopologyChanged();
  return Status::Ok();
}

Status ClusterView::RemoveNode(std::string_view id) {
  int slot = FindSlot(id);
  if (slot < 0) return NotFound("node " + std::string(id) + " is not in the view");
  by_id_.erase(nodes_[slot].id);
  if (nodes_[slot].state != NodeState::kDead) --live_count_;
  std::erase(order_, slot);
  nodes_[slot] = Node{};
  present_[slot] = false;
  free_slots_.push_back(slot);
  order_dirty_ = true;
  for (auto* obs : observers_) obs->OnTopologyChanged();
  return Status::Ok();
}

void ClusterView::EnsureOrder() const {
  if (!order_dirty_) return;
  std::sort(order_.begin(), order_.end(),
            [&](int a, int b) { return nodes_[a].id < nodes_[b].id; });
  rank_.assign(nodes_.size(), -1);
  for (int i = 0; i < static_cast<int>(order_.size()); ++i) rank_[order_[i]] = i;
  order_dirty_ = false;
}

int ClusterView::FindSlot(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? -1 : it->second;
}

const Node* ClusterView::Find(std::string_view id) const {
  int slot = FindSlot(id);
  return slot < 0 ? nullptr : &nodes_[slot];
}

void ClusterView::Changed(int slot) const {
  for (auto* obs : observers_) obs->OnNodeChanged(slot);
}

void ClusterView::SetState(int slot, NodeState s) {
  live_count_ += (s != NodeState::kDead) - (nodes_[slot].state != NodeState::kDead);
  nodes_[slot].state = s;
  Changed(slot);
}

void ClusterView::SetLabels(int slot, Labels labels) {
  nodes_[slot].labels = std::move(labels);
  Changed(slot);
}

std::optional<Allocation> ClusterView::Allocate(int slot, const ResourceRequest& r) {
  auto a = nodes_[slot].resources.Allocate(r);
  if (a) Changed(slot);
  return a;
}

void ClusterView::Release(int slot, const Allocation& a) {
  nodes_[slot].resources.Release(a);
  Changed(slot);
}

void ClusterView::SubtractEstimate(int slot, const ResourceRequest& r) {
  nodes_[slot].resources.SubtractEstimate(r);
  Changed(slot);
}

void ClusterView::SetAvailable(
    int slot, const ResourceSet& available,
    const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices) {
  nodes_[slot].resources.SetAvailable(available, devices);
  Changed(slot);
}

void ClusterView::SetResources(int slot, NodeResources resources) {
  nodes_[slot].resources = std::move(resources);
  Changed(slot);
}

void ClusterView::AddObserver(ClusterViewObserver* o) const { observers_.push_back(o); }

void ClusterView::RemoveObserver(ClusterViewObserver* o) const {
  std::erase(observers_, o);
}

}  // namespace orrery

// A scheduler's picture of the cluster: nodes with their resources, labels and state.
//
// Nodes live in stable *slots* (a slot index never changes while the node is in the view) and are
// iterated in node-id order (byte-wise string order), so every decision is independent of hash
// order and pointer values. Indexes that speed up policies observe the view through
// ClusterViewObserver and are told about every change.
//
// Thread safety: none. One event loop owns a view.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/resources.h"
#include "core/status.h"

namespace orrery {

using NodeId = std::string;
using Labels = std::map<std::string, std::string>;

enum class NodeState : uint8_t { kAlive, kDraining, kDead };
const char* NodeStateName(NodeState s);  // "alive" | "draining" | "dead"

struct Node {
  NodeId id;
  NodeState state = NodeState::kAlive;
  Labels labels;
  NodeResources resources;

  // Not dead: a member of the cluster. A draining node is alive (it still runs what it has, holds
  // its bundles and reports), it only takes no new work: that is IsSchedulable.
  bool IsAlive() const { return state != NodeState::kDead; }
  // Alive and not draining: may receive new work.
  bool IsSchedulable() const { return state == NodeState::kAlive; }
  bool HasGpu() const { return resources.HasResource(kGPU); }
};

// Told synchronously about every change to a view it is registered with.
class ClusterViewObserver {
 public:
  virtual ~ClusterViewObserver() = default;
  // The node in `slot` changed (resources, state or labels).
  virtual void OnNodeChanged(int slot) = 0;
  // A node was added or removed: slots or the id order changed.
  virtual void OnTopologyChanged() = 0;
  // The view is being destroyed: drop every pointer to it (no RemoveObserver is needed after this).
  // Lets an index that binds lazily to whatever view it is handed never dangle. Default: nothing.
  virtual void OnViewDestroyed() {}
};

class ClusterView {
 public:
  ClusterView() = default;
  // Tells every registered observer OnViewDestroyed().
  ~ClusterView();
  // Copies carry the nodes, not the observers.
  ClusterView(const ClusterView& o);
  ClusterView& operator=(const ClusterView& o);

  // Adds a node. AlreadyExists if the id is taken; InvalidArgument if it is empty.
  // O(log n + n) for the id order.
  Status AddNode(Node node);
  // Removes a node entirely (e.g. terminated by the autoscaler). NotFound if absent.
  Status RemoveNode(std::string_view id);

  // Slot of `id`, or -1. O(1) average.
  int FindSlot(std::string_view id) const;
  const Node* Find(std::string_view id) const;
  // REQUIRES: slot is valid (from FindSlot or ordered_slots()).
  const Node& at(int slot) const { return nodes_[slot]; }

  // Slots of present nodes in node-id order.
  // Amortised O(1); O(n log n) once after nodes were added or removed.
  const std::vector<int>& ordered_slots() const {
    EnsureOrder();
    return order_;
  }
  // Rank of a slot in node-id order. REQUIRES: slot valid.
  int RankOf(int slot) const {
    EnsureOrder();
    return rank_[slot];
  }
  // Number of nodes in the view, whatever their state.
  int size() const { return static_cast<int>(order_.size()); }
  // Number of nodes that are not dead: the cluster's membership as Ray counts it (a dead node
  // leaves Ray's resource view). O(1).
  int live_size() const { return live_count_; }
  // One past the largest slot index in use (for observers sizing arrays).
  int slot_capacity() const { return static_cast<int>(nodes_.size()); }

  // Mutations. Each notifies observers. REQUIRES: slot valid.
  void SetState(int slot, NodeState s);
  void SetLabels(int slot, Labels labels);
  std::optional<Allocation> Allocate(int slot, const ResourceRequest& r);
  void Release(int slot, const Allocation& a);
  void SubtractEstimate(int slot, const ResourceRequest& r);
  void SetAvailable(int slot, const ResourceSet& available,
                    const std::vector<std::pair<std::string, std::vector<Quantity>>>& devices = {});
  // Replaces the node's resources outright (e.g. a node restarted with new totals).
  void SetResources(int slot, NodeResources resources);

  // Observers must outlive their registration; unregister before destruction.
  void AddObserver(ClusterViewObserver* o) const;
  void RemoveObserver(ClusterViewObserver* o) const;

 private:
  void Changed(int slot) const;
  void EnsureOrder() const;
  std::vector<Node> nodes_;       // by slot; removed slots have empty id
  std::vector<bool> present_;
  std::vector<int> free_slots_;
  mutable std::vector<int> order_;  // present slots by id (sorted lazily)
  mutable std::vector<int> rank_;   // slot -> position in order_
  mutable bool order_dirty_ = false;
  int live_count_ = 0;
  std::unordered_map<std::string, int> by_id_;  // lookup only, never iterated
  mutable std::vector<ClusterViewObserver*> observers_;
};

}  // namespace orrery

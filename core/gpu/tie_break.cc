#include "core/gpu/tie_break.h"

#include <algorithm>
#include <utility>

namespace orrery::gpu {

const char* TieBreakName(TieBreak t) {
  switch (t) {
    case TieBreak::kLowestId:
      return "id";
    case TieBreak::kRandom:
      return "random";
    case TieBreak::kPermuted:
      break;
  }
  return "perm";
}

bool ParseTieBreak(std::string_view name, TieBreak* out) {
  for (TieBreak t : {TieBreak::kPermuted, TieBreak::kLowestId, TieBreak::kRandom}) {
    if (name == TieBreakName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::vector<int32_t> DrawTieOrder(int n, Rng& rng) {
  // nodes[p] = the node at place p, shuffled; then inverted into place-of-node.
  std::vector<int32_t> nodes(size_t(std::max(n, 0)));
  for (int i = 0; i < n; ++i) nodes[size_t(i)] = i;
  for (int i = n - 1; i > 0; --i) {
    std::swap(nodes[size_t(i)], nodes[size_t(rng.UniformIndex(uint64_t(i) + 1))]);
  }
  std::vector<int32_t> place(nodes.size());
  for (int p = 0; p < n; ++p) place[size_t(nodes[size_t(p)])] = p;
  return place;
}

const std::vector<int32_t>& TieBreaker::OrderFor(const GpuCluster& c) {
  if (order_.size() != size_t(c.size())) {
    Rng rng(tie_seed_);
    order_ = DrawTieOrder(c.size(), rng);
  }
  return order_;
}

}  // namespace orrery::gpu

// Small builders for tiny clusters in tests.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/cluster_view.h"
#include "core/resources.h"

namespace orrery::testing {

inline ResourceSet Res(const std::map<std::string, double>& m) {
  ResourceSet s;
  for (const auto& [k, v] : m) s.Set(k, Quantity::FromDouble(v));
  return s;
}

inline ResourceRequest Req(const std::map<std::string, double>& m) {
  auto r = ResourceRequest::Create(m);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ResourceRequest();
}

// ClusterBuilder().Node("n0", {{"CPU", 4}}).Used({{"CPU", 3}}).Node("n1", ...).Build()
class ClusterBuilder {
 public:
  ClusterBuilder& Node(const std::string& id, const std::map<std::string, double>& total,
                       NodeState state = NodeState::kAlive) {
    orrery::Node n;
    n.id = id;
    n.state = state;
    auto res = NodeResources::Create(Res(total));
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    n.resources = *res;
    EXPECT_TRUE(view_.AddNode(std::move(n)).ok());
    last_ = id;
    return *this;
  }
  // Takes `used` from the last node (via a real allocation, so devices are tracked).
  ClusterBuilder& Used(const std::map<std::string, double>& used) {
    int slot = view_.FindSlot(last_);
    auto a = view_.Allocate(slot, Req(used));
    EXPECT_TRUE(a.has_value()) << "cannot use " << Res(used).ToString() << " on " << last_;
    return *this;
  }
  ClusterBuilder& Label(const std::string& k, const std::string& v) {
    int slot = view_.FindSlot(last_);
    Labels l = view_.at(slot).labels;
    l[k] = v;
    view_.SetLabels(slot, l);
    return *this;
  }
  ClusterView Build() const { return view_; }

 private:
  ClusterView view_;
  std::string last_;
};

inline int Slot(const ClusterView& v, const std::string& id) { return v.FindSlot(id); }
inline std::string IdOf(const ClusterView& v, int slot) { return slot < 0 ? "" : v.at(slot).id; }

}  // namespace orrery::testing

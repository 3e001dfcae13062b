#include "core/resources.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace orrery {
namespace {

int PredefinedSlot(std::string_view name) {
  for (int i = 0; i < kNumPredefined; ++i) {
    if (kPredefinedNames[i] == name) return i;
  }
  return -1;
}

// Largest quantity we accept from a double: keeps raw values far from int64 overflow even after
// summing many of them.
constexpr double kMaxQuantity = 1e14;

}  // namespace

Quantity Quantity::FromDouble(double x) {
  return Quantity(static_cast<int64_t>(std::llround(x * static_cast<double>(kScale))));
}

std::string Quantity::ToString() const {
  int64_t r = raw_;
  std::string sign;
  if (r < 0) {
    sign = "-";
    r = -r;
  }
  std::string out = sign + std::to_string(r / kScale);
  int64_t frac = r % kScale;
  if (frac != 0) {
    std::string f = std::to_string(frac);
    f = std::string(4 - f.size(), '0') + f;
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ResourceSet

ResourceSet ResourceSet::FromMap(const std::map<std::string, Quantity>& m) {
  ResourceSet s;
  for (const auto& [name, q] : m) s.Set(name, q);
  return s;
}

Quantity ResourceSet::Get(std::string_view name) const {
  int slot = PredefinedSlot(name);
  if (slot >= 0) return predefined_[slot];
  auto it = std::lower_bound(custom_.begin(), custom_.end(), name,
                             [](const auto& e, std::string_view n) { return e.first < n; });
  if (it != custom_.end() && it->first == name) return it->second;
  return Quantity();
}

void ResourceSet::Set(std::string_view name, Quantity q) {
  int slot = PredefinedSlot(name);
  if (slot >= 0) {
    predefined_[slot] = q;
    return;
  }
  auto it = std::lower_bound(custom_.begin(), custom_.end(), name,
                             [](const auto& e, std::string_view n) { return e.first < n; });
  bool present = it != custom_.end() && it->first == name;
  if (q.IsZero()) {
    if (present) custom_.erase(it);
  } else if (present) {
    it->second = q;
  } else {
    custom_.insert(it, {std::string(name), q});
  }
}

bool ResourceSet::IsEmpty() const { return Size() == 0; }

int ResourceSet::Size() const {
  int n = static_cast<int>(custom_.size());
  for (const auto& q : predefined_) n += q.IsZero() ? 0 : 1;
  return n;
}

std::vector<std::string> ResourceSet::Names() const {
  std::vector<std::string> out;
  ForEach([&](std::string_view n, Quantity) { out.emplace_back(n); });
  return out;
}

bool ResourceSet::IsSubsetOf(const ResourceSet& other) const {
  for (int i = 0; i < kNumPredefined; ++i) {
    if (predefined_[i] > other.predefined_[i]) return false;
  }
  for (const auto& [name, q] : custom_) {
    if (q > other.Get(name)) return false;
  }
  return true;
}

bool ResourceSet::HasNegative() const {
  for (const auto& q : predefined_) {
    if (q < Quantity()) return true;
  }
  for (const auto& [name, q] : custom_) {
    if (q < Quantity()) return true;
  }
  return false;
}

ResourceSet& ResourceSet::operator+=(const ResourceSet& o) {
  for (int i = 0; i < kNumPredefined; ++i) predefined_[i] += o.predefined_[i];
  for (const auto& [name, q] : o.custom_) Set(name, Get(name) + q);
  return *this;
}

ResourceSet& ResourceSet::operator-=(const ResourceSet& o) {
  for (int i = 0; i < kNumPredefined; ++i) predefined_[i] -= o.predefined_[i];
  for (const auto& [name, q] : o.custom_) Set(name, Get(name) - q);
  return *this;
}

void ResourceSet::ClampNegativeToZero() {
  for (auto& q : predefined_) q = std::max(q, Quantity());
  std::erase_if(custom_, [](const auto& e) { return e.second <= Quantity(); });
}

std::string ResourceSet::ToString() const {
  std::ostringstream os;
  os << "{";
  bool first = true;
  ForEach([&](std::string_view n, Quantity q) {
    if (!first) os << ", ";
    first = false;
    os << "\"" << n << "\": " << q.ToString();
  });
  os << "}";
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// UnitInstanceNames

UnitInstanceNames::UnitInstanceNames(std::vector<std::string> names) : names_(std::move(names)) {
  std::sort(names_.begin(), names_.end());
  names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
}

bool UnitInstanceNames::Contains(std::string_view name) const {
  return std::binary_search(names_.begin(), names_.end(), name,
                            [](const auto& a, const auto& b) { return std::string_view(a) <
                                                                      std::string_view(b); });
}

// ---------------------------------------------------------------------------------------------
// ResourceRequest

StatusOr<ResourceRequest> ResourceRequest::Create(const std::map<std::string, double>& quantities,
                                                  const UnitInstanceNames& units,
                                                  const std::string& field) {
  ResourceSet set;
  for (const auto& [name, x] : quantities) {
    const std::string where = field + "." + name;
    if (name.empty()) return InvalidArgument(field + ": resource name must not be empty");
    if (std::isnan(x)) return InvalidArgument(where + ": expected a number, got NaN");
    if (!std::isfinite(x) || std::fabs(x) > kMaxQuantity) {
      return InvalidArgument(where + ": quantity out of range");
    }
    if (x < 0) {
      return InvalidArgument(where + ": expected a quantity >= 0, got " + std::to_string(x));
    }
    Quantity q = Quantity::FromDouble(x);
    if (x > 0 && q.IsZero()) {
      return InvalidArgument(where + ": quantity below the 0.0001 resolution");
    }
    if (units.Contains(name) && q > kOneUnit && !q.IsWhole()) {
      return InvalidArgument(where + ": " + name +
                             " is allocated per device: a request above 1 must be a whole "
                             "number, got " + q.ToString());
    }
    set.Set(name, q);
  }
  return ResourceRequest(std::move(set));
}

// ---------------------------------------------------------------------------------------------
// Allocation

std::vector<int> Allocation::DeviceIds(std::string_view name) const {
  std::vector<int> ids;
  for (const auto& [n, shares] : devices) {
    if (n != name) continue;
    for (const auto& s : shares) ids.push_back(s.device);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// ---------------------------------------------------------------------------------------------
// NodeResources

StatusOr<NodeResources> NodeResources::Create(const ResourceSet& total,
                                              const UnitInstanceNames& units) {
  NodeResources n;
  Status bad;
  total.ForEach([&](std::string_view name, Quantity q) {
    if (!bad.ok()) return;
    if (q < Quantity()) {
      bad = InvalidArgument(std::string(name) + ": total must be >= 0, got " + q.ToString());
      return;
    }
    if (units.Contains(name)) {
      if (!q.IsWhole()) {
        bad = InvalidArgument(std::string(name) +
                              ": counted per device, the total must be a whole number, got " +
                              q.ToString());
        return;
      }
      n.devices_.emplace_back(std::string(name),
                              std::vector<Quantity>(static_cast<size_t>(q.raw() / Quantity::kScale),
                                                    kOneUnit));
    }
  });
  if (!bad.ok()) return bad;
  n.total_ = total;
  n.available_ = total;
  return n;
}

const std::vector<Quantity>& NodeResources::Devices(std::string_view name) const {
  static const std::vector<Quantity> kNone;
  for (const auto& [n, d] : devices_) {
    if (n == name) return d;
  }
  return kNone;
}

std::vector<Quantity>* NodeResources::MutableDevices(std::string_view name) {
  for (auto& [n, d] : devices_) {
    if (n == name) return &d;
  }
  return nullptr;
}

bool NodeResources::IsFeasible(const ResourceRequest& r) const {
  // Device layout: a fractional request needs one device (capacity 1 >= r always); a whole request
  // of k needs k devices, which is exactly total >= k. So the aggregate check suffices.
  return r.set().IsSubsetOf(total_);
}

bool NodeResources::IsAvailable(const ResourceRequest& r) const {
  if (!r.set().IsSubsetOf(available_)) return false;
  for (const auto& [name, devs] : devices_) {
    Quantity q = r.set().Get(name);
    if (q.IsZero()) continue;
    if (q < kOneUnit) {
      bool fits = false;
      for (const auto& d : devs) {
        if (d >= q) {
          fits = true;
          break;
        }
      }
      if (!fits) return false;
    } else {
      int64_t need = q.raw() / Quantity::kScale;
      for (const auto& d : devs) {
        if (d == kOneUnit && --need == 0) break;
      }
      if (need > 0) return false;
    }
  }
  return true;
}

std::optional<Allocation> NodeResources::Allocate(const ResourceRequest& r) {
  if (!IsAvailable(r)) return std::nullopt;
  Allocation a;
  a.resources = r.set();
  for (auto& [name, devs] : devices_) {
    Quantity q = r.set().Get(name);
    if (q.IsZero()) continue;
    std::vector<Allocation::DeviceShare> shares;
    if (q < kOneUnit) {
      // Best fit: the device with the least availability that still fits, lowest id on ties.
      int best = -1;
      for (int i = 0; i < static_cast<int>(devs.size()); ++i) {
        if (devs[i] >= q && (best < 0 || devs[i] < devs[best])) best = i;
      }
      devs[best] -= q;
      shares.push_back({best, q});
    } else {
      int64_t need = q.raw() / Quantity::kScale;
      for (int i = 0; i < static_cast<int>(devs.size()) && need > 0; ++i) {
        if (devs[i] == kOneUnit) {
          devs[i] = Quantity();
          shares.push_back({i, kOneUnit});
          --need;
        }
      }
    }
    a.devices.emplace_back(name, std::move(shares));
  }
  available_ -= r.set();
  return a;
}

void NodeResources::Release(const Allocation& a) {
  available_ += a.resources;
  a.resources.ForEach([&](std::string_view name, Quantity) {
    if (available_.Get(name) > total_.Get(name)) available_.Set(name, total_.Get(name));
  });
  for (const auto& [name, shares] : a.devices) {
    std::vector<Quantity>* devs = MutableDevices(name);
    if (devs == nullptr) continue;
    for (const auto& s : shares) {
      if (s.device < 0 || s.device >= static_cast<int>(devs->size())) continue;
      (*devs)[s.device] = std::min(kOneUnit, (*devs)[s.device] + s.amount);
    }
  }
}

void NodeResources::SubtractEstimate(const ResourceRequest& r) {
  if (Allocate(r).has_value()) return;
  available_ -= r.set();
  available_.ClampNegativeToZero();
  // Keep the device vectors consistent with the clamped aggregate: take from the fullest
  // devices first (a whole request would have taken free devices).
  for (auto& [name, devs] : devices_) {
    Quantity sum;
    for (const auto& d : devs) sum += d;
    Quantity excess = sum - available_.Get(name);
    for (int i = static_cast<int>(devs.size()) - 1; i >= 0 && excess > Quantity(); --i) {
      Quantity take = std::min(excess, devs[i]);
      devs[i] -= take;
      excess -= take;
    }
  }
}

void NodeResources::SetAvailable(
    const ResourceSet& available,
    const std::vector<std::pair<std::string, std::vector<Quantity>>>& device_available) {
  available_ = available;
  available_.ClampNegativeToZero();
  total_.ForEach([&](std::string_view name, Quantity t) {
    if (available_.Get(name) > t) available_.Set(name, t);
  });
  // Names absent from the total cannot be available.
  for (const auto& name : available_.Names()) {
    if (total_.Get(name).IsZero()) available_.Set(name, Quantity());
  }
  for (auto& [name, devs] : devices_) {
    bool given = false;
    for (const auto& [n, d] : device_available) {
      if (n == name && d.size() == devs.size()) {
        devs = d;
        given = true;
      }
    }
    if (given) continue;
    // Spread the aggregate: fill devices from the lowest id with whole units.
    Quantity left = available_.Get(name);
    for (auto& d : devs) {
      d = std::min(kOneUnit, left);
      left -= d;
    }
  }
}

double NodeResources::CriticalUtilization() const {
  double highest = 0.0;
  for (Predefined p : {Predefined::kCPU, Predefined::kMemory, Predefined::kObjectStoreMemory}) {
    Quantity t = total_.Get(p);
    if (t <= Quantity()) continue;
    double u = 1.0 - static_cast<double>(available_.Get(p).raw()) / static_cast<double>(t.raw());
    highest = std::max(highest, u);
  }
  return highest;
}

}  // namespace orrery

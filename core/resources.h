// Resource quantities, resource sets and per-node resource accounting.
//
// Quantities are fixed point with 4 decimal places (1 CPU = 10000 raw units), so sums and
// differences are exact and a node's availability never drifts. Names are free-form; four are
// predefined and stored in fixed slots for speed: CPU, memory, GPU, object_store_memory.
//
// Unit-instance resources (GPU by default, plus any name the caller declares) are tracked per
// device: each device has capacity 1; a request below 1 packs onto one device, a request of k >= 1
// must be whole and takes k whole devices. The allocation says which device ids were taken, which
// the live backend turns into CUDA_VISIBLE_DEVICES.
//
// Thread safety: value types; not synchronised.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace orrery {

// A non-negative or negative quantity with 4 decimal places.
class Quantity {
 public:
  static constexpr int64_t kScale = 10000;

  constexpr Quantity() = default;
  static constexpr Quantity FromRaw(int64_t raw) { return Quantity(raw); }
  static constexpr Quantity Whole(int64_t n) { return Quantity(n * kScale); }
  // Rounds to the nearest 1e-4. REQUIRES: std::isfinite(x) and |x| < 9e14.
  static Quantity FromDouble(double x);

  constexpr int64_t raw() const { return raw_; }
  double ToDouble() const { return static_cast<double>(raw_) / kScale; }
  constexpr bool IsWhole() const { return raw_ % kScale == 0; }
  constexpr bool IsZero() const { return raw_ == 0; }
  // Shortest decimal form: "1", "0.5", "0.0001".
  std::string ToString() const;

  constexpr Quantity operator+(Quantity o) const { return Quantity(raw_ + o.raw_); }
  constexpr Quantity operator-(Quantity o) const { return Quantity(raw_ - o.raw_); }
  constexpr Quantity& operator+=(Quantity o) { raw_ += o.raw_; return *this; }
  constexpr Quantity& operator-=(Quantity o) { raw_ -= o.raw_; return *this; }
  constexpr auto operator<=>(const Quantity&) const = default;

 private:
  constexpr explicit Quantity(int64_t raw) : raw_(raw) {}
  int64_t raw_ = 0;
};

inline constexpr Quantity kOneUnit = Quantity::Whole(1);

// The predefined resources, in slot order.
enum class Predefined : uint8_t { kCPU = 0, kMemory = 1, kGPU = 2, kObjectStoreMemory = 3 };
inline constexpr int kNumPredefined = 4;
inline constexpr std::array<std::string_view, kNumPredefined> kPredefinedNames = {
    "CPU", "memory", "GPU", "object_store_memory"};
inline constexpr std::string_view kCPU = "CPU";
inline constexpr std::string_view kGPU = "GPU";
inline constexpr std::string_view kMemory = "memory";
inline constexpr std::string_view kObjectStoreMemory = "object_store_memory";

// A set of named quantities. A name whose quantity is zero is absent: Get() returns 0 for it and
// iteration skips it. Iteration order is defined: by name, byte-wise.
class ResourceSet {
 public:
  ResourceSet() = default;
  // Builds from (name, quantity) pairs; zero quantities are dropped. No validation.
  static ResourceSet FromMap(const std::map<std::string, Quantity>& m);

  Quantity Get(std::string_view name) const;
  Quantity Get(Predefined p) const { return predefined_[static_cast<int>(p)]; }
  // Sets `name` to `q` (zero removes it). O(number of custom names).
  void Set(std::string_view name, Quantity q);
  void Set(Predefined p, Quantity q) { predefined_[static_cast<int>(p)] = q; }

  bool IsEmpty() const;
  // Number of names with a non-zero quantity.
  int Size() const;
  // Names with a non-zero quantity, by name.
  std::vector<std::string> Names() const;
  // Calls f(name, quantity) for every non-zero entry, by name.
  template <typename F>
  void ForEach(F&& f) const;
  // Non-zero custom (non-predefined) entries, by name.
  const std::vector<std::pair<std::string, Quantity>>& custom() const { return custom_; }

  // Every entry of *this is <= the same entry of `other` (missing = 0).
  bool IsSubsetOf(const ResourceSet& other) const;
  // True if any entry is negative.
  bool HasNegative() const;

  ResourceSet& operator+=(const ResourceSet& o);
  ResourceSet& operator-=(const ResourceSet& o);
  // Sets negative entries to zero.
  void ClampNegativeToZero();
  friend bool operator==(const ResourceSet& a, const ResourceSet& b) {
    return a.predefined_ == b.predefined_ && a.custom_ == b.custom_;
  }

  // {"CPU": 1, "GPU": 0.5}, by name.
  std::string ToString() const;

 private:
  std::array<Quantity, kNumPredefined> predefined_{};
  std::vector<std::pair<std::string, Quantity>> custom_;  // sorted by name, no zeros
};

// Names of resources that are tracked per device. Default: {"GPU"}.
class UnitInstanceNames {
 public:
  UnitInstanceNames() : names_{"GPU"} {}
  explicit UnitInstanceNames(std::vector<std::string> names);
  bool Contains(std::string_view name) const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;  // sorted, unique
};

// A validated resource request. Create() enforces: every quantity finite and >= 0, and every
// unit-instance quantity either < 1 or whole. Zero entries are dropped.
class ResourceRequest {
 public:
  ResourceRequest() = default;
  // `field` prefixes error messages, e.g. "requests[2].resources".
  static StatusOr<ResourceRequest> Create(const std::map<std::string, double>& quantities,
                                          const UnitInstanceNames& units = {},
                                          const std::string& field = "resources");
  // Unchecked: REQUIRES the invariants above.
  static ResourceRequest FromSet(ResourceSet set) { return ResourceRequest(std::move(set)); }

  const ResourceSet& set() const { return set_; }
  bool IsEmpty() const { return set_.IsEmpty(); }
  bool RequestsGpu() const { return !set_.Get(Predefined::kGPU).IsZero(); }
  std::string ToString() const { return set_.ToString(); }
  friend bool operator==(const ResourceRequest& a, const ResourceRequest& b) {
    return a.set_ == b.set_;
  }

 private:
  explicit ResourceRequest(ResourceSet set) : set_(std::move(set)) {}
  ResourceSet set_;
};

// What an allocation took: the aggregate quantities and, for unit-instance resources, the share
// taken from each device.
struct Allocation {
  struct DeviceShare {
    int device = 0;
    Quantity amount;
    friend bool operator==(const DeviceShare&, const DeviceShare&) = default;
  };
  ResourceSet resources;
  // name -> shares, by name; shares by device id.
  std::vector<std::pair<std::string, std::vector<DeviceShare>>> devices;

  // Device ids granted for `name` ("GPU"), ascending. Empty if none.
  std::vector<int> DeviceIds(std::string_view name = kGPU) const;
  friend bool operator==(const Allocation&, const Allocation&) = default;
};

// The resources of one node: totals, what is available now, and per-device availability of
// unit-instance resources.
// Invariant: 0 <= available <= total for every name; the aggregate available of a unit-instance
// resource equals the sum of its devices' availability.
class NodeResources {
 public:
  NodeResources() = default;
  // REQUIRES nothing; returns InvalidArgument if a total is negative or a unit-instance total is
  // not whole. Available starts equal to total.
  static StatusOr<NodeResources> Create(const ResourceSet& total,
                                        const UnitInstanceNames& units = {});

  const ResourceSet& total() const { return total_; }
  const ResourceSet& available() const { return available_; }

  // The request fits this node's totals (every requested name exists here in sufficient
  // quantity; a unit-instance request fits the device layout). O(names in request).
  bool IsFeasible(const ResourceRequest& r) const;
  // The request fits what is free now. Implies IsFeasible. O(names + devices).
  bool IsAvailable(const ResourceRequest& r) const;
  // Takes `r` if available (fractional unit-instance requests go to the device with the least
  // availability that fits, ties to the lowest id; whole requests take the lowest-id free
  // devices). Returns nullopt and changes nothing otherwise.
  std::optional<Allocation> Allocate(const ResourceRequest& r);
  // Returns what Allocate() took. Quantities are clamped to the totals.
  void Release(const Allocation& a);
  // Subtracts `r` from availability even if it does not fit (clamped at zero): used for a
  // scheduler's optimistic estimate of a remote node. Devices are charged best-effort.
  void SubtractEstimate(const ResourceRequest& r);
  // Overwrites availability (from a resource report). Devices are reset to match: this keeps
  // per-device detail when `device_available` is given, otherwise spreads the aggregate.
  void SetAvailable(const ResourceSet& available,
                    const std::vector<std::pair<std::string, std::vector<Quantity>>>&
                        device_available = {});

  // max over {CPU, memory, object_store_memory} of 1 - available/total, totals of 0 skipped.
  double CriticalUtilization() const;
  bool HasResource(std::string_view name) const { return !total_.Get(name).IsZero(); }
  // Per-device availability for a unit-instance name (empty if none).
  const std::vector<Quantity>& Devices(std::string_view name) const;
  const std::vector<std::pair<std::string, std::vector<Quantity>>>& all_devices() const {
    return devices_;
  }

 private:
  std::vector<Quantity>* MutableDevices(std::string_view name);
  ResourceSet total_;
  ResourceSet available_;
  std::vector<std::pair<std::string, std::vector<Quantity>>> devices_;  // sorted by name
};

template <typename F>
void ResourceSet::ForEach(F&& f) const {
  // Merge predefined (by name) with custom (sorted) so iteration is by name overall.
  std::array<int, kNumPredefined> order = {0, 2, 1, 3};  // CPU, GPU, memory, object_store_memory
  size_t c = 0;
  for (int slot : order) {
    std::string_view pname = kPredefinedNames[slot];
    while (c < custom_.size() && custom_[c].first < pname) {
      f(std::string_view(custom_[c].first), custom_[c].second);
      ++c;
    }
    if (!predefined_[slot].IsZero()) f(pname, predefined_[slot]);
  }
  for (; c < custom_.size(); ++c) f(std::string_view(custom_[c].first), custom_[c].second);
}

}  // namespace orrery

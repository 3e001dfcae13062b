#include "live/api/registry.h"

#include <map>
#include <mutex>

namespace orrery::api::internal {

struct Registry::Impl {
  mutable std::mutex mu;
  // Entries are never removed (libraries are not unloaded), so pointers stay valid.
  std::map<std::string, std::unique_ptr<Entry>> by_name;
  std::map<std::string, const Entry*> by_key;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

void Registry::Add(std::string key, Entry e) {
  std::lock_guard<std::mutex> l(impl_->mu);
  auto& slot = impl_->by_name[e.name];
  if (slot) {
    *slot = std::move(e);  // same address: keys stay valid
  } else {
    slot = std::make_unique<Entry>(std::move(e));
  }
  impl_->by_key[std::move(key)] = slot.get();
}

const Entry* Registry::Find(const std::string& name) const {
  std::lock_guard<std::mutex> l(impl_->mu);
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : it->second.get();
}

const Entry* Registry::FindByKey(const std::string& key) const {
  std::lock_guard<std::mutex> l(impl_->mu);
  auto it = impl_->by_key.find(key);
  return it == impl_->by_key.end() ? nullptr : it->second;
}

Registry& GlobalRegistry() {
  // Never destroyed: libraries' entries may be looked up during static destruction.
  static Registry* r = new Registry();
  return *r;
}

}  // namespace orrery::api::internal

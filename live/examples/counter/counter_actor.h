// The Counter actor of the seed's sample (Ray's runtime-env example), as an Orrery library.
//
// The actor reads the environment variable `counter_name` when it is created: on the worker, so
// the driver must pass it in InitOptions::env_vars (the runtime env). Increment() adds one and
// returns "<counter_name> got <n>".
//
// Thread safety: one instance lives in one worker, which runs its calls one at a time.
#pragma once

#include <string>

namespace orrery::examples {

class Counter {
 public:
  // The registered factory (ORRERY_REMOTE(Counter::Create) in counter_actor.cc).
  static Counter* Create();
  std::string Increment();

 private:
  explicit Counter(std::string name) : name_(std::move(name)) {}
  std::string name_;
  int count_ = 0;
};

}  // namespace orrery::examples

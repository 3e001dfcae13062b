#include "live/examples/counter/counter_actor.h"

#include <cstdlib>
#include <stdexcept>

#include "live/api/orrery_api.h"

namespace orrery::examples {

Counter* Counter::Create() {
  const char* name = std::getenv("counter_name");
  if (name == nullptr) throw std::runtime_error("counter_name is not set in the worker's env");
  return new Counter(name);
}

std::string Counter::Increment() {
  ++count_;
  return name_ + " got " + std::to_string(count_);
}

ORRERY_REMOTE(Counter::Create);
ORRERY_REMOTE(&Counter::Increment);

}  // namespace orrery::examples

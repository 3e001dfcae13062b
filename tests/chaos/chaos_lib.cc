#include "tests/chaos/chaos_lib.h"

#include <chrono>
#include <thread>

#include "live/api/orrery_api.h"

namespace orrery::chaos {

int Work(int i, int ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return Expected(i);
}

Echo* Echo::Create(int id) { return new Echo(id); }
int Echo::Call(int x, int ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return EchoExpected(id_, x);
}

}  // namespace orrery::chaos

ORRERY_REMOTE(orrery::chaos::Work);
ORRERY_REMOTE(orrery::chaos::Echo::Create);
ORRERY_REMOTE(&orrery::chaos::Echo::Call);

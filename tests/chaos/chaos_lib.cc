#include "tests/chaos/chaos_lib.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "live/api/orrery_api.h"

namespace orrery::chaos {

namespace {
// $ORRERY_CHAOS_LOAD_DELAY_MS: loading this library (in a worker, before it attaches) takes
// that long, so a test can kill a worker between its lease's grant and its attach.
const bool kLoadDelayed = [] {
  if (const char* ms = std::getenv("ORRERY_CHAOS_LOAD_DELAY_MS"); ms != nullptr) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
    return true;
  }
  return false;
}();
}  // namespace

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

#include "tests/live/log_test_lib.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "live/api/orrery_api.h"

namespace orrery::log_test {

int64_t Shout(std::string line) {
  std::cout << line << std::endl;
  return ::getpid();
}
int64_t ShoutErr(std::string line) {
  std::cerr << line << std::endl;
  return ::getpid();
}
int64_t ShoutMany(std::string line, int n) {
  for (int i = 0; i < n; ++i) std::printf("%s #%d\n", line.c_str(), i);
  return ::getpid();
}

Talker* Talker::Create() { return new Talker(); }
int64_t Talker::Say(std::string line) {
  std::printf("%s\n", line.c_str());  // stdio, not iostream: flushed by the worker after the call
  return ::getpid();
}

ORRERY_REMOTE(Shout);
ORRERY_REMOTE(ShoutErr);
ORRERY_REMOTE(ShoutMany);
ORRERY_REMOTE(Talker::Create);
ORRERY_REMOTE(&Talker::Say);

}  // namespace orrery::log_test

// Remote code for the logging tests (log_test.cc, log_test_driver.cc): functions and an actor
// that print, in a shared library that the driver links and the workers dlopen.
#pragma once

#include <cstdint>
#include <string>

namespace orrery::log_test {

int64_t Shout(std::string line);             // prints `line` on stdout; returns the worker's pid
int64_t ShoutErr(std::string line);          // prints `line` on stderr; returns the worker's pid
int64_t ShoutMany(std::string line, int n);  // prints `line` n times (numbered " #i"); pid

// An actor that prints what it is told.
class Talker {
 public:
  static Talker* Create();
  int64_t Say(std::string line);  // prints `line` on stdout; returns the worker's pid
};

}  // namespace orrery::log_test

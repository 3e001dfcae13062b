#include "tests/live/api_test_lib.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "live/api/orrery_api.h"

namespace orrery::api_test {

int Add(int a, int b) { return a + b; }
std::vector<double> Scale(std::vector<double> v, double k) {
  for (double& x : v) x *= k;
  return v;
}
std::string Fail(std::string message) { throw std::runtime_error(message); }
std::string NodeId() {
  const char* n = std::getenv("ORRERY_NODE_ID");
  return n ? n : "";
}
std::string Env(std::string name) {
  const char* v = std::getenv(name.c_str());
  return v ? v : "";
}
int64_t SleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ::getpid();
}

Accumulator* Accumulator::Create(int start) {
  if (start < 0) throw std::invalid_argument("start must be >= 0");
  return new Accumulator(start);
}
int Accumulator::Add(int x) {
  history_.push_back(x);
  return sum_ += x;
}
std::vector<int> Accumulator::History() const { return history_; }
int64_t Accumulator::Pid() const { return ::getpid(); }
std::string Accumulator::Node() const { return NodeId(); }
int Accumulator::SlowAdd(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return Add(x);
}
std::string FailOnce(std::string path) {
  if (std::FILE* f = std::fopen(path.c_str(), "r")) {
    std::fclose(f);
    return "ok";
  }
  if (std::FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
  throw std::runtime_error("first run for " + path);
}
std::string SleepThenNodeId(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return NodeId();
}

ORRERY_REMOTE(Add);
ORRERY_REMOTE(Scale);
ORRERY_REMOTE(Fail);
ORRERY_REMOTE(NodeId);
ORRERY_REMOTE(Env);
ORRERY_REMOTE(SleepMs);
ORRERY_REMOTE(Accumulator::Create);
ORRERY_REMOTE(&Accumulator::Add);
ORRERY_REMOTE(&Accumulator::History);
ORRERY_REMOTE(&Accumulator::Pid);
ORRERY_REMOTE(&Accumulator::Node);
ORRERY_REMOTE(SleepThenNodeId);
ORRERY_REMOTE(&Accumulator::SlowAdd);
ORRERY_REMOTE(FailOnce);

}  // namespace orrery::api_test

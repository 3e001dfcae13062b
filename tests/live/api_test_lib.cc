#include "tests/live/api_test_lib.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
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

// --- ObjectRef arguments
int SlowValue(int value, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  if (value < 0) throw std::invalid_argument("negative value " + std::to_string(value));
  return value;
}
int Sum10(int a0, int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, int a9) {
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9;
}
std::string WriteFile(std::string path, std::string content) {
  if (std::FILE* f = std::fopen(path.c_str(), "w")) {
    std::fputs(content.c_str(), f);
    std::fclose(f);
  }
  return content;
}

int MarkOnce(std::string dir, int i) {
  const std::string path = dir + "/" + std::to_string(i);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("task " + std::to_string(i) + " ran twice (" + path + ")");
  ::close(fd);
  return i;
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
ORRERY_REMOTE(SlowValue);  // --- ObjectRef arguments
ORRERY_REMOTE(Sum10);
ORRERY_REMOTE(WriteFile);
ORRERY_REMOTE(MarkOnce);

}  // namespace orrery::api_test

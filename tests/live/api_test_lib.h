// Remote code for the C++ client API tests (api_test.cc), in a shared library that the test
// binary links and the workers dlopen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orrery::api_test {

int Add(int a, int b);
std::vector<double> Scale(std::vector<double> v, double k);
std::string Fail(std::string message);  // throws std::runtime_error(message)
std::string NodeId();                   // $ORRERY_NODE_ID of the worker
std::string Env(std::string name);      // the worker's $name ("" if unset)
int64_t SleepMs(int ms);                // sleeps, returns the worker's pid

// An actor: a running sum and the history of what was added.
class Accumulator {
 public:
  static Accumulator* Create(int start);  // throws if start < 0
  int Add(int x);
  std::vector<int> History() const;
  int64_t Pid() const;
  std::string Node() const;    // --- actors: $ORRERY_NODE_ID of its worker
  int SlowAdd(int x, int ms);  // --- actors: sleeps `ms`, then Add(x)

 private:
  explicit Accumulator(int start) : sum_(start) {}
  int sum_;
  std::vector<int> history_;
};

// --- actors (actor_test.cc): sleeps, then returns $ORRERY_NODE_ID of the worker.
std::string SleepThenNodeId(int ms);
// Throws the first time it runs for `path` (creating the file), returns "ok" afterwards.
std::string FailOnce(std::string path);

// --- ObjectRef arguments (objref_test.cc).
int SlowValue(int value, int ms);  // sleeps `ms`, returns value; throws if value < 0
int Sum10(int a0, int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, int a9);
// Writes `content` to `path` (evidence that the call ran), returns content.
std::string WriteFile(std::string path, std::string content);
// --- head fault tolerance: creates DIR/I (exclusively) and returns i; throws if it exists (the
// task ran twice).
int MarkOnce(std::string dir, int i);

}  // namespace orrery::api_test

// Remote code of the chaos workload (chaos_driver.cc, bench/chaos.sh): stateless, so a result
// can be checked whatever attempt or actor incarnation produced it.
#pragma once

namespace orrery::chaos {

// Sleeps `ms`, then returns Expected(i).
int Work(int i, int ms);
inline int Expected(int i) { return i * 7 + 1; }

// An actor whose method answers a pure function of its creation argument and the call's: a
// restarted incarnation (factory run again) answers the same.
class Echo {
 public:
  static Echo* Create(int id);
  // Sleeps `ms`, then returns EchoExpected(id, x).
  int Call(int x, int ms);

 private:
  explicit Echo(int id) : id_(id) {}
  int id_;
};
inline int EchoExpected(int id, int x) { return id * 100000 + x; }

}  // namespace orrery::chaos

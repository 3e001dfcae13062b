// The remote code of the scale benchmarks (bench/scale_lib.cc), declared for their driver.
#pragma once

namespace orrery::bench {

void ScaleNoop();
void ScaleSay(int i);

class ScalePinger {
 public:
  static ScalePinger* Create(int id);
  int Ping();

 private:
  explicit ScalePinger(int id) : id_(id) {}
  int id_;
  int calls_ = 0;
};

}  // namespace orrery::bench

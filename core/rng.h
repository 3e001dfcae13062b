// The one source of randomness in core/: a seeded generator passed in by the caller.
//
// Draws are defined here rather than by std::uniform_int_distribution, whose output differs
// between standard libraries; so a seed gives the same decisions on every platform.
//
// Thread safety: none; one Rng per decision loop.
#pragma once

#include <cstdint>

namespace orrery {

// SplitMix64-seeded xoshiro256** generator.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { Seed(seed); }
  void Seed(uint64_t seed);

  // Next 64 random bits. O(1).
  uint64_t Next();
  // Uniform integer in [0, n). REQUIRES: n > 0. Unbiased (Lemire's multiply-and-reject).
  uint64_t UniformIndex(uint64_t n);
  // Uniform double in [0, 1).
  double UniformDouble();

 private:
  uint64_t s_[4];
};

}  // namespace orrery

// Shared by the libFuzzer targets of tests/fuzz: the loaders under test read files, so each input
// is written to a scratch file first (under $TMPDIR, one directory per process, removed at exit).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/io/scenario_loader.h"

namespace orrery::fuzz {

class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    dir_ = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
           ("orrery-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // Writes `data` to DIR/name and returns the path.
  std::string Write(const std::string& name, std::string_view data) const {
    const auto p = dir_ / name;
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    return p.string();
  }
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

inline const ScratchDir& Scratch() {
  static ScratchDir* dir = new ScratchDir();  // removed by the atexit hook below
  static const bool hooked = [] {
    std::atexit([] { delete dir; });
    return true;
  }();
  (void)hooked;
  return *dir;
}

// Thrown from a loader's progress callback to stop expanding a valid but huge scenario: a fuzzer
// input that asks for 50 million tasks is legal (and tested elsewhere), just not interesting to
// fuzz at 3 GB a run.
struct TooBig {};
inline constexpr uint64_t kMaxTasksToExpand = 200000;

// io::LoadScenario(path), stopped (and ignored) once it would expand more than kMaxTasksToExpand
// tasks.
inline void LoadScenarioBounded(const std::string& path) {
  try {
    auto s = io::LoadScenario(path, {}, [](const io::LoadProgress& p) {
      if (p.total > kMaxTasksToExpand && std::string_view(p.phase) != "parse") throw TooBig{};
    });
    (void)s;
  } catch (const TooBig&) {
  }
}

}  // namespace orrery::fuzz

// A driver program for the logging live tests (log_test.cc): connects with $ORRERY_ADDRESS and
// $ORRERY_TOKEN, runs one scenario that makes workers print, prints `pid <what> <pid>` lines of
// its own and exits 0 (1 if a call failed, 2 on bad usage).
//   log_test_driver prefix NODE     a task on the entry node, an actor pinned to NODE, a stderr
//                                   line
//   log_test_driver dedup N         N actors (N workers) print the same line
//   log_test_driver quiet           as `prefix` without NODE, with InitOptions.log_to_driver=false
//   log_test_driver many N          one task prints N numbered lines
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "tests/live/log_test_lib.h"

namespace api = orrery::api;
using orrery::log_test::Talker;
using std::chrono::seconds;

namespace {

template <typename T>
bool Report(const char* what, const orrery::StatusOr<T>& r) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s failed: %s\n", what, r.status().ToString().c_str());
    return false;
  }
  std::printf("pid %s %lld\n", what, static_cast<long long>(*r));
  std::fflush(stdout);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: log_test_driver prefix NODE | dedup N | quiet | many N\n");
    return 2;
  }
  const std::string mode = argv[1];
  api::InitOptions o;
  if (mode == "quiet") o.log_to_driver = false;
  if (auto s = api::Init(o); !s.ok()) {
    std::fprintf(stderr, "init: %s\n", s.ToString().c_str());
    return 1;
  }
  bool ok = true;
  if (mode == "prefix" || mode == "quiet") {
    ok &=
        Report("task",
               api::Get(api::Task(orrery::log_test::Shout).Remote(std::string("hello from a task")),
                        seconds(30)));
    ok &= Report(
        "err", api::Get(api::Task(orrery::log_test::ShoutErr).Remote(std::string("oops on stderr")),
                        seconds(30)));
    if (mode == "prefix" && argc > 2) {
      auto talker = api::Actor(Talker::Create)
                        .SetStrategy(api::Strategy::NodeAffinity(argv[2], false))
                        .Remote();
      ok &= Report("actor",
                   api::Get(talker.Task(&Talker::Say).Remote(std::string("hello from an actor")),
                            seconds(30)));
    }
  } else if (mode == "dedup" && argc > 2) {
    const int n = std::atoi(argv[2]);
    std::vector<api::ActorHandle<Talker>> talkers;
    for (int i = 0; i < n; ++i) talkers.push_back(api::Actor(Talker::Create).Remote());
    std::vector<api::ObjectRef<int64_t>> refs;
    for (auto& t : talkers)
      refs.push_back(t.Task(&Talker::Say).Remote(std::string("the same line")));
    for (auto& r : refs) ok &= Report("talker", api::Get(r, seconds(30)));
  } else if (mode == "many" && argc > 2) {
    ok &= Report(
        "many",
        api::Get(
            api::Task(orrery::log_test::ShoutMany).Remote(std::string("line"), std::atoi(argv[2])),
            seconds(30)));
  } else {
    std::fprintf(stderr, "log_test_driver: unknown mode '%s'\n", mode.c_str());
    api::Shutdown();
    return 2;
  }
  api::Shutdown();
  std::printf("driver done\n");
  return ok ? 0 : 1;
}

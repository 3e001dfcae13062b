// The counter example's driver: connects to the cluster at $ORRERY_ADDRESS (token from
// $ORRERY_TOKEN or the session), creates a Counter actor, increments it five times and prints
// what each call returns. The actor reads `counter_name` from its environment, which comes from
// the job's runtime env (the seed's sample):
//
//   $ orrery start --head --num-cpus 2
//   $ orrery job submit --runtime-env-json '{"env_vars": {"counter_name": "test_counter"}}'
//         -- build/live/examples/counter        (one line)
//   test_counter got 1
//   ...
//   test_counter got 5
//
// Run directly, pass `--counter-name NAME` (it becomes the actor's env var).
// Exit code 0 on success, 1 if the cluster or a call failed, 2 for bad arguments (--help prints
// the usage without connecting).
#include <iostream>
#include <string>

#include "live/api/orrery_api.h"
#include "live/examples/counter/counter_actor.h"

int main(int argc, char** argv) {
  namespace api = orrery::api;
  using orrery::examples::Counter;
  api::InitOptions options;
  constexpr const char* kUsage =
      "usage: counter [--counter-name NAME]\n"
      "Creates a Counter actor on the cluster at $ORRERY_ADDRESS (token from $ORRERY_TOKEN or\n"
      "the latest session), increments it five times and prints each result.\n";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--counter-name" && i + 1 < argc) {
      options.env_vars["counter_name"] = argv[++i];
      continue;
    }
    std::cerr << "counter: unexpected argument '" << a << "'\n" << kUsage;
    return 2;
  }
  if (auto s = api::Init(options); !s.ok()) {
    std::cerr << "counter: " << s.ToString() << "\n";
    return 1;
  }
  int rc = 0;
  {
    auto counter = api::Actor(Counter::Create).Remote();
    for (int i = 0; i < 5; ++i) {
      auto line = api::Get(counter.Task(&Counter::Increment).Remote(), std::chrono::seconds(30));
      if (!line.ok()) {
        std::cerr << "counter: " << line.status().ToString() << "\n";
        rc = 1;
        break;
      }
      std::cout << *line << std::endl;
    }
  }
  api::Shutdown();
  return rc;
}

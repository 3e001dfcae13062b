// The counter example's driver: connects to the cluster at $ORRERY_ADDRESS (token from
// $ORRERY_TOKEN or the session), creates a Counter actor with `counter_name` in the workers'
// runtime env, increments it five times and prints what each call returns:
//
//   $ orrery start --head --num-cpus 2
//   $ build/live/examples/counter [--counter-name NAME]      # NAME defaults to test_counter
//   test_counter got 1
//   ...
//   test_counter got 5
//
// Exit code 0 on success, 1 if the cluster or a call failed.
#include <iostream>
#include <string>

#include "live/api/orrery_api.h"
#include "live/examples/counter/counter_actor.h"

int main(int argc, char** argv) {
  namespace api = orrery::api;
  using orrery::examples::Counter;
  std::string name = "test_counter";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--counter-name") name = argv[i + 1];
  }
  api::InitOptions options;
  options.env_vars["counter_name"] = name;
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

// A driver for tests/net/partition_test.sh: creates the seed's Counter actor with one restart,
// placed on node ARGV[1] if it can run there (soft affinity), then makes one Increment call per
// line read from stdin and prints "got: <result>" or "error: <status>" for each (flushed), so the
// test can pull a cable between two calls. Exit 0 at end of input.
//   usage: net_actor_driver NODE      (ORRERY_ADDRESS / ORRERY_TOKEN as for any driver)
#include <chrono>
#include <iostream>
#include <string>

#include "live/api/orrery_api.h"
#include "live/examples/counter/counter_actor.h"

int main(int argc, char** argv) {
  namespace api = orrery::api;
  using orrery::examples::Counter;
  if (argc != 2) {
    std::cerr << "usage: net_actor_driver NODE\n";
    return 2;
  }
  api::InitOptions options;
  options.env_vars["counter_name"] = "net";
  if (auto s = api::Init(options); !s.ok()) {
    std::cerr << "net_actor_driver: " << s.ToString() << "\n";
    return 1;
  }
  auto counter = api::Actor(Counter::Create)
                     .SetMaxRestarts(1)
                     .SetStrategy(api::Strategy::NodeAffinity(argv[1], /*soft=*/true))
                     .Remote();
  std::cout << "actor " << counter.actor_id() << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    auto r = api::Get(counter.Task(&Counter::Increment).Remote(), std::chrono::seconds(60));
    if (r.ok()) {
      std::cout << "got: " << *r << std::endl;
    } else {
      std::cout << "error: " << r.status().ToString() << std::endl;
    }
  }
  api::Shutdown();
  return 0;
}

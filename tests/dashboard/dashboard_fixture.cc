// The dashboard browser tests' workload (tests/dashboard/test_live.py): a driver that holds a
// Counter actor (live/examples/counter) and a placement group on a live cluster while the
// browser looks at them. It creates the actor and calls it once, creates the group `dash-pg`
// (two {CPU: 1} bundles, SPREAD, so the bundles show two nodes), waits until both are up, prints
// `ready` with the actor's answer, and keeps both until its stdin closes (the harness closes it),
// then removes the group and shuts down. Cluster from $ORRERY_ADDRESS / $ORRERY_TOKEN.
// Exit code 0 ok, 1 the cluster or a call failed.
#include <chrono>
#include <iostream>
#include <string>

#include "live/api/orrery_api.h"
#include "live/examples/counter/counter_actor.h"

int main() {
  namespace api = orrery::api;
  using orrery::examples::Counter;
  api::InitOptions options;
  options.env_vars["counter_name"] = "dash_counter";
  if (auto s = api::Init(options); !s.ok()) {
    std::cerr << "dashboard_fixture: " << s.ToString() << "\n";
    return 1;
  }
  int rc = 0;
  {
    auto counter = api::Actor(Counter::Create).Remote();
    auto line = api::Get(counter.Task(&Counter::Increment).Remote(), std::chrono::seconds(60));
    auto pg = api::CreatePlacementGroup({{{"CPU", 1}}, {{"CPU", 1}}},
                                        api::PlacementStrategy::kSpread, "dash-pg");
    orrery::Status waited = pg.status().ok() ? pg.Wait(std::chrono::seconds(60)) : pg.status();
    if (!line.ok() || !waited.ok()) {
      std::cerr << "dashboard_fixture: "
                << (line.ok() ? waited.ToString() : line.status().ToString()) << "\n";
      rc = 1;
    } else {
      std::cout << "ready " << *line << std::endl;
      std::string ignored;
      while (std::getline(std::cin, ignored)) {
      }
      (void)pg.Remove();
    }
  }
  api::Shutdown();
  return rc;
}

// The chaos workload's driver (bench/chaos.sh, the live.chaos ctest): N tasks with retries and
// K actors with unlimited restarts and task retries, all submitted at once, then every result
// fetched and checked against the value its arguments determine. Nodes are SIGKILLed around it
// by the script; this program only counts. Prints one JSON object on stdout:
//   {"tasks": N, "tasks_ok": .., "actor_calls": .., "actor_calls_ok": .., "lost": ..,
//    "wrong": .., "first_errors": [..], "wall_s": ..}
// lost = calls whose Get failed (out of retries, timeout); wrong = a value that is not the
// expected one. Exit 0 iff lost == wrong == 0; 2 on bad usage; 1 if Init fails.
//   usage: chaos_driver [--tasks N] [--task-ms MS] [--actors K] [--calls C] [--call-ms MS]
//                       [--max-retries R] [--timeout-s S]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "live/api/orrery_api.h"
#include "tests/chaos/chaos_lib.h"

namespace {

struct Flags {
  int tasks = 1000;
  int task_ms = 5;
  int actors = 4;
  int calls = 50;
  int call_ms = 5;
  int max_retries = 20;
  int timeout_s = 600;
};

bool ParseInt(const std::string& name, const char* v, int min, int* out) {
  char* end = nullptr;
  const long n = v ? std::strtol(v, &end, 10) : 0;
  if (v == nullptr || *v == '\0' || *end != '\0' || n < min || n > 10000000) {
    std::cerr << "chaos_driver: " << name << ": expected an integer >= " << min << ", got '"
              << (v ? v : "") << "'\n";
    return false;
  }
  *out = static_cast<int>(n);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  namespace api = orrery::api;
  using namespace orrery::chaos;
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    bool ok = false;
    if (a == "--tasks")
      ok = ParseInt(a, v, 0, &f.tasks);
    else if (a == "--task-ms")
      ok = ParseInt(a, v, 0, &f.task_ms);
    else if (a == "--actors")
      ok = ParseInt(a, v, 0, &f.actors);
    else if (a == "--calls")
      ok = ParseInt(a, v, 0, &f.calls);
    else if (a == "--call-ms")
      ok = ParseInt(a, v, 0, &f.call_ms);
    else if (a == "--max-retries")
      ok = ParseInt(a, v, 0, &f.max_retries);
    else if (a == "--timeout-s")
      ok = ParseInt(a, v, 1, &f.timeout_s);
    else
      std::cerr << "chaos_driver: unknown flag '" << a << "'\n";
    if (!ok) return 2;
    ++i;
  }
  if (auto s = api::Init(); !s.ok()) {
    std::cerr << "chaos_driver: " << s.ToString() << "\n";
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<api::ObjectRef<int>> tasks;
  tasks.reserve(static_cast<size_t>(f.tasks));
  std::vector<api::ActorHandle<Echo>> actors;
  std::vector<std::vector<api::ObjectRef<int>>> calls(static_cast<size_t>(f.actors));
  for (int k = 0; k < f.actors; ++k) {
    actors.push_back(api::Actor(Echo::Create).SetMaxRestarts(-1).SetMaxTaskRetries(-1).Remote(k));
  }
  // Interleaved, so actor calls and tasks are in flight together while nodes die.
  const int rounds = std::max(f.tasks, f.calls);
  for (int r = 0; r < rounds; ++r) {
    if (r < f.tasks) {
      tasks.push_back(api::Task(Work).SetMaxRetries(f.max_retries).Remote(r, f.task_ms));
    }
    if (r < f.calls) {
      for (int k = 0; k < f.actors; ++k) {
        calls[static_cast<size_t>(k)].push_back(
            actors[static_cast<size_t>(k)].Task(&Echo::Call).Remote(r, f.call_ms));
      }
    }
  }
  const auto deadline = t0 + std::chrono::seconds(f.timeout_s);
  auto left = [&] {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()));
  };
  int tasks_ok = 0, calls_ok = 0, lost = 0, wrong = 0;
  nlohmann::json first_errors = nlohmann::json::array();
  auto note = [&](const std::string& what) {
    if (first_errors.size() < 10) first_errors.push_back(what);
  };
  for (int i = 0; i < f.tasks; ++i) {
    auto v = api::Get(tasks[static_cast<size_t>(i)], left());
    if (!v.ok()) {
      ++lost;
      note("task " + std::to_string(i) + ": " + v.status().ToString());
    } else if (*v != Expected(i)) {
      ++wrong;
      note("task " + std::to_string(i) + ": got " + std::to_string(*v));
    } else {
      ++tasks_ok;
    }
  }
  for (int k = 0; k < f.actors; ++k) {
    for (int r = 0; r < f.calls; ++r) {
      auto v = api::Get(calls[static_cast<size_t>(k)][static_cast<size_t>(r)], left());
      if (!v.ok()) {
        ++lost;
        note("actor " + std::to_string(k) + " call " + std::to_string(r) + ": " +
             v.status().ToString());
      } else if (*v != EchoExpected(k, r)) {
        ++wrong;
        note("actor " + std::to_string(k) + " call " + std::to_string(r) + ": got " +
             std::to_string(*v));
      } else {
        ++calls_ok;
      }
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json actor_ids = nlohmann::json::array();
  for (const auto& a : actors) actor_ids.push_back(a.actor_id());
  api::Shutdown();
  nlohmann::json out = {{"tasks", f.tasks},
                        {"tasks_ok", tasks_ok},
                        {"actor_calls", f.actors * f.calls},
                        {"actor_calls_ok", calls_ok},
                        {"actors", actor_ids},
                        {"lost", lost},
                        {"wrong", wrong},
                        {"first_errors", first_errors},
                        {"wall_s", wall}};
  std::cout << out.dump() << std::endl;
  return lost == 0 && wrong == 0 ? 0 : 1;
}

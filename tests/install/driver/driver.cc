// An out-of-tree driver: runs two remote calls on the cluster at $ORRERY_ADDRESS and prints
// their results ("3", "hello out-of-tree"). Exit 1 if the cluster or a call failed.
#include <chrono>
#include <iostream>
#include <string>

#include "live/api/orrery_api.h"

int Add(int a, int b);
std::string Greet(std::string who);

int main() {
  namespace api = orrery::api;
  if (auto s = api::Init(api::InitOptions{}); !s.ok()) {
    std::cerr << "driver: " << s.ToString() << "\n";
    return 1;
  }
  auto sum = api::Get(api::Task(Add).Remote(1, 2), std::chrono::seconds(30));
  auto hi = api::Get(api::Task(Greet).Remote(std::string("out-of-tree")), std::chrono::seconds(30));
  api::Shutdown();
  if (!sum.ok() || !hi.ok()) {
    std::cerr << "driver: " << (!sum.ok() ? sum.status() : hi.status()).ToString() << "\n";
    return 1;
  }
  std::cout << *sum << "\n" << *hi << "\n";
  return 0;
}

// Remote functions of the out-of-tree driver: workers dlopen this library.
#include <string>

#include "live/api/orrery_api.h"  // ORRERY_REMOTE; the library links only Orrery::registry

int Add(int a, int b) { return a + b; }
ORRERY_REMOTE(Add);

std::string Greet(std::string who) { return "hello " + who; }
ORRERY_REMOTE(Greet);

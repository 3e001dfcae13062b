#include "core/cli/explain.h"

#include <ostream>

#include "core/cli/cli.h"

namespace orrery::cli {

int RunExplain(const std::vector<std::string>&, std::ostream&, std::ostream& err) {
  err << "orrery explain: not implemented yet\n";
  return kExitFailed;
}

}  // namespace orrery::cli

// `orrery explain CASE.json [--json]`: the what-if explainer (DESIGN section 8).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace orrery::cli {

// args: everything after "explain". Returns an exit code (0, 2 on bad input).
int RunExplain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace orrery::cli

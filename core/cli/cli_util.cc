#include "core/cli/cli_util.h"

#include <fstream>
#include <sstream>

namespace orrery::cli {

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + path.string());
  f << text;
  f.close();
  if (!f) return Status(StatusCode::kUnavailable, "error writing " + path.string());
  return Status::Ok();
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace orrery::cli

#include "core/io/yaml_input.h"

#include <yaml-cpp/depthguard.h>

#include <string>
#include <utility>
#include <vector>

namespace orrery::io {

Status CheckYamlNesting(const YAML::Node& root, int max_depth, size_t max_values) {
  // (node, depth of the containers holding it); a node's children are pushed when it is popped.
  std::vector<std::pair<YAML::Node, int>> stack;
  stack.emplace_back(root, 0);
  size_t visited = 0;
  while (!stack.empty()) {
    auto [node, depth] = std::move(stack.back());
    stack.pop_back();
    if (++visited > max_values) {
      return InvalidArgument("more than " + std::to_string(max_values) +
                             " values (aliases expand to copies of what they name)");
    }
    if (!node.IsMap() && !node.IsSequence()) continue;
    if (depth + 1 > max_depth) {
      return InvalidArgument(NestingLimitMessage(max_depth) + " (line " +
                             std::to_string(node.Mark().line + 1) + ")");
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (node.IsMap()) {
        stack.emplace_back(it->first, depth + 1);
        stack.emplace_back(it->second, depth + 1);
      } else {
        stack.emplace_back(*it, depth + 1);
      }
    }
  }
  return Status::Ok();
}

std::string YamlErrorMessage(const YAML::Exception& e) {
  if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) return NestingLimitMessage();
  return e.msg;
}

}  // namespace orrery::io

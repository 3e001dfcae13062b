// Bounds on YAML documents from outside (scenario files, runtime-env and autoscaler files): how
// deeply maps and sequences nest, and how many values a document expands to through aliases.
//
// yaml-cpp 0.7 guards its own parser's recursion (it throws YAML::DeepRecursion, with the message
// "bad file", near 1000 levels); below that every walker of the tree (ours, yaml-cpp's node
// conversions) recurses once per level, and an alias can repeat a subtree exponentially often
// ("billion laughs"). Loaders call CheckYamlNesting right after YAML::Load and report a
// YAML::DeepRecursion with NestingLimitMessage(), so both say "nesting deeper than 64 levels".
//
// Thread safety: free functions over values; not synchronised.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <string>

#include "core/io/json_input.h"
#include "core/status.h"

namespace orrery::io {

// Most values (scalars, maps, sequences, each alias expansion counted again) a document may
// hold; far above any real scenario, far below what would exhaust memory when expanded.
inline constexpr size_t kMaxYamlValues = 1'000'000;

// InvalidArgument "nesting deeper than N levels (line L)" if maps and sequences nest deeper
// than `max_depth` below `root`, or "more than N values (aliases expand ...)" if walking the
// tree visits more than `max_values` nodes. Iterative (heap, not stack); stops at the first
// violation, so it costs O(min(nodes, max_values)).
Status CheckYamlNesting(const YAML::Node& root, int max_depth = kMaxInputNesting,
                        size_t max_values = kMaxYamlValues);

// What to say for an exception of YAML::Load: NestingLimitMessage() for yaml-cpp's own depth
// guard (YAML::DeepRecursion, whose message is a misleading "bad file"), else e.msg.
std::string YamlErrorMessage(const YAML::Exception& e);

}  // namespace orrery::io

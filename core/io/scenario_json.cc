#include "core/io/scenario_json.h"

#include <nlohmann/json.hpp>

namespace orrery::io {
namespace {

using json = nlohmann::ordered_json;

json Amounts(const ResourceSet& set) {
  json o = json::object();
  set.ForEach([&](std::string_view name, Quantity q) { o[std::string(name)] = q.ToDouble(); });
  return o;
}

}  // namespace

std::string RenderExpandedScenarioJson(const Scenario& s) {
  json doc;
  doc["name"] = s.name;
  doc["seed"] = s.seed;
  doc["driver"] = s.nodes.empty() ? "" : s.nodes[s.driver_node].id;
  doc["report_period_s"] = s.scheduler.report_period_s;
  json nodes = json::array();
  for (const NodeSpec& n : s.nodes) {
    json j;
    j["id"] = n.id;
    j["resources"] = Amounts(n.total);
    if (n.standby) j["standby"] = true;
    nodes.push_back(std::move(j));
  }
  doc["nodes"] = std::move(nodes);
  json groups = json::array();
  for (const PlacementGroupSpec& g : s.placement_groups) {
    json j;
    j["id"] = g.id;
    j["create_s"] = g.create_s;
    j["strategy"] = PlacementStrategyName(g.strategy);
    json bundles = json::array();
    for (const ResourceRequest& b : g.bundles) bundles.push_back(Amounts(b.set()));
    j["bundles"] = std::move(bundles);
    groups.push_back(std::move(j));
  }
  doc["placement_groups"] = std::move(groups);
  json tasks = json::array();
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    const TaskSpec& t = s.tasks[i];
    json j;
    j["id"] = i;
    j["name"] = s.names[t.name];
    j["kind"] = WorkKindName(t.kind);
    j["submit_s"] = t.submit_s;
    j["duration_s"] = t.duration_s;
    j["resources"] = Amounts(s.shapes[t.shape].set());
    const SchedulingStrategy& st = s.strategies[t.strategy];
    j["strategy"] = StrategyTypeName(st.type);
    if (st.type == SchedulingStrategy::Type::kNodeAffinity) {
      j["node"] = st.node;
      j["soft"] = st.soft;
    }
    json args = json::array();
    for (uint32_t a = t.args_begin; a < t.args_begin + t.args_count; ++a) {
      const ArgSpec& arg = s.args[a];
      if (arg.producer >= 0) args.push_back(arg.producer);
    }
    if (!args.empty()) j["args"] = std::move(args);
    if (t.output_bytes > 0) j["output_bytes"] = t.output_bytes;
    if (t.placement_group >= 0) {
      j["placement_group"] = s.placement_groups[t.placement_group].id;
      j["bundle"] = t.bundle;
    }
    if (t.env >= 0) j["runtime_env"] = s.runtime_envs[t.env].id;
    j["max_retries"] = t.max_retries;
    tasks.push_back(std::move(j));
  }
  doc["tasks"] = std::move(tasks);
  return doc.dump(1) + "\n";
}

}  // namespace orrery::io

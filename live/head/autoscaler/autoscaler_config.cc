// The autoscaler config of the live head: the file (read by core/io/autoscaler_config.h, the
// field-reader kit) or a scenario's autoscaler section.
#include "live/head/autoscaler/autoscaler_config.h"

#include <utility>

#include "core/io/autoscaler_config.h"

namespace orrery::live {

StatusOr<LiveAutoscalerConfig> LoadAutoscalerConfig(const std::string& path) {
  auto file = io::LoadAutoscalerFile(path);
  if (!file.ok()) return file.status();
  LiveAutoscalerConfig c;
  c.planner = std::move(file->planner);
  c.period_s = file->period_s;
  c.initial = std::move(file->initial);
  return c;
}

LiveAutoscalerConfig AutoscalerConfigOfScenario(const Scenario& s) {
  LiveAutoscalerConfig c;
  for (const auto& t : s.autoscaler.node_types) {
    autoscaler::NodeTypeConfig tc;
    tc.resources = t.resources;
    tc.labels = t.labels;
    tc.min_workers = t.min_workers;
    tc.max_workers = t.max_workers;
    c.planner.node_types[t.name] = std::move(tc);
  }
  for (const auto& n : s.nodes) {
    if (!n.standby && c.planner.node_types.count(n.type)) ++c.first_index[n.type];
  }
  c.planner.max_workers = s.autoscaler.max_workers;
  c.planner.upscaling_speed = s.autoscaler.upscaling_speed;
  c.planner.idle_timeout_s = s.autoscaler.idle_timeout_s;
  c.period_s = s.autoscaler.period_s;
  return c;
}

}  // namespace orrery::live

#include "live/cli/autoscaler_cli.h"

#include <grpcpp/grpcpp.h>

#include <map>

#include "live/client/client.h"
#include "live/rpc/convert.h"

namespace orrery::live {

StatusOr<v1::AutoscalerStatus> GetAutoscalerStatus(const std::string& head_address,
                                                   const std::string& token,
                                                   std::chrono::milliseconds timeout) {
  return CallHead(head_address, token, timeout, &v1::HeadService::Stub::GetAutoscalerStatus,
                  v1::GetAutoscalerStatusRequest());
}

namespace {
std::string ShapeText(const v1::Resources& r) {
  auto set = FromProto(r, "shape");
  return set.ok() ? set->ToString() : "?";
}
}  // namespace

void PrintAutoscalerStatus(const v1::AutoscalerStatus& s, std::ostream& out) {
  if (!s.enabled()) return;
  std::map<std::string, std::map<std::string, int>> by_state;  // state -> type -> count
  for (const auto& n : s.nodes()) ++by_state[n.state()][n.node_type()];
  out << "\nAutoscaler:\n";
  out << " Active:\n";
  if (by_state["running"].empty()) out << "  (no autoscaled nodes)\n";
  for (const auto& [type, n] : by_state["running"]) {
    out << "  " << n << " " << type << " (max_workers "
        << (s.max_workers().count(type) ? s.max_workers().at(type) : 0) << ")\n";
  }
  out << " Pending:\n";
  if (by_state["pending"].empty() && by_state["terminating"].empty())
    out << "  (no pending nodes)\n";
  for (const auto& n : s.nodes()) {
    if (n.state() == "running") continue;
    out << "  " << n.node_id() << ": " << n.node_type() << ", "
        << (n.state() == "pending" ? "launching" : "terminating") << " (pid " << n.pid() << ", "
        << static_cast<int64_t>(n.launched_s_ago()) << " s ago)\n";
  }
  for (const auto& [type, n] : s.deferred()) {
    out << "  " << n << " " << type << " held back by upscaling_speed\n";
  }
  out << " Infeasible demand:\n";
  if (s.infeasible().empty()) out << "  (none)\n";
  for (const auto& i : s.infeasible()) {
    out << "  " << ShapeText(i.shape()) << ": " << i.count()
        << (i.gang() ? " placement-group bundle(s)" : " pending task(s)")
        << ", no node type can hold it\n";
  }
  out << " Launched " << s.launched() << ", terminated " << s.terminated() << ", peak "
      << s.peak_nodes() << " node(s), " << s.rounds() << " round(s)";
  if (s.waiting_units() > 0) out << ", " << s.waiting_units() << " task(s) waiting for room";
  out << "\n";
  if (!s.last_error().empty()) out << " Last error: " << s.last_error() << "\n";
}

}  // namespace orrery::live

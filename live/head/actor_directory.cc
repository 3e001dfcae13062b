#include "live/head/actor_directory.h"

#include <grpcpp/grpcpp.h>

#include <cctype>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "live/client/client.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"

namespace orrery::live {

namespace {
bool HasRestartsLeft(const v1::ActorInfo& a) {
  return a.max_restarts() < 0 || a.num_restarts() < a.max_restarts();
}
}  // namespace

Status ActorDirectory::Report(v1::ActorInfo info, int64_t now_unix_ms) {
  if (info.actor_id().empty()) return InvalidArgument("actor.actor_id: empty");
  if (info.state() == v1::ACTOR_STATE_UNSPECIFIED) {
    return InvalidArgument("actor.state: unspecified for actor " + info.actor_id());
  }
  Entry& e = actors_[info.actor_id()];
  // A DEAD actor stays dead: a late report of an older transition must not revive it.
  if (e.info.state() == v1::ACTOR_STATE_DEAD && info.state() != v1::ACTOR_STATE_DEAD &&
      e.marked_unix_ms == 0) {
    return Status::Ok();
  }
  info.set_update_unix_ms(now_unix_ms);
  e.info = std::move(info);
  e.marked_unix_ms = 0;
  return Status::Ok();
}

void ActorDirectory::OnNodeDead(const std::string& node, int64_t now_unix_ms) {
  for (auto& [id, e] : actors_) {
    v1::ActorInfo& a = e.info;
    if (a.node_id() != node) continue;
    if (a.state() != v1::ACTOR_STATE_ALIVE && a.state() != v1::ACTOR_STATE_PENDING_CREATION) {
      continue;
    }
    a.set_death_cause("node " + node + " died");
    a.set_state(HasRestartsLeft(a) ? v1::ACTOR_STATE_RESTARTING : v1::ACTOR_STATE_DEAD);
    a.set_update_unix_ms(now_unix_ms);
    e.marked_unix_ms = now_unix_ms;
  }
}

void ActorDirectory::Expire(int64_t now_unix_ms, std::chrono::milliseconds grace) {
  for (auto& [id, e] : actors_) {
    if (e.marked_unix_ms == 0 || e.info.state() != v1::ACTOR_STATE_RESTARTING) continue;
    if (now_unix_ms - e.marked_unix_ms < grace.count()) continue;
    e.info.set_state(v1::ACTOR_STATE_DEAD);
    e.info.set_death_cause(e.info.death_cause() + " and its driver did not restart it");
    e.info.set_update_unix_ms(now_unix_ms);
  }
}

void ActorDirectory::List(v1::ListActorsReply* out) const {
  for (const auto& [id, e] : actors_) *out->add_actors() = e.info;
}

std::map<v1::ActorState, int> ActorDirectory::CountByState() const {
  std::map<v1::ActorState, int> n;
  for (const auto& [id, e] : actors_) ++n[e.info.state()];
  return n;
}

std::string ActorStateText(v1::ActorState s) {
  std::string name = v1::ActorState_Name(s);
  const std::string prefix = "ACTOR_STATE_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

Status ReportActor(const std::string& head_address, const std::string& token,
                   const v1::ActorInfo& info, std::chrono::milliseconds timeout) {
  v1::ReportActorRequest req;
  *req.mutable_actor() = info;
  return CallHead(head_address, token, timeout, &v1::HeadService::Stub::ReportActor, req).status();
}

StatusOr<v1::ListActorsReply> ListActors(const std::string& head_address, const std::string& token,
                                         std::chrono::milliseconds timeout) {
  return CallHead(head_address, token, timeout, &v1::HeadService::Stub::ListActors,
                  v1::ListActorsRequest());
}

int PrintActors(const std::string& head_address, const std::string& token,
                const std::string& format, std::ostream& out, std::ostream& err) {
  auto actors = ListActors(head_address, token);
  if (!actors.ok()) {
    err << "orrery list: " << actors.status().ToString() << "\n";
    return 1;
  }
  if (format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& a : actors->actors()) {
      arr.push_back({{"actor_id", a.actor_id()},
                     {"class_name", a.class_name()},
                     {"state", ActorStateText(a.state())},
                     {"node_id", a.node_id()},
                     {"worker_pid", a.worker_pid()},
                     {"num_restarts", a.num_restarts()},
                     {"max_restarts", a.max_restarts()},
                     {"death_cause", a.death_cause()},
                     {"job_id", a.job_id()},
                     {"driver", a.driver()},
                     {"update_unix_ms", a.update_unix_ms()}});
    }
    out << arr.dump(2) << "\n";
    return 0;
  }
  out << std::left << std::setw(26) << "ACTOR" << std::setw(20) << "CLASS" << std::setw(18)
      << "STATE" << std::setw(16) << "NODE" << std::setw(9) << "RESTARTS"
      << "DEATH CAUSE\n";
  for (const auto& a : actors->actors()) {
    out << std::setw(26) << a.actor_id() << std::setw(20) << a.class_name() << std::setw(18)
        << ActorStateText(a.state()) << std::setw(16) << a.node_id() << std::setw(9)
        << a.num_restarts() << a.death_cause() << "\n";
  }
  return 0;
}

}  // namespace orrery::live

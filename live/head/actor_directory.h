// The actor directory of the live head (`orrery list actors`), and the two client calls that
// read and feed it.
//
// Drivers of the C++ API (live/api/runtime.cc) create actors and report every transition
// (PENDING_CREATION, ALIVE, RESTARTING, DEAD) with HeadService.ReportActor; the directory keeps
// the newest record per actor id. The head adds what a driver cannot tell: when a node dies, an
// actor that was running there becomes RESTARTING if it has restarts left (the driver is expected
// to create it again and report) and DEAD otherwise; if no report about a RESTARTING actor the
// head marked follows within a grace period, its driver is taken to be gone and the actor DEAD.
//
// Thread safety: ActorDirectory is not thread-safe; the head's loop owns it. The client functions
// are blocking calls, safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "core/status.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

class ActorDirectory {
 public:
  // Replaces the record of info.actor_id (InvalidArgument if it is empty, or if the state is
  // unspecified). A report overrides what the head marked (the driver knows better), but once
  // a driver reported DEAD, later reports of other states are ignored. O(log n).
  Status Report(v1::ActorInfo info, int64_t now_unix_ms);
  // Node `node` died: its ALIVE / PENDING_CREATION actors become RESTARTING (restarts left:
  // max_restarts -1 or above num_restarts) or DEAD, with the cause "node <id> died". O(n).
  void OnNodeDead(const std::string& node, int64_t now_unix_ms);
  // RESTARTING actors the head marked more than `grace` ago without a report since: DEAD
  // ("node died and its driver did not restart it"). O(n).
  void Expire(int64_t now_unix_ms, std::chrono::milliseconds grace);
  // Every record, by actor id.
  void List(v1::ListActorsReply* out) const;
  // Number of actors in each state (for metrics and status). O(n).
  std::map<v1::ActorState, int> CountByState() const;

 private:
  struct Entry {
    v1::ActorInfo info;
    int64_t marked_unix_ms = 0;  // > 0: the head set the current state (no report since)
  };
  std::map<std::string, Entry> actors_;  // by actor id
};

// Lower-case state name without the prefix: "alive", "restarting", ...
std::string ActorStateText(v1::ActorState s);

// HeadService.ReportActor / ListActors with the cluster token and a deadline.
Status ReportActor(const std::string& head_address, const std::string& token,
                   const v1::ActorInfo& info,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
StatusOr<v1::ListActorsReply> ListActors(
    const std::string& head_address, const std::string& token,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// `orrery list actors [--format table|json]`: prints the directory; returns the exit code (1 if
// the head cannot be asked). JSON: an array of {actor_id, class_name, state, node_id,
// worker_pid, num_restarts, max_restarts, death_cause, job_id, driver, update_unix_ms}.
int PrintActors(const std::string& head_address, const std::string& token,
                const std::string& format, std::ostream& out, std::ostream& err);

}  // namespace orrery::live

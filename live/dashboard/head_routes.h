// HeadRoutes: the live head's dashboard JSON API (live/dashboard/API.md) and Ray's job routes
// (live/head/jobs/job_http.h), as the route handler and stream handler of the head's dashboard
// server (live/dashboard/http_server.h).
//
// The routes read the head's state on its loop through `run_on_loop` with short closures that
// filter and copy only the rows of the asked page; JSON is built, and files are read, on the
// calling pool thread. The events ring, metrics history and log hub have their own locks and are
// read without the loop. Event streams (GET .../stream) are fed by one pump thread that wakes
// every 250 ms and sends each open stream what is new since its cursor.
//
// Thread safety: Handle and OpenStream may be called from several threads at once.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "live/dashboard/head_state.h"
#include "live/dashboard/log_files.h"
#include "live/dashboard/http_server.h"
#include "live/dashboard/http_types.h"
#include "live/head/jobs/job_http.h"
#include "live/head/log_hub.h"
#include "orrery.grpc.pb.h"

namespace orrery::live::dashboard {

// What the routes read of the head. Every function but run_on_loop and node_rpc is called on
// the head's loop only (inside run_on_loop), and must be quick.
struct HeadSource {
  // Runs `fn` on the head's loop and waits; false if the loop is stopped.
  std::function<bool(const std::function<void()>&)> run_on_loop;
  std::function<void(v1::ClusterView*)> view;  // nodes by id, with pending demand
  // Every task record, oldest first (by first report).
  std::function<void(const std::function<void(const v1::TaskRecord&)>&)> for_each_task;
  std::function<void(v1::ListActorsReply*)> actors;
  std::function<void(v1::ListPlacementGroupsReply*)> groups;
  std::function<void(v1::AutoscalerStatus*)> autoscaler;  // enabled=false when none
  std::function<std::vector<v1::JobInfo>()> jobs;           // empty before the store opens
  // Asks node `address` for its detail or log files (a blocking gRPC call with a deadline, off
  // the loop); from a pool thread.
  std::function<Status(const std::string& address, const v1::NodeDetailRequest&,
                       v1::NodeDetailReply*)>
      node_detail;
  std::function<Status(const std::string& address, const v1::ReadNodeLogRequest&,
                       v1::ReadNodeLogReply*)>
      read_node_log;
  // The head daemon's own log: its directory and file name (both empty: none). Listed and read
  // under the node id "_head".
  std::string head_log_dir, head_log_name;
  std::string version;       // the build's version
  std::string head_address;  // HOST:PORT of the head's gRPC service
  bool read_only = false;
};

class HeadRoutes {
 public:
  // REQUIRES: `jobs` (may be null: no jobs routes), `events`, `metrics` and `logs` outlive the
  // routes; Stop before they go.
  HeadRoutes(HeadSource source, JobRoutes* jobs, EventRing* events, MetricsHistory* metrics,
             LogHub* logs);
  ~HeadRoutes();

  http::Response Handle(const http::Request& req);
  // HttpServerOptions::stream: /api/events/stream, /api/logs/stream, /api/jobs/{id}/logs/stream.
  std::optional<http::Response> OpenStream(const http::Request& req,
                                           std::shared_ptr<http::EventSink> sink);
  // Ends the pump (open streams are closed by the server). Idempotent.
  void Stop();

 private:
  struct Stream;

  http::Response Mode();
  http::Response Overview();
  http::Response Nodes(const http::Request& req);
  http::Response Node(const std::string& id);
  http::Response Tasks(const http::Request& req);
  http::Response Actors(const http::Request& req);
  http::Response PlacementGroups(const http::Request& req);
  http::Response JobList(const http::Request& req);
  http::Response Events(const http::Request& req);
  http::Response Metrics(const http::Request& req);
  http::Response LogFiles(const http::Request& req);
  http::Response LogFile(const http::Request& req);

  void Pump();
  bool Feed(Stream& s);

  const HeadSource source_;
  JobRoutes* const jobs_;
  EventRing* const events_;
  MetricsHistory* const metrics_;
  LogHub* const logs_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::shared_ptr<Stream>> streams_;  // guarded by mu_
  std::thread pump_;
};

}  // namespace orrery::live::dashboard

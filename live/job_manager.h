// JobManager: the head's jobs (Ray's Jobs API semantics). A job is an entrypoint (a shell command
// line) run as a driver process on a node; its record (status, message, exit code, times) lives
// in the JobStore and survives a head restart, its output in a log file next to the store.
//
// Lifecycle: Submit records the job PENDING and starts a runner thread. The runner asks a node
// for a worker lease with the entrypoint resources (the head node first, so a driver without
// resources runs there; the node's policy may spill it elsewhere), then runs
// `/bin/sh -c ENTRYPOINT` there with NodeService.RunTask (job_id, name "driver", the runtime env,
// and ORRERY_ADDRESS / ORRERY_TOKEN / ORRERY_JOB_ID / ORRERY_JOB_RUNTIME_ENV in its environment, so
// the driver's tasks and actors inherit the job's runtime env). The output stream is appended to
// the job's log and pushed to `logs --follow` subscribers. Outcome:
//   exit 0 -> SUCCEEDED; exit N -> FAILED "entrypoint exited with code N, last output: ...";
//   lease canceled (e.g. runtime env setup failed) -> FAILED with the node's reason;
//   Stop -> the runner cancels its call (the node kills the driver's process group) -> STOPPED;
//   the driver's node dies -> FAILED "the driver's node X died".
// Jobs found PENDING/RUNNING at load (the previous head went away) become FAILED.
//
// Threading (STYLE rule 13): the head's loop owns the job table; every method except Create and
// Shutdown must be called on that loop. Runner threads block in their RPCs (never the loop, never
// a gRPC thread) and post what happens to the loop. Store writes go to the store's own thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "live/event_loop.h"
#include "live/job_store.h"
#include "live/rpc_util.h"
#include "orrery.pb.h"

namespace orrery::live {

struct JobManagerOptions {
  std::string store_path;    // the SQLite file; empty: in memory (records die with the head)
  std::string log_dir;       // REQUIRES: non-empty; <submission id>.log per job (created)
  std::string head_address;  // HOST:PORT given to drivers as ORRERY_ADDRESS
  std::string token;         // the cluster token (RPCs, and ORRERY_TOKEN of drivers)
};

// "PENDING", "RUNNING", ... (Ray's JobStatus names).
std::string JobStatusName(v1::JobStatus s);
bool IsTerminal(v1::JobStatus s);
// A job as Ray's job details JSON: submission_id, status, message, entrypoint, start_time,
// end_time (unix ms; null until terminal), runtime_env (object), metadata, driver_node_id,
// driver_exit_code, entrypoint_num_cpus/gpus, entrypoint_resources, type "SUBMISSION".
nlohmann::json JobInfoToJson(const v1::JobInfo& job);
// Checks a submission request (entrypoint non-empty, id characters, runtime env a JSON object,
// resources a valid request). InvalidArgument naming the field.
Status ValidateSubmitJob(const v1::SubmitJobRequest& req);

class JobManager {
 public:
  using LogWriter = StreamWriter<v1::JobLogsChunk>;

  // Opens the store and loads its jobs (PENDING/RUNNING ones become FAILED, and are written
  // back). `entry_address` runs on `loop` and returns the NodeService address of the node to
  // ask first for a driver's lease (the head node if alive), empty if no node is alive.
  // `task_ended` runs on `loop` and says whether the cluster's task table shows a task as
  // ended (its process exited): a stopped job becomes STOPPED once its driver is gone (at most
  // kStopWait later).
  // REQUIRES: `loop` outlives the manager; called from any thread but the loop's.
  static StatusOr<std::unique_ptr<JobManager>> Create(
      JobManagerOptions options, EventLoop* loop, std::function<std::string()> entry_address,
      std::function<bool(const std::string& task_id)> task_ended);
  // REQUIRES: Shutdown() was called.
  ~JobManager();

  // ---- loop thread only ----
  // The new job's submission id. AlreadyExists for a known id; InvalidArgument naming the field.
  StatusOr<std::string> Submit(const v1::SubmitJobRequest& req);
  StatusOr<v1::JobInfo> Get(const std::string& id) const;
  std::vector<v1::JobInfo> List() const;  // by start time, then id
  // True if a stop was requested now (the job becomes STOPPED once the driver is gone); false if
  // the job is already terminal. NotFound for an unknown id.
  StatusOr<bool> Stop(const std::string& id);
  // FailedPrecondition unless terminal. Removes the record and the log.
  Status Delete(const std::string& id);
  // The log so far (all of it). NotFound for an unknown id.
  StatusOr<std::string> ReadLog(const std::string& id) const;
  // Streams the log so far to `w`; with `follow`, then each new chunk until the job is
  // terminal. Closes `w` with NOT_FOUND for an unknown id.
  void StreamLog(const std::string& id, bool follow, std::shared_ptr<LogWriter> w);
  // A node (NodeService at `address`) is dead: jobs whose driver runs there fail; a driver's
  // lease request held there is asked again at the entry node.
  void OnNodeDead(const std::string& node_id, const std::string& address);

  // ---- controlling thread, before the loop stops ----
  // Cancels every runner's call (their jobs stay RUNNING in the store: the next head marks them
  // FAILED), closes log followers, joins the runners and flushes the store. Idempotent.
  void Shutdown();

 private:
  struct Run;
  struct Job {
    v1::JobInfo info;
    uint64_t log_bytes = 0;  // bytes of the log file that the loop has seen (posted chunks)
    std::shared_ptr<Run> run;
    std::vector<std::shared_ptr<LogWriter>> followers;
  };

  JobManager(JobManagerOptions options, EventLoop* loop, std::unique_ptr<JobStore> store,
             std::function<std::string()> entry_address,
             std::function<bool(const std::string&)> task_ended);
  std::string LogPath(const std::string& id) const;
  void Persist(const Job& j) { store_->Put(j.info); }
  // Runner thread body, and what it posts back.
  void RunDriver(std::shared_ptr<Run> run, v1::JobInfo info);
  void OnRunning(const std::string& id, const std::string& node_id);
  void OnPid(const std::string& id, int pid);
  void OnOutput(const std::string& id, std::string chunk);
  void OnFinished(const std::string& id, v1::JobStatus status, const std::string& message,
                  int exit_code);
  std::string GenerateId() const;

  const JobManagerOptions options_;
  EventLoop* const loop_;
  std::unique_ptr<JobStore> store_;
  const std::function<std::string()> entry_address_;
  const std::function<bool(const std::string&)> task_ended_;
  // Owned by the loop.
  std::map<std::string, Job> jobs_;
  bool shutting_down_ = false;
  // Runner threads (joined at Shutdown; finished ones are joined as new jobs start). Guarded by
  // threads_mu_ since Shutdown runs on the controlling thread.
  std::mutex threads_mu_;
  std::vector<std::pair<std::shared_ptr<Run>, std::thread>> threads_;
  bool shut_down_ = false;
};

}  // namespace orrery::live

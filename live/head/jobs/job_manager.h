// JobManager: the head's jobs (Ray's Jobs API semantics). A job is an entrypoint (a shell command
// line) run as a driver process on a node; its record (status, message, exit code, times) lives
// in the JobStore and survives a head restart, its output in a log file next to the store.
//
// Lifecycle: Submit records the job PENDING. At most max_running_jobs drivers run at once
// (leasing or running); later jobs wait PENDING with the message "waiting: N jobs running
// (--max-running-jobs N)" and start first in, first out as others end. A started job is a
// DriverRun (live/head/jobs/job_driver.h): event-driven on the head's loop, no thread of its own. Its
// output goes to the job's JobLog (live/head/jobs/job_log.h: capped and rotated, closed once the job ends).
// Outcome:
//   exit 0 -> SUCCEEDED; exit N -> FAILED "entrypoint exited with code N, last output: ...";
//   lease canceled (e.g. runtime env setup failed) -> FAILED with the node's reason;
//   Stop -> the run cancels its call (the node kills the driver's process group) -> STOPPED;
//   a waiting job is STOPPED at once; the driver's node dies -> FAILED "the driver's node X died".
// Jobs found PENDING/RUNNING at load (the previous head went away): when this head took the
// cluster over (--- head fault tolerance: `resume`, the head store restored its nodes), a
// RUNNING job's driver is reattached (DriverRun::Resume: its output continues the log from the
// byte it stopped at) and a PENDING one waits for a driver slot again; otherwise, or for a
// RUNNING job whose driver's task is not known, they become FAILED.
//
// Threading (STYLE rule 13): the head's loop owns the job table; every method except Create and
// Shutdown must be called on that loop. Runs post what happens to the loop; output is written
// by the gRPC thread that reads it, into the log (thread-safe), which readers read in bounded
// chunks off the loop. Store writes go to the store's own thread.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "live/rpc/event_loop.h"
#include "live/head/jobs/job_driver.h"
#include "live/head/jobs/job_log.h"
#include "live/head/jobs/job_store.h"
#include "live/rpc/rpc_util.h"
#include "orrery.pb.h"

namespace orrery::live {

struct JobManagerOptions {
  std::string store_path;    // the SQLite file; empty: in memory (records die with the head)
  std::string log_dir;       // REQUIRES: non-empty; <submission id>.log per job (created)
  std::string head_address;  // HOST:PORT given to drivers as ORRERY_ADDRESS
  std::string token;         // the cluster token (RPCs, and ORRERY_TOKEN of drivers)
  JobLogOptions log;         // per-job log cap and rotation [100 MiB x (1 + 2 backups)]
  // --- head fault tolerance: the head took over a running cluster (see the header comment).
  bool resume = false;
  // Drivers leasing or running at once; later jobs wait PENDING, FIFO. REQUIRES: > 0.
  // [16]: a driver is a process on a node plus its tasks; on a 2-core head machine 16 drivers
  // already share the CPUs 8 ways, and the limit bounds the head's streams and open files.
  int max_running_jobs = 16;
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
  // `node_address` runs on `loop`: an alive node's NodeService address, empty if unknown/dead.
  static StatusOr<std::unique_ptr<JobManager>> Create(
      JobManagerOptions options, EventLoop* loop, std::function<std::string()> entry_address,
      std::function<bool(const std::string& task_id)> task_ended,
      std::function<std::string(const std::string& node_id)> node_address);
  // --- head fault tolerance: reattaches the drivers of the RUNNING jobs found at load and starts
  // the PENDING ones (options.resume). REQUIRES: on the loop, once, after Create.
  void ResumeJobs();
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
  // The job's log (read it off the loop, in bounded chunks). NotFound for an unknown id.
  StatusOr<std::shared_ptr<JobLog>> LogOf(const std::string& id) const;
  // Streams the log to `w` in chunks of at most 64 KiB, one write in flight (`w`'s
  // SetOnDrained is taken): from the oldest kept byte, or its last `tail_lines` lines; with
  // `follow`, then what is appended until the job ends. Closes `w` with NOT_FOUND for an
  // unknown id.
  void StreamLog(const v1::JobLogsRequest& req, std::shared_ptr<LogWriter> w);
  // Jobs waiting for a free driver slot (max_running_jobs), in start order.
  size_t num_waiting() const { return waiting_.size(); }
  // A node (NodeService at `address`) is dead: jobs whose driver runs there fail; a driver's
  // lease request held there is asked again at the entry node.
  void OnNodeDead(const std::string& node_id, const std::string& address);

  // ---- controlling thread, before the loop stops ----
  // Cancels every run's call and asks the nodes to end the drivers (their jobs stay RUNNING in
  // the store: the next head marks them FAILED), closes the logs (followers end), waits (at
  // most 5 s) until no call is in flight and flushes the store. Idempotent.
  void Shutdown();

 private:
  struct Job {
    v1::JobInfo info;
    std::shared_ptr<JobLog> log;
    std::shared_ptr<DriverRun> run;  // set while leasing or running
  };

  JobManager(JobManagerOptions options, EventLoop* loop, std::unique_ptr<JobStore> store,
             std::function<std::string()> entry_address,
             std::function<bool(const std::string&)> task_ended,
             std::function<std::string(const std::string&)> node_address);
  std::string LogPath(const std::string& id) const;
  void Persist(const Job& j) { store_->Put(j.info); }
  // Starts waiting jobs while fewer than max_running_jobs run.
  void StartWaiting();
  void StartRun(const std::string& id);
  // What a run posts back.
  void OnRunning(const std::string& id, const std::string& node_id, const std::string& task_id);
  DriverEvents EventsOf(const std::string& id);
  void OnPid(const std::string& id, int pid);
  void OnFinished(const std::string& id, v1::JobStatus status, const std::string& message,
                  int exit_code);
  std::string GenerateId() const;

  const JobManagerOptions options_;
  EventLoop* const loop_;
  std::unique_ptr<JobStore> store_;
  const std::shared_ptr<DriverContext> drivers_;
  // Owned by the loop.
  std::map<std::string, Job> jobs_;
  std::deque<std::string> waiting_;  // PENDING jobs without a run, FIFO
  int running_ = 0;                  // jobs with a run
  std::vector<std::string> to_resume_;  // RUNNING at load, resumable (ResumeJobs)
  bool shutting_down_ = false;
  std::atomic<bool> shut_down_{false};
};

}  // namespace orrery::live

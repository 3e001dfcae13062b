#include "live/head/jobs/job_manager.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "live/rpc/convert.h"
#include "live/common/runtime_env.h"
#include "live/common/session.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

void Log(const std::string& line) { std::cerr << "[head] " << line << std::endl; }

int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr size_t kChunkBytes = 64 * 1024;  // a log stream's chunk
constexpr size_t kTailBytes = 8 << 20;     // a tail looks at most this far back

}  // namespace

// ---- shared helpers ----------------------------------------------------------------------------

std::string JobStatusName(v1::JobStatus s) {
  std::string n = v1::JobStatus_Name(s);
  const std::string prefix = "JOB_STATUS_";
  return n.rfind(prefix, 0) == 0 ? n.substr(prefix.size()) : n;
}

bool IsTerminal(v1::JobStatus s) {
  return s == v1::JOB_STATUS_SUCCEEDED || s == v1::JOB_STATUS_FAILED || s == v1::JOB_STATUS_STOPPED;
}

json JobInfoToJson(const v1::JobInfo& job) {
  json runtime_env = json::object();
  if (!job.runtime_env_json().empty()) {
    runtime_env = json::parse(job.runtime_env_json(), nullptr, false);
    if (runtime_env.is_discarded()) runtime_env = job.runtime_env_json();
  }
  json cpus = nullptr, gpus = nullptr, other = json::object();
  if (auto set = FromProto(job.entrypoint_resources(), "entrypoint_resources"); set.ok()) {
    set->ForEach([&](std::string_view k, Quantity q) {
      if (k == "CPU") {
        cpus = q.ToDouble();
      } else if (k == "GPU") {
        gpus = q.ToDouble();
      } else {
        other[std::string(k)] = q.ToDouble();
      }
    });
  }
  const bool terminal = IsTerminal(job.status());
  return json{
      {"type", "SUBMISSION"},
      {"submission_id", job.submission_id()},
      {"job_id", job.submission_id()},
      {"status", JobStatusName(job.status())},
      {"message", job.message()},
      {"entrypoint", job.entrypoint()},
      {"start_time", job.start_unix_ms()},
      {"end_time", terminal ? json(job.end_unix_ms()) : json(nullptr)},
      {"runtime_env", runtime_env},
      {"metadata",
       json(std::map<std::string, std::string>(job.metadata().begin(), job.metadata().end()))},
      {"driver_node_id", job.driver_node_id().empty() ? json(nullptr) : json(job.driver_node_id())},
      {"driver_pid", job.driver_pid() > 0 ? json(job.driver_pid()) : json(nullptr)},
      {"driver_exit_code",
       terminal && job.status() != v1::JOB_STATUS_STOPPED && job.driver_pid() > 0
           ? json(job.exit_code())
           : json(nullptr)},
      {"entrypoint_num_cpus", cpus},
      {"entrypoint_num_gpus", gpus},
      {"entrypoint_resources", other.empty() ? json(nullptr) : other},
  };
}

Status ValidateSubmitJob(const v1::SubmitJobRequest& req) {
  // Size caps (issue 12.5): every field below is copied into the head's log, the job store and
  // each status reply, so none may be large. README "Jobs" lists them.
  constexpr size_t kMaxEntrypointBytes = 64 << 10;
  constexpr size_t kMaxRuntimeEnvBytes = 64 << 10;
  constexpr size_t kMaxMetadataBytes = 16 << 10;  // keys and values together
  constexpr size_t kMaxMetadataKeyBytes = 256;
  constexpr size_t kMaxMetadataValueBytes = 4 << 10;
  const auto too_big = [](const std::string& field, size_t size, size_t limit) {
    return InvalidArgument(field + ": " + std::to_string(size) + " bytes, more than the limit of " +
                           std::to_string(limit) + " bytes");
  };
  if (req.entrypoint().size() > kMaxEntrypointBytes) {
    return too_big("entrypoint", req.entrypoint().size(), kMaxEntrypointBytes);
  }
  if (req.runtime_env_json().size() > kMaxRuntimeEnvBytes) {
    return too_big("runtime_env", req.runtime_env_json().size(), kMaxRuntimeEnvBytes);
  }
  size_t metadata_bytes = 0;
  for (const auto& [k, v] : req.metadata()) {
    if (k.size() > kMaxMetadataKeyBytes) {
      return too_big("metadata key '" + k.substr(0, 32) + "...'", k.size(), kMaxMetadataKeyBytes);
    }
    if (v.size() > kMaxMetadataValueBytes) {
      return too_big("metadata." + k, v.size(), kMaxMetadataValueBytes);
    }
    metadata_bytes += k.size() + v.size();
  }
  if (metadata_bytes > kMaxMetadataBytes) {
    return too_big("metadata (keys and values together)", metadata_bytes, kMaxMetadataBytes);
  }
  if (req.entrypoint().find_first_not_of(" \t\n") == std::string::npos) {
    return InvalidArgument("entrypoint: empty (expected a shell command line)");
  }
  const std::string& id = req.submission_id();
  if (!id.empty()) {
    if (id.size() > 128 || id[0] == '.' || !std::all_of(id.begin(), id.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        })) {
      return InvalidArgument("submission_id: '" + id +
                             "': expected 1-128 characters of A-Z a-z 0-9 _ - . (not starting "
                             "with '.')");
    }
  }
  if (!req.runtime_env_json().empty()) {  // every field checked (live/common/runtime_env.h)
    auto env = ParseRuntimeEnvJson(req.runtime_env_json(), "runtime_env");
    if (!env.ok()) return env.status();
    // The head cannot read the submitter's disk: a working_dir arrives as an uploaded package.
    if (!env->working_dir.empty() && !IsPackageUri(env->working_dir)) {
      return InvalidArgument("runtime_env.working_dir: '" + env->working_dir +
                             "': expected a package URI (pkg://<sha256>.pkg) uploaded with "
                             "HeadService.UploadPackage; `orrery job submit --working-dir` "
                             "uploads local directories");
    }
  }
  if (auto r = RequestFromProto(req.entrypoint_resources(), "entrypoint_resources"); !r.ok()) {
    return r.status();
  }
  for (const auto& [k, v] : req.metadata()) {
    if (k.empty()) return InvalidArgument("metadata: empty key");
  }
  return Status::Ok();
}

// ---- manager
// -------------------------------------------------------------------------------------

StatusOr<std::unique_ptr<JobManager>> JobManager::Create(
    JobManagerOptions options, EventLoop* loop, std::function<std::string()> entry_address,
    std::function<bool(const std::string&)> task_ended,
    std::function<std::string(const std::string&)> node_address) {
  if (options.log_dir.empty()) return InvalidArgument("log_dir: empty");
  std::error_code ec;
  fs::create_directories(options.log_dir, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable,
                  "cannot create the job log dir " + options.log_dir + ": " + ec.message());
  }
  if (!options.store_path.empty()) {
    fs::create_directories(fs::path(options.store_path).parent_path(), ec);
  }
  auto store = JobStore::Open(options.store_path);
  if (!store.ok()) return store.status();
  auto jobs = (*store)->LoadAll();
  if (!jobs.ok()) return jobs.status();
  std::unique_ptr<JobManager> m(new JobManager(std::move(options), loop, std::move(*store),
                                               std::move(entry_address), std::move(task_ended),
                                               std::move(node_address)));
  // Not on the loop yet: nobody else can see jobs_ before Create returns.
  for (auto& info : *jobs) {
    const std::string& id = info.submission_id();
    const bool resume = m->options_.resume && !IsTerminal(info.status());
    if (resume && info.status() == v1::JOB_STATUS_RUNNING && !info.driver_task_id().empty() &&
        !info.driver_node_id().empty()) {
      m->to_resume_.push_back(id);  // --- head fault tolerance: its driver is reattached
    } else if (resume && info.status() == v1::JOB_STATUS_PENDING) {
      // Its driver never started (a lease granted to the dead head goes back unused): it
      // waits for a slot again, in submission order.
      info.clear_driver_node_id();
      info.clear_driver_task_id();
      info.set_message("waiting for the driver's lease (the head restarted)");
      m->store_->Put(info);
      m->waiting_.push_back(id);
    } else if (!IsTerminal(info.status())) {
      info.set_status(v1::JOB_STATUS_FAILED);
      info.set_message("the head restarted while the job was running");
      info.set_end_unix_ms(UnixMs());
      m->store_->Put(info);
    }
    Job j;
    j.info = info;
    j.log = std::make_shared<JobLog>(m->LogPath(id), m->options_.log);
    if (IsTerminal(info.status())) j.log->Close();  // read only
    m->jobs_.emplace(id, std::move(j));
  }
  std::stable_sort(m->waiting_.begin(), m->waiting_.end(), [&](const auto& a, const auto& b) {
    return m->jobs_.at(a).info.start_unix_ms() < m->jobs_.at(b).info.start_unix_ms();
  });
  if (!m->jobs_.empty()) Log("job store: " + std::to_string(m->jobs_.size()) + " job(s) loaded");
  return m;
}

JobManager::JobManager(JobManagerOptions options, EventLoop* loop, std::unique_ptr<JobStore> store,
                       std::function<std::string()> entry_address,
                       std::function<bool(const std::string&)> task_ended,
                       std::function<std::string(const std::string&)> node_address)
    : options_(std::move(options)),
      loop_(loop),
      store_(std::move(store)),
      drivers_(std::make_shared<DriverContext>()) {
  drivers_->loop = loop;
  drivers_->head_address = options_.head_address;
  drivers_->token = options_.token;
  drivers_->entry_address = std::move(entry_address);
  drivers_->task_ended = std::move(task_ended);
  drivers_->node_address = std::move(node_address);
}

void JobManager::ResumeJobs() {
  for (const std::string& id : to_resume_) {
    Job& j = jobs_.at(id);
    ++running_;
    Log("job " + id + ": reattaching to its driver (task " + j.info.driver_task_id() + " on " +
        j.info.driver_node_id() + ") from output byte " + std::to_string(j.log->source_offset()));
    j.run = DriverRun::Resume(drivers_, j.info, j.log, EventsOf(id));
  }
  to_resume_.clear();
  StartWaiting();
}

DriverEvents JobManager::EventsOf(const std::string& id) {
  DriverEvents ev;
  ev.on_running = [this, id](const std::string& node, const std::string& task) {
    OnRunning(id, node, task);
  };
  ev.on_pid = [this, id](int pid) { OnPid(id, pid); };
  ev.on_finished = [this, id](v1::JobStatus st, const std::string& msg, int code) {
    OnFinished(id, st, msg, code);
  };
  return ev;
}

JobManager::~JobManager() { Shutdown(); }

std::string JobManager::LogPath(const std::string& id) const {
  return (fs::path(options_.log_dir) / (id + ".log")).string();
}

std::string JobManager::GenerateId() const {
  for (;;) {
    auto t = GenerateToken();
    std::string id = "orrerysubmit_" + (t.ok() ? t->substr(0, 16) : std::to_string(UnixMs()));
    if (jobs_.count(id) == 0) return id;
  }
}

StatusOr<std::string> JobManager::Submit(const v1::SubmitJobRequest& req) {
  ORRERY_RETURN_IF_ERROR(ValidateSubmitJob(req));
  if (shutting_down_) return Status(StatusCode::kUnavailable, "the head is stopping");
  const std::string id = req.submission_id().empty() ? GenerateId() : req.submission_id();
  if (jobs_.count(id) != 0) {
    return AlreadyExists("submission_id: a job with submission id '" + id + "' already exists");
  }
  Job& j = jobs_[id];
  v1::JobInfo& info = j.info;
  info.set_submission_id(id);
  info.set_entrypoint(req.entrypoint());
  info.set_runtime_env_json(req.runtime_env_json());
  *info.mutable_entrypoint_resources() = req.entrypoint_resources();
  *info.mutable_metadata() = req.metadata();
  info.set_status(v1::JOB_STATUS_PENDING);
  info.set_message("waiting for the driver's lease");
  info.set_start_unix_ms(UnixMs());
  // A fresh log (a deleted job's id may come back).
  JobLog::RemoveFiles(LogPath(id), options_.log.backups);
  j.log = std::make_shared<JobLog>(LogPath(id), options_.log);
  Log("job " + id + " submitted: " + req.entrypoint());
  waiting_.push_back(id);
  StartWaiting();
  if (!j.run) {
    const std::string n = std::to_string(options_.max_running_jobs);
    info.set_message("waiting: " + std::to_string(running_) + " jobs running (--max-running-jobs " +
                     n + ")");
  }
  Persist(j);
  return id;
}

void JobManager::StartWaiting() {
  while (running_ < options_.max_running_jobs && !waiting_.empty() && !shutting_down_) {
    const std::string id = waiting_.front();
    waiting_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end() || IsTerminal(it->second.info.status()) || it->second.run) continue;
    StartRun(id);
  }
}

void JobManager::StartRun(const std::string& id) {
  Job& j = jobs_.at(id);
  ++running_;
  if (j.info.message().rfind("waiting: ", 0) == 0) {
    j.info.set_message("waiting for the driver's lease");
    Persist(j);
  }
  j.run = DriverRun::Start(drivers_, j.info, j.log, EventsOf(id));
}

StatusOr<v1::JobInfo> JobManager::Get(const std::string& id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job with submission id '" + id + "'");
  return it->second.info;
}

std::vector<v1::JobInfo> JobManager::List() const {
  std::vector<v1::JobInfo> out;
  for (const auto& [id, j] : jobs_) out.push_back(j.info);  // by id
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.start_unix_ms() < b.start_unix_ms();
  });
  return out;
}

StatusOr<bool> JobManager::Stop(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job with submission id '" + id + "'");
  Job& j = it->second;
  if (IsTerminal(j.info.status())) return false;
  Log("job " + id + ": stop requested");
  if (!j.run) {  // waiting for a slot: nothing runs yet
    std::erase(waiting_, id);
    OnFinished(id, v1::JOB_STATUS_STOPPED, "stopped by the user", 0);
    return true;
  }
  j.run->Cancel(v1::JOB_STATUS_STOPPED, "stopped by the user");
  return true;
}

Status JobManager::Delete(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job with submission id '" + id + "'");
  if (!IsTerminal(it->second.info.status())) {
    return FailedPrecondition("job '" + id + "' is " + JobStatusName(it->second.info.status()) +
                              ": only a finished job (SUCCEEDED, FAILED or STOPPED) can be "
                              "deleted; stop it first");
  }
  it->second.log->Remove();
  jobs_.erase(it);
  store_->Delete(id);
  Log("job " + id + " deleted");
  return Status::Ok();
}

StatusOr<std::shared_ptr<JobLog>> JobManager::LogOf(const std::string& id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job with submission id '" + id + "'");
  return it->second.log;
}

namespace {

// Feeds one JobLogs stream from a job's log: one chunk written at a time; at the end of the log
// it waits for more (follow) or closes. Owned by the writer's drained callback and the log's
// waiter; holds the writer weakly (gRPC owns it until the call is done).
class LogPump : public std::enable_shared_from_this<LogPump> {
 public:
  LogPump(std::shared_ptr<JobLog> log, std::weak_ptr<JobManager::LogWriter> w, uint64_t offset,
          bool follow)
      : log_(std::move(log)), w_(std::move(w)), offset_(offset), follow_(follow) {}

  // Writes the next chunk, or waits for one, or closes the stream. Called again by the writer
  // once the chunk is written, or by the log once it grows: one chunk in flight at a time.
  void Next() {
    auto w = w_.lock();
    if (!w || w->done()) return;
    uint64_t from = 0;
    StatusOr<JobLog::Range> r = JobLog::Range{};
    {
      std::lock_guard<std::mutex> l(mu_);
      from = offset_;
      r = log_->Read(offset_, kChunkBytes);
      if (r.ok()) offset_ = r->offset + r->data.size();
    }
    // Not under mu_: a write may complete (and call Next) at once, and so may Wait.
    if (!r.ok()) return w->Close(ToGrpc(r.status()));
    if (!r->data.empty() || r->offset > from) {
      v1::JobLogsChunk c;
      if (r->offset > from) {
        c.set_data("[orrery: " + std::to_string(r->offset - from) +
                   " bytes of this log were rotated away before they were read]\n");
      }
      c.mutable_data()->append(r->data);
      return w->Push(std::move(c));
    }
    if (!follow_ || r->closed) return w->Close(grpc::Status::OK);
    log_->Wait(r->end_offset, [self = shared_from_this()] { self->Next(); });
  }

 private:
  const std::shared_ptr<JobLog> log_;
  const std::weak_ptr<JobManager::LogWriter> w_;
  std::mutex mu_;
  uint64_t offset_;  // guarded by mu_
  const bool follow_;
};

}  // namespace

void JobManager::StreamLog(const v1::JobLogsRequest& req, std::shared_ptr<LogWriter> w) {
  auto log = LogOf(req.submission_id());
  if (!log.ok()) return w->Close(ToGrpc(log.status()));
  uint64_t offset = 0;
  if (req.tail_lines() > 0) {
    auto t = (*log)->Tail(req.tail_lines(), kTailBytes);
    if (!t.ok()) return w->Close(ToGrpc(t.status()));
    offset = t->offset;
  }
  auto pump = std::make_shared<LogPump>(*log, w, offset, req.follow() && !shutting_down_);
  w->SetOnDrained([pump] { pump->Next(); });
  pump->Next();
}

void JobManager::OnNodeDead(const std::string& node_id, const std::string& address) {
  for (auto& [id, j] : jobs_) {
    if (!j.run || IsTerminal(j.info.status())) continue;
    if (j.info.driver_node_id() == node_id) {
      Log("job " + id + ": the driver's node " + node_id + " died");
      j.run->Cancel(v1::JOB_STATUS_FAILED, "the driver's node " + node_id + " died");
    } else {
      j.run->Kick(address);  // a lease request held there: ask elsewhere
    }
  }
}

void JobManager::Shutdown() {
  if (shut_down_.exchange(true)) return;
  loop_->RunSync([this] {
    shutting_down_ = true;
    drivers_->stopping = true;
    for (auto& [id, j] : jobs_) {
      if (j.run) j.run->Cancel(v1::JOB_STATUS_UNSPECIFIED, "the head is stopping");
      j.log->Close();  // followers end
    }
  });
  if (!drivers_->WaitIdle(std::chrono::seconds(5))) Log("calls of job drivers still in flight");
  store_->Flush();
}

// ---- loop side of a run
// --------------------------------------------------------------------------

void JobManager::OnRunning(const std::string& id, const std::string& node_id,
                           const std::string& task_id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || shutting_down_ || IsTerminal(it->second.info.status())) return;
  it->second.info.set_status(v1::JOB_STATUS_RUNNING);
  it->second.info.set_driver_node_id(node_id);
  it->second.info.set_driver_task_id(task_id);
  it->second.info.set_message("the driver runs on node " + node_id);
  Persist(it->second);
  Log("job " + id + " is running on " + node_id);
}

void JobManager::OnPid(const std::string& id, int pid) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || shutting_down_) return;
  it->second.info.set_driver_pid(pid);
  Persist(it->second);
}

void JobManager::OnFinished(const std::string& id, v1::JobStatus status, const std::string& message,
                            int exit_code) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || shutting_down_) return;
  Job& j = it->second;
  if (j.run) {
    j.run = nullptr;
    --running_;
  }
  j.log->Close();  // nothing is written once the job ended
  StartWaiting();
  if (IsTerminal(j.info.status())) return;
  j.info.set_status(status);
  j.info.set_message(message);
  j.info.set_exit_code(exit_code);
  j.info.set_end_unix_ms(UnixMs());
  Persist(j);
  Log("job " + id + " " + JobStatusName(status) + ": " + message);
}

}  // namespace orrery::live

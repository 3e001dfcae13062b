#include "live/job_manager.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "live/convert.h"
#include "live/runtime_env.h"
#include "live/session.h"
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

// The last `n` lines of `text` (without a trailing newline).
std::string LastLines(const std::string& text, int n) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  size_t pos = t.size();
  for (int i = 0; i < n && pos > 0; ++i) {
    const size_t nl = t.rfind('\n', pos - 1);
    if (nl == std::string::npos) return t;
    pos = nl;
    if (i == n - 1) return t.substr(nl + 1);
  }
  return t.substr(pos == 0 ? 0 : pos + 1);
}

constexpr size_t kTailBytes = 4096;        // output kept for the failure message
constexpr size_t kChunkBytes = 64 * 1024;  // log backlog pushed in chunks of this size
// How long a stopped job waits for its driver to be gone (the node's grace period is 3 s).
constexpr milliseconds kStopWait{10000};

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
  if (!req.runtime_env_json().empty()) {  // every field checked (live/runtime_env.h)
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

// ---- one driver run
// ------------------------------------------------------------------------------

// What the loop and the runner thread share about one run: the call in flight (so Stop can
// cancel it) and why it was canceled.
struct JobManager::Run {
  std::mutex mu;
  grpc::ClientContext* ctx = nullptr;  // guarded by mu
  bool canceled = false;
  // The job's status after a cancellation: STOPPED (user), FAILED (node died), or UNSPECIFIED
  // (the head stops: nothing is recorded).
  v1::JobStatus cancel_status = v1::JOB_STATUS_UNSPECIFIED;
  std::string cancel_message;
  std::atomic<bool> finished{false};
  std::atomic<bool> head_stopping{false};  // Shutdown: stop waiting for anything

  std::string call_address;  // the node the call in flight goes to; guarded by mu

  // False (and nothing attached) if the run is canceled already.
  bool Attach(grpc::ClientContext* c, const std::string& address) {
    std::lock_guard<std::mutex> l(mu);
    if (canceled) return false;
    ctx = c;
    call_address = address;
    return true;
  }
  // Cancels the call in flight if it goes to `address` (that node died), not the run.
  void Kick(const std::string& address) {
    std::lock_guard<std::mutex> l(mu);
    if (ctx && call_address == address) ctx->TryCancel();
  }
  void Detach() {
    std::lock_guard<std::mutex> l(mu);
    ctx = nullptr;
  }
  void Cancel(v1::JobStatus status, const std::string& message) {
    std::lock_guard<std::mutex> l(mu);
    if (canceled) return;
    canceled = true;
    cancel_status = status;
    cancel_message = message;
    if (ctx) ctx->TryCancel();
  }
  bool IsCanceled() {
    std::lock_guard<std::mutex> l(mu);
    return canceled;
  }
};

// ---- manager
// -------------------------------------------------------------------------------------

StatusOr<std::unique_ptr<JobManager>> JobManager::Create(
    JobManagerOptions options, EventLoop* loop, std::function<std::string()> entry_address,
    std::function<bool(const std::string&)> task_ended) {
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
                                               std::move(entry_address), std::move(task_ended)));
  // Not on the loop yet: nobody else can see jobs_ before Create returns.
  for (auto& info : *jobs) {
    if (!IsTerminal(info.status())) {
      info.set_status(v1::JOB_STATUS_FAILED);
      info.set_message("the head restarted while the job was running");
      info.set_end_unix_ms(UnixMs());
      m->store_->Put(info);
    }
    Job j;
    j.info = info;
    std::error_code size_ec;
    const auto size = fs::file_size(m->LogPath(info.submission_id()), size_ec);
    j.log_bytes = size_ec ? 0 : size;
    m->jobs_.emplace(info.submission_id(), std::move(j));
  }
  if (!m->jobs_.empty()) Log("job store: " + std::to_string(m->jobs_.size()) + " job(s) loaded");
  return m;
}

JobManager::JobManager(JobManagerOptions options, EventLoop* loop, std::unique_ptr<JobStore> store,
                       std::function<std::string()> entry_address,
                       std::function<bool(const std::string&)> task_ended)
    : options_(std::move(options)),
      loop_(loop),
      store_(std::move(store)),
      entry_address_(std::move(entry_address)),
      task_ended_(std::move(task_ended)) {}

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
  std::ofstream(LogPath(id), std::ios::trunc | std::ios::binary);
  Persist(j);
  Log("job " + id + " submitted: " + req.entrypoint());
  j.run = std::make_shared<Run>();
  std::lock_guard<std::mutex> l(threads_mu_);
  // Join runners that are done (their last act was to post their outcome).
  std::erase_if(threads_, [](auto& t) {
    if (!t.first->finished.load()) return false;
    t.second.join();
    return true;
  });
  threads_.emplace_back(j.run, std::thread(&JobManager::RunDriver, this, j.run, info));
  return id;
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
  if (IsTerminal(j.info.status()) || !j.run) return false;
  Log("job " + id + ": stop requested");
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
  jobs_.erase(it);
  store_->Delete(id);
  std::error_code ec;
  fs::remove(LogPath(id), ec);
  Log("job " + id + " deleted");
  return Status::Ok();
}

StatusOr<std::string> JobManager::ReadLog(const std::string& id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job with submission id '" + id + "'");
  std::string text(it->second.log_bytes, '\0');
  std::ifstream in(LogPath(id), std::ios::binary);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return text;
}

void JobManager::StreamLog(const std::string& id, bool follow, std::shared_ptr<LogWriter> w) {
  auto text = ReadLog(id);
  if (!text.ok()) {
    w->Close(ToGrpc(text.status()));
    return;
  }
  for (size_t off = 0; off < text->size(); off += kChunkBytes) {
    v1::JobLogsChunk c;
    c.set_data(text->substr(off, kChunkBytes));
    w->Push(std::move(c));
  }
  Job& j = jobs_.at(id);
  if (follow && !IsTerminal(j.info.status()) && !shutting_down_) {
    j.followers.push_back(std::move(w));
  } else {
    w->Close(grpc::Status::OK);
  }
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
  {
    std::lock_guard<std::mutex> l(threads_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  loop_->RunSync([this] {
    shutting_down_ = true;
    for (auto& [id, j] : jobs_) {
      if (j.run) {
        j.run->head_stopping = true;
        j.run->Cancel(v1::JOB_STATUS_UNSPECIFIED, "the head is stopping");
      }
      for (auto& w : j.followers) {
        w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the head is stopping"));
      }
      j.followers.clear();
    }
  });
  std::vector<std::pair<std::shared_ptr<Run>, std::thread>> threads;
  {
    std::lock_guard<std::mutex> l(threads_mu_);
    threads.swap(threads_);
  }
  for (auto& [run, t] : threads) {
    // A runner that has not seen the cancellation yet (it was between calls) sees it now.
    run->head_stopping = true;
    run->Cancel(v1::JOB_STATUS_UNSPECIFIED, "the head is stopping");
    t.join();
  }
  store_->Flush();
}

// ---- loop side of a run
// --------------------------------------------------------------------------

void JobManager::OnRunning(const std::string& id, const std::string& node_id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || shutting_down_ || IsTerminal(it->second.info.status())) return;
  it->second.info.set_status(v1::JOB_STATUS_RUNNING);
  it->second.info.set_driver_node_id(node_id);
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

void JobManager::OnOutput(const std::string& id, std::string chunk) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job& j = it->second;
  j.log_bytes += chunk.size();
  std::erase_if(j.followers, [](const auto& w) { return w->done(); });
  for (auto& w : j.followers) {
    v1::JobLogsChunk c;
    c.set_data(chunk);
    w->Push(std::move(c));
  }
}

void JobManager::OnFinished(const std::string& id, v1::JobStatus status, const std::string& message,
                            int exit_code) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || shutting_down_) return;
  Job& j = it->second;
  j.run = nullptr;
  if (IsTerminal(j.info.status())) return;
  j.info.set_status(status);
  j.info.set_message(message);
  j.info.set_exit_code(exit_code);
  j.info.set_end_unix_ms(UnixMs());
  Persist(j);
  Log("job " + id + " " + JobStatusName(status) + ": " + message);
  for (auto& w : j.followers) w->Close(grpc::Status::OK);
  j.followers.clear();
}

// ---- runner thread
// -------------------------------------------------------------------------------

void JobManager::RunDriver(std::shared_ptr<Run> run, v1::JobInfo info) {
  const std::string id = info.submission_id();
  // Posts the outcome. A cancellation decides it: STOPPED (a user's stop wins over whatever the
  // driver did meanwhile), FAILED (its node died), or nothing at all (the head is stopping).
  auto finish = [&](v1::JobStatus status, const std::string& message, int exit_code = 0) {
    std::string msg = message;
    {
      std::lock_guard<std::mutex> l(run->mu);
      if (run->canceled) {
        status = run->cancel_status;
        msg = run->cancel_message;
      }
    }
    if (status != v1::JOB_STATUS_UNSPECIFIED) {
      loop_->Post([this, id, status, msg, exit_code] { OnFinished(id, status, msg, exit_code); });
    }
    run->finished = true;
  };

  // 1. The node to ask first: the head node if alive (waits while no node is alive). False if
  //    the run was canceled or the loop stopped meanwhile.
  std::string entry;
  auto resolve_entry = [&] {
    while (true) {
      if (run->IsCanceled()) return false;
      if (!loop_->RunSync([&] { entry = entry_address_(); })) return false;
      if (!entry.empty()) return true;
      std::this_thread::sleep_for(milliseconds(200));
    }
  };
  if (!resolve_entry()) return finish(v1::JOB_STATUS_STOPPED, "");

  // 2. A worker lease for the driver, following spillbacks; the call is held while queued and
  //    canceled by Stop.
  v1::RequestWorkerLeaseRequest lreq;
  lreq.set_task_id("driver-" + id + "-" + std::to_string(UnixMs()));
  lreq.set_name("driver of job " + id);
  *lreq.mutable_resources() = info.entrypoint_resources();
  lreq.set_queue_timeout_ms(0);
  // Gives the driver's lease back to the node at `stub` (best effort, bounded).
  auto return_lease = [&](v1::NodeService::Stub* stub) {
    grpc::ClientContext rctx;
    AttachToken(&rctx, options_.token);
    rctx.set_deadline(std::chrono::system_clock::now() + milliseconds(2000));
    v1::ReturnWorkerLeaseRequest rr;
    rr.set_task_id(lreq.task_id());
    v1::ReturnWorkerLeaseReply rrep;
    (void)stub->ReturnWorkerLease(&rctx, rr, &rrep);
  };
  std::string address = entry, node_id;
  int rejections = 0, errors = 0;
  while (node_id.empty()) {
    auto stub =
        v1::NodeService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    AttachToken(&ctx, options_.token);
    if (!run->Attach(&ctx, address)) return finish(v1::JOB_STATUS_STOPPED, "");
    v1::RequestWorkerLeaseReply reply;
    const grpc::Status s = stub->RequestWorkerLease(&ctx, lreq, &reply);
    run->Detach();
    if (run->IsCanceled()) {
      // A lease granted just before the stop goes back to the node.
      if (s.ok() && reply.has_granted()) {
        return_lease(stub.get());
      }
      return finish(v1::JOB_STATUS_STOPPED, "");
    }
    if (!s.ok()) {
      // The node went away (or OnNodeDead kicked the call): ask the entry node again.
      if (++errors > 20) {
        return finish(v1::JOB_STATUS_FAILED, "could not get a lease for the driver from " +
                                                 address + ": " + s.error_message());
      }
      std::this_thread::sleep_for(milliseconds(200));
      if (!resolve_entry()) return finish(v1::JOB_STATUS_STOPPED, "");
      address = entry;
      lreq.set_grant_or_reject(false);
      continue;
    }
    switch (reply.outcome_case()) {
      case v1::RequestWorkerLeaseReply::kGranted:
        node_id = reply.granted().node_id();
        break;
      case v1::RequestWorkerLeaseReply::kSpillback:
        if (reply.spillback().spillbacks() > 16 || reply.spillback().address().empty()) {
          return finish(v1::JOB_STATUS_FAILED,
                        "could not place the driver: too many spillbacks or unknown address");
        }
        address = reply.spillback().address();
        lreq.set_grant_or_reject(reply.spillback().grant_or_reject());
        lreq.set_spillbacks(reply.spillback().spillbacks());
        break;
      case v1::RequestWorkerLeaseReply::kRejected:
        if (++rejections > 100) {
          return finish(v1::JOB_STATUS_FAILED,
                        "could not place the driver: " + reply.rejected().reason());
        }
        address = entry;
        lreq.set_grant_or_reject(false);
        std::this_thread::sleep_for(milliseconds(std::min(20 * rejections, 200)));
        break;
      case v1::RequestWorkerLeaseReply::kCanceled:
        return finish(v1::JOB_STATUS_FAILED,
                      "the driver could not start: " + reply.canceled().reason());
      case v1::RequestWorkerLeaseReply::kQueued:
        break;  // ask again (held until decided)
      default:
        return finish(v1::JOB_STATUS_FAILED, "lease reply without an outcome from " + address);
    }
  }
  loop_->Post([this, id, node_id] { OnRunning(id, node_id); });

  // 3. The driver: /bin/sh -c ENTRYPOINT on the leased node; its output is the job's log.
  v1::RunTaskRequest rreq;
  rreq.set_task_id(lreq.task_id());
  rreq.add_argv("/bin/sh");
  rreq.add_argv("-c");
  rreq.add_argv(info.entrypoint());
  auto& env = *rreq.mutable_env();
  env["ORRERY_ADDRESS"] = options_.head_address;
  env["ORRERY_TOKEN"] = options_.token;
  env["ORRERY_JOB_ID"] = id;
  if (!info.runtime_env_json().empty()) env["ORRERY_JOB_RUNTIME_ENV"] = info.runtime_env_json();
  rreq.set_runtime_env_json(info.runtime_env_json());
  rreq.set_job_id(id);
  rreq.set_name("driver");
  auto stub =
      v1::NodeService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  AttachToken(&ctx, options_.token);
  if (!run->Attach(&ctx, address)) {
    return_lease(stub.get());
    return finish(v1::JOB_STATUS_STOPPED, "");
  }
  std::ofstream log(LogPath(id), std::ios::app | std::ios::binary);
  std::string tail;
  bool exited = false;
  int exit_code = 0, signal = 0;
  std::string node_error;  // why the node could not run the driver (e.g. runtime env setup)
  {
    auto reader = stub->RunTask(&ctx, rreq);
    v1::RunTaskReply m;
    while (reader->Read(&m)) {
      if (m.has_started_pid()) {
        loop_->Post([this, id, pid = m.started_pid()] { OnPid(id, pid); });
      } else if (m.has_stdout_chunk() || m.has_stderr_chunk()) {
        std::string chunk = m.has_stdout_chunk() ? m.stdout_chunk() : m.stderr_chunk();
        log.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        log.flush();  // on disk before the loop counts it (ReadLog reads what it counted)
        tail += chunk;
        if (tail.size() > kTailBytes) tail.erase(0, tail.size() - kTailBytes);
        loop_->Post(
            [this, id, chunk = std::move(chunk)]() mutable { OnOutput(id, std::move(chunk)); });
      } else if (m.has_exit()) {
        exited = true;
        exit_code = m.exit().exit_code();
        signal = m.exit().signal();
        node_error = m.exit().error();
      }
    }
    const grpc::Status s = reader->Finish();
    run->Detach();
    if (!exited) {
      if (run->IsCanceled()) {
        // The node got the cancellation and stops the driver (SIGTERM, then SIGKILL after its
        // grace period): report STOPPED once the task table shows it ended (bounded).
        const auto deadline = std::chrono::steady_clock::now() + kStopWait;
        bool ended = false;
        while (!ended && std::chrono::steady_clock::now() < deadline) {
          {
            std::lock_guard<std::mutex> l(run->mu);
            if (run->cancel_status != v1::JOB_STATUS_STOPPED) break;  // node died / head stops
          }
          if (run->head_stopping) break;
          if (!loop_->RunSync([&] { ended = task_ended_(rreq.task_id()); })) break;
          if (!ended) std::this_thread::sleep_for(milliseconds(50));
        }
        return finish(v1::JOB_STATUS_STOPPED, "");
      }
      // The stream ended without an exit: the node went away, or refused to start the driver
      // (then its lease is still granted there: give it back, best effort).
      const bool lost = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                        s.error_code() == grpc::StatusCode::CANCELLED;
      if (!lost) return_lease(stub.get());
      return finish(v1::JOB_STATUS_FAILED,
                    (lost ? "lost the driver on node " : "the driver could not start on node ") +
                        node_id + ": " + s.error_message());
    }
  }
  if (exit_code == 0) return finish(v1::JOB_STATUS_SUCCEEDED, "the entrypoint exited with code 0");
  // The driver never started (its runtime env failed, ...): the node's reason is the message.
  if (!node_error.empty()) return finish(v1::JOB_STATUS_FAILED, node_error, exit_code);
  std::string message = "entrypoint exited with code " + std::to_string(exit_code);
  if (signal > 0) message += " (killed by signal " + std::to_string(signal) + ")";
  const std::string last = LastLines(tail, 10);
  if (!last.empty()) message += ", last output:\n" + last;
  finish(v1::JOB_STATUS_FAILED, message, exit_code);
}

}  // namespace orrery::live

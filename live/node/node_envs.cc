#include "live/node/node_impl.h"

#include <cmath>

namespace orrery::live {

void NodeDaemon::Impl::StartAttach(const TaskId& task, ApiWorkerSpec spec,
                                   std::shared_ptr<StreamWriter<v1::AttachWorkerReply>> w,
                                   const RuntimeEnv& renv) {
  auto it = tasks_.find(task);
  if (shutting_down_ || it == tasks_.end() ||
      it->second.record.state() != v1::TASK_STATE_LEASED || it->second.api ||
      it->second.workload) {
    w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "no unused lease for task " + task + " on " + node_id_));
    return;
  }
  Task& t = it->second;
  t.api = true;
  t.actor = spec.actor;
  // --- GPUs: as for RunTask, the core's device grant decides what the worker sees (a lease
  // without GPUs on a GPU node sees none). A worker that holds GPUs is dedicated to this lease
  // (not reused by later GPU tasks, as in Ray): the node agent decides so (AttachInEnv).
  if (options_.total.Get(Predefined::kGPU) > Quantity()) {
    const std::vector<int> gpus = t.allocation.DeviceIds(kGPU);
    std::erase_if(spec.env, [](const auto& kv) { return kv.first == "CUDA_VISIBLE_DEVICES"; });
    spec.env.emplace_back("CUDA_VISIBLE_DEVICES", VisibleDevicesForGrant(gpus));
    std::sort(spec.env.begin(), spec.env.end());
  }
  t.start_unix_ms = UnixMs();
  t.record.set_state(v1::TASK_STATE_RUNNING);
  t.record.set_start_unix_ms(t.start_unix_ms);
  t.dirty = true;
  if (w->done()) {  // canceled before we got here
    DetachWorker(task, "");
    return;
  }
  if (!renv.empty()) {  // --- runtime envs: install first, then start the worker in it
    AcquireTaskEnv(t, renv, [this, task, spec, w](StatusOr<AppliedEnv> a) {
      auto it = tasks_.find(task);
      if (it == tasks_.end() || !it->second.api ||
          it->second.record.state() != v1::TASK_STATE_RUNNING) {
        return;  // the lease ended meanwhile (its EndLease released the env)
      }
      if (!a.ok()) {
        w->Close(ToGrpc(a.status()));
        EndLease(it->second, v1::TASK_STATE_CANCELED, 1, a.status().message());
        RunPending();
        return;
      }
      if (w->done()) {
        DetachWorker(task, "");
        return;
      }
      ApiWorkerSpec in_env = spec;
      in_env.env = MergeEnv(a->env, spec.env);
      in_env.cwd = a->cwd;
      AttachInEnv(task, in_env, w);
    });
    return;
  }
  AttachInEnv(task, spec, w);
}

int64_t NodeDaemon::Impl::ApiEnvIdOf(const std::string& api_key) {
  return api_env_ids_.try_emplace(api_key, -2 - static_cast<int64_t>(api_env_ids_.size()))
      .first->second;
}

void NodeDaemon::Impl::AttachInEnv(const TaskId& task, const ApiWorkerSpec& spec,
                                   std::shared_ptr<StreamWriter<v1::AttachWorkerReply>> w) {
  // The agent decides reuse or start (an actor, or a lease holding GPUs: a worker of its own);
  // the pool picks the process.
  const Task& t = tasks_.at(task);
  const bool gpu = !t.allocation.resources.Get(Predefined::kGPU).IsZero();
  const int64_t env = ApiEnvIdOf(ApiWorkerPool::KeyOf(spec));
  const agent::WorkerAction action = node_agent_->AcquireWorker(
      env, gpu, spec.actor ? agent::WorkerKind::kActor : agent::WorkerKind::kTask);
  api_pool_->Acquire(
      task, env, action, gpu, spec,
      [this, task, w](StatusOr<std::pair<pid_t, std::string>> ready) {
        if (!ready.ok()) {
          w->Close(ToGrpc(ready.status()));
          DetachWorker(task, ready.status().message());
          return;
        }
        auto it = tasks_.find(task);
        if (it != tasks_.end()) it->second.pid = ready->first;
        v1::AttachWorkerReply m;
        m.set_worker_address(ready->second);
        m.set_pid(static_cast<int32_t>(ready->first));
        w->Push(std::move(m));
        if (w->done()) DetachWorker(task, "");
      },
      [this, task, w](const std::string& why) {
        w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, why));
        DetachWorker(task, why);
      });
}

void NodeDaemon::Impl::DetachWorker(const TaskId& task, const std::string& error) {
  auto it = tasks_.find(task);
  if (it == tasks_.end() || !it->second.api ||
      it->second.record.state() != v1::TASK_STATE_RUNNING) {
    return;
  }
  api_pool_->Release(task);
  EndLease(it->second, error.empty() ? v1::TASK_STATE_FINISHED : v1::TASK_STATE_FAILED,
           error.empty() ? 0 : 1, error);
  RunPending();
}

Status NodeDaemon::Impl::ConfigureEnvCache() {
  if (!(options_.runtime_env_setup_timeout_s > 0) ||
      !std::isfinite(options_.runtime_env_setup_timeout_s)) {
    return InvalidArgument("runtime-env setup timeout: expected a number of seconds > 0");
  }
  envcache::EnvCacheOptions co;
  co.default_limit_bytes = options_.runtime_env_cache_bytes;
  co.policy = options_.runtime_env_eviction;
  co.setup_timeout_s = options_.runtime_env_setup_timeout_s;
  co.max_attempts = options_.runtime_env_max_attempts;  // --- live run
  auto check = envcache::EnvCache::Create(co);
  if (!check.ok()) return check.status().WithContext("--runtime-env-eviction");
  node_agent_options_.env_cache = std::move(co);
  return Status::Ok();
}

Status NodeDaemon::Impl::StartRuntimeEnvAgent() {
  std::filesystem::path root;
  if (options_.session_dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "orrery_renv_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Status(StatusCode::kUnavailable, "cannot create a temp dir for runtime envs");
    }
    root = tmpl;
    renv_owned_root_ = root;
  } else {
    // Per node: several nodes of one machine share the session dir.
    root = std::filesystem::path(options_.session_dir) / "runtime_envs" / node_id_;
  }
  RuntimeEnvAgentOptions ro;
  ro.root = root;
  ro.head_address = options_.head_address;
  ro.token = options_.token;
  ro.eviction = options_.runtime_env_eviction;
  ro.setup_timeout_s = options_.runtime_env_setup_timeout_s;
  // The install cache is the node agent's: it decides what to install, shares and evicts; the
  // env agent carries that out (downloads, setup, directories).
  envcache::EnvCache* cache = nullptr;
  loop_.RunSync([&] { cache = &node_agent_->Envs(); });
  auto agent = RuntimeEnvAgent::Create(std::move(ro), cache,
                                       [this](std::function<void()> f) { loop_.Post(f); });
  if (!agent.ok()) return agent.status();
  agent_ = std::move(*agent);
  // Idle code workers started in an evicted env must not be reused: their cwd and PATH are gone.
  agent_->SetOnEvict([this](const std::string& dir) {
    api_pool_->RetireIdleWithEnv("ORRERY_RUNTIME_ENV_DIR", dir);
    pool_->RetireIdleWithEnv("ORRERY_RUNTIME_ENV_DIR", dir);  // --- live run
  });
  return Status::Ok();
}

void NodeDaemon::Impl::StopRuntimeEnvAgent() {
  if (agent_) agent_->Stop();
  if (!renv_owned_root_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(renv_owned_root_, ec);
  }
}

std::vector<std::pair<std::string, std::string>> NodeDaemon::Impl::MergeEnv(
    const std::vector<std::pair<std::string, std::string>>& base,
    const std::vector<std::pair<std::string, std::string>>& top) {
  std::map<std::string, std::string> m(base.begin(), base.end());
  for (const auto& [k, v] : top) m[k] = v;
  return {m.begin(), m.end()};
}

void NodeDaemon::Impl::AcquireTaskEnv(Task& t, const RuntimeEnv& env, RuntimeEnvAgent::Done done) {
  const TaskId task = t.record.task_id();
  t.env_hash = InstallHash(env);
  t.env_pending = true;
  agent_->Acquire(env, task, [this, task, done = std::move(done)](StatusOr<AppliedEnv> a) {
    auto it = tasks_.find(task);
    if (it == tasks_.end()) {
      if (a.ok()) agent_->Release(a->hash);
      return;
    }
    it->second.env_pending = false;
    if (a.ok()) {
      it->second.env_held = true;
      it->second.env_hash = a->hash;
    }
    done(std::move(a));
  });
}

std::string NodeDaemon::Impl::LookUpInPath(const std::string& name, const std::string& path) {
  if (name.find('/') != std::string::npos) return name;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find(':', start), path.size());
    const std::string dir = path.substr(start, end - start);
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) {
      return candidate;
    }
    start = end + 1;
  }
  return name;
}

void NodeDaemon::Impl::ReleaseTaskEnv(Task& t) {
  if (agent_ && t.env_pending) agent_->Abandon(t.env_hash, t.record.task_id());
  if (agent_ && t.env_held) agent_->Release(t.env_hash);
  t.env_pending = false;
  t.env_held = false;
  t.env_hash.clear();
}

void NodeDaemon::Impl::FailRunTaskEnv(Task& t, const std::string& why,
                                      const std::shared_ptr<TaskStream>& w) {
  Log("task " + t.record.task_id() + ": " + why);
  v1::RunTaskReply m;
  m.set_stderr_chunk("orrery: " + why + "\n");
  w->Push(std::move(m));
  v1::RunTaskReply e;
  e.mutable_exit()->set_exit_code(1);
  e.mutable_exit()->set_error(why);
  w->Push(std::move(e));
  w->Close(grpc::Status::OK);
  EndLease(t, v1::TASK_STATE_CANCELED, 1, why);
  ForgetDetachableLater(t.record.task_id());
  RunPending();
}

void NodeDaemon::Impl::StartTaskInEnv(const TaskId& task, ProcessSpec spec, const RuntimeEnv& renv,
                                      std::shared_ptr<TaskStream> w) {
  if (renv.empty()) {
    StartTask(task, std::move(spec), w);
    return;
  }
  auto it = tasks_.find(task);
  if (shutting_down_ || it == tasks_.end() ||
      it->second.record.state() != v1::TASK_STATE_LEASED || it->second.env_pending ||
      it->second.env_held) {
    w->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "no unused lease for task " + task + " on " + node_id_));
    return;
  }
  Task& t = it->second;
  t.record.set_wait_reason(v1::WAIT_REASON_WAITING_FOR_RUNTIME_ENV);
  t.dirty = true;
  AcquireTaskEnv(t, renv, [this, task, spec, w](StatusOr<AppliedEnv> a) {
    auto it = tasks_.find(task);
    if (it == tasks_.end() || it->second.record.state() != v1::TASK_STATE_LEASED) return;
    Task& t = it->second;
    t.record.set_wait_reason(v1::WAIT_REASON_NONE);
    t.dirty = true;
    if (!a.ok()) return FailRunTaskEnv(t, a.status().message(), w);
    if (w->done()) {
      EndLease(t, v1::TASK_STATE_CANCELED, 0, "the caller went away");
      RunPending();
      return;
    }
    ProcessSpec in_env = spec;
    in_env.env = MergeEnv(a->env, spec.env);
    if (!a->cwd.empty()) in_env.cwd = a->cwd;
    // posix_spawnp searches the daemon's PATH, not the child's: resolve argv[0] in the env's.
    for (const auto& [k, v] : in_env.env) {
      if (k == "PATH") in_env.argv[0] = LookUpInPath(in_env.argv[0], v);
    }
    StartTask(task, std::move(in_env), w);
  });
}

}  // namespace orrery::live

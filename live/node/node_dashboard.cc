// The node's side of the dashboard: the detail of its node page (workers, cached envs, log
// files) and bounded reads of its own log files (live/dashboard/log_files.h).
#include <unistd.h>

#include <filesystem>

#include "live/dashboard/log_files.h"
#include "live/node/node_impl.h"

namespace orrery::live {

namespace {

// The file this process's stderr goes to (its daemon log, as `orrery start` spawns it), or "".
std::string OwnStderrFile() {
  std::error_code ec;
  const auto target = std::filesystem::read_symlink("/proc/self/fd/2", ec);
  return ec ? std::string() : target.string();
}

}  // namespace

bool NodeDaemon::Impl::IsOwnLogFile(const std::string& name) const {
  static const std::string self = OwnStderrFile();
  if (!log_monitor_) return false;
  if (name.rfind("worker-" + log_monitor_->tag(), 0) == 0) return true;
  if (self.empty()) return false;
  const std::filesystem::path p(self);
  // Its own log and its rotated copies (<name>.1 ...), only when it lives in the log dir.
  return p.parent_path() == std::filesystem::path(log_monitor_->dir()) &&
         name.rfind(p.filename().string(), 0) == 0;
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::GetNodeDetail(grpc::CallbackServerContext* ctx,
                                                          const v1::NodeDetailRequest*,
                                                          v1::NodeDetailReply* reply) {
  if (CheckToken(*ctx, options_.token).ok() && log_monitor_ && !log_monitor_->dir().empty()) {
    for (auto& f : dashboard::ListLogFiles(
             log_monitor_->dir(), [this](const std::string& n) { return IsOwnLogFile(n); })) {
      *reply->add_log_files() = std::move(f);
    }
  }
  return AnswerOnLoop(ctx, options_.token, loop_, [this, reply] {
    if (pool_) {
      for (const auto& w : pool_->Rows()) {
        auto* out = reply->add_workers();
        out->set_pid(w.pid);
        out->set_state(w.task.empty() ? "idle" : "busy");
        out->set_task_id(w.task);
        if (auto t = tasks_.find(w.task); t != tasks_.end()) {
          out->set_job_id(t->second.record.job_id());
          if (!t->second.record.display_task_id().empty()) {
            out->set_task_id(t->second.record.display_task_id());
          }
        }
        out->set_env(w.env >= 0 ? "env-" + std::to_string(w.env) : "");
      }
    }
    if (node_agent_) {
      const envcache::EnvCache& envs = node_agent_->Envs();
      for (const auto& uri : envs.Uris()) {
        auto* e = reply->add_envs();
        e->set_key(uri);
        e->set_bytes(static_cast<int64_t>(envs.BytesOf(uri)));
        e->set_in_use(envs.RefCount(uri) > 0);
      }
    }
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* NodeDaemon::Impl::ReadNodeLog(grpc::CallbackServerContext* ctx,
                                                        const v1::ReadNodeLogRequest* req,
                                                        v1::ReadNodeLogReply* reply) {
  return AnswerNow(ctx, options_.token, [&] {
    if (!log_monitor_ || log_monitor_->dir().empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "node " + node_id_ + " keeps no log files");
    }
    auto r = dashboard::ReadLogFile(log_monitor_->dir(),
                                    [this](const std::string& n) { return IsOwnLogFile(n); }, *req);
    if (!r.ok()) return ToGrpc(r.status());
    *reply = std::move(*r);
    return grpc::Status::OK;
  });
}

}  // namespace orrery::live

#include "live/head.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <vector>

#include "live/convert.h"
#include "live/event_loop.h"
#include "live/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

using Clock = std::chrono::steady_clock;

namespace {
// Logs go to the daemon's stderr (its log file in the session dir).
void Log(const std::string& line) { std::cerr << "[head] " << line << std::endl; }
}  // namespace

class HeadDaemon::Impl final : public v1::HeadService::CallbackService {
 public:
  explicit Impl(HeadOptions o) : options_(std::move(o)) {}

  Status Serve() {
    grpc::ServerBuilder b;
    b.AddListeningPort(options_.bind + ":" + std::to_string(options_.port),
                       grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on " + options_.bind + ":" + std::to_string(options_.port));
    }
    loop_.Every(options_.report_period, [this] { Tick(); });
    Log("listening on " + options_.bind + ":" + std::to_string(port_));
    return Status::Ok();
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    // Held calls first, so the server's shutdown does not wait for them.
    loop_.RunSync([this] {
      shutting_down_ = true;
      for (auto& w : watchers_)
        w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
      watchers_.clear();
    });
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    loop_.Stop();
    Log("stopped");
  }

  int port() const { return port_; }
  bool stop_requested() const { return stop_requested_.load(); }

  // ---- handlers: check the token, validate, post to the loop --------------------------------

  grpc::ServerUnaryReactor* Ready(grpc::CallbackServerContext* ctx, const v1::ReadyRequest*,
                                  v1::ReadyReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    reply->set_address(options_.bind + ":" + std::to_string(port_));
    reply->set_pid(static_cast<int32_t>(getpid()));
    loop_.Post([this, r, reply] {
      int alive = 0;
      for (const auto& [id, e] : nodes_) alive += e.node.state == NodeState::kAlive ? 1 : 0;
      reply->set_known_nodes(alive);
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerUnaryReactor* RegisterNode(grpc::CallbackServerContext* ctx,
                                         const v1::RegisterNodeRequest* req,
                                         v1::RegisterNodeReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    v1::NodeInfo info;
    info.set_node_id(req->node_id());
    *info.mutable_total() = req->total();
    *info.mutable_available() = req->total();
    *info.mutable_labels() = req->labels();
    auto node = NodeFromProto(info);
    if (!node.ok()) {
      r->Finish(ToGrpc(node.status()));
      return r;
    }
    if (req->address().empty()) {
      r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "address: empty"));
      return r;
    }
    loop_.Post([this, r, reply, node = std::move(*node), address = req->address(),
                head = req->is_head_node(), pid = req->pid()]() mutable {
      auto it = nodes_.find(node.id);
      if (it != nodes_.end() && it->second.node.state != NodeState::kDead) {
        r->Finish(grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                               "an alive node is already registered as " + node.id));
        return;
      }
      Log("node " + node.id + " registered at " + address + " with " +
          node.resources.total().ToString());
      NodeEntry e;
      e.node = std::move(node);
      e.address = std::move(address);
      e.is_head_node = head;
      e.pid = pid;
      e.last_heartbeat = Clock::now();
      const std::string id = e.node.id;
      nodes_[id] = std::move(e);
      BuildView(reply->mutable_view());
      reply->set_report_period_ms(options_.report_period.count());
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply*) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    auto available = FromProto(req->available(), "available");
    auto devices = FromProto(req->devices(), "devices");
    if (!available.ok() || !devices.ok()) {
      r->Finish(ToGrpc(!available.ok() ? available.status() : devices.status()));
      return r;
    }
    // The request lives until Finish: the closure may read it.
    loop_.Post([this, r, req, available = std::move(*available), devices = std::move(*devices)] {
      auto it = nodes_.find(req->node_id());
      if (it == nodes_.end()) {
        r->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                               "node " + req->node_id() + " is not registered"));
        return;
      }
      NodeEntry& e = it->second;
      if (!available.IsSubsetOf(e.node.resources.total())) {
        r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               "available: exceeds the node's total"));
        return;
      }
      if (e.node.state == NodeState::kDead) {
        Log("node " + e.node.id + " is heartbeating again: alive");
        e.node.state = NodeState::kAlive;
      }
      e.last_heartbeat = Clock::now();
      e.node.resources.SetAvailable(available, devices);
      e.pending.assign(req->pending().begin(), req->pending().end());
      for (const auto& t : req->task_updates()) UpsertTask(t);
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerUnaryReactor* GetClusterView(grpc::CallbackServerContext* ctx,
                                           const v1::GetClusterViewRequest*,
                                           v1::ClusterView* reply) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    loop_.Post([this, r, reply] {
      BuildView(reply);
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerWriteReactor<v1::ClusterView>* WatchClusterView(
      grpc::CallbackServerContext* ctx, const v1::WatchClusterViewRequest*) override {
    auto w = StreamWriter<v1::ClusterView>::Create(/*keep_latest_only=*/true);
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      w->Close(s);
      return w.get();
    }
    loop_.Post([this, w] {
      if (shutting_down_) {
        w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
        return;
      }
      v1::ClusterView v;
      BuildView(&v);
      w->Push(std::move(v));
      watchers_.push_back(w);
    });
    return w.get();
  }

  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* ctx, const v1::ListNodesRequest*,
                                      v1::ListNodesReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    loop_.Post([this, r, reply] {
      v1::ClusterView v;
      BuildView(&v);
      *reply->mutable_nodes() = std::move(*v.mutable_nodes());
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* ctx, const v1::ListTasksRequest*,
                                      v1::ListTasksReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    loop_.Post([this, r, reply] {
      std::vector<const v1::TaskRecord*> sorted;
      for (const auto& [id, t] : tasks_) sorted.push_back(&t);
      std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
        return a->submit_unix_ms() < b->submit_unix_ms();
      });
      for (const auto* t : sorted) *reply->add_tasks() = *t;
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* ctx, const v1::ShutdownRequest*,
                                     v1::ShutdownReply*) override {
    auto* r = ctx->DefaultReactor();
    if (auto s = CheckToken(*ctx, options_.token); !s.ok()) {
      r->Finish(s);
      return r;
    }
    Log("shutdown requested");
    stop_requested_ = true;
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  struct NodeEntry {
    Node node;
    std::string address;
    bool is_head_node = false;
    int pid = 0;
    Clock::time_point last_heartbeat;
    std::vector<v1::Demand> pending;
  };

  // Loop thread: liveness and broadcast, once per report period.
  void Tick() {
    const auto now = Clock::now();
    for (auto& [id, e] : nodes_) {
      if (e.node.state != NodeState::kDead && now - e.last_heartbeat > options_.heartbeat_timeout) {
        e.node.state = NodeState::kDead;
        e.pending.clear();
        Log("node " + id + " missed its heartbeats for " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(now - e.last_heartbeat)
                    .count()) +
            " ms: dead");
        // Tasks that were running there are lost with it.
        for (auto& [tid, t] : tasks_) {
          if (t.node_id() == id &&
              (t.state() == v1::TASK_STATE_RUNNING || t.state() == v1::TASK_STATE_LEASED ||
               t.state() == v1::TASK_STATE_PENDING)) {
            t.set_state(v1::TASK_STATE_FAILED);
            t.set_error("node " + id + " died");
          }
        }
      }
    }
    ++version_;
    if (watchers_.empty()) return;
    v1::ClusterView v;
    BuildView(&v);
    std::erase_if(watchers_, [](const auto& w) { return w->done(); });
    for (auto& w : watchers_) w->Push(v);
  }

  void BuildView(v1::ClusterView* out) const {
    const auto now = Clock::now();
    out->set_version(version_);
    for (const auto& [id, e] : nodes_) {  // std::map: by node id
      auto* n = out->add_nodes();
      ToProto(e.node, n);
      n->set_address(e.address);
      n->set_is_head_node(e.is_head_node);
      n->set_pid(e.pid);
      n->set_ms_since_heartbeat(
          std::chrono::duration_cast<std::chrono::milliseconds>(now - e.last_heartbeat).count());
      for (const auto& d : e.pending) *n->add_pending() = d;
    }
  }

  void UpsertTask(const v1::TaskRecord& t) {
    if (t.task_id().empty()) return;
    auto [it, inserted] = tasks_.try_emplace(t.task_id(), t);
    if (!inserted) {
      // Spillbacks accumulate across the nodes a task visited.
      const int hops = std::max(it->second.spillbacks(), t.spillbacks());
      it->second = t;
      it->second.set_spillbacks(hops);
    }
    if (inserted) order_.push_back(t.task_id());
    while (tasks_.size() > options_.max_tasks && !order_.empty()) {
      tasks_.erase(order_.front());
      order_.erase(order_.begin());
    }
  }

  const HeadOptions options_;
  EventLoop loop_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> stop_requested_{false};
  // Owned by loop_.
  bool shutting_down_ = false;
  int64_t version_ = 0;
  std::map<NodeId, NodeEntry> nodes_;
  std::map<std::string, v1::TaskRecord> tasks_;
  std::vector<std::string> order_;  // task ids by first report
  std::vector<std::shared_ptr<StreamWriter<v1::ClusterView>>> watchers_;
};

HeadDaemon::HeadDaemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HeadDaemon::~HeadDaemon() { Stop(); }

StatusOr<std::unique_ptr<HeadDaemon>> HeadDaemon::Start(const HeadOptions& options) {
  if (options.token.empty()) return InvalidArgument("token: empty");
  auto impl = std::make_unique<Impl>(options);
  ORRERY_RETURN_IF_ERROR(impl->Serve());
  return std::unique_ptr<HeadDaemon>(new HeadDaemon(std::move(impl)));
}

int HeadDaemon::port() const { return impl_->port(); }
bool HeadDaemon::StopRequested() const { return impl_->stop_requested(); }
void HeadDaemon::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live

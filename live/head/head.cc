#include "live/head/head_impl.h"

namespace orrery::live {

agent::HeadControllerOptions HeadDaemon::Impl::ControllerOptions(const HeadOptions& o) {
  agent::HeadControllerOptions c;
  c.report_period_s = std::chrono::duration<double>(o.report_period).count();
  c.health_check_period_s = std::chrono::duration<double>(o.health_check_period).count();
  c.health_check_failures = o.health_check_failures;
  return c;
}

Status HeadDaemon::Impl::Serve() {
  // --- runtime envs: the package store, ready before the first call.
  PackageServiceOptions po;
  po.token = options_.token;
  po.session_dir = options_.session_dir;
  auto packages = PackageService::Create(std::move(po));
  if (!packages.ok()) return packages.status();
  packages_ = std::move(*packages);
  ORRERY_RETURN_IF_ERROR(OpenStore());  // --- head fault tolerance: before the first call
  auto server = StartDaemonServer(options_.bind, options_.port, this, "head", &port_);
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  // After the gRPC port: an OS-chosen metrics port never takes the head's own port. No loop
  // closure reads the metrics members before Tick runs.
  ORRERY_RETURN_IF_ERROR(StartMetrics());
  UpdateTargets();
  loop_.Every(options_.report_period, [this] { Tick(); });
  ORRERY_RETURN_IF_ERROR(StartAutoscaler());  // --- autoscaler
  Log("listening on " + options_.bind + ":" + std::to_string(port_) + "; scheduling policy " +
      DescribeScheduling(options_.scheduler));
  return StartJobs();  // --- jobs
}

void HeadDaemon::Impl::Stop() {
  if (stopped_.exchange(true)) return;
  if (metrics_endpoint_) metrics_endpoint_->BeginStop();  // --- Metrics
  // Held calls first, so the server's shutdown does not wait for them.
  loop_.RunSync([this] {
    shutting_down_ = true;
    for (auto& w : watchers_)
      w->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
    watchers_.clear();
  });
  log_hub_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "head stopping"));
  if (autoscaler_) autoscaler_->Shutdown();  // --- autoscaler: no round runs once shutting down
  StopJobs();  // --- jobs
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  if (packages_) packages_->Stop();  // --- runtime envs
  // Bundle calls in flight post their replies to the loop: let them land first (bounded; each
  // has a deadline of bundle_call_timeout).
  const auto deadline = Clock::now() + kBundleCallTimeout + std::chrono::seconds(1);
  while (bundle_calls_.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  loop_.Stop();
  // --- head fault tolerance: a clean stop ends the cluster (its nodes are told to stop too);
  // the next head starts empty. Only a crash leaves the state for a restart to take over.
  if (store_) {
    store_->Flush();
    if (Status s = store_->Clear(); !s.ok()) Log("head store: " + s.ToString());
  }
  Log("stopped");
}

// ---- head fault tolerance ------------------------------------------------------------------

Status HeadDaemon::Impl::OpenStore() {
  const std::string path =
      !options_.head_store.empty()    ? options_.head_store
      : !options_.session_dir.empty() ? (std::filesystem::path(options_.session_dir) /
                                         "head_store.sqlite")
                                            .string()
                                      : std::string();
  if (path.empty()) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  auto store = HeadStore::Open(path);
  if (!store.ok()) return store.status();
  auto snap = (*store)->Load();
  if (!snap.ok()) return snap.status();
  store_ = std::move(*store);
  const bool ours = !options_.session_dir.empty() && snap->session_dir == options_.session_dir;
  if (!ours && (!snap->empty() || !snap->session_dir.empty())) {
    if (!snap->empty()) {
      Log("head store " + path + ": the cluster state of session " +
          (snap->session_dir.empty() ? std::string("(none)") : snap->session_dir) +
          " belongs to another session: discarded (a restart takes over only its own session)");
    }
    ORRERY_RETURN_IF_ERROR(store_->Clear());
  }
  if (ours && !snap->empty()) loop_.RunSync([&] { Restore(*snap); });
  HeadStore::Batch b;
  b.session_dir = options_.session_dir;
  store_->Write(std::move(b));
  return Status::Ok();
}

void HeadDaemon::Impl::Restore(const HeadStoreSnapshot& snap) {
  const double grace_s = std::chrono::duration<double>(options_.reconnect_grace).count();
  // Alive members get the grace window to report again (then the usual liveness applies).
  const double heard_s = NowS() + grace_s - controller_.options().DeadAfterS();
  int nodes = 0, groups = 0;
  for (const v1::NodeInfo& stored : snap.nodes) {
    // Nothing of a restored node is known free until it reports again: the store keeps "all
    // free", and views that advertised it so drew every spillback of the cluster to a node that
    // had died with the head down (live.chaos.head: requests bounced to it 16 times in a row and
    // their calls failed). A node that is alive reports within a period and shows its real
    // availability.
    v1::NodeInfo info = stored;
    info.clear_available();
    info.clear_devices();
    auto node = NodeFromProto(info);
    if (!node.ok()) {
      Log("head store: node " + info.node_id() + " skipped: " + node.status().ToString());
      continue;
    }
    const bool alive = node->IsAlive();
    if (Status s = controller_.RestoreMember(std::move(*node), heard_s); !s.ok()) {
      Log("head store: node " + info.node_id() + " skipped: " + s.ToString());
      continue;
    }
    NodeEntry e;
    e.address = info.address();
    e.is_head_node = info.is_head_node();
    e.pid = info.pid();
    e.metrics_address = info.metrics_address();
    nodes_[info.node_id()] = std::move(e);
    if (alive) awaiting_.insert(info.node_id());
    ++nodes;
  }
  for (const v1::ActorInfo& a : snap.actors) {
    if (Status s = actors_.Report(a, a.update_unix_ms()); !s.ok()) {
      Log("head store: actor " + a.actor_id() + " skipped: " + s.ToString());
    }
  }
  for (const v1::PlacementGroupInfo& g : snap.groups) {
    const std::string& id = g.group_id();
    auto strategy = ParsePlacementStrategy(g.strategy().empty() ? "PACK" : g.strategy());
    std::vector<ResourceRequest> bundles;
    Status s = strategy.status();
    for (int i = 0; s.ok() && i < g.bundles_size(); ++i) {
      auto b = RequestFromProto(g.bundles(i), "bundles[" + std::to_string(i) + "]");
      if (b.ok()) bundles.push_back(std::move(*b));
      s = b.status();
    }
    const std::vector<NodeId> placement(g.bundle_nodes().begin(), g.bundle_nodes().end());
    if (s.ok()) {
      switch (g.state()) {
        case v1::PLACEMENT_GROUP_STATE_CREATED:
          // The nodes still hold the committed bundles: nothing to send.
          s = controller_.RestorePlacementGroup(id, *strategy, bundles, placement, g.attempts());
          break;
        case v1::PLACEMENT_GROUP_STATE_REMOVED:
          s = controller_.AddPlacementGroup(id, *strategy, bundles);
          if (s.ok()) s = controller_.RemovePlacementGroup(id).status();
          break;
        default: {
          // Between attempts, or in the middle of one: whatever the interrupted attempt holds
          // is cancelled (idempotent on the node), and the group is placed again from scratch
          // once the nodes have had a moment to report.
          s = controller_.AddPlacementGroup(id, *strategy, bundles);
          if (!s.ok()) break;
          std::vector<TwoPhaseCommand> cancels;
          for (size_t b = 0; b < placement.size() && b < bundles.size(); ++b) {
            cancels.push_back(
                {TwoPhaseCommand::Kind::kCancel, id, static_cast<int>(b), placement[b], bundles[b]});
          }
          Send(cancels);
          loop_.PostAfter(std::chrono::milliseconds(1000), [this, id] {
            if (!shutting_down_) Apply(controller_.RetryPlacementGroup(id, NowS()));
          });
        }
      }
    }
    if (!s.ok()) {
      Log("head store: placement group " + id + " skipped: " + s.ToString());
      continue;
    }
    ++groups;
  }
  restored_ = true;
  restore_s_ = NowS();
  Log("restored from the head store " + store_->path() + ": " + std::to_string(nodes) +
      " node(s) (the " + std::to_string(awaiting_.size()) + " alive ones have " +
      std::to_string(options_.reconnect_grace.count()) + " ms to report again), " +
      std::to_string(snap.actors.size()) + " actor(s), " + std::to_string(groups) +
      " placement group(s)");
  Emit("head_restored", "INFO",
       "the head restarted and took over " + std::to_string(nodes) + " node(s), " +
           std::to_string(snap.actors.size()) + " actor(s) and " + std::to_string(groups) +
           " placement group(s)");
}

void HeadDaemon::Impl::ProbeAwaited() {
  for (auto it = awaiting_.begin(); it != awaiting_.end();) {
    const NodeId id = *it;
    const agent::Member* m = controller_.FindMember(id);
    auto e = nodes_.find(id);
    if (m == nullptr || !m->node.IsAlive() || e == nodes_.end()) {
      // Declared dead (or gone): it will not report; recovery does not wait for it.
      probes_.erase(id);
      it = awaiting_.erase(it);
      ++awaited_dead_;
      if (awaiting_.empty()) LogRecovered();
      continue;
    }
    ++it;
    auto& probe = probes_[id];
    if (!probe) probe = std::make_unique<ConnectProbe>(e->second.address);
    // One connect per node (its answer is kept): refused -> dead at the next Tick.
    if (probe->Check() == ConnectProbe::Result::kRefused) {
      Log("node " + id + ": nothing listens at " + e->second.address +
          " any more (its daemon is gone): declared dead without waiting out the grace window");
      (void)controller_.ExpireRestored(id, NowS());
    }
  }
}

void HeadDaemon::Impl::NoteReported(const NodeId& id) {
  probes_.erase(id);
  if (awaiting_.erase(id) == 0 || !awaiting_.empty()) return;
  LogRecovered();
}

void HeadDaemon::Impl::LogRecovered() {
  Log("recovery: every restored node reported again " +
      std::to_string(static_cast<int64_t>(NowS() * 1000)) + " ms after the head started" +
      (awaited_dead_ > 0 ? " (" + std::to_string(awaited_dead_) + " declared dead instead)" : ""));
}

void HeadDaemon::Impl::Persist() {
  if (!store_) return;
  HeadStore::Batch batch;
  auto diff = [&](HeadStore::Table t, std::map<std::string, std::string> now) {
    auto& last = persisted_[t];
    for (auto& [id, bytes] : now) {
      auto it = last.find(id);
      if (it != last.end() && it->second == bytes) continue;
      batch.put.emplace_back(t, id, bytes);
    }
    for (const auto& [id, bytes] : last) {
      if (now.count(id) == 0) batch.del.emplace_back(t, id);
    }
    last = std::move(now);
  };
  {
    std::map<std::string, std::string> rows;
    for (const auto& [id, m] : controller_.members()) {
      // What identifies the node and its totals; availability changes every heartbeat and is
      // reported again after a restart, so it is stored as "all free".
      v1::NodeInfo n;
      ToProto(m.node, &n);
      *n.mutable_available() = n.total();
      n.clear_devices();
      const NodeEntry& e = nodes_.at(id);
      n.set_address(e.address);
      n.set_is_head_node(e.is_head_node);
      n.set_pid(e.pid);
      n.set_metrics_address(e.metrics_address);
      rows[id] = n.SerializeAsString();
    }
    diff(HeadStore::Table::kNodes, std::move(rows));
  }
  {
    std::map<std::string, std::string> rows;
    for (const auto& [id, g] : controller_.groups()) {
      v1::PlacementGroupInfo info;
      GroupToProto(id, g, &info);
      rows[id] = info.SerializeAsString();
    }
    diff(HeadStore::Table::kGroups, std::move(rows));
  }
  if (actors_dirty_ || NowS() >= next_actor_sweep_s_) {
    actors_dirty_ = false;
    next_actor_sweep_s_ = NowS() + 1.0;
    v1::ListActorsReply all;
    actors_.List(&all);
    std::map<std::string, std::string> rows;
    for (const auto& a : all.actors()) rows[a.actor_id()] = a.SerializeAsString();
    diff(HeadStore::Table::kActors, std::move(rows));
  }
  store_->Write(std::move(batch));
}

HeadDaemon::HeadDaemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HeadDaemon::~HeadDaemon() { Stop(); }

StatusOr<std::unique_ptr<HeadDaemon>> HeadDaemon::Start(const HeadOptions& options) {
  if (options.token.empty()) return InvalidArgument("token: empty");
  auto impl = std::make_unique<Impl>(options);
  ORRERY_RETURN_IF_ERROR(impl->Serve());
  return std::unique_ptr<HeadDaemon>(new HeadDaemon(std::move(impl)));
}

int HeadDaemon::port() const { return impl_->port(); }
int HeadDaemon::dashboard_port() const { return impl_->dashboard_port(); }  // --- jobs
int HeadDaemon::metrics_port() const { return impl_->metrics_port(); }
std::string HeadDaemon::metrics_targets_path() const { return impl_->metrics_targets_path(); }
bool HeadDaemon::StopRequested() const { return impl_->stop_requested(); }
void HeadDaemon::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live

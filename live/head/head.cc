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
  Log("stopped");
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

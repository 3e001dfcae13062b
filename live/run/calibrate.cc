#include "live/run/calibrate.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "core/results/run_record.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double CpuOf(const v1::Resources& r) {
  auto it = r.raw().find("CPU");
  return it == r.raw().end() ? 0.0 : static_cast<double>(it->second) / 10000.0;
}

// The measurements, against one head and (up to) two of its nodes.
class Calibrator {
 public:
  Calibrator(std::string head_address, std::string token, CalibrateOptions o)
      : head_address_(std::move(head_address)), token_(std::move(token)), o_(o) {}

  StatusOr<Calibration> Run() {
    ORRERY_RETURN_IF_ERROR(PickNodes());
    Progress("nodes: " + c_.node_a + (c_.node_b.empty() ? "" : ", " + c_.node_b));
    ORRERY_RETURN_IF_ERROR(MeasureLeaseRequest());
    ORRERY_RETURN_IF_ERROR(MeasureTaskStart());
    ORRERY_RETURN_IF_ERROR(MeasureWorkerStart());
    if (o_.worker_start_batch > 1) ORRERY_RETURN_IF_ERROR(MeasureWorkerStartBatch());
    ORRERY_RETURN_IF_ERROR(MeasureTaskFinish());
    ORRERY_RETURN_IF_ERROR(MeasureVisibility());
    ORRERY_RETURN_IF_ERROR(MeasureSpillback());
    ORRERY_RETURN_IF_ERROR(MeasureObjects());
    return c_;
  }

 private:
  void Progress(const std::string& line) {
    if (o_.progress) *o_.progress << "calibrate: " << line << std::endl;
  }
  void Record(const std::string& name, std::vector<double> s) {
    LatencyStats st = LatencyStats::Of(std::move(s));
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: n=%zu mean %.3f ms, p50 %.3f ms, p95 %.3f ms", name.c_str(),
                  st.samples_s.size(), st.mean * 1e3, st.p50 * 1e3, st.p95 * 1e3);
    Progress(buf);
    c_.latencies[name] = std::move(st);
  }
  std::string NextId(const std::string& what) {
    return "calibrate-" + run_tag_ + "-" + what + "-" + std::to_string(++seq_);
  }
  template <class Ctx>
  void Prepare(Ctx* ctx, milliseconds deadline) {
    AttachToken(ctx, token_);
    ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  }

  Status PickNodes() {
    head_ = v1::HeadService::NewStub(OpenChannel(head_address_));
    grpc::ClientContext ctx;
    Prepare(&ctx, milliseconds(5000));
    v1::ListNodesReply reply;
    grpc::Status s = head_->ListNodes(&ctx, v1::ListNodesRequest(), &reply);
    if (!s.ok()) {
      return Status(StatusCode::kUnavailable,
                    "cannot list the nodes of the head at " + head_address_ + ": " +
                        s.error_message());
    }
    std::vector<const v1::NodeInfo*> alive;
    for (const auto& n : reply.nodes()) {
      if (n.state() == v1::NODE_STATE_ALIVE && CpuOf(n.total()) >= 1) alive.push_back(&n);
    }
    if (alive.empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    "no alive node with at least 1 CPU at " + head_address_);
    }
    // The head's own node first (the default entry node of drivers), then by id.
    std::stable_sort(alive.begin(), alive.end(), [](const v1::NodeInfo* x, const v1::NodeInfo* y) {
      if (x->is_head_node() != y->is_head_node()) return x->is_head_node();
      return x->node_id() < y->node_id();
    });
    c_.node_a = alive[0]->node_id();
    a_ = v1::NodeService::NewStub(OpenChannel(alive[0]->address()));
    a_cpus_ = CpuOf(alive[0]->total());
    if (CpuOf(alive[0]->available()) < a_cpus_) {
      c_.notes.push_back("node " + c_.node_a + " was busy at the start (" +
                         std::to_string(CpuOf(alive[0]->available())) + " of " +
                         std::to_string(a_cpus_) + " CPUs free): numbers include its load");
    }
    if (alive.size() >= 2) {
      c_.node_b = alive[1]->node_id();
      b_address_ = alive[1]->address();
      b_ = v1::NodeService::NewStub(OpenChannel(b_address_));
    } else {
      c_.notes.push_back("one node: spillback not measured (needs two)");
    }
    run_tag_ = std::to_string(
        std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count() %
        100000000);
    return Status::Ok();
  }

  v1::RequestWorkerLeaseRequest LeaseReq(double cpus, bool pin_to_a) {
    v1::RequestWorkerLeaseRequest r;
    r.set_task_id(NextId("lease"));
    r.set_name("calibrate");
    (*r.mutable_resources()->mutable_raw())["CPU"] = static_cast<int64_t>(cpus * 10000 + 0.5);
    if (pin_to_a) {
      r.mutable_strategy()->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
      r.mutable_strategy()->set_node_id(c_.node_a);
      r.mutable_strategy()->set_soft(false);
    }
    return r;
  }

  // A lease from `stub`, granted; its round trip in *rtt_s.
  Status Lease(v1::NodeService::Stub* stub, const v1::RequestWorkerLeaseRequest& req,
               v1::RequestWorkerLeaseReply* reply, double* rtt_s, milliseconds deadline) {
    grpc::ClientContext ctx;
    Prepare(&ctx, deadline);
    const auto t0 = Clock::now();
    grpc::Status s = stub->RequestWorkerLease(&ctx, req, reply);
    if (rtt_s) *rtt_s = Since(t0);
    if (!s.ok()) {
      return Status(StatusCode::kUnavailable, "lease request " + req.task_id() + ": " +
                                                  s.error_message());
    }
    return Status::Ok();
  }

  Status Granted(v1::NodeService::Stub* stub, const v1::RequestWorkerLeaseRequest& req,
                 double* rtt_s) {
    v1::RequestWorkerLeaseReply reply;
    ORRERY_RETURN_IF_ERROR(Lease(stub, req, &reply, rtt_s, milliseconds(10000)));
    if (!reply.has_granted()) {
      return Status(StatusCode::kFailedPrecondition,
                    "lease request " + req.task_id() + " for " + std::to_string(CpuOf(req.resources())) +
                        " CPU was not granted at once (" + reply.reason() +
                        "): is the cluster idle?");
    }
    return Status::Ok();
  }

  void Return(v1::NodeService::Stub* stub, const std::string& id) {
    grpc::ClientContext ctx;
    Prepare(&ctx, milliseconds(5000));
    v1::ReturnWorkerLeaseRequest r;
    r.set_task_id(id);
    v1::ReturnWorkerLeaseReply reply;
    (void)stub->ReturnWorkerLease(&ctx, r, &reply);
  }

  // Runs a 0-ms sleep on lease `id`: seconds from the call to the start event and to the exit.
  Status RunNoop(v1::NodeService::Stub* stub, const std::string& id, const std::string& env_json,
                 double* start_s, double* exit_s, Clock::time_point* exit_at = nullptr) {
    v1::RunTaskRequest r;
    r.set_task_id(id);
    r.set_name("calibrate");
    r.mutable_workload()->set_kind(v1::Workload::SLEEP);
    r.mutable_workload()->set_duration_ms(0);
    r.set_runtime_env_json(env_json);
    grpc::ClientContext ctx;
    Prepare(&ctx, milliseconds(30000));
    const auto t0 = Clock::now();
    auto reader = stub->RunTask(&ctx, r);
    v1::RunTaskReply m;
    bool started = false, exited = false;
    while (reader->Read(&m)) {
      if (m.has_started_pid() && !started) {
        started = true;
        if (start_s) *start_s = Since(t0);
      }
      if (m.has_exit()) {
        exited = true;
        if (exit_s) *exit_s = Since(t0);
        if (exit_at) *exit_at = Clock::now();
        if (m.exit().exit_code() != 0) {
          return Status(StatusCode::kInternal, "task " + id + " failed: " + m.exit().error());
        }
      }
    }
    grpc::Status s = reader->Finish();
    if (!s.ok() || !exited) {
      return Status(StatusCode::kUnavailable,
                    "running task " + id + ": " + (s.ok() ? "no exit" : s.error_message()));
    }
    if (!started && start_s) *start_s = exit_s ? *exit_s : Since(t0);
    return Status::Ok();
  }

  Status MeasureLeaseRequest() {
    std::vector<double> rtts;
    for (int i = 0; i < o_.samples + 5; ++i) {
      auto req = LeaseReq(1, false);
      double rtt = 0;
      ORRERY_RETURN_IF_ERROR(Granted(a_.get(), req, &rtt));
      Return(a_.get(), req.task_id());
      if (i >= 5) rtts.push_back(rtt);  // the first calls open the connection
    }
    Record("lease_request", std::move(rtts));
    return Status::Ok();
  }

  Status MeasureTaskStart() {
    std::vector<double> starts, exits;
    for (int i = 0; i < o_.samples / 2 + 3; ++i) {
      auto req = LeaseReq(1, true);
      ORRERY_RETURN_IF_ERROR(Granted(a_.get(), req, nullptr));
      double st = 0, ex = 0;
      ORRERY_RETURN_IF_ERROR(RunNoop(a_.get(), req.task_id(), "", &st, &ex));
      if (i >= 3) {  // the first ones start the pooled worker
        starts.push_back(st);
        exits.push_back(ex);
      }
    }
    round_trip_value_ = LatencyStats::Of(exits).value;
    Record("task_start", std::move(starts));
    Record("task_round_trip", std::move(exits));
    return Status::Ok();
  }

  // A runtime env not seen before (its own env var, named after the lease): no idle worker has
  // it, so the node starts one (workers are pooled per applied env).
  static std::string FreshEnv(const v1::RequestWorkerLeaseRequest& req) {
    return "{\"env_vars\":{\"ORRERY_CALIBRATE\":\"" + req.task_id() + "\"}}";
  }

  Status MeasureWorkerStart() {
    std::vector<double> extra;
    const int n = std::max(5, o_.samples / 10);
    for (int i = 0; i < n; ++i) {
      auto req = LeaseReq(1, true);
      ORRERY_RETURN_IF_ERROR(Granted(a_.get(), req, nullptr));
      // Timed to the exit, not the start event: the node reports a new worker started once it
      // is spawned, before the process is ready to run anything.
      double ex = 0;
      ORRERY_RETURN_IF_ERROR(RunNoop(a_.get(), req.task_id(), FreshEnv(req), nullptr, &ex));
      extra.push_back(std::max(0.0, ex - round_trip_value_));
    }
    Record("worker_start", std::move(extra));
    return Status::Ok();
  }

  // `worker_start_batch` new workers started at once on A (a fresh env each, leases of
  // a_cpus_ / n CPUs), three times: seconds from the batch's calls to each exit. Not a parameter:
  // the record against which the model's sharing of start-ups (worker_start_parallel) is checked
  // (processor sharing puts every end near n x worker_start / parallel).
  Status MeasureWorkerStartBatch() {
    const int n = o_.worker_start_batch;
    std::vector<double> ends;
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<v1::RequestWorkerLeaseRequest> reqs;
      for (int k = 0; k < n; ++k) {
        reqs.push_back(LeaseReq(a_cpus_ / n, true));
        ORRERY_RETURN_IF_ERROR(Granted(a_.get(), reqs.back(), nullptr));
      }
      std::vector<double> exits(n, 0);
      std::vector<Status> results(n, Status::Ok());
      std::vector<std::thread> threads;
      for (int k = 0; k < n; ++k) {
        threads.emplace_back([&, k] {
          results[k] = RunNoop(a_.get(), reqs[k].task_id(), FreshEnv(reqs[k]), nullptr, &exits[k]);
        });
      }
      for (auto& t : threads) t.join();
      for (int k = 0; k < n; ++k) ORRERY_RETURN_IF_ERROR(results[k]);
      ends.insert(ends.end(), exits.begin(), exits.end());
    }
    c_.worker_start_batch = n;
    Record("worker_start_batch", std::move(ends));
    return Status::Ok();
  }

  // A lease for all of A's CPUs runs a 0-ms task while a second one waits at A (affinity, so it
  // neither spills nor is granted elsewhere); the gap between the first's exit reply and the
  // second's grant is what the finish costs beyond the exit's own trip back.
  Status MeasureTaskFinish() {
    std::vector<double> gaps;
    const int n = std::max(10, o_.samples / 4);
    for (int i = 0; i < n; ++i) {
      auto first = LeaseReq(a_cpus_, true);
      ORRERY_RETURN_IF_ERROR(Granted(a_.get(), first, nullptr));
      auto second = LeaseReq(a_cpus_, true);
      second.set_queue_timeout_ms(10000);
      std::atomic<bool> granted{false};
      Clock::time_point granted_at;
      Status second_status = Status::Ok();
      std::thread waiter([&] {
        v1::RequestWorkerLeaseReply reply;
        second_status = Lease(a_.get(), second, &reply, nullptr, milliseconds(15000));
        granted_at = Clock::now();
        granted = second_status.ok() && reply.has_granted();
      });
      std::this_thread::sleep_for(milliseconds(20));  // the second request is queued at A
      Clock::time_point exit_at;
      Status run = RunNoop(a_.get(), first.task_id(), "", nullptr, nullptr, &exit_at);
      waiter.join();
      ORRERY_RETURN_IF_ERROR(run);
      ORRERY_RETURN_IF_ERROR(second_status);
      if (!granted) {
        return Status(StatusCode::kFailedPrecondition,
                      "a request queued at " + c_.node_a + " was not granted when the lease "
                      "ahead of it ended");
      }
      Return(a_.get(), second.task_id());
      // The grant's reply and the exit's reply travel the same way: the difference is the
      // node's own finish -> free -> grant path.
      gaps.push_back(std::max(0.0, std::chrono::duration<double>(granted_at - exit_at).count()));
    }
    Record("task_finish", std::move(gaps));
    return Status::Ok();
  }

  // The head's cluster view, watched while A's availability is toggled.
  Status MeasureVisibility() {
    grpc::ClientContext ctx;
    AttachToken(&ctx, token_);
    v1::WatchClusterViewRequest wreq;
    auto reader = head_->WatchClusterView(&ctx, wreq);
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Clock::time_point> arrivals;
    double a_avail = -1;
    Clock::time_point avail_changed_at;
    std::thread watcher([&] {
      v1::ClusterView v;
      bool whole = true;  // the first message is the view at subscription, not a broadcast
      while (reader->Read(&v)) {
        const auto now = Clock::now();
        std::lock_guard<std::mutex> l(mu);
        for (const auto& n : v.nodes()) {
          if (n.node_id() != c_.node_a) continue;
          // Views that carry A (after the whole first one): their spacing is the view period.
          if (!whole) arrivals.push_back(now);
          const double avail = CpuOf(n.available());
          if (avail != a_avail) {
            a_avail = avail;
            avail_changed_at = now;
          }
        }
        whole = false;
        cv.notify_all();
      }
    });
    auto wait_for = [&](bool full, Clock::time_point since, double* out) {
      std::unique_lock<std::mutex> l(mu);
      const bool ok = cv.wait_for(l, std::chrono::seconds(10), [&] {
        return (full ? a_avail >= a_cpus_ - 1e-9 : a_avail >= 0 && a_avail < a_cpus_ - 1e-9) &&
               avail_changed_at >= since;
      });
      if (ok) *out = std::chrono::duration<double>(avail_changed_at - since).count();
      return ok;
    };
    std::vector<double> visible;
    Status st = Status::Ok();
    const int n = std::max(10, o_.samples / 10);
    {
      double unused = 0;
      if (!wait_for(true, Clock::time_point(), &unused)) {
        st = Status(StatusCode::kFailedPrecondition,
                    "the head's view never showed " + c_.node_a + " idle");
      }
    }
    // Each change is made at a random point of the view period. Made right after a view
    // arrived (as every sample did before 2026-12-07), it is phase-locked to the head's and A's
    // timers, and every sample measured the same lag (about one period) instead of its
    // distribution: a report, then the head's next broadcast, up to two periods.
    auto arrival_gaps = [&] {  // seconds between the views that carried A
      std::lock_guard<std::mutex> l(mu);
      std::vector<double> gaps;
      for (size_t i = 1; i < arrivals.size(); ++i) {
        gaps.push_back(std::chrono::duration<double>(arrivals[i] - arrivals[i - 1]).count());
      }
      return gaps;
    };
    std::mt19937_64 rng(std::random_device{}());
    auto sleep_to_random_phase = [&] {  // up to the median gap so far (100 ms before one)
      std::vector<double> gaps = arrival_gaps();
      double period = 0.1;
      if (!gaps.empty()) {
        std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
        period = std::clamp(gaps[gaps.size() / 2], 0.001, 10.0);
      }
      std::this_thread::sleep_for(
          std::chrono::duration<double>(std::uniform_real_distribution<double>(0, period)(rng)));
    };
    for (int i = 0; i < n && st.ok(); ++i) {
      sleep_to_random_phase();
      auto req = LeaseReq(a_cpus_, true);
      const auto asked = Clock::now();
      st = Granted(a_.get(), req, nullptr);
      if (!st.ok()) break;
      double d = 0;
      if (!wait_for(false, asked, &d)) {
        st = Status(StatusCode::kDeadlineExceeded,
                    "the head's view did not show the lease on " + c_.node_a + " within 10 s");
        break;
      }
      sleep_to_random_phase();
      Clock::time_point exit_at;
      st = RunNoop(a_.get(), req.task_id(), "", nullptr, nullptr, &exit_at);
      if (!st.ok()) break;
      if (!wait_for(true, exit_at, &d)) {
        st = Status(StatusCode::kDeadlineExceeded,
                    "the head's view did not show " + c_.node_a + " free within 10 s");
        break;
      }
      visible.push_back(d);
    }
    ctx.TryCancel();
    watcher.join();
    (void)reader->Finish();
    ORRERY_RETURN_IF_ERROR(st);
    Record("resources_visible_remote", std::move(visible));
    std::vector<double> gaps = arrival_gaps();
    if (gaps.size() >= 3) {
      Record("report_period", std::move(gaps));
    } else {
      c_.notes.push_back("too few views carrying " + c_.node_a + " to measure the report period");
    }
    return Status::Ok();
  }

  // A full (affinity lease on all its CPUs), then a 1-CPU request at A: it spills to B.
  Status MeasureSpillback() {
    if (!b_) return Status::Ok();
    auto hold = LeaseReq(a_cpus_, true);
    ORRERY_RETURN_IF_ERROR(Granted(a_.get(), hold, nullptr));
    std::vector<double> spills, follows;
    Status st = Status::Ok();
    int not_spilled = 0;
    // Between samples, a view period passes: B's lease of the last sample has gone back and A
    // sees B free again, so A spills at once (with a stale view A holds the request until the
    // next report shows B free: the simulator models that wait from report_period itself).
    auto rp = c_.latencies.find("report_period");
    const auto settle = milliseconds(static_cast<int64_t>(
        1000 * 1.5 * (rp == c_.latencies.end() ? 0.1 : std::max(0.01, rp->second.p50))));
    const int n = std::min(40, std::max(10, o_.samples / 4));
    for (int i = 0; i < n && st.ok(); ++i) {
      std::this_thread::sleep_for(settle);
      auto req = LeaseReq(1, false);
      req.set_queue_timeout_ms(2000);
      v1::RequestWorkerLeaseReply reply;
      double rtt = 0;
      st = Lease(a_.get(), req, &reply, &rtt, milliseconds(5000));
      if (!st.ok()) break;
      if (reply.has_granted()) {  // A's own node took it after all: give it back
        Return(a_.get(), req.task_id());
        ++not_spilled;
        continue;
      }
      if (!reply.has_spillback()) {
        ++not_spilled;
        continue;
      }
      spills.push_back(rtt);
      auto follow = req;
      follow.set_grant_or_reject(true);
      follow.set_spillbacks(reply.spillback().spillbacks());
      v1::RequestWorkerLeaseReply freply;
      double frtt = 0;
      st = Lease(b_.get(), follow, &freply, &frtt, milliseconds(5000));
      if (!st.ok()) break;
      if (freply.has_granted()) {
        follows.push_back(frtt);
        Return(b_.get(), follow.task_id());
      }
    }
    Return(a_.get(), hold.task_id());
    ORRERY_RETURN_IF_ERROR(st);
    if (spills.empty()) {
      c_.notes.push_back("spillback not measured: " + c_.node_a +
                         " never spilled a request it could not hold (" +
                         std::to_string(not_spilled) + " tries)");
      return Status::Ok();
    }
    Record("spillback", std::move(spills));
    if (!follows.empty()) Record("spillback_follow", std::move(follows));
    return Status::Ok();
  }

  Status Put(const std::string& id, uint64_t bytes) {
    grpc::ClientContext ctx;
    Prepare(&ctx, milliseconds(30000));
    v1::PutObjectRequest r;
    r.set_object_id(id);
    r.set_bytes(bytes);
    v1::PutObjectReply reply;
    grpc::Status s = a_->PutObject(&ctx, r, &reply);
    if (!s.ok()) {
      return Status(StatusCode::kUnavailable, "putting object " + id + ": " + s.error_message());
    }
    return Status::Ok();
  }

  StatusOr<double> Fetch(const std::string& id, uint64_t bytes) {
    grpc::ClientContext ctx;
    Prepare(&ctx, milliseconds(30000));
    v1::FetchObjectRequest r;
    r.set_object_id(id);
    const auto t0 = Clock::now();
    auto reader = a_->FetchObject(&ctx, r);
    v1::ObjectChunk chunk;
    uint64_t got = 0;
    while (reader->Read(&chunk)) got += chunk.data().size();
    const double t = Since(t0);
    grpc::Status s = reader->Finish();
    if (!s.ok() || got != bytes) {
      return Status(StatusCode::kUnavailable, "fetching object " + id + ": " +
                                                  (s.ok() ? std::to_string(got) + " of " +
                                                                std::to_string(bytes) + " bytes"
                                                          : s.error_message()));
    }
    return t;
  }

  Status MeasureObjects() {
    const std::string small = NextId("obj-1KiB"), big = NextId("obj-16MiB");
    constexpr uint64_t kSmall = 1024, kBig = 16ull << 20;
    ORRERY_RETURN_IF_ERROR(Put(small, kSmall));
    ORRERY_RETURN_IF_ERROR(Put(big, kBig));
    std::vector<double> lat, bigs;
    for (int i = 0; i < std::max(10, o_.samples / 10); ++i) {
      auto t = Fetch(small, kSmall);
      if (!t.ok()) return t.status();
      lat.push_back(*t);
    }
    for (int i = 0; i < 5; ++i) {
      auto t = Fetch(big, kBig);
      if (!t.ok()) return t.status();
      bigs.push_back(*t);
    }
    const LatencyStats l = LatencyStats::Of(lat);
    const LatencyStats b = LatencyStats::Of(bigs);
    const double transfer = b.p50 - l.p50;
    if (transfer > 0) c_.object_bandwidth_Bps = static_cast<double>(kBig - kSmall) / transfer;
    Record("object_latency", std::move(lat));
    if (!o_.private_cluster) {
      c_.notes.push_back("objects: fetched from " + c_.node_a + " by calibrate itself; " +
                         std::to_string(kBig) + " + " + std::to_string(kSmall) +
                         " bytes left in its store (ids " + small + ", " + big + ")");
    }
    return Status::Ok();
  }

  const std::string head_address_, token_;
  const CalibrateOptions o_;
  Calibration c_;
  std::unique_ptr<v1::HeadService::Stub> head_;
  std::unique_ptr<v1::NodeService::Stub> a_, b_;
  std::string b_address_, run_tag_;
  double a_cpus_ = 1;
  int seq_ = 0;
  double round_trip_value_ = 0;  // a 0-ms task on a reused worker: RunTask -> exit
};

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", s);
  return buf;
}

}  // namespace

LatencyStats LatencyStats::Of(std::vector<double> samples_s) {
  LatencyStats st;
  st.samples_s = std::move(samples_s);
  if (st.samples_s.empty()) return st;
  // The percentiles every result file uses (core/results/run_record.h).
  const results::Percentiles p = results::Summarise(st.samples_s);
  st.mean = p.mean;
  st.p50 = p.p50;
  st.p95 = p.p95;
  st.p99 = p.p99;
  std::vector<double> sorted = st.samples_s;
  std::sort(sorted.begin(), sorted.end());
  st.max = sorted.back();
  double kept = 0;
  size_t n = 0;
  for (double x : sorted) {
    if (x > st.p95 && n > 0) break;
    kept += x;
    ++n;
  }
  st.value = kept / static_cast<double>(n);
  return st;
}

StatusOr<Calibration> Calibrate(const std::string& head_address, const std::string& token,
                                const CalibrateOptions& options) {
  Calibrator c(head_address, token, options);
  return c.Run();
}

std::string ControlPlaneYaml(const Calibration& c, const std::vector<std::string>& header) {
  std::ostringstream out;
  for (const auto& h : header) out << "# " << h << "\n";
  out << "# nodes measured: " << c.node_a << (c.node_b.empty() ? "" : ", " + c.node_b) << "\n";
  for (const auto& n : c.notes) out << "# note: " << n << "\n";
  out << "# Values in seconds: the mean of the samples up to the 95th percentile; each line's\n"
         "# comment has the number of samples, mean, p50, p95, p99 and max.\n";
  out << "control_plane:\n";
  auto line = [&](const std::string& key, const std::string& value, const LatencyStats* st) {
    out << "  " << key << ": " << value;
    if (st) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "  # n=%zu mean=%.3fms p50=%.3fms p95=%.3fms p99=%.3fms max=%.3fms",
                    st->samples_s.size(), st->mean * 1e3, st->p50 * 1e3, st->p95 * 1e3,
                    st->p99 * 1e3, st->max * 1e3);
      out << buf;
    }
    out << "\n";
  };
  const char* kKeys[] = {"lease_request", "spillback",  "task_start",
                         "worker_start",  "task_finish", "resources_visible_remote",
                         "report_period", "object_latency"};
  for (const char* k : kKeys) {
    auto it = c.latencies.find(k);
    if (it == c.latencies.end()) continue;
    line(k, Seconds(it->second.value), &it->second);
    if (std::string(k) == "report_period") {
      line("report_jitter", Seconds(std::max(0.0, it->second.p95 - it->second.p50)), nullptr);
    }
  }
  if (c.object_bandwidth_Bps > 0) {
    out << "  object_bandwidth: " << Seconds(c.object_bandwidth_Bps * 8 / 1e9) << "Gbps\n";
  }
  const auto batch = c.latencies.find("worker_start_batch");
  if (c.host_cores > 0) {
    out << "  worker_start_parallel: " << c.host_cores
        << "  # this host's cores: a start-up is CPU work, and every node of a cluster on one "
           "host starts its workers on them\n";
    // With the cores shared evenly, a batch of n > cores start-ups ends after
    // latency + n / cores x cpu, one alone after latency + cpu: the two give the CPU part.
    auto one = c.latencies.find("worker_start");
    const double over = static_cast<double>(c.worker_start_batch) / c.host_cores - 1;
    if (one != c.latencies.end() && batch != c.latencies.end() && over > 0.5 &&
        one->second.value > 0) {
      const double cpu = (batch->second.mean - one->second.value) / over;
      const double shared = std::clamp(cpu / one->second.value, 0.0, 1.0);
      char buf[240];
      std::snprintf(buf, sizeof buf,
                    "  worker_start_shared: %.3f  # (batch mean - worker_start) / (%d / %d - 1) "
                    "= %.1fms of CPU work per start-up; the rest is latency\n",
                    shared, c.worker_start_batch, c.host_cores, cpu * 1e3);
      out << buf;
    }
  }
  if (batch != c.latencies.end()) {
    const LatencyStats& b = batch->second;
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "# measured, not a parameter: %d worker start-ups at once on one node end "
                  "after mean %.1fms (p50 %.1fms, min %.1fms, max %.1fms)\n",
                  c.worker_start_batch, b.mean * 1e3, b.p50 * 1e3,
                  *std::min_element(b.samples_s.begin(), b.samples_s.end()) * 1e3, b.max * 1e3);
    out << buf;
  }
  // Measured for the record; the simulator has no parameter of its own for these.
  for (const char* k : {"task_round_trip", "spillback_follow"}) {
    auto it = c.latencies.find(k);
    if (it == c.latencies.end()) continue;
    out << "# measured, not a parameter: " << k << ": " << Seconds(it->second.value);
    char buf[120];
    std::snprintf(buf, sizeof buf, " (p50 %.3fms, p95 %.3fms)\n", it->second.p50 * 1e3,
                  it->second.p95 * 1e3);
    out << buf;
  }
  return out.str();
}

}  // namespace orrery::live

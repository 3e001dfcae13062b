// The driver side of the C++ client API (orrery_api.h).
//
// One Runtime per process (the API is global like ray::Init; everything below is plain members).
// State is guarded by one mutex `mu_`: the objects table, the scheduling classes and their
// worker links, and the driver's one core submitter (`submitter_`, core/agent/submitter.h).
// The submitter decides: which class waits for which lease, how many lease requests are in
// flight, which call runs on which granted lease (pipelining up to max_tasks_in_flight_per_worker
// per lease), when a lease goes back (idle timeout, a GPU class's one call per lease). The
// runtime feeds it events (submit, lease granted/failed, call finished, lease lost, Tick) under
// mu_ and applies its decisions (ApplyLocked): start a lease thread, hand a call to a link, close
// a link, fail a call. Calls waiting for a lease live in a slab (`calls_`) keyed by the task
// handle the submitter holds. Threads:
//   - the caller's threads submit (Remote) and wait (Get on `cv_`);
//   - one lease thread per lease request: asks the entry node for a lease (following spillbacks,
//     the node's LeaseManager decides), attaches a code worker, opens the Push stream to it, then
//     reads result batches until the stream ends, and finally gives the lease back;
//   - the janitor ticks the submitter (idle leases go back), closes the links it returned, and
//     joins finished lease threads.
// Writing: whoever hands tasks to an idle link (a submitter or a lease thread) becomes that
// link's writer until its outbox is empty (`writing` under mu_), so a lone task is written from
// the submitting thread with no hand-off, and a backlog goes out in batches.
//
// Failures: a link whose stream ends without us closing it lost its worker (or the worker's
// node: a Ready probe of the node tells which). No split brain (DESIGN section 11): the watcher
// thread polls the head's node list while the driver holds leases, and a link on a node the head
// has declared dead is cut (its stream canceled) even if the node still answers the driver: what
// arrives on it from then on is not accepted, and its calls are retried or its actor restarted
// as for a dead node. Its unanswered calls are resubmitted ahead of
// their class's queue (SubmitFront) while they have retries (a new lease follows), else failed. An
// actor's class puts its factory call first again (restart) or becomes dead. Actor transitions
// are queued in `reports_` and sent to the head by the janitor, never under mu_.
//
// ObjectRef arguments: a call with a ref argument that is not ready yet is held in its class
// (`Class::held`), its argument objects pinned (a released ref's value stays until the call took
// it); `dependents_` maps each awaited object to the calls waiting on it. When the object
// finishes (FinishObjectLocked / FailObjectLocked, under mu_) its waiters are counted down or
// failed at once, and their classes marked in `dirty_`; whoever finished it then submits the
// ready calls (values spliced into the argument bytes) and applies what the submitter decides,
// in the same critical section (SettleLocked). An actor releases its held calls front first
// only, so a waiting call holds back the later calls of that actor (submission order).
#include <dlfcn.h>
#include <unistd.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "live/api/log_printer.h"
#include "core/agent/submitter.h"
#include "core/placement/two_phase.h"
#include "live/head/actor_directory.h"
#include "live/api/orrery_api.h"
#include "live/client/client.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"
#include "live/common/runtime_env.h"
#include "live/common/session.h"
#include "live/common/tls.h"
#include "orrery.grpc.pb.h"

namespace orrery::api {
namespace {

namespace fs = std::filesystem;
std::atomic<uint64_t> g_epoch{0};  // --- ObjectRef arguments: one per Runtime (see epoch_)
using Clock = std::chrono::steady_clock;
using internal::ActorState;
using internal::CallOptions;
using internal::Entry;
using internal::RefState;
using std::chrono::milliseconds;

// --- head fault tolerance: how long the driver's calls to the head ride out a head that is gone
// (killed and being restarted with the same store, live/head/head_store.h) before they fail:
// 60 s as Ray's gcs_rpc_server_reconnect_timeout_s; ORRERY_HEAD_RECONNECT_TIMEOUT_S overrides.
// Tasks and actor calls go node-direct and do not wait for the head at all.
milliseconds HeadReconnectTimeout() {
  static const milliseconds timeout = [] {
    const char* v = std::getenv("ORRERY_HEAD_RECONNECT_TIMEOUT_S");
    if (v == nullptr || *v == '\0') return milliseconds(60000);
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (end == v || *end != '\0' || !(s >= 0) || s > 3600) {
      std::cerr << "orrery::api: ORRERY_HEAD_RECONNECT_TIMEOUT_S=" << v
                << ": expected seconds in 0..3600; using 60\n";
      return milliseconds(60000);
    }
    return milliseconds(static_cast<int64_t>(s * 1000));
  }();
  return timeout;
}

// The head is not answering (down, restarting): worth asking again.
bool HeadGone(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded;
}
inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& s) {
  return s.status();
}

// Calls `call` (a head RPC) until it answers, the head is not gone, or HeadReconnectTimeout
// has passed; every 200 ms.
template <typename F>
auto RetryWhileHeadGone(F&& call) -> decltype(call()) {
  const auto deadline = Clock::now() + HeadReconnectTimeout();
  while (true) {
    auto r = call();
    if (!HeadGone(StatusOf(r)) || Clock::now() >= deadline) return r;
    std::this_thread::sleep_for(milliseconds(200));
  }
}

Status FromGrpcStatus(const grpc::Status& s) {
  return Status(static_cast<StatusCode>(s.error_code()), s.error_message());
}

struct Object {
  enum class State { kPending, kReady, kFailed };
  State state = State::kPending;
  const Entry* entry = nullptr;
  std::string value;
  Status error;
  // --- ObjectRef arguments: held calls that will read this object's value; while pinned, a
  // released object (its last ObjectRef went away) is kept and erased at the last unpin.
  int pins = 0;
  bool released = false;
};

struct Call {
  uint64_t object = 0;  // also the ApiTask seq
  const Entry* entry = nullptr;
  std::string args;
  // Resubmissions left after a worker or node died (-1: infinite); a copy of `args` is kept
  // while the call is in flight only when this is not 0.
  int retries_left = 0;
  bool retry_exceptions = false;
  int attempt = 0;  // 0 = the first submission
};

struct Class;

// --- ObjectRef arguments: the value of `object` goes at `offset` of a held call's args.
struct Dep {
  size_t offset = 0;
  uint64_t object = 0;
};
// A call held until its ref arguments are ready.
struct Held {
  Call call;              // args without the values of `deps`
  std::vector<Dep> deps;  // ascending offsets; each object pinned while held
  int unready = 0;        // deps still pending
};

// One leased worker and the Push stream to it.
struct Link {
  Class* cls = nullptr;
  agent::LeaseHandle lease = 0;  // the submitter's handle
  std::string lease_id;
  std::shared_ptr<grpc::Channel> node_channel;
  std::unique_ptr<v1::NodeService::Stub> node_stub;
  grpc::ClientContext attach_ctx;
  std::unique_ptr<grpc::ClientReader<v1::AttachWorkerReply>> attach;
  std::unique_ptr<v1::WorkerService::Stub> worker_stub;
  grpc::ClientContext push_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ApiTaskBatch, v1::ApiResultBatch>> stream;
  std::mutex io_mu;  // WritesDone / Finish (never concurrent with each other)
  std::string node_id;  // where the lease was granted
  std::string node_address;
  int worker_pid = 0;
  // Set (under mu_) when the head has declared `node_id` dead: results read on it are dropped.
  bool node_declared_dead = false;

  // Guarded by the runtime's mu_.
  std::deque<Call> outbox;           // handed to this link, not yet written
  std::map<uint64_t, Call> pending;  // handed to this link, not yet answered (by submission)
  bool writing = false;
  bool closing = false;
};

// Tasks with the same library, resources and strategy share leases; an actor is its own class.
struct Class {
  std::string library;
  CallOptions options;
  std::string runtime_env_json;  // merged with the driver's env, working_dir uploaded
  std::string name;  // for the node's task table
  bool actor = false;
  agent::ClassHandle handle = 0;  // the submitter's class (its queue of calls waiting for a lease)
  std::vector<std::shared_ptr<Link>> links;  // attached workers (transport: for kill and stop)
  Status dead;                    // actor: once set, every call fails with it
  bool drain_then_close = false;  // actor: the last handle is gone
  // --- actors: the directory record and what a restart needs.
  std::string actor_id;
  std::string class_name;
  Call create;                 // the factory call with its original arguments
  uint64_t create_object = 0;  // the current incarnation's creation call
  int num_restarts = 0;
  v1::ActorState state = v1::ACTOR_STATE_PENDING_CREATION;
  std::string death_cause;
  std::string node_id;
  int worker_pid = 0;
  // --- ObjectRef arguments: calls waiting for their ref arguments, by call object (= submission
  // order). An actor's later calls wait here too while any earlier call does.
  std::map<uint64_t, Held> held;
  // Leases in a row lost between grant and attach (see RunLease); reset by an attach.
  int lost_leases_in_a_row = 0;
};

// A class gives up (fails its waiting calls) after this many leases in a row were lost before
// a worker attached: a cluster where no lease ever holds fails the calls instead of hanging.
constexpr int kMaxLostLeasesInARow = 32;

// "Counter::Create" -> "Counter"; a factory not inside a class keeps its name.
std::string ClassNameOf(const std::string& factory) {
  const size_t cut = factory.rfind("::");
  return cut == std::string::npos || cut == 0 ? factory : factory.substr(0, cut);
}

class Runtime {
 public:
  static StatusOr<std::shared_ptr<Runtime>> Connect(const InitOptions& o) {
    auto rt = std::shared_ptr<Runtime>(new Runtime(o));
    ORRERY_RETURN_IF_ERROR(rt->Resolve());
    rt->StartLogPrinter();
    rt->janitor_ = std::thread([r = rt.get()] { r->JanitorLoop(); });
    rt->watcher_ = std::thread([r = rt.get()] { r->WatchDeadNodes(); });
    return rt;
  }
  ~Runtime() { Stop(); }

  // --- runtime envs: a call's env as JSON (the driver's base merged with the call's), a local
  // working_dir uploaded once per distinct call env. Blocks for the upload (the caller's thread).
  StatusOr<std::string> CallEnv(const CallOptions& options) {
    if (options.runtime_env_json.empty()) return live::ToJson(base_env_);
    {
      std::lock_guard<std::mutex> l(env_mu_);
      auto it = call_envs_.find(options.runtime_env_json);
      if (it != call_envs_.end()) return it->second;
    }
    auto own = live::ParseRuntimeEnvJson(options.runtime_env_json, "SetRuntimeEnv");
    if (!own.ok()) return own.status();
    auto merged =
        live::UploadWorkingDir(live::MergeRuntimeEnv(base_env_, *own), head_address_, token_);
    if (!merged.ok()) return merged.status();
    std::string json = live::ToJson(*merged);
    std::lock_guard<std::mutex> l(env_mu_);
    call_envs_.emplace(options.runtime_env_json, json);
    return json;
  }

  std::shared_ptr<RefState> Submit(const Entry* e, const void* address, internal::EncodedArgs args,
                                   const CallOptions& given) {
    auto ref = std::make_shared<RefState>();
    if (e == nullptr || e->kind != Entry::Kind::kFunction) {
      ref->error = FailedPrecondition("the function is not registered with ORRERY_REMOTE");
      return ref;
    }
    if (!given.error.ok()) {
      ref->error = given.error;
      return ref;
    }
    const CallOptions options = InPlacementGroup(given);
    auto library = LibraryOf(address);
    if (!library.ok()) {
      ref->error = library.status();
      return ref;
    }
    auto shape = ToProtoResources(options.resources);
    if (!shape.ok()) {
      ref->error = shape.status();
      return ref;
    }
    auto renv = CallEnv(options);  // --- runtime envs
    if (!renv.ok()) {
      ref->error = renv.status();
      return ref;
    }
    std::string key =
        *library + '\0' + *shape + '\0' + StrategyKey(options.strategy) + '\0' + *renv;
    std::vector<std::shared_ptr<Link>> to_write;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) {
        ref->error = Status(StatusCode::kCancelled, "the runtime is shutting down");
        return ref;
      }
      auto& c = classes_[key];
      if (!c) {
        c = std::make_unique<Class>();
        c->library = *library;
        c->options = options;
        c->runtime_env_json = *renv;
        c->name = "api:" + e->name;
        // A task class holding GPUs: each lease runs one call, then its worker goes (Ray's
        // max_calls=1 default for GPU tasks, so GPU memory a call left behind is released).
        agent::ClassOptions co;
        const auto gpu = options.resources.find("GPU");
        if (gpu != options.resources.end() && gpu->second > 0) co.max_tasks_per_lease = 1;
        AddClassLocked(c.get(), co);
      }
      ref->id = NewObjectLocked(e);
      ref->runtime = epoch_;
      EnqueueLocked(
          *c,
          Call{ref->id, e, std::move(args.bytes), options.max_retries, options.retry_exceptions, 0},
          args.refs);
      SettleLocked(&to_write);
    }
    Flush(to_write);
    return ref;
  }

  std::shared_ptr<ActorState> CreateActor(const Entry* e, const void* address,
                                          internal::EncodedArgs args, const CallOptions& given) {
    auto actor = std::make_shared<ActorState>();
    if (e == nullptr || e->kind != Entry::Kind::kFactory) {
      actor->error = FailedPrecondition("the factory is not registered with ORRERY_REMOTE");
      return actor;
    }
    if (!given.error.ok()) {
      actor->error = given.error;
      return actor;
    }
    const CallOptions options = InPlacementGroup(given);
    auto library = LibraryOf(address);
    if (!library.ok()) {
      actor->error = library.status();
      return actor;
    }
    if (auto shape = ToProtoResources(options.resources); !shape.ok()) {
      actor->error = shape.status();
      return actor;
    }
    auto renv = CallEnv(options);  // --- runtime envs
    if (!renv.ok()) {
      actor->error = renv.status();
      return actor;
    }
    std::vector<std::shared_ptr<Link>> to_write;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) {
        actor->error = Status(StatusCode::kCancelled, "the runtime is shutting down");
        return actor;
      }
      actor->id = next_id_++;
      auto c = std::make_unique<Class>();
      c->library = *library;
      c->options = options;
      c->runtime_env_json = *renv;
      c->actor = true;
      c->name = "api:actor:" + e->name;
      c->actor_id = driver_id_ + "-" + std::to_string(actor->id);
      actor->actor_id = c->actor_id;
      c->class_name = ClassNameOf(e->name);
      c->create = Call{0, e, args.bytes, 0, false, 0};  // its args complete once released
      // One lease (one worker, one request at a time) kept while the actor lives, taking every
      // call at once, in order.
      agent::ClassOptions co;
      co.max_pending_lease_requests = 1;
      co.max_leases = 1;
      co.max_tasks_in_flight_per_lease = std::numeric_limits<int>::max();
      co.keep_idle_leases = true;
      AddClassLocked(c.get(), co);
      // The creation call goes first; its result object is internal (nobody waits on it).
      const uint64_t create = NewObjectLocked(e);
      c->create_object = create;
      actors_[actor->id] = c.get();
      auto& slot = classes_["actor:" + std::to_string(actor->id)];
      slot = std::move(c);
      // --- ObjectRef arguments: held (DEPENDENCIES_UNREADY) or buried (DEAD) by EnqueueLocked.
      EnqueueLocked(*slot, Call{create, e, std::move(args.bytes)}, args.refs);
      if (slot->state != v1::ACTOR_STATE_DEAD) ReportActorLocked(*slot);
      SettleLocked(&to_write);
    }
    Flush(to_write);
    return actor;
  }

  std::shared_ptr<RefState> SubmitActorTask(const ActorState& actor, const Entry* e,
                                            internal::EncodedArgs args) {
    auto ref = std::make_shared<RefState>();
    if (!actor.error.ok()) {
      ref->error = actor.error;
      return ref;
    }
    if (e == nullptr || e->kind != Entry::Kind::kMethod) {
      ref->error = FailedPrecondition("the method is not registered with ORRERY_REMOTE");
      return ref;
    }
    std::vector<std::shared_ptr<Link>> to_write;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = actors_.find(actor.id);
      if (it == actors_.end() || stopping_) {
        ref->error = Status(StatusCode::kCancelled, "the actor is gone");
        return ref;
      }
      Class& c = *it->second;
      if (!c.dead.ok()) {
        ref->error = c.dead;
        return ref;
      }
      ref->id = NewObjectLocked(e);
      ref->runtime = epoch_;
      EnqueueLocked(c,
                    Call{ref->id, e, std::move(args.bytes), c.options.max_task_retries, false, 0},
                    args.refs);
      SettleLocked(&to_write);
    }
    Flush(to_write);
    return ref;
  }

  StatusOr<std::string> Get(const RefState& ref, milliseconds timeout) {
    if (!ref.error.ok()) return ref.error;
    if (ref.runtime != epoch_) return StaleRef(ref.id);
    const auto deadline = Clock::now() + std::min<milliseconds>(timeout, kNoTimeout);
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      auto it = objects_.find(ref.id);
      if (it == objects_.end()) return NotFound("object " + std::to_string(ref.id) + " is gone");
      if (it->second.state == Object::State::kReady) return it->second.value;
      if (it->second.state == Object::State::kFailed) return it->second.error;
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
        auto again = objects_.find(ref.id);
        if (again != objects_.end() && again->second.state == Object::State::kPending) {
          return Status(StatusCode::kDeadlineExceeded,
                        "no result after " + std::to_string(timeout.count()) + " ms");
        }
      }
    }
  }

  // A ref made by an earlier Init (ids restart with each runtime).
  static Status StaleRef(uint64_t id) {
    return FailedPrecondition("object " + std::to_string(id) +
                              " belongs to an earlier Init (the runtime was shut down since)");
  }

  void Release(uint64_t runtime, uint64_t id) {
    if (runtime != epoch_) return;  // not ours: an earlier Init's object
    std::lock_guard<std::mutex> l(mu_);
    auto it = objects_.find(id);
    if (it == objects_.end()) return;
    if (it->second.pins > 0) {
      it->second.released = true;  // --- ObjectRef arguments: a held call still needs it
      return;
    }
    objects_.erase(it);
  }

  // Kill: now; otherwise once the actor's calls are done.
  void EndActor(uint64_t id, bool kill) {
    std::vector<std::shared_ptr<Link>> to_write;  // calls that depended on the actor's results
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = actors_.find(id);
      if (it == actors_.end()) return;
      Class& c = *it->second;
      if (!kill) {
        c.drain_then_close = true;
        if (c.links.empty() && submitter_.PendingRequests(c.handle) == 0 && c.dead.ok()) {
          // Between incarnations (restarting), or not created yet (its creation arguments are
          // not ready), with no lease coming: nothing will close it.
          c.dead = Status(StatusCode::kCancelled, "the actor was ended");
          MarkDeadLocked(c, "every handle to it went away");
          FailQueueLocked(c, c.dead);
        }
        janitor_cv_.notify_all();
      } else {
        if (c.dead.ok()) {
          c.dead = Status(StatusCode::kCancelled, "the actor was killed");
          MarkDeadLocked(c, "killed by its driver (Kill)");
        }
        FailQueueLocked(c, c.dead);
        for (auto& link : c.links) {
          ForgetLeaseLocked(*link);
          link->closing = true;
          link->push_ctx.TryCancel();
        }
      }
      SettleLocked(&to_write);
    }
    cv_.notify_all();
    Flush(to_write);
  }

  void Stop() {
    std::vector<std::shared_ptr<Link>> to_write;  // links closing: their writers just leave
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopped_) return;
      stopped_ = true;
      stopping_ = true;
      const Status why(StatusCode::kCancelled, "the runtime shut down");
      for (auto& [key, c] : classes_) {
        FailQueueLocked(*c, why);
        if (c->actor && c->dead.ok()) {
          c->dead = why;
          MarkDeadLocked(*c, "its driver shut down");
        }
        for (auto& link : c->links) {
          ForgetLeaseLocked(*link);
          link->closing = true;
          link->push_ctx.TryCancel();
        }
      }
      for (Link* link : attaching_) link->attach_ctx.TryCancel();
      SettleLocked(&to_write);  // nothing more starts (stopping_)
    }
    Flush(to_write);
    cv_.notify_all();
    janitor_cv_.notify_all();
    if (janitor_.joinable()) janitor_.join();
    if (watcher_.joinable()) watcher_.join();
    std::list<LeaseThread> threads;
    {
      std::lock_guard<std::mutex> l(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.thread.join();
    if (log_printer_) log_printer_->Stop(attached_any_.load());  // logging: workers' last lines
    SendReports();  // the last transitions (DEAD) reach the directory
    // A group lives as long as the driver that created it (Ray's non-detached lifetime): its
    // resources and its name are freed, so a rerun of the same driver can create it again.
    std::vector<std::string> groups;
    {
      std::lock_guard<std::mutex> l(mu_);
      groups.swap(created_groups_);
    }
    if (!groups.empty()) {
      live::HeadClient head(head_address_, token_, milliseconds(2000));
      for (const auto& id : groups) (void)head.RemovePlacementGroup(id);
    }
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, o] : objects_) {
      if (o.state == Object::State::kPending) {
        o.state = Object::State::kFailed;
        o.error = Status(StatusCode::kCancelled, "the runtime shut down");
      }
    }
    cv_.notify_all();
  }

 private:
  struct LeaseThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  explicit Runtime(InitOptions o)
      : options_(std::move(o)), submitter_(SubmitterOptionsOf(options_)) {}

  // The driver's submitter: leases reused per class, at most max_workers_per_class of them and
  // max_pending_leases_per_class requests in flight, max_tasks_in_flight_per_worker calls
  // pipelined on each, an idle one back after idle_lease_timeout.
  static agent::SubmitterOptions SubmitterOptionsOf(const InitOptions& o) {
    agent::SubmitterOptions so;
    so.reuse_leases = true;
    so.max_pending_lease_requests_per_class = std::max(1, o.max_pending_leases_per_class);
    so.max_leases_per_class = std::max(1, o.max_workers_per_class);
    so.max_tasks_in_flight_per_lease = std::max(1, o.max_tasks_in_flight_per_worker);
    so.idle_lease_timeout_s = std::chrono::duration<double>(o.idle_lease_timeout).count();
    return so;
  }
  double NowS() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // Address, token and entry node, from the options, the environment and the session.
  Status Resolve() {
    auto session = live::LatestSession(live::TempRoot(options_.temp_dir));
    std::string address = options_.address;
    if (address.empty()) {
      if (const char* e = std::getenv("ORRERY_ADDRESS"); e && *e) address = e;
    }
    if (address.empty() && session.ok()) {
      if (auto a = live::ReadFileTrimmed(*session / "address"); a.ok()) address = *a;
    }
    if (address.empty()) {
      return FailedPrecondition(
          "no cluster address: pass one to Init, set ORRERY_ADDRESS, or start a cluster with "
          "'orrery start --head'");
    }
    token_ = options_.token;
    if (token_.empty()) {
      if (const char* t = std::getenv("ORRERY_TOKEN"); t && *t) token_ = t;
    }
    if (token_.empty() && session.ok()) {
      if (auto t = live::ReadFileTrimmed(*session / "token"); t.ok()) token_ = *t;
    }
    if (token_.empty()) return FailedPrecondition("no cluster token: set ORRERY_TOKEN");
    // TLS comes from ORRERY_TLS_DIR (or _CERT/_KEY/_CA): a bad one is an error here, not at the
    // first channel (live/common/tls.h).
    if (auto tls = live::ResolveTls(live::TlsSource{}); !tls.ok()) return tls.status();
    if (options_.code_library.empty()) {
      if (const char* c = std::getenv("ORRERY_CODE_LIBRARY"); c && *c) options_.code_library = c;
    }
    {  // --- runtime envs: the driver's base env = the job's, then InitOptions'.
      const char* job = std::getenv("ORRERY_JOB_RUNTIME_ENV");
      auto job_env = live::ParseRuntimeEnvJson(job ? job : "", "ORRERY_JOB_RUNTIME_ENV");
      if (!job_env.ok()) return job_env.status();
      auto own = live::ParseRuntimeEnvJson(options_.runtime_env_json, "runtime_env_json");
      if (!own.ok()) return own.status();
      auto base = live::UploadWorkingDir(live::MergeRuntimeEnv(*job_env, *own), address, token_);
      if (!base.ok()) return base.status();
      base_env_ = *base;
      head_address_ = address;
    }
    {
      char host[128] = {0};
      (void)::gethostname(host, sizeof(host) - 1);
      driver_ = std::string(host) + ":" + std::to_string(::getpid());
      const uint64_t salt = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                            reinterpret_cast<uintptr_t>(this);
      driver_id_ = "actor-" + std::to_string(::getpid()) + "-" + std::to_string(salt % 100000);
    }
    auto nodes = live::HeadClient(address, token_, milliseconds(5000)).ListNodes();
    if (!nodes.ok()) {
      const std::string tls = live::DescribeTlsFailure(nodes.status());  // --- TLS
      if (!tls.empty()) {
        return Status(nodes.status().code(), "cannot reach the head at " + address + ": " + tls);
      }
      return nodes.status().WithContext("cannot reach the head at " + address);
    }
    for (const auto& n : nodes->nodes()) {
      if (n.state() != v1::NODE_STATE_ALIVE) continue;
      const bool match =
          options_.entry_node.empty() ? n.is_head_node() : n.node_id() == options_.entry_node;
      if (match) entry_address_ = n.address();
      if (match) entry_node_id_ = n.node_id();  // logging
    }
    if (entry_address_.empty() && options_.entry_node.empty()) {
      for (const auto& n : nodes->nodes()) {
        if (n.state() == v1::NODE_STATE_ALIVE) {
          entry_address_ = n.address();
          entry_node_id_ = n.node_id();  // logging
          break;
        }
      }
    }
    if (entry_address_.empty()) {
      return Status(StatusCode::kUnavailable,
                    options_.entry_node.empty() ? "no alive node in the cluster"
                                                : "no alive node named " + options_.entry_node);
    }
    return Status::Ok();
  }

  // The entry node again, from the head (after the entry node stopped answering): the head's
  // node if alive, else the first alive node by id. Keeps the old one if the head has none.
  void RefreshEntry() {
    auto nodes = live::HeadClient(head_address_, token_, milliseconds(2000)).ListNodes();
    if (!nodes.ok()) return;
    std::string pick, first;
    for (const auto& n : nodes->nodes()) {
      if (n.state() != v1::NODE_STATE_ALIVE) continue;
      if (first.empty()) first = n.address();
      const bool match =
          options_.entry_node.empty() ? n.is_head_node() : n.node_id() == options_.entry_node;
      if (match) pick = n.address();
    }
    if (pick.empty()) pick = first;
    if (pick.empty()) return;
    std::lock_guard<std::mutex> l(mu_);
    entry_address_ = pick;
  }
  std::string EntryAddress() {
    std::lock_guard<std::mutex> l(mu_);
    return entry_address_;
  }

  // --- placement groups: a call in bundle i of group g asks for each resource r under Ray's
  // bundle name (r_group_i_g, or r_group_g for any bundle) plus a sliver of the bundle marker,
  // so even a call without resources is pinned to the bundle's node (as `live run` does).
  static CallOptions InPlacementGroup(const CallOptions& o) {
    if (o.placement_group.empty()) return o;
    CallOptions out = o;
    out.resources.clear();
    auto name = [&](std::string_view r) {
      return o.bundle_index >= 0 ? IndexedBundleResourceName(r, o.bundle_index, o.placement_group)
                                 : WildcardBundleResourceName(r, o.placement_group);
    };
    for (const auto& [r, v] : o.resources) {
      if (v > 0) out.resources[name(r)] = v;
    }
    out.resources[name(kBundleMarkerResource)] = 0.001;
    return out;
  }

 public:
  PlacementGroup CreateGroup(const std::vector<Resources>& bundles, PlacementStrategy strategy,
                             const std::string& name) {
    std::string id = name;
    if (id.empty()) {
      std::lock_guard<std::mutex> l(mu_);
      id = "pg-" + driver_id_.substr(6) + "-" + std::to_string(next_group_++);
    }
    const int n = static_cast<int>(bundles.size());
    if (bundles.empty()) {
      return PlacementGroup(id, 0, InvalidArgument("bundles: empty (a group needs at least one)"));
    }
    v1::CreatePlacementGroupRequest req;
    req.set_group_id(id);
    switch (strategy) {
      case PlacementStrategy::kPack:
        req.set_strategy("PACK");
        break;
      case PlacementStrategy::kSpread:
        req.set_strategy("SPREAD");
        break;
      case PlacementStrategy::kStrictPack:
        req.set_strategy("STRICT_PACK");
        break;
      case PlacementStrategy::kStrictSpread:
        req.set_strategy("STRICT_SPREAD");
        break;
    }
    for (int i = 0; i < n; ++i) {
      auto b = live::AmountsToProto(bundles[i], "bundles[" + std::to_string(i) + "]");
      if (!b.ok()) return PlacementGroup(id, n, b.status());
      *req.add_bundles() = std::move(*b);
    }
    live::HeadClient head(head_address_, token_);
    auto created = head.CreatePlacementGroup(req);
    // A group of this name that was just removed frees its name once its bundles are returned.
    for (int i = 0; i < 40 && !created.ok() && created.status().code() == StatusCode::kUnavailable;
         ++i) {
      std::this_thread::sleep_for(milliseconds(50));
      created = head.CreatePlacementGroup(req);
    }
    // A head that is gone (restarting): asked again until it answers. If the first request
    // reached the old head and was stored, the restarted head knows the group already.
    if (!created.ok() && HeadGone(created.status())) {
      created = RetryWhileHeadGone([&] { return head.CreatePlacementGroup(req); });
      if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
        created = v1::PlacementGroupInfo();
      }
    }
    if (created.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      created_groups_.push_back(id);
    }
    return PlacementGroup(id, n, created.ok() ? Status::Ok() : created.status());
  }

  Status WaitGroup(const std::string& id, milliseconds timeout) {
    const auto deadline = Clock::now() + std::min<milliseconds>(timeout, kNoTimeout);
    live::HeadClient head(head_address_, token_, milliseconds(2000));
    std::optional<Clock::time_point> gone_since;  // the head stopped answering
    while (true) {
      auto g = head.GetPlacementGroup(id);
      if (!g.ok() && HeadGone(g.status())) {
        if (!gone_since) gone_since = Clock::now();
        if (Clock::now() - *gone_since < HeadReconnectTimeout() && Clock::now() < deadline) {
          std::this_thread::sleep_for(milliseconds(200));
          continue;
        }
      }
      if (!g.ok()) return g.status();
      gone_since.reset();
      if (g->state() == v1::PLACEMENT_GROUP_STATE_CREATED) return Status::Ok();
      if (g->state() == v1::PLACEMENT_GROUP_STATE_REMOVED) {
        return Status(StatusCode::kCancelled, "placement group " + id + " was removed");
      }
      if (Clock::now() >= deadline) {
        return Status(StatusCode::kDeadlineExceeded,
                      "placement group " + id + " is not created after " +
                          std::to_string(timeout.count()) + " ms (state " +
                          v1::PlacementGroupState_Name(g->state()) +
                          (g->reason().empty() ? "" : ": " + g->reason()) + ")");
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  Status RemoveGroup(const std::string& id) {
    live::HeadClient head(head_address_, token_);
    return RetryWhileHeadGone([&] { return head.RemovePlacementGroup(id); });
  }
  StatusOr<std::vector<std::string>> GroupNodes(const std::string& id) {
    live::HeadClient head(head_address_, token_);
    auto g = RetryWhileHeadGone([&] { return head.GetPlacementGroup(id); });
    if (!g.ok()) return g.status();
    return std::vector<std::string>(g->bundle_nodes().begin(), g->bundle_nodes().end());
  }

 private:
  // --- actors: the directory. Records are queued here and sent by the janitor (in order, never
  // under mu_).
  void ReportActorLocked(const Class& c) {
    v1::ActorInfo a;
    a.set_actor_id(c.actor_id);
    a.set_class_name(c.class_name);
    if (const char* j = std::getenv("ORRERY_JOB_ID"); j && *j) a.set_job_id(j);
    a.set_node_id(c.node_id);
    a.set_worker_pid(c.worker_pid);
    a.set_state(c.state);
    a.set_num_restarts(c.num_restarts);
    a.set_max_restarts(c.options.max_restarts);
    a.set_death_cause(c.death_cause);
    a.set_driver(driver_);
    reports_.push_back(std::move(a));
    janitor_cv_.notify_all();
  }
  void MarkDeadLocked(Class& c, const std::string& cause) {
    if (c.state == v1::ACTOR_STATE_DEAD) return;
    c.state = v1::ACTOR_STATE_DEAD;
    c.death_cause = cause;
    ReportActorLocked(c);
  }
  // Sends the queued records (a failed send is logged once and dropped: the directory is for
  // humans and tools, the actor itself does not depend on it). Bounded: records still unsent
  // after about a second are dropped.
  void SendReports() {
    std::deque<v1::ActorInfo> batch;
    {
      std::lock_guard<std::mutex> l(mu_);
      // The head is gone: ask again at most every 200 ms (the janitor calls this each period).
      if (head_gone_since_ && !stopping_ && Clock::now() < next_report_try_) return;
      batch.swap(reports_);
    }
    const auto deadline = Clock::now() + milliseconds(1000);
    while (!batch.empty()) {
      const v1::ActorInfo a = batch.front();
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left <= milliseconds(0)) break;
      Status s = live::ReportActor(head_address_, token_, a, left);
      // --- head fault tolerance: a head that is gone (restarting) gets the records later, in
      // order, for up to HeadReconnectTimeout; then they are dropped as before.
      if (HeadGone(s)) {
        if (!head_gone_since_) head_gone_since_ = Clock::now();
        next_report_try_ = Clock::now() + milliseconds(200);
        std::lock_guard<std::mutex> l(mu_);
        if (!stopping_ && Clock::now() - *head_gone_since_ < HeadReconnectTimeout()) {
          for (auto it = batch.rbegin(); it != batch.rend(); ++it) reports_.push_front(*it);
          return;
        }
      }
      if (s.ok()) head_gone_since_.reset();
      batch.pop_front();
      if (!s.ok() && !report_warned_) {
        report_warned_ = true;
        std::cerr << "orrery::api: cannot report actor " << a.actor_id()
                  << " to the head: " << s.ToString() << std::endl;
      }
    }
  }

  StatusOr<std::string> LibraryOf(const void* address) {
    if (!options_.code_library.empty()) {
      std::error_code ec;
      auto p = fs::absolute(options_.code_library, ec);
      return ec ? options_.code_library : p.string();
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = libraries_.find(address);
      if (it != libraries_.end()) return it->second;
    }
    Dl_info info{};
    if (::dladdr(address, &info) == 0 || info.dli_fname == nullptr) {
      return FailedPrecondition("cannot tell which library holds the function: set code_library");
    }
    std::error_code ec;
    const fs::path lib = fs::canonical(info.dli_fname, ec);
    const fs::path self = fs::canonical("/proc/self/exe", ec);
    if (lib.empty() || lib == self) {
      return FailedPrecondition(
          "the function is linked into the driver executable: put remote code in a shared "
          "library (or set code_library)");
    }
    std::lock_guard<std::mutex> l(mu_);
    libraries_[address] = lib.string();
    return lib.string();
  }

  static StatusOr<std::string> ToProtoResources(const Resources& r) {
    auto raw = live::AmountsToProto(r, "resources");
    if (!raw.ok()) return raw.status();
    std::string key;
    for (const auto& [name, v] : r) {
      auto it = raw->raw().find(name);
      key += name + "=" + std::to_string(it == raw->raw().end() ? 0 : it->second) + ";";
    }
    return key;
  }
  static std::string StrategyKey(const Strategy& s) {
    return std::to_string(static_cast<int>(s.kind)) + ":" + s.node_id + ":" + (s.soft ? "1" : "0");
  }

  uint64_t NewObjectLocked(const Entry* e) {
    const uint64_t id = next_id_++;
    Object& o = objects_[id];
    o.entry = e;
    return id;
  }

  void FinishObjectLocked(uint64_t id, bool ok, std::string* value, const std::string& error) {
    auto it = objects_.find(id);
    if (it == objects_.end()) return;  // released: nobody can Get it
    Object& o = it->second;
    if (o.state != Object::State::kPending) return;
    if (ok) {
      o.state = Object::State::kReady;
      o.value = std::move(*value);
    } else {
      o.state = Object::State::kFailed;
      o.error = Status(StatusCode::kUnknown, (o.entry ? o.entry->name : std::string("call")) +
                                                  " failed: " + error);
    }
    WakeDependentsLocked(id);
  }

  void FailObjectLocked(uint64_t id, const Status& why) {
    auto it = objects_.find(id);
    if (it == objects_.end() || it->second.state != Object::State::kPending) return;
    it->second.state = Object::State::kFailed;
    it->second.error = why;
    WakeDependentsLocked(id);
  }

  // Fails the queued calls (and, for an actor or at shutdown, the held ones).
  void FailQueueLocked(Class& c, const Status& why) {
    std::vector<agent::TaskHandle> queued;
    submitter_.TakeQueued(c.handle, &queued);  // failing may cascade; never into this queue
    for (agent::TaskHandle t : queued) FailObjectLocked(TakeCallLocked(t).object, why);
    if (c.actor || stopping_) FailHeldLocked(c, why);
  }

  // --- the submitter: classes, the call slab, events in and decisions applied ---------------

  void AddClassLocked(Class* c, const agent::ClassOptions& options) {
    c->handle = static_cast<agent::ClassHandle>(by_handle_.size());
    by_handle_.push_back(c);
    submitter_.SetClassOptions(c->handle, options);
  }

  // The slab of calls waiting for a lease; handle 0 is never used. O(1), no allocation once the
  // slab reached its peak size.
  agent::TaskHandle StoreCallLocked(Call call) {
    if (free_calls_.empty()) {
      calls_.push_back(std::move(call));
      return calls_.size() - 1;
    }
    const agent::TaskHandle t = free_calls_.back();
    free_calls_.pop_back();
    calls_[t] = std::move(call);
    return t;
  }
  Call TakeCallLocked(agent::TaskHandle t) {
    Call call = std::move(calls_[t]);
    calls_[t].args.clear();
    free_calls_.push_back(static_cast<uint32_t>(t));
    return call;
  }

  // A call ready to run (its arguments complete) goes to the submitter.
  void SubmitLocked(Class& c, Call call) {
    submitter_.Submit(StoreCallLocked(std::move(call)), c.handle, NowS(), &decisions_);
  }

  // The submitter forgets `link`'s lease (the runtime ends the link itself: kill, stop).
  void ForgetLeaseLocked(Link& link) {
    submitter_.CancelLease(link.lease);
    links_by_lease_.erase(link.lease);
  }

  // Applies the submitter's decisions, then releases the held calls of dirty classes (which
  // submits them), until neither is left. Calls of a dead class fail.
  void SettleLocked(std::vector<std::shared_ptr<Link>>* to_write) {
    while (true) {
      if (!decisions_.empty()) {
        applying_.swap(decisions_);
        for (const agent::SubmitDecision& d : applying_) ApplyLocked(d, to_write);
        applying_.clear();
        continue;
      }
      if (dirty_.empty()) break;
      std::vector<Class*> dirty;
      dirty.swap(dirty_);
      for (Class* c : dirty) {
        ReleaseHeldLocked(*c);
        if (!c->dead.ok()) FailQueueLocked(*c, c->dead);
      }
    }
  }

  void ApplyLocked(const agent::SubmitDecision& d, std::vector<std::shared_ptr<Link>>* to_write) {
    using Kind = agent::SubmitDecision::Kind;
    switch (d.kind) {
      case Kind::kRequestLease: {
        Class& c = *by_handle_[d.cls];
        if (stopping_ || !c.dead.ok() || (c.actor && c.drain_then_close)) {
          submitter_.CancelLease(d.lease);
          return;
        }
        // --- actors: an actor's lease is attempt num_restarts; a task class's, the attempt of
        // the call waiting first (a retried call asks for a new lease).
        const int attempt = c.actor ? c.num_restarts
                            : d.task != 0 && d.task < calls_.size() ? calls_[d.task].attempt
                                                                    : 0;
        StartLeaseLocked(c, d.lease, attempt);
        return;
      }
      case Kind::kPushTask: {
        Call call = TakeCallLocked(d.task);
        auto it = links_by_lease_.find(d.lease);
        if (it == links_by_lease_.end()) {  // cannot happen: every granted lease has a link
          FailObjectLocked(call.object, Status(StatusCode::kInternal, "no link for a lease"));
          return;
        }
        Link& link = *it->second;
        Call kept{call.object,           call.entry,  std::string(), call.retries_left,
                  call.retry_exceptions, call.attempt};
        if (call.retries_left != 0) kept.args = call.args;  // for a resubmission
        link.pending.emplace(call.object, std::move(kept));
        link.outbox.push_back(std::move(call));
        if (!link.writing) {
          link.writing = true;
          to_write->push_back(it->second);
        }
        return;
      }
      case Kind::kReturnLease: {
        auto it = links_by_lease_.find(d.lease);
        if (it == links_by_lease_.end()) return;
        it->second->closing = true;
        returning_.push_back(std::move(it->second));  // the janitor ends its stream
        links_by_lease_.erase(it);
        janitor_cv_.notify_all();
        return;
      }
      case Kind::kFailTask:
        FailObjectLocked(TakeCallLocked(d.task).object, Status(fail_code_, d.reason));
        return;
    }
  }

  // --- ObjectRef arguments ------------------------------------------------------------------

  static std::string DescribeObject(uint64_t id, const Object& o) {
    return "object " + std::to_string(id) + " (" + (o.entry ? o.entry->name : "call") + ")";
  }
  static Status DependencyFailed(const std::string& what, const Status& error) {
    return Status(error.code(), "dependency " + what + " failed: " + error.message());
  }

  // The call's ref arguments: Ok with `deps` and how many are not ready, or why the call fails.
  Status CollectDepsLocked(const std::vector<internal::ArgRef>& refs, std::vector<Dep>* deps,
                           int* unready) {
    for (const auto& a : refs) {
      const std::string arg = "argument " + std::to_string(a.index);
      if (!a.ref) return InvalidArgument(arg + ": empty ObjectRef");
      if (!a.ref->error.ok()) return DependencyFailed(arg, a.ref->error);
      if (a.ref->runtime != epoch_) return StaleRef(a.ref->id).WithContext(arg);
      auto it = objects_.find(a.ref->id);
      if (it == objects_.end()) {
        return NotFound(arg + ": object " + std::to_string(a.ref->id) +
                        " is unknown to this runtime (a ref from before Shutdown?)");
      }
      if (it->second.state == Object::State::kFailed) {
        return DependencyFailed(DescribeObject(it->first, it->second), it->second.error);
      }
      if (it->second.state == Object::State::kPending) ++*unready;
      deps->push_back(Dep{a.offset, a.ref->id});
    }
    return Status::Ok();
  }

  // `bytes` with each dep's value inserted at its offset (every dep is ready).
  std::string SpliceLocked(std::string bytes, const std::vector<Dep>& deps) {
    if (deps.empty()) return bytes;
    std::string out;
    size_t from = 0;
    for (const Dep& d : deps) {
      out.append(bytes, from, d.offset - from);
      out += objects_.at(d.object).value;
      from = d.offset;
    }
    out.append(bytes, from, std::string::npos);
    return out;
  }

  void UnpinLocked(const std::vector<Dep>& deps) {
    for (const Dep& d : deps) {
      auto it = objects_.find(d.object);
      if (it == objects_.end()) continue;
      if (--it->second.pins == 0 && it->second.released) {
        objects_.erase(it);
        dependents_.erase(d.object);  // only stale entries can be left for it
      }
    }
  }

  // Queues `call` on `c`, or holds it until its ref arguments are ready, or fails it (a failed or
  // empty ref). The fast path (no refs, nothing held ahead of an actor call) is a push_back.
  void EnqueueLocked(Class& c, Call call, const std::vector<internal::ArgRef>& refs) {
    const bool create = c.actor && call.object == c.create_object;
    const bool behind = c.actor && !c.held.empty();  // an actor keeps submission order
    if (refs.empty() && !behind) {
      SubmitLocked(c, std::move(call));
      return;
    }
    std::vector<Dep> deps;
    int unready = 0;
    Status failed = CollectDepsLocked(refs, &deps, &unready);
    if (!failed.ok()) {
      if (create) {
        BuryUncreatedLocked(c, failed);
      } else {
        FailObjectLocked(call.object, failed);
      }
      return;
    }
    if (unready == 0 && !behind) {
      call.args = SpliceLocked(std::move(call.args), deps);
      if (create) c.create.args = call.args;
      SubmitLocked(c, std::move(call));
      return;
    }
    for (const Dep& d : deps) {
      Object& o = objects_.at(d.object);
      ++o.pins;
      if (o.state == Object::State::kPending) dependents_[d.object].push_back({&c, call.object});
    }
    if (create) c.state = v1::ACTOR_STATE_DEPENDENCIES_UNREADY;
    const uint64_t id = call.object;
    c.held.emplace(id, Held{std::move(call), std::move(deps), unready});
  }

  // Object `id` finished: count down the calls waiting on it, or fail them (which cascades to
  // their own dependents). Their classes are left in dirty_ for SettleLocked.
  void WakeDependentsLocked(uint64_t id) {
    auto it = dependents_.find(id);
    if (it == dependents_.end()) return;
    std::vector<std::pair<Class*, uint64_t>> waiters = std::move(it->second);
    dependents_.erase(it);
    const Object& o = objects_.at(id);  // pinned by its waiters
    const bool failed = o.state == Object::State::kFailed;
    const Status why = failed ? DependencyFailed(DescribeObject(id, o), o.error) : Status::Ok();
    for (const auto& [cls, call_id] : waiters) {
      auto h = cls->held.find(call_id);
      if (h == cls->held.end()) continue;  // failed already (another dependency, or its actor)
      dirty_.push_back(cls);
      if (!failed) {
        --h->second.unready;
        continue;
      }
      Held held = std::move(h->second);
      cls->held.erase(h);
      UnpinLocked(held.deps);
      if (cls->actor && call_id == cls->create_object) {
        BuryUncreatedLocked(*cls, why);
      } else {
        FailObjectLocked(call_id, why);
      }
    }
  }

  // An actor whose creation argument failed: DEAD, and every call of it fails.
  void BuryUncreatedLocked(Class& c, const Status& why) {
    c.dead = Status(why.code(), "actor " + c.actor_id + " (" + c.class_name +
                                    ") could not be created: " + why.message());
    MarkDeadLocked(c, why.message());
    objects_.erase(c.create_object);
    FailQueueLocked(c, c.dead);
  }

  void FailHeldLocked(Class& c, const Status& why) {
    std::map<uint64_t, Held> held;
    held.swap(c.held);
    for (auto& [id, h] : held) {
      UnpinLocked(h.deps);
      if (c.actor && id == c.create_object) {
        objects_.erase(id);  // internal
      } else {
        FailObjectLocked(id, why);
      }
    }
  }

  // Submits the held calls of `c` whose arguments are ready (an actor's: from the front, in
  // order, up to the first that still waits).
  void ReleaseHeldLocked(Class& c) {
    for (auto it = c.held.begin(); it != c.held.end();) {
      if (it->second.unready > 0) {
        if (c.actor) break;
        ++it;
        continue;
      }
      Held h = std::move(it->second);
      it = c.held.erase(it);
      h.call.args = SpliceLocked(std::move(h.call.args), h.deps);
      UnpinLocked(h.deps);
      if (c.actor && h.call.object == c.create_object) {
        c.create.args = h.call.args;  // a restart runs the factory with the same values
        c.state = v1::ACTOR_STATE_PENDING_CREATION;
        ReportActorLocked(c);
      }
      SubmitLocked(c, std::move(h.call));
    }
  }

  // Writes the outbox of each link until it is empty (the caller was made its writer).
  void Flush(const std::vector<std::shared_ptr<Link>>& links) {
    for (const auto& link : links) {
      while (true) {
        v1::ApiTaskBatch batch;
        {
          std::lock_guard<std::mutex> l(mu_);
          if (link->outbox.empty() || link->closing) {
            link->writing = false;
            cv_.notify_all();  // a lease thread may wait for the writer to leave
            break;
          }
          for (Call& call : link->outbox) {
            auto* t = batch.add_tasks();
            t->set_seq(call.object);
            t->set_function(call.entry->name);
            t->set_args(std::move(call.args));
          }
          link->outbox.clear();
        }
        if (!link->stream->Write(batch)) {
          // The stream is broken: the lease thread's Read fails and cleans up.
          std::lock_guard<std::mutex> l(mu_);
          link->writing = false;
          cv_.notify_all();
          break;
        }
      }
    }
  }

  // Applies a kRequestLease: a thread asks for lease `lease` of class `c`.
  void StartLeaseLocked(Class& c, agent::LeaseHandle lease, int attempt) {
    // epoch_: a later Init of this process may get the same address while the node still
    // holds a lease of the earlier one.
    const std::string lease_id = "api-" + std::to_string(::getpid()) + "-" +
                                 std::to_string(reinterpret_cast<uintptr_t>(this) & 0xffffff) +
                                 "-" + std::to_string(epoch_) + "-" + std::to_string(next_lease_++);
    auto done = std::make_shared<std::atomic<bool>>(false);
    Class* cp = &c;
    // The one lease acquirer, callback form: its thread follows the request, then runs the
    // lease (attach, push, receive) and ends with it.
    live::AcquireOptions ao;
    ao.first_queue_timeout = ao.requeue_timeout = milliseconds(200);  // re-asked while needed
    ao.rpc_timeout = milliseconds(5000);
    // About 5 s: long enough for the head to declare a dead node dead (heartbeat timeout) and
    // for the entry node's view to drop it; the entry node itself may be gone (a dead node):
    // every third time, ask the head for another.
    ao.max_unreachable = 50;
    ao.unreachable_pause = milliseconds(100);
    ao.entry = [this](int unreachable) {
      if (unreachable % 3 == 0) RefreshEntry();
      return EntryAddress();
    };
    ao.still_needed = [this, cp, lease] { return StillNeeded(cp, lease); };
    threads_.push_back(LeaseThread{
        live::AcquireLeaseAsync(
            entry_address_, token_, LeaseRequestLocked(cp, lease_id, attempt), std::move(ao),
            [this, cp, lease, lease_id, done](StatusOr<live::AcquiredLease> got) {
              RunLease(cp, lease, lease_id, std::move(got));
              done->store(true);
            }),
        done});
  }

  // True while the submitter still wants `lease` (checked between lease requests).
  bool StillNeeded(Class* c, agent::LeaseHandle lease) {
    std::lock_guard<std::mutex> l(mu_);
    return !stopping_ && c->dead.ok() && submitter_.StillNeeded(lease);
  }

  // REQUIRES: mu_ held.
  v1::RequestWorkerLeaseRequest LeaseRequestLocked(Class* c, const std::string& lease_id,
                                                   int attempt) {
    v1::RequestWorkerLeaseRequest req;
    // --- dashboard: the task table shows which job a task belongs to.
    if (const char* job = std::getenv("ORRERY_JOB_ID"); job != nullptr) req.set_job_id(job);
    req.set_task_id(lease_id);
    req.set_name(c->name);
    // Validated when the class was made (ToProtoResources).
    if (auto raw = live::AmountsToProto(c->options.resources, "resources"); raw.ok()) {
      *req.mutable_resources() = std::move(*raw);
    }
    auto* s = req.mutable_strategy();
    switch (c->options.strategy.kind) {
      case Strategy::Kind::kDefault: s->set_type(v1::SchedulingStrategy::DEFAULT); break;
      case Strategy::Kind::kSpread: s->set_type(v1::SchedulingStrategy::SPREAD); break;
      case Strategy::Kind::kNodeAffinity:
        s->set_type(v1::SchedulingStrategy::NODE_AFFINITY);
        s->set_node_id(c->options.strategy.node_id);
        s->set_soft(c->options.strategy.soft);
        break;
    }
    req.set_queue_timeout_ms(200);  // re-asked while still needed
    req.set_attempt(attempt);
    return req;
  }

  Status Attach(Class* c, const std::string& node_address, Link* link) {
    link->node_channel = live::OpenChannel(node_address);
    link->node_stub = v1::NodeService::NewStub(link->node_channel);
    live::AttachToken(&link->attach_ctx, token_);
    v1::AttachWorkerRequest req;
    req.set_task_id(link->lease_id);
    req.set_code_library(c->library);
    for (const auto& [k, v] : options_.env_vars) (*req.mutable_env())[k] = v;
    req.set_runtime_env_json(c->runtime_env_json);  // --- runtime envs
    req.set_actor(c->actor);
    req.set_job_id(job_id_);  // logging: the worker's files and lines carry the job
    link->attach = link->node_stub->AttachWorker(&link->attach_ctx, req);
    v1::AttachWorkerReply reply;
    if (!link->attach->Read(&reply)) {
      grpc::Status s = link->attach->Finish();
      link->attach.reset();
      if (s.ok()) return Status(StatusCode::kUnavailable, "the node ended the lease");
      return FromGrpcStatus(s).WithContext("attaching a worker at " + node_address);
    }
    link->worker_pid = reply.pid();
    grpc::ChannelArguments args;
    // One connection per worker (no sharing with other links' subchannels).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = live::OpenChannel(reply.worker_address(), args);
    link->worker_stub = v1::WorkerService::NewStub(channel);
    live::AttachToken(&link->push_ctx, token_);
    link->stream = link->worker_stub->Push(&link->push_ctx);
    attached_any_ = true;  // logging: Stop waits for this driver's workers' last lines
    return Status::Ok();
  }

  void RunLease(Class* c, agent::LeaseHandle lease, const std::string& lease_id,
                StatusOr<live::AcquiredLease> address) {
    auto link = std::make_shared<Link>();
    link->cls = c;
    link->lease = lease;
    link->lease_id = lease_id;
    Status s = address.status();
    if (s.code() == StatusCode::kCancelled) {
      s = Status(StatusCode::kCancelled, "the lease was canceled: " + std::string(s.message()));
    }
    if (s.ok()) {
      {
        // Stop() cancels the attach call if it comes meanwhile.
        std::lock_guard<std::mutex> l(mu_);
        attaching_.insert(link.get());
        if (stopping_) link->attach_ctx.TryCancel();
      }
      link->node_address = address->address;
      link->node_id = address->node_id;
      s = Attach(c, address->address, link.get());
      {
        std::lock_guard<std::mutex> l(mu_);
        attaching_.erase(link.get());
      }
      if (!s.ok() && link->attach == nullptr && s.code() != StatusCode::kUnavailable) {
        // The lease was granted but no worker came: give it back.
        (void)live::NodeClient(address->address, token_).ReturnWorkerLease(lease_id);
      }
    }
    // Chaos finding (issue 18.2): a lease whose node died or was declared dead between the
    // grant and the attach (the node unreachable, "the node ended the lease", or its worker
    // killed by SIGTERM/SIGKILL as the node shut down) failed every call waiting in its class
    // (696 of 1,000 tasks in one run). That is a lost lease, as when a worker dies later: the
    // class asks for another one. The node says so with UNAVAILABLE (a worker killed by
    // SIGTERM/SIGKILL before it was ready, live/worker/worker.cc); a worker that exits by itself
    // (a bad library, a crash) is FAILED_PRECONDITION and still fails the calls.
    const bool lost = address.ok() && s.code() == StatusCode::kUnavailable;
    std::vector<std::shared_ptr<Link>> to_write;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (s.ok()) c->lost_leases_in_a_row = 0;
      if (!s.ok() || stopping_ || !c->dead.ok()) {
        if (s.ok()) {
          // Shutting down, or the actor died meanwhile: the worker goes at once.
          submitter_.CancelLease(lease);
        } else if (s.code() == StatusCode::kAborted && s.message() == "no longer needed") {
          submitter_.CancelLease(lease);
        } else if (lost && !stopping_ && c->dead.ok() &&
                   c->lost_leases_in_a_row < kMaxLostLeasesInARow) {
          ++c->lost_leases_in_a_row;
          submitter_.CancelLease(lease);
          submitter_.SubmitFront(nullptr, 0, c->handle, NowS(), &decisions_);
          SettleLocked(&to_write);
        } else {
          if (c->actor && c->dead.ok()) {
            c->dead = Status(s.code(), "actor " + c->actor_id + " (" + c->class_name +
                                           ") could not be created: " + s.message());
            MarkDeadLocked(*c, "no worker for it: " + s.ToString());
          }
          // The submitter fails the class's waiting calls (with this status's code).
          fail_code_ = s.code();
          submitter_.OnLeaseRequestFailed(lease, std::string(s.message()), NowS(), &decisions_);
          SettleLocked(&to_write);
          fail_code_ = StatusCode::kUnavailable;
          if (c->actor) FailQueueLocked(*c, s);  // its held calls too
        }
        link->closing = true;
        SettleLocked(&to_write);
      } else {
        c->links.push_back(link);
        links_by_lease_[lease] = link;
        if (c->actor) {
          c->node_id = link->node_id;
          c->worker_pid = link->worker_pid;
          ReportActorLocked(*c);
        }
        submitter_.OnLeaseGranted(lease, 0, NowS(), &decisions_);
        SettleLocked(&to_write);
      }
    }
    Flush(to_write);
    if (link->stream && !link->closing) Receive(link);
    Close(link);
  }

  void Receive(const std::shared_ptr<Link>& link) {
    v1::ApiResultBatch batch;
    Class* c = link->cls;
    while (link->stream->Read(&batch)) {
      std::vector<std::shared_ptr<Link>> to_write;
      {
        std::lock_guard<std::mutex> l(mu_);
        // Read after the head declared the node dead (the watcher canceled the stream): refused.
        if (link->node_declared_dead) break;
        const double now = NowS();
        for (auto& r : *batch.mutable_results()) {
          auto it = link->pending.find(r.seq());
          if (it == link->pending.end()) continue;  // not ours (already failed or resubmitted)
          Call call = std::move(it->second);
          link->pending.erase(it);
          submitter_.OnTaskFinished(link->lease, now, &decisions_);
          if (c->actor && r.seq() == c->create_object) {
            // --- actors: the factory ran (again): alive, or dead with the factory's error.
            if (r.ok()) {
              c->state = v1::ACTOR_STATE_ALIVE;
              ReportActorLocked(*c);
            } else {
              MarkDeadLocked(*c, "its factory failed: " + r.error());
            }
            objects_.erase(r.seq());  // internal: nobody waits on it
            continue;
          }
          if (!r.ok() && call.retry_exceptions && call.retries_left != 0 && c->dead.ok()) {
            // An application error, retried on request (Ray's retry_exceptions).
            if (call.retries_left > 0) --call.retries_left;
            ++call.attempt;
            SubmitLocked(*c, std::move(call));
            continue;
          }
          FinishObjectLocked(r.seq(), r.ok(), r.mutable_value(), r.error());
        }
        SettleLocked(&to_write);  // --- ObjectRef arguments: also calls that waited on these
      }
      cv_.notify_all();
      Flush(to_write);
    }
  }

  // The stream ended (closed by us, canceled, or the worker died): forget the link, fail what it
  // still held, give the lease back.
  void Close(const std::shared_ptr<Link>& link) {
    Class* c = link->cls;
    // An end nobody asked for is the death of the worker or of its node: the node answering or
    // not tells which (for the error messages and the actor directory).
    bool unexpected = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      unexpected = !link->closing && !stopping_ && link->stream != nullptr;
    }
    std::string cause;
    bool declared_dead = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      declared_dead = link->node_declared_dead;
    }
    if (unexpected && declared_dead) {
      cause = "node " + link->node_id + " was declared dead by the head";
    } else if (unexpected) {
      const bool node_alive =
          live::NodeClient(link->node_address, token_, milliseconds(500)).Ready().ok();
      cause = node_alive ? "its worker (pid " + std::to_string(link->worker_pid) + ") on node " +
                               link->node_id + " died"
                         : "node " + link->node_id + " died";
    }
    std::vector<std::shared_ptr<Link>> to_write;
    {
      std::unique_lock<std::mutex> l(mu_);
      const bool was_closing = link->closing;
      link->closing = true;
      cv_.wait(l, [&] { return !link->writing; });
      std::erase(c->links, link);
      unexpected = unexpected && !was_closing && !stopping_;
      std::map<uint64_t, Call> pending = std::move(link->pending);
      link->pending.clear();
      link->outbox.clear();
      // The submitter forgets the lease: lost (its class asks for another if calls wait), or
      // already returned or given up (then this is a no-op).
      if (unexpected) {
        submitter_.OnLeaseLost(link->lease, NowS(), &decisions_);
      } else {
        submitter_.CancelLease(link->lease);
      }
      if (auto it = links_by_lease_.find(link->lease);
          it != links_by_lease_.end() && it->second == link) {
        links_by_lease_.erase(it);
      }
      if (unexpected && !c->actor) {
        std::vector<agent::TaskHandle> again;
        RetryOrFailLocked(&pending, &again, [&](const Call& call) {
          return Status(StatusCode::kUnavailable,
                        call.entry->name + " failed: " + cause + " (attempt " +
                            std::to_string(call.attempt + 1) + ", no retries left)");
        });
        submitter_.SubmitFront(again.data(), again.size(), c->handle, NowS(), &decisions_);
      } else if (unexpected && c->dead.ok()) {
        RestartOrBuryLocked(*c, &pending, cause);
      } else {
        Status why = !c->dead.ok() ? c->dead
                     : stopping_   ? Status(StatusCode::kCancelled, "the runtime shut down")
                                   : Status(StatusCode::kUnavailable,
                                            "the worker of lease " + link->lease_id + " died");
        for (const auto& [id, call] : pending) FailObjectLocked(id, why);
        if (c->actor && link->stream && c->dead.ok()) {
          c->dead = was_closing ? Status(StatusCode::kCancelled, "the actor was ended")
                                : Status(StatusCode::kUnavailable, "the actor's worker died");
          MarkDeadLocked(
              *c, c->drain_then_close ? "every handle to it went away" : "ended by its driver");
        }
      }
      if (!c->dead.ok()) FailQueueLocked(*c, c->dead);
      SettleLocked(&to_write);
    }
    cv_.notify_all();
    Flush(to_write);
    std::lock_guard<std::mutex> io(link->io_mu);
    if (link->stream) {
      link->push_ctx.TryCancel();
      (void)link->stream->Finish();
    }
    if (link->attach) {
      link->attach_ctx.TryCancel();  // ends the lease at the node
      (void)link->attach->Finish();
    }
  }

  // Calls that were in flight on a dead worker: those with retries left are appended to `again`
  // in submission order (the caller submits them ahead of newer calls), the others fail with
  // `why(call)`.
  template <typename Why>
  void RetryOrFailLocked(std::map<uint64_t, Call>* pending, std::vector<agent::TaskHandle>* again,
                         const Why& why) {
    for (auto& [id, call] : *pending) {
      if (call.retries_left != 0) {
        if (call.retries_left > 0) --call.retries_left;
        ++call.attempt;
        again->push_back(StoreCallLocked(std::move(call)));
      } else {
        FailObjectLocked(id, why(call));
      }
    }
  }

  // --- actors: the actor's worker or node died. With restarts left, the factory runs again
  // (first in the queue, so on a new lease) and the calls in flight are resubmitted within
  // max_task_retries; otherwise the actor is dead and every call fails naming it and the cause.
  void RestartOrBuryLocked(Class& c, std::map<uint64_t, Call>* pending, const std::string& cause) {
    const int max = c.options.max_restarts;
    const std::string who = "actor " + c.actor_id + " (" + c.class_name + ")";
    if ((max < 0 || c.num_restarts < max) && !c.drain_then_close) {
      ++c.num_restarts;
      c.state = v1::ACTOR_STATE_RESTARTING;
      c.death_cause = cause;
      ReportActorLocked(c);
      pending->erase(c.create_object);
      objects_.erase(c.create_object);
      Call create = c.create;
      create.object = NewObjectLocked(create.entry);
      create.attempt = c.num_restarts;
      c.create_object = create.object;
      std::vector<agent::TaskHandle> again{StoreCallLocked(std::move(create))};  // first
      RetryOrFailLocked(pending, &again, [&](const Call&) {
        return Status(StatusCode::kUnavailable,
                      who + " died while the call was in flight: " + cause +
                          " (max_task_retries=" + std::to_string(c.options.max_task_retries) +
                          "); the actor is restarting");
      });
      submitter_.SubmitFront(again.data(), again.size(), c.handle, NowS(), &decisions_);
      return;
    }
    const std::string why =
        cause + (max == 0 ? " (max_restarts=0)"
                          : "; out of restarts (" + std::to_string(c.num_restarts) + " of " +
                                std::to_string(max) + " used)");
    c.dead = Status(StatusCode::kUnavailable, who + " is dead: " + why);
    MarkDeadLocked(c, why);
    for (const auto& [id, call] : *pending) FailObjectLocked(id, c.dead);
    objects_.erase(c.create_object);
  }

  // The watcher thread: while any lease is held, asks the head for its node list every
  // kDeadNodePoll and cuts the links on nodes it lists dead (once each). A node that rejoins
  // under the same id is alive in the list again; links made to it after that are kept. If the
  // head cannot be reached the links stay (a head outage is not a node death).
  static constexpr milliseconds kDeadNodePoll{250};
  void WatchDeadNodes() {
    live::HeadClient head(head_address_, token_, milliseconds(1000));  // one channel for all polls
    std::unique_lock<std::mutex> l(mu_);
    while (!stopping_) {
      janitor_cv_.wait_for(l, kDeadNodePoll);
      if (stopping_) break;
      if (links_by_lease_.empty()) continue;
      l.unlock();
      auto list = head.ListNodes();
      l.lock();
      if (!list.ok() || stopping_) continue;
      std::unordered_set<std::string> dead;
      for (const auto& n : list->nodes()) {
        if (n.state() == v1::NODE_STATE_DEAD) dead.insert(n.node_id());
      }
      if (dead.empty()) continue;
      for (auto& [lease, link] : links_by_lease_) {
        if (link->node_declared_dead || link->closing || !dead.count(link->node_id)) continue;
        link->node_declared_dead = true;
        std::cerr << "orrery::api: node " << link->node_id
                  << " was declared dead by the head: lease " << link->lease_id
                  << " is cut, nothing more from it is accepted\n";
        link->push_ctx.TryCancel();  // Receive returns; Close retries or restarts
      }
    }
  }

  void JanitorLoop() {
    const milliseconds period =
        std::clamp<milliseconds>(options_.idle_lease_timeout / 4, milliseconds(5),
                                 milliseconds(50));
    std::unique_lock<std::mutex> l(mu_);
    while (!stopping_) {
      janitor_cv_.wait_for(l, period);
      if (stopping_) break;
      // Leases idle past the timeout go back (the submitter decides, ReturnLease); an actor
      // whose last handle went away ends once its calls are done.
      submitter_.Tick(NowS(), &decisions_);
      for (auto& [id, c] : actors_) {
        if (!c->drain_then_close || submitter_.Queued(c->handle) > 0 || !c->held.empty()) continue;
        for (auto& link : c->links) {
          if (link->closing || !link->pending.empty()) continue;
          ForgetLeaseLocked(*link);
          link->closing = true;
          returning_.push_back(link);
        }
      }
      std::vector<std::shared_ptr<Link>> to_write;  // empty: Tick only returns idle leases
      SettleLocked(&to_write);
      // Links whose writer is still inside Write wait for the next round (never WritesDone
      // during a Write).
      std::vector<std::shared_ptr<Link>> to_close;
      for (auto it = returning_.begin(); it != returning_.end();) {
        if ((*it)->writing) {
          ++it;
          continue;
        }
        to_close.push_back(std::move(*it));
        it = returning_.erase(it);
      }
      for (auto it = threads_.begin(); it != threads_.end();) {
        if (it->done->load()) {
          it->thread.join();
          it = threads_.erase(it);
        } else {
          ++it;
        }
      }
      l.unlock();
      Flush(to_write);
      for (auto& link : to_close) {
        // The worker ends the stream; the lease thread's Read returns and it closes the lease.
        std::lock_guard<std::mutex> io(link->io_mu);
        (void)link->stream->WritesDone();
      }
      SendReports();
      l.lock();
    }
  }

  InitOptions options_;
  std::string token_;
  std::string entry_address_;  // guarded by mu_ once Init returned (RefreshEntry replaces it)
  // --- runtime envs: the driver's base env (set by Resolve), and per-call envs by their JSON,
  // merged and uploaded (guarded by env_mu_).
  live::RuntimeEnv base_env_;
  std::string head_address_;
  std::mutex env_mu_;
  std::map<std::string, StatusOr<std::string>> call_envs_;

  // --- logging: the job's worker lines printed here (live/api/log_printer.h).
  // The job: $ORRERY_JOB_ID (a driver run as a job), else `driver-<8 hex>`, unique per Init.
  static std::string DriverJobId() {
    if (const char* j = std::getenv("ORRERY_JOB_ID"); j && *j) return j;
    std::random_device rd;  // live/, not core/: the OS's randomness is fine here
    char buf[24];
    std::snprintf(buf, sizeof(buf), "driver-%08x", static_cast<unsigned>(rd()));
    return buf;
  }
  // The driver's node: $ORRERY_NODE_ID (set by a node for what it runs), else the entry node.
  void StartLogPrinter() {
    if (!options_.log_to_driver || !live::EnvFlag("ORRERY_LOG_TO_DRIVER", true)) return;
    live::LogPrinterOptions o;
    o.head_address = head_address_;
    o.token = token_;
    o.job_id = job_id_;
    o.local_node = entry_node_id_;
    if (const char* n = std::getenv("ORRERY_NODE_ID"); n && *n) o.local_node = n;
    o.dedup = live::EnvFlag("ORRERY_DEDUP_LOGS", true);
    auto p = live::LogPrinter::Start(std::move(o));
    if (!p.ok()) {
      std::fprintf(stderr, "orrery: worker logs will not be printed: %s\n",
                   p.status().ToString().c_str());
      return;
    }
    log_printer_ = std::move(*p);
  }
  std::string entry_node_id_;
  const std::string job_id_ = DriverJobId();
  std::unique_ptr<live::LogPrinter> log_printer_;
  std::atomic<bool> attached_any_{false};  // a worker ran for this driver
  // --- actors and placement groups
  std::string driver_;                 // HOST:PID, for the directory
  std::string driver_id_;              // prefix of this driver's actor ids
  std::deque<v1::ActorInfo> reports_;  // guarded by mu_; sent by the janitor
  bool report_warned_ = false;         // only the sender touches it
  std::optional<Clock::time_point> head_gone_since_;  // only the sender touches it
  Clock::time_point next_report_try_;                 // only the sender touches it
  uint64_t next_group_ = 1;            // guarded by mu_
  std::vector<std::string> created_groups_;  // guarded by mu_: removed at Stop()

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable janitor_cv_;
  bool stopping_ = false;
  bool stopped_ = false;
  uint64_t next_id_ = 1;
  uint64_t next_lease_ = 1;
  const Clock::time_point start_ = Clock::now();  // the submitter's clock starts here
  // --- the submitter: one per driver; its classes by handle; calls waiting for a lease by task
  // handle (a slab, slot 0 unused); leases by handle; decisions not yet applied (and the batch
  // being applied); links it returned, for the janitor to close; the status code of calls
  // failed by a failed lease request.
  agent::Submitter submitter_;
  std::vector<Class*> by_handle_;
  std::vector<Call> calls_ = std::vector<Call>(1);
  std::vector<uint32_t> free_calls_;
  std::unordered_map<agent::LeaseHandle, std::shared_ptr<Link>> links_by_lease_;
  std::vector<agent::SubmitDecision> decisions_;
  std::vector<agent::SubmitDecision> applying_;
  std::vector<std::shared_ptr<Link>> returning_;
  StatusCode fail_code_ = StatusCode::kUnavailable;
  std::unordered_map<uint64_t, Object> objects_;
  const uint64_t epoch_ = ++g_epoch;  // tags this runtime's refs (RefState::runtime)
  // --- ObjectRef arguments: pending object -> (class, held call) waiting on it; the classes
  // whose held calls changed since the last SettleLocked.
  std::unordered_map<uint64_t, std::vector<std::pair<Class*, uint64_t>>> dependents_;
  std::vector<Class*> dirty_;
  std::map<std::string, std::unique_ptr<Class>> classes_;
  std::map<uint64_t, Class*> actors_;
  std::map<const void*, std::string> libraries_;
  std::list<LeaseThread> threads_;
  std::unordered_set<Link*> attaching_;  // links whose AttachWorker call has no worker yet
  std::thread janitor_;
  std::thread watcher_;  // WatchDeadNodes
};

std::mutex g_mu;
std::shared_ptr<Runtime> g_runtime;

std::shared_ptr<Runtime> Current() {
  std::lock_guard<std::mutex> l(g_mu);
  return g_runtime;
}

Status NotInitialized() {
  return FailedPrecondition("orrery::api is not initialised: call orrery::api::Init first");
}

}  // namespace

Status Init(const InitOptions& options) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_runtime) return FailedPrecondition("orrery::api is already initialised");
  auto rt = Runtime::Connect(options);
  if (!rt.ok()) return rt.status();
  g_runtime = std::move(*rt);
  return Status::Ok();
}

Status Init(const std::string& address) {
  InitOptions o;
  o.address = address;
  return Init(o);
}

void Shutdown() {
  std::shared_ptr<Runtime> rt;
  {
    std::lock_guard<std::mutex> l(g_mu);
    rt = std::move(g_runtime);
  }
  if (rt) rt->Stop();
}

bool IsInitialized() { return Current() != nullptr; }

// ---- placement groups ------------------------------------------------------------------------

PlacementGroup CreatePlacementGroup(const std::vector<Resources>& bundles,
                                    PlacementStrategy strategy, const std::string& name) {
  auto rt = Current();
  if (!rt) return PlacementGroup(name, static_cast<int>(bundles.size()), NotInitialized());
  return rt->CreateGroup(bundles, strategy, name);
}

Status PlacementGroup::Wait(std::chrono::milliseconds timeout) const {
  if (!error_.ok()) return error_;
  auto rt = Current();
  if (!rt) return NotInitialized();
  return rt->WaitGroup(id_, timeout);
}

Status PlacementGroup::Remove() const {
  if (!error_.ok()) return error_;
  auto rt = Current();
  if (!rt) return NotInitialized();
  return rt->RemoveGroup(id_);
}

StatusOr<std::vector<std::string>> PlacementGroup::BundleNodes() const {
  if (!error_.ok()) return error_;
  auto rt = Current();
  if (!rt) return NotInitialized();
  return rt->GroupNodes(id_);
}

namespace internal {

RefState::~RefState() {
  if (id == 0) return;
  if (auto rt = Current()) rt->Release(runtime, id);
}

ActorState::~ActorState() {
  if (id == 0) return;
  if (auto rt = Current()) rt->EndActor(id, /*kill=*/false);
}

std::shared_ptr<RefState> SubmitTask(const Entry* entry, const void* address, EncodedArgs args,
                                     const CallOptions& options) {
  auto rt = Current();
  if (!rt) {
    auto ref = std::make_shared<RefState>();
    ref->error = NotInitialized();
    return ref;
  }
  return rt->Submit(entry, address, std::move(args), options);
}

std::shared_ptr<ActorState> CreateActor(const Entry* factory, const void* address, EncodedArgs args,
                                        const CallOptions& options) {
  auto rt = Current();
  if (!rt) {
    auto a = std::make_shared<ActorState>();
    a->error = NotInitialized();
    return a;
  }
  return rt->CreateActor(factory, address, std::move(args), options);
}

std::shared_ptr<RefState> SubmitActorTask(const ActorState& actor, const Entry* method,
                                          EncodedArgs args) {
  auto rt = Current();
  if (!rt) {
    auto ref = std::make_shared<RefState>();
    ref->error = NotInitialized();
    return ref;
  }
  return rt->SubmitActorTask(actor, method, std::move(args));
}

StatusOr<std::string> GetBytes(const RefState& ref, std::chrono::milliseconds timeout) {
  if (!ref.error.ok()) return ref.error;
  auto rt = Current();
  if (!rt) return NotInitialized();
  return rt->Get(ref, timeout);
}

void KillActor(const ActorState& actor) {
  if (auto rt = Current()) rt->EndActor(actor.id, /*kill=*/true);
}

}  // namespace internal
}  // namespace orrery::api

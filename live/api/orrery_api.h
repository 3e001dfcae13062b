// Orrery's C++ client API: remote functions and actors on a live cluster, in the spirit of
// Ray's C++ API.
//
// Users put their remote code in a shared library and register it there:
//
//   int Add(int a, int b) { return a + b; }
//   class Counter {
//    public:
//     static Counter* Create(int start) { return new Counter(start); }
//     int Increment() { return ++n_; }
//     ...
//   };
//   ORRERY_REMOTE(Add);
//   ORRERY_REMOTE(Counter::Create);      // an actor factory: a static function returning C*
//   ORRERY_REMOTE(&Counter::Increment);  // an actor method
//
// The driver links that library too, then:
//
//   ORRERY_RETURN_IF_ERROR(orrery::api::Init());      // $ORRERY_ADDRESS, token from the session
//   auto ref = orrery::api::Task(Add).Remote(1, 2);   // ObjectRef<int>
//   StatusOr<int> three = orrery::api::Get(ref);
//   auto counter = orrery::api::Actor(Counter::Create).Remote(10);
//   auto eleven = orrery::api::Get(counter.Task(&Counter::Increment).Remote());
//   orrery::api::Shutdown();
//
// How it runs. Workers are `orrery __api_worker` processes started by node daemons; each
// dlopen()s the user's library (the library a function was registered from, found with dladdr,
// or InitOptions::code_library) and executes calls by registered name. The driver asks a node for
// a worker lease once per scheduling class (same library, resources and strategy) and pushes
// many tasks over one stream straight to the leased worker (lease reuse, as Ray's workers lease
// and push); the node's LeaseManager still makes every lease decision (policies, spillback).
// A lease idle for InitOptions::idle_lease_timeout is given back. These owner-side decisions are
// the driver's core submitter's (core/agent/submitter.h, as for `live run` and the simulator's
// owner); the runtime carries them out. An actor is a lease held for
// its lifetime by a dedicated worker; its method calls go to that worker in submission order.
//
// Arguments and results use the codec of codec.h: arithmetic types, std::string, std::vector of
// those (a compile-time error otherwise). A call that throws in the worker fails its ObjectRef
// with kUnknown and the exception's message.
//
// ObjectRefs as arguments (Ray's semantics). Wherever a function's, method's or factory's
// parameter is T, an ObjectRef<T> may be passed instead (any other ObjectRef is a compile-time
// error):
//   auto b = orrery::api::Task(Add).Remote(1, 2);
//   auto c = orrery::api::Task(Add).Remote(b, 10);   // runs once b is ready, receives 3
// The driver owns every result, so it resolves dependencies itself: the call is held (no lease,
// nothing sent) until each ref argument is ready, then the value is encoded in place of the ref
// (inlined, whatever its size). Waiting is event-driven (on the argument's completion), never
// polling. If an argument failed, the call fails without running with the argument's code and
// "dependency object <id> (<function>) failed: <its error>" (so a chain names every link). An
// actor whose creation arguments are not ready is DEPENDENCIES_UNREADY in the directory; a
// failed creation argument makes it DEAD. Calls on one actor still run in submission order: a
// call waiting for an argument holds back the later calls of that actor, even those whose
// arguments are ready. An empty ObjectRef argument fails the call with kInvalidArgument.
//
// Fault tolerance (Ray's semantics). A task whose worker or node dies is submitted again, up to
// SetMaxRetries(n) times [3]; an exception is retried only with SetRetryExceptions(true). Out of
// retries, Get returns kUnavailable naming the task and the cause. A lease lost before its worker
// attached (the node died or shut down, its worker killed meanwhile) costs no retry: another
// lease is asked for (up to 32 in a row, then the waiting calls fail). An actor whose worker or node
// dies is created again (its factory runs again with the original arguments on a new lease, so
// its state is reset) up to SetMaxRestarts(n) times [0; -1 = infinite]; the calls that were in
// flight fail with kUnavailable ("actor ... died") unless SetMaxTaskRetries(n) [0; -1 = infinite]
// lets them be sent to the new incarnation; calls made while it restarts wait for it. Once out
// of restarts the actor is DEAD and every pending and later call fails with kUnavailable naming
// the actor and the cause. Every actor and its transitions (dependencies_unready, pending_creation,
// alive, restarting, dead) are reported to the head's actor directory (`orrery list actors`).
//
// Placement groups: CreatePlacementGroup(bundles, strategy) reserves bundles through the head
// (two-phase, retried until created or removed); SetPlacementGroup(pg, bundle_index) on a task or
// actor asks for the bundle's resources (Ray's names: CPU_group_<i>_<id>, or CPU_group_<id> for
// any bundle), so the nodes' policies place it on the node holding the bundle.
//
// Runtime env: InitOptions::env_vars is added to every worker's environment (workers are reused
// only for an identical library and env). Full runtime envs (live/common/runtime_env.h: env_vars,
// working_dir, setup): the driver's base env is its job's ($ORRERY_JOB_RUNTIME_ENV, set by the
// job manager) merged with InitOptions::runtime_env_json; SetRuntimeEnv(json) on a task or actor
// merges over that (task fields override, env_vars merge key by key). A local working_dir is
// uploaded to the head once per distinct env. Workers are reused only within one env; a setup
// failure fails the calls with the setup command and the tail of its log.
//
// Thread safety: Init/Shutdown from one thread, not concurrently with other calls. Everything
// else (Remote, Get, handles) may be used from any thread once Init returned.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/status.h"
#include "live/api/codec.h"
#include "live/api/registry.h"

namespace orrery::api {

using ::orrery::Status;
using ::orrery::StatusCode;
using ::orrery::StatusOr;

// ---- the runtime ---------------------------------------------------------------------------

struct InitOptions {
  // The head's HOST:PORT. Empty: $ORRERY_ADDRESS, then the latest session's `address` file.
  std::string address;
  // Empty: $ORRERY_TOKEN, then the latest session's `token` file.
  std::string token;
  std::string temp_dir;  // the session root; empty: /tmp/orrery
  // The node tasks are submitted to (it may spill them elsewhere). Empty: the head's node.
  std::string entry_node;
  // The shared library workers load. Empty: $ORRERY_CODE_LIBRARY, else the library each
  // registered function or factory was loaded from (dladdr); a function linked into the driver
  // executable itself cannot run remotely.
  std::string code_library;
  // Added to every worker's environment (a minimal runtime env).
  std::map<std::string, std::string> env_vars;
  // The driver's runtime env as JSON (merged over $ORRERY_JOB_RUNTIME_ENV); empty: the job's.
  // A malformed env makes Init fail with InvalidArgument naming the field.
  std::string runtime_env_json;
  // Tasks pushed ahead to a busy worker while the backlog is larger than the workers can hold,
  // or the class holds max_workers_per_class leases already (core/agent/submitter.h,
  // pipelining); 1 = a worker gets its next task only when it finished the previous one. A
  // pushed task runs on that worker even if another lease arrives later.
  int max_tasks_in_flight_per_worker = 4;
  // Leases of one scheduling class held at once (granted or being requested).
  int max_workers_per_class = 64;
  int max_pending_leases_per_class = 2;
  std::chrono::milliseconds idle_lease_timeout{1000};
  // --- logging (live/api/log_printer.h): workers' stdout/stderr lines of this driver's job are
  // printed to the driver's stdout/stderr as `(<name> pid=<pid>, node=<node>) line`. Off if false
  // or if $ORRERY_LOG_TO_DRIVER is 0; identical lines from several workers within 5 s print once
  // plus `[repeated Nx across cluster]` unless $ORRERY_DEDUP_LOGS is 0. The job is
  // $ORRERY_JOB_ID, else a generated `driver-<hex>` id.
  bool log_to_driver = true;
};

// Connects to the cluster (checks that the head answers and finds the entry node).
// FailedPrecondition if already initialised; Unavailable if the cluster cannot be reached.
Status Init(const InitOptions& options = {});
Status Init(const std::string& address);
// Returns every lease (killing actors) and fails calls still pending with kCancelled. Blocks up
// to about a second (plus up to 2 s to print the workers' last log lines). No-op if not
// initialised.
void Shutdown();
bool IsInitialized();

// ---- per-call options ----------------------------------------------------------------------

using Resources = std::map<std::string, double>;  // e.g. {{"CPU", 2}, {"GPU", 1}}

struct Strategy {
  enum class Kind { kDefault, kSpread, kNodeAffinity };
  Kind kind = Kind::kDefault;
  std::string node_id;  // kNodeAffinity
  bool soft = false;    // kNodeAffinity: fall back to the default policy if the node cannot run it
  static Strategy Default() { return {}; }
  static Strategy Spread() { return {Kind::kSpread, "", false}; }
  static Strategy NodeAffinity(std::string node, bool soft) {
    return {Kind::kNodeAffinity, std::move(node), soft};
  }
};

inline constexpr std::chrono::milliseconds kNoTimeout = std::chrono::hours(24 * 365);

// ---- placement groups ------------------------------------------------------------------------

enum class PlacementStrategy { kPack, kSpread, kStrictPack, kStrictSpread };

// A handle on a placement group of the head (Ray's PlacementGroup). Copyable; the group lives
// until Remove() (or the cluster stops), not until the handle goes away.
class PlacementGroup {
 public:
  PlacementGroup() = default;
  PlacementGroup(std::string id, int bundles, Status error)
      : id_(std::move(id)), bundles_(bundles), error_(std::move(error)) {}
  // The head's group id (the name given to CreatePlacementGroup, else a generated one).
  const std::string& id() const { return id_; }
  int bundle_count() const { return bundles_; }
  // Why the group could not even be asked for (bad bundles, head unreachable); Ok otherwise.
  const Status& status() const { return error_; }
  // Blocks until every bundle is committed: Ok; kDeadlineExceeded after `timeout` (the message
  // has the group's state and why its last attempt failed); kCancelled if it was removed.
  Status Wait(std::chrono::milliseconds timeout) const;
  // Returns every resource the group holds; its tasks still queued are canceled by the nodes.
  Status Remove() const;
  // The node of each bundle (the current or last attempt; empty entries before placement).
  StatusOr<std::vector<std::string>> BundleNodes() const;

 private:
  std::string id_;
  int bundles_ = 0;
  Status error_;
};

// Asks the head for a group of `bundles` (each a resource map, e.g. {{"CPU", 1}}) placed with
// `strategy`; answers at once (state pending). `name` becomes the group id (unique among groups
// the head has seen); empty: a generated id. Errors are in the handle's status().
PlacementGroup CreatePlacementGroup(const std::vector<Resources>& bundles,
                                    PlacementStrategy strategy = PlacementStrategy::kPack,
                                    const std::string& name = "");

template <typename T>
class ObjectRef;

namespace internal {

struct CallOptions {
  Resources resources{{"CPU", 1.0}};  // tasks and actors default to one CPU
  Strategy strategy;
  std::string runtime_env_json;  // merged over the driver's env; empty: the driver's env
  // --- fault tolerance and placement groups (see the header comment).
  std::string placement_group;  // group id; empty: none
  int bundle_index = -1;        // -1: any bundle of the group
  Status error;                 // a bad option (e.g. bundle index out of range)
  int max_retries = 3;          // tasks
  bool retry_exceptions = false;
  int max_restarts = 0;      // actors; -1 infinite
  int max_task_retries = 0;  // actors' method calls; -1 infinite
};

// Validates and stores a placement-group option.
inline void SetPlacementGroupOption(CallOptions* o, const PlacementGroup& pg, int bundle_index) {
  if (!pg.status().ok()) {
    o->error = pg.status();
  } else if (pg.id().empty()) {
    o->error = Status(StatusCode::kInvalidArgument, "placement group: empty handle");
  } else if (bundle_index < -1 || bundle_index >= pg.bundle_count()) {
    o->error = Status(StatusCode::kInvalidArgument,
                      "bundle_index: " + std::to_string(bundle_index) + " is out of range for " +
                          "placement group " + pg.id() + " with " +
                          std::to_string(pg.bundle_count()) + " bundles (-1 = any)");
  }
  o->placement_group = pg.id();
  o->bundle_index = bundle_index;
}

// The driver's handle on one object; the last ObjectRef going away lets the runtime forget it.
struct RefState {
  uint64_t id = 0;
  Status error;  // set when the call could not even be submitted
  // --- ObjectRef arguments: which Init made it (ids restart with each runtime, so a ref kept
  // across Shutdown and Init must not name the new runtime's object).
  uint64_t runtime = 0;
  ~RefState();
};
struct ActorState {
  uint64_t id = 0;
  std::string actor_id;  // the head directory's id
  Status error;
  ~ActorState();  // the last handle going away ends the actor once its calls are done
};

// A call's encoded arguments: `bytes` with the values of `refs` missing. Each ref's value (its
// result encoding, which is the same as the parameter's) belongs at `offset` of `bytes`; offsets
// ascend. `refs` is empty for a call without ObjectRef arguments.
struct ArgRef {
  size_t offset = 0;
  int index = 0;                  // the argument's position, from 0 (for error messages)
  std::shared_ptr<RefState> ref;  // null for an empty ObjectRef
};
struct EncodedArgs {
  std::string bytes;
  std::vector<ArgRef> refs;
};

std::shared_ptr<RefState> SubmitTask(const Entry* entry, const void* address, EncodedArgs args,
                                     const CallOptions& options);
std::shared_ptr<ActorState> CreateActor(const Entry* factory, const void* address, EncodedArgs args,
                                        const CallOptions& options);
std::shared_ptr<RefState> SubmitActorTask(const ActorState& actor, const Entry* method,
                                          EncodedArgs args);
StatusOr<std::string> GetBytes(const RefState& ref, std::chrono::milliseconds timeout);
void KillActor(const ActorState& actor);

template <typename F>
std::string KeyOf(F f) {
  std::string k(sizeof(F), '\0');
  std::memcpy(k.data(), &f, sizeof(F));
  return k;
}
template <typename F>
const void* AddressOf(F f) {
  static_assert(sizeof(F) == sizeof(void*));
  const void* a = nullptr;
  std::memcpy(&a, &f, sizeof(a));
  return a;
}

template <typename F>
struct FnTraits {
  static_assert(kCodecUnsupported<F>,
                "orrery::api: register and call plain functions, static factories returning "
                "C*, or member functions of C (no lambdas, no noexcept, no overload sets)");
};
template <typename R, typename... A>
struct FnTraits<R (*)(A...)> {
  using Ret = R;
  using Args = std::tuple<std::decay_t<A>...>;
  using Class = void;
};
template <typename R, typename C, typename... A>
struct FnTraits<R (C::*)(A...)> {
  using Ret = R;
  using Args = std::tuple<std::decay_t<A>...>;
  using Class = C;
};
template <typename R, typename C, typename... A>
struct FnTraits<R (C::*)(A...) const> : FnTraits<R (C::*)(A...)> {};

template <typename A>
struct RefArg : std::false_type {};
template <typename T>
struct RefArg<ObjectRef<T>> : std::true_type {
  using Value = T;
};

// One argument for parameter type P: a value is encoded, an ObjectRef<P> leaves a hole.
template <typename P, typename A>
void EncodeCallArg(EncodedArgs* out, int index, A&& a) {
  using D = std::decay_t<A>;
  if constexpr (RefArg<D>::value) {
    static_assert(std::is_same_v<typename RefArg<D>::Value, P>,
                  "orrery::api: an ObjectRef<T> argument needs a parameter of type T (the "
                  "decayed parameter type must be exactly the ref's value type)");
    out->refs.push_back(ArgRef{out->bytes.size(), index, a.state()});
  } else {
    Codec<P>::Encode(&out->bytes, static_cast<P>(std::forward<A>(a)));
  }
}

template <typename Tuple>
struct TupleCodec;
template <typename... Ps>
struct TupleCodec<std::tuple<Ps...>> {
  // Values and ObjectRefs (see EncodeCallArg); compile-time checked against Ps.
  template <typename... As>
  static EncodedArgs Encode(As&&... args) {
    static_assert(sizeof...(Ps) == sizeof...(As), "orrery::api: wrong number of arguments");
    EncodedArgs out;
    [[maybe_unused]] int index = 0;
    (EncodeCallArg<Ps>(&out, index++, std::forward<As>(args)), ...);
    return out;
  }
  static std::tuple<Ps...> Decode(std::string_view b) { return DecodeArgs<Ps...>(b); }
};

template <typename R, typename Call>
std::string EncodeResultOf(Call&& call) {
  if constexpr (std::is_void_v<R>) {
    call();
    return std::string();
  } else {
    return EncodeValue<std::decay_t<R>>(call());
  }
}

template <typename R>
inline constexpr bool kIsFactoryResult =
    std::is_pointer_v<R> && std::is_class_v<std::remove_pointer_t<R>>;

// What ORRERY_REMOTE expands to.
template <typename F>
bool Register(const char* name, F f) {
  using T = FnTraits<F>;
  using R = typename T::Ret;
  Entry e;
  e.name = name;
  if constexpr (std::is_member_function_pointer_v<F>) {
    e.kind = Entry::Kind::kMethod;
    e.invoke = [f](std::string_view args, std::shared_ptr<void>* instance) {
      auto* self = static_cast<typename T::Class*>(instance->get());
      auto t = TupleCodec<typename T::Args>::Decode(args);
      return EncodeResultOf<R>(
          [&]() -> R { return std::apply([&](auto&... a) -> R { return (self->*f)(a...); }, t); });
    };
  } else if constexpr (kIsFactoryResult<R>) {
    e.kind = Entry::Kind::kFactory;
    e.invoke = [f](std::string_view args, std::shared_ptr<void>* instance) {
      auto t = TupleCodec<typename T::Args>::Decode(args);
      using C = std::remove_pointer_t<R>;
      std::shared_ptr<C> obj(std::apply([&](auto&... a) { return f(a...); }, t));
      *instance = std::move(obj);
      return std::string();
    };
  } else {
    e.kind = Entry::Kind::kFunction;
    e.invoke = [f](std::string_view args, std::shared_ptr<void>*) {
      auto t = TupleCodec<typename T::Args>::Decode(args);
      return EncodeResultOf<R>(
          [&]() -> R { return std::apply([&](auto&... a) -> R { return f(a...); }, t); });
    };
  }
  GlobalRegistry().Add(KeyOf(f), std::move(e));
  return true;
}

}  // namespace internal

// ---- references and Get ----------------------------------------------------------------------

// The future result of a remote call. Copyable; the value stays retrievable while a copy exists.
template <typename T>
class ObjectRef {
 public:
  ObjectRef() = default;
  explicit ObjectRef(std::shared_ptr<internal::RefState> s) : state_(std::move(s)) {}
  uint64_t id() const { return state_ ? state_->id : 0; }
  const std::shared_ptr<internal::RefState>& state() const { return state_; }

 private:
  std::shared_ptr<internal::RefState> state_;
};

// Blocks until the call finished or `timeout` passed. StatusOr<T> (Status for ObjectRef<void>):
// kDeadlineExceeded on timeout, kUnknown with the exception's message if the call threw,
// kUnavailable if its worker died, kCancelled if the lease was canceled or Shutdown() came first,
// kFailedPrecondition if the runtime is not initialised or the ref is from an earlier Init; a
// call with ref arguments fails as described at the top of this file.
template <typename T>
std::conditional_t<std::is_void_v<T>, Status, StatusOr<T>> Get(
    const ObjectRef<T>& ref, std::chrono::milliseconds timeout = kNoTimeout) {
  if (!ref.state()) return Status(StatusCode::kInvalidArgument, "empty ObjectRef");
  auto bytes = internal::GetBytes(*ref.state(), timeout);
  if (!bytes.ok()) return bytes.status();
  if constexpr (std::is_void_v<T>) {
    return Status::Ok();
  } else {
    try {
      return DecodeValue<T>(*bytes);
    } catch (const CodecError& e) {
      return Status(StatusCode::kInternal, std::string("decoding the result: ") + e.what());
    }
  }
}

// ---- remote functions ------------------------------------------------------------------------

template <typename F>
class TaskCaller {
  using T = internal::FnTraits<F>;

 public:
  explicit TaskCaller(F f) : f_(f) {}
  // Replaces the default {CPU: 1}.
  TaskCaller& SetResources(Resources r) {
    options_.resources = std::move(r);
    return *this;
  }
  TaskCaller& SetStrategy(Strategy s) {
    options_.strategy = std::move(s);
    return *this;
  }
  // A runtime env as JSON, merged over the driver's (see the top of this file).
  TaskCaller& SetRuntimeEnv(std::string json) {
    options_.runtime_env_json = std::move(json);
    return *this;
  }
  // Runs the task in bundle `bundle_index` of `pg` (-1: any bundle).
  TaskCaller& SetPlacementGroup(const PlacementGroup& pg, int bundle_index = -1) {
    internal::SetPlacementGroupOption(&options_, pg, bundle_index);
    return *this;
  }
  // Resubmissions after the worker or node died [3]; 0 = none.
  TaskCaller& SetMaxRetries(int n) {
    options_.max_retries = std::max(0, n);
    return *this;
  }
  // Also retry when the function throws (within max_retries) [false].
  TaskCaller& SetRetryExceptions(bool on) {
    options_.retry_exceptions = on;
    return *this;
  }
  template <typename... As>
  ObjectRef<typename T::Ret> Remote(As&&... args) const {
    static_assert(sizeof...(As) == std::tuple_size_v<typename T::Args>,
                  "orrery::api: wrong number of arguments for this remote function");
    internal::EncodedArgs bytes =
        internal::TupleCodec<typename T::Args>::Encode(std::forward<As>(args)...);
    return ObjectRef<typename T::Ret>(
        internal::SubmitTask(GlobalRegistry().FindByKey(internal::KeyOf(f_)),
                             internal::AddressOf(f_), std::move(bytes), options_));
  }

 private:
  static internal::Registry& GlobalRegistry() { return internal::GlobalRegistry(); }
  F f_;
  internal::CallOptions options_;
};

// `Task(fn)`: fn must be registered with ORRERY_REMOTE.
template <typename F>
TaskCaller<F> Task(F f) {
  static_assert(std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>,
                "orrery::api::Task takes a registered free function");
  return TaskCaller<F>(f);
}

// ---- actors ----------------------------------------------------------------------------------

template <typename C>
class ActorHandle {
 public:
  ActorHandle() = default;
  explicit ActorHandle(std::shared_ptr<internal::ActorState> s) : state_(std::move(s)) {}

  template <typename M>
  class MethodCaller {
    using T = internal::FnTraits<M>;

   public:
    MethodCaller(std::shared_ptr<internal::ActorState> s, M m) : state_(std::move(s)), m_(m) {}
    template <typename... As>
    ObjectRef<typename T::Ret> Remote(As&&... args) const {
      static_assert(sizeof...(As) == std::tuple_size_v<typename T::Args>,
                    "orrery::api: wrong number of arguments for this actor method");
      internal::EncodedArgs bytes =
          internal::TupleCodec<typename T::Args>::Encode(std::forward<As>(args)...);
      return ObjectRef<typename T::Ret>(internal::SubmitActorTask(
          *state_, internal::GlobalRegistry().FindByKey(internal::KeyOf(m_)), std::move(bytes)));
    }

   private:
    std::shared_ptr<internal::ActorState> state_;
    M m_;
  };

  // `handle.Task(&C::Method).Remote(args...)`; calls of one handle run in submission order.
  template <typename M>
  MethodCaller<M> Task(M m) const {
    static_assert(std::is_member_function_pointer_v<M> &&
                      std::is_base_of_v<typename internal::FnTraits<M>::Class, C>,
                  "orrery::api: ActorHandle<C>::Task takes a registered method of C");
    return MethodCaller<M>(state_, m);
  }
  // Ends the actor now: calls not yet finished fail with kCancelled.
  void Kill() const {
    if (state_) internal::KillActor(*state_);
  }
  uint64_t id() const { return state_ ? state_->id : 0; }
  // The actor's id in the head's directory (`orrery list actors`).
  std::string actor_id() const { return state_ ? state_->actor_id : std::string(); }

 private:
  std::shared_ptr<internal::ActorState> state_;
};

template <typename F>
class ActorCreator {
  using T = internal::FnTraits<F>;
  using C = std::remove_pointer_t<typename T::Ret>;

 public:
  explicit ActorCreator(F f) : f_(f) {}
  ActorCreator& SetResources(Resources r) {
    options_.resources = std::move(r);
    return *this;
  }
  ActorCreator& SetStrategy(Strategy s) {
    options_.strategy = std::move(s);
    return *this;
  }
  // A runtime env as JSON, merged over the driver's (see the top of this file).
  ActorCreator& SetRuntimeEnv(std::string json) {
    options_.runtime_env_json = std::move(json);
    return *this;
  }
  // Creates the actor in bundle `bundle_index` of `pg` (-1: any bundle).
  ActorCreator& SetPlacementGroup(const PlacementGroup& pg, int bundle_index = -1) {
    internal::SetPlacementGroupOption(&options_, pg, bundle_index);
    return *this;
  }
  // Times the actor is created again after its worker or node died [0]; -1 = infinite.
  ActorCreator& SetMaxRestarts(int n) {
    options_.max_restarts = std::max(-1, n);
    return *this;
  }
  // Times a method call in flight when the actor died is sent to its next incarnation [0];
  // -1 = infinite.
  ActorCreator& SetMaxTaskRetries(int n) {
    options_.max_task_retries = std::max(-1, n);
    return *this;
  }
  // Creation errors (the factory threw) fail the actor's method calls with the message.
  template <typename... As>
  ActorHandle<C> Remote(As&&... args) const {
    static_assert(sizeof...(As) == std::tuple_size_v<typename T::Args>,
                  "orrery::api: wrong number of arguments for this actor factory");
    internal::EncodedArgs bytes =
        internal::TupleCodec<typename T::Args>::Encode(std::forward<As>(args)...);
    return ActorHandle<C>(
        internal::CreateActor(internal::GlobalRegistry().FindByKey(internal::KeyOf(f_)),
                              internal::AddressOf(f_), std::move(bytes), options_));
  }

 private:
  F f_;
  internal::CallOptions options_;
};

// `Actor(C::Create)`: a registered static factory returning C* (the worker owns the instance).
template <typename F>
ActorCreator<F> Actor(F factory) {
  static_assert(std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>> &&
                    internal::kIsFactoryResult<typename internal::FnTraits<F>::Ret>,
                "orrery::api::Actor takes a registered static factory returning C*");
  return ActorCreator<F>(factory);
}

}  // namespace orrery::api

#define ORRERY_API_CONCAT_INNER(a, b) a##b
#define ORRERY_API_CONCAT(a, b) ORRERY_API_CONCAT_INNER(a, b)
// Registers a free function, a static actor factory (returning C*) or an actor method (&C::M)
// under its spelling. Use at namespace scope in the library that workers load.
#define ORRERY_REMOTE(fn)                                                       \
  [[maybe_unused]] static const bool ORRERY_API_CONCAT(orrery_api_registered_, \
                                                       __COUNTER__) =          \
      ::orrery::api::internal::Register(#fn, fn)

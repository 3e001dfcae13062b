#include "live/run/live_run.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/agent/submitter.h"
#include "core/placement/two_phase.h"
#include "core/results/lease_trace.h"
#include "core/results/task_row.h"
#include "core/scheduling/scheduler.h"
#include "core/scheduling/scheduler_settings.h"
#include "live/cli/autoscaler_cli.h"  // --- autoscaler
#include "live/client/client.h"
#include "live/common/runtime_env.h"
#include "live/common/session.h"
#include "live/head/autoscaler/autoscaler_config.h"  // --- autoscaler
#include "live/head/head.h"
#include "live/node/node.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"

namespace orrery::live {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxTasks = 5000;  // tiny and medium scenarios
constexpr uint64_t kMaxEnvBytes = uint64_t{256} << 20;  // per emulated runtime env

std::string ObjectIdOfTask(const std::string& run, size_t task) {
  return run + "-obj-t" + std::to_string(task);
}
std::string ObjectIdOfInitial(const std::string& run, size_t arg) {
  return run + "-obj-a" + std::to_string(arg);
}

// Shell-quoted `s` ('...', with ' as '\'').
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

RuntimeEnv EmulatedRuntimeEnv(const RuntimeEnvSpec& spec) {
  RuntimeEnv env;
  env.env_vars["ORRERY_SCENARIO_ENV"] = spec.id;
  // The id goes into the install (InstallHash covers setup, not env_vars): two specs with equal
  // numbers stay two installs.
  env.setup.push_back("printf '%s\\n' " + ShellQuote(spec.id) + " > scenario_env_id");
  if (spec.install_s > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "sleep %.3f", spec.install_s);
    env.setup.push_back(buf);
  }
  if (spec.size_bytes > 0) {
    env.setup.push_back("head -c " + std::to_string(spec.size_bytes) + " /dev/zero > blob");
  }
  return env;
}

Status CheckLiveSupport(const Scenario& s) {
  // --- autoscaler: managed node types (and their standby nodes) are the cluster's autoscaler's.
  // Each env's install writes its size to disk on every node that uses it.
  for (const auto& e : s.runtime_envs) {
    if (e.size_bytes > kMaxEnvBytes) {
      return InvalidArgument(s.path + ": runtime_envs." + e.id + ".size: live run installs " +
                             std::to_string(e.size_bytes) +
                             " bytes on every node that uses it; "
                             "at most " +
                             std::to_string(kMaxEnvBytes) +
                             " bytes (256 MiB) per env (scale it down with --set)");
    }
  }
  if (s.tasks.size() > kMaxTasks) {
    return InvalidArgument(s.path + ": workload: live run replays at most " +
                           std::to_string(kMaxTasks) + " tasks, this scenario has " +
                           std::to_string(s.tasks.size()) + " (scale it down with --set)");
  }
  return Status::Ok();
}

// ---- LocalCluster --------------------------------------------------------------------------

StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const Scenario& scenario,
                                                            const fs::path& dir) {
  std::unique_ptr<LocalCluster> c(new LocalCluster());
  c->dir_ = dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + dir.string());
  auto token = GenerateToken();
  if (!token.ok()) return token.status();
  c->token_ = *token;
  const auto period = std::chrono::milliseconds(
      std::max<int64_t>(1, static_cast<int64_t>(scenario.scheduler.report_period_s * 1000 + 0.5)));
  HeadOptions ho;
  ho.port = 0;
  ho.token = c->token_;
  ho.report_period = period;
  // A replayed scenario's node failures are detected as the simulator models them.
  ho.health_check_period = std::max(std::chrono::milliseconds(100), period);
  ho.health_check_failures = 5;
  ho.scheduler = scenario.scheduler.options;  // the cluster's policy is the scenario's
  if (scenario.autoscaler.enabled) {  // --- autoscaler: the head launches the standby nodes' types
    ho.autoscaler =
        std::make_shared<const LiveAutoscalerConfig>(AutoscalerConfigOfScenario(scenario));
  }
  auto head = HeadDaemon::Start(ho);
  if (!head.ok()) return head.status().WithContext("starting the head");
  c->head_ = std::move(*head);
  c->address_ = "127.0.0.1:" + std::to_string(c->head_->port());
  for (size_t i = 0; i < scenario.nodes.size(); ++i) {
    const auto& spec = scenario.nodes[i];
    if (spec.standby) continue;  // --- autoscaler: launched by the head's autoscaler when needed
    NodeOptions no;
    no.head_address = c->address_;
    no.token = c->token_;
    no.node_id = spec.id;
    no.total = spec.total;
    no.labels = spec.labels;
    no.is_head_node = static_cast<int>(i) == scenario.driver_node;
    no.scheduler = scenario.scheduler.options;
    no.seed = scenario.seed + i;
    no.object_dir = (dir / ("objects-" + spec.id)).string();
    // The scenario's runtime-env cache (the agent's setup timeout is per command; the emulated
    // install's time is one `sleep`, so it is the install's timeout as in the simulator).
    no.runtime_env_cache_bytes = scenario.env_cache.limit_bytes;
    no.runtime_env_eviction = scenario.env_cache.policy;
    no.runtime_env_setup_timeout_s = scenario.env_cache.setup_timeout_s;
    no.runtime_env_max_attempts = scenario.env_cache.max_attempts;
    auto node = NodeDaemon::Start(no);
    if (!node.ok()) return node.status().WithContext("starting node " + spec.id);
    c->ids_.push_back(spec.id);
    c->node_options_.push_back(no);
    c->nodes_.push_back(std::move(*node));
  }
  return c;
}

Status LocalCluster::Crash(const std::string& id) {
  auto it = std::find(ids_.begin(), ids_.end(), id);
  if (it == ids_.end()) return Status(StatusCode::kNotFound, "no node '" + id + "'");
  auto& node = nodes_[static_cast<size_t>(it - ids_.begin())];
  if (!node) return Status(StatusCode::kFailedPrecondition, "node " + id + " is already down");
  node->Stop();
  node.reset();
  return Status::Ok();
}

Status LocalCluster::Recover(const std::string& id) {
  auto it = std::find(ids_.begin(), ids_.end(), id);
  if (it == ids_.end()) return Status(StatusCode::kNotFound, "no node '" + id + "'");
  const size_t i = static_cast<size_t>(it - ids_.begin());
  if (nodes_[i]) return Status(StatusCode::kFailedPrecondition, "node " + id + " is running");
  auto node = NodeDaemon::Start(node_options_[i]);
  if (!node.ok()) return node.status().WithContext("restarting node " + id);
  nodes_[i] = std::move(*node);
  return Status::Ok();
}

LocalCluster::~LocalCluster() {
  for (auto& n : nodes_) {
    if (n) n->Stop();
  }
  nodes_.clear();
  if (head_) head_->Stop();
  head_.reset();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

// ---- the run -------------------------------------------------------------------------------

namespace {

// The threads that make the run's blocking calls (lease requests followed to a grant, task
// runs, a group's bundle): a job goes to an idle thread, else to a new one. Threads are reused,
// so the run holds as many as it has calls in flight at once (with owner.reuse_leases, at most
// max_pending_lease_requests_per_class per class plus the running tasks), not one per task.
class CallPool {
 public:
  ~CallPool() { Join(); }
  void Post(std::function<void()> job) {
    std::lock_guard<std::mutex> l(mu_);
    jobs_.push_back(std::move(job));
    if (jobs_.size() > idle_) {
      threads_.emplace_back([this] { Loop(); });
      peak_ = std::max(peak_, threads_.size());
    } else {
      cv_.notify_one();
    }
  }
  // Runs the jobs left (and those they post), then ends every thread.
  void Join() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (;;) {
      std::thread t;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (joined_ == threads_.size()) return;
        t = std::move(threads_[joined_++]);
      }
      t.join();
    }
  }
  size_t peak_threads() const {
    std::lock_guard<std::mutex> l(mu_);
    return peak_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (jobs_.empty()) {
        ++idle_;
        cv_.wait(l, [this] { return stop_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) return;  // stopping
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      l.unlock();
      job();
      l.lock();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0, joined_ = 0, peak_ = 0;
  bool stop_ = false;
};

// The scenario's owner settings on the Submitter's defaults: AcquireLease follows spillbacks and
// rejections itself (one grant or failure per request).
agent::SubmitterOptions LiveOwnerOptions(const Scenario& s) {
  return OwnerSubmitterOptions(s.owner, agent::SubmitterOptions{});
}

class Runner {
 public:
  Runner(const Scenario& s, std::string address, std::string token, LiveRunOptions o)
      : s_(s),
        head_address_(std::move(address)),
        token_(std::move(token)),
        o_(std::move(o)),
        owner_(LiveOwnerOptions(s)) {}

  size_t peak_call_threads() const { return pool_.peak_threads(); }

  StatusOr<results::RunRecord> Run() {
    // Task ids are unique per run, so runs on one long-lived cluster never collide.
    auto token = GenerateToken();
    run_id_ = "run" + (token.ok() ? token->substr(0, 8) : std::string("0"));
    ORRERY_RETURN_IF_ERROR(Discover());
    ORRERY_RETURN_IF_ERROR(CreateInitialObjects());
    for (const auto& e : s_.runtime_envs) env_json_.push_back(ToJson(EmulatedRuntimeEnv(e)));
    if (!s_.runtime_envs.empty()) env_before_ = ReadEnvStats();
    const size_t n = s_.tasks.size();
    attempts_.assign(n, {});
    final_.assign(n, 0);
    ok_.assign(n, 0);
    ran_on_.assign(n, "");
    tasks_.assign(n, TaskRt{});
    copies_.assign(n, {});
    dependents_.assign(n, {});
    for (size_t i = 0; i < n; ++i) {
      const TaskSpec& ts = s_.tasks[i];
      for (uint32_t k = 0; k < ts.args_count; ++k) {
        const ArgSpec& a = s_.args[ts.args_begin + k];
        if (a.producer < 0) continue;
        dependents_[static_cast<size_t>(a.producer)].push_back(static_cast<uint32_t>(i));
        ++tasks_[i].deps_left;
      }
    }
    uint32_t classes = 0;
    class_of_ = SchedulingClasses(s_, &classes);
    const auto class_options = SchedulingClassOptions(s_, class_of_, classes);
    for (uint32_t c = 0; c < classes; ++c) owner_.SetClassOptions(c, class_options[c]);
    t0_ = Clock::now();
    std::thread sampler([this] { SampleLoop(); });
    std::thread failures([this] { FailureLoop(); });
    group_state_.assign(s_.placement_groups.size(), GroupState{});
    std::thread groups([this] { GroupLoop(); });
    // This thread submits each task at its time; the call pool carries the owner's decisions out.
    for (size_t i = 0; i < n; ++i) {
      std::this_thread::sleep_until(t0_ + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(s_.tasks[i].submit_s)));
      Arrive(i);
    }
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return num_final_ == n; });
    }
    const double end = Now();
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
      // Leases kept idle (owner.idle_lease_timeout_s) go back now.
      const size_t begin = owner_out_.size();
      owner_.Tick(std::numeric_limits<double>::infinity(), &owner_out_);
      ApplyLocked(begin);
    }
    cv_.notify_all();
    pool_.Join();
    sampler.join();
    failures.join();
    groups.join();
    RemoveGroups();
    Sample();  // the final state
    if (!s_.runtime_envs.empty()) env_after_ = ReadEnvStats();
    return Finish(end);
  }

 private:
  double Now() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

  // The cluster must hold every scenario node (alive, same id); each must see all the others.
  Status Discover() {
    HeadClient head(head_address_, token_);
    auto nodes = head.ListNodes();
    if (!nodes.ok()) return nodes.status().WithContext("listing the cluster's nodes");
    for (const auto& info : nodes->nodes()) {
      if (info.state() == v1::NODE_STATE_ALIVE) address_of_[info.node_id()] = info.address();
    }
    for (const auto& spec : s_.nodes) {
      if (spec.standby) continue;  // --- autoscaler: not there until launched
      if (!address_of_.count(spec.id)) {
        return Status(StatusCode::kFailedPrecondition,
                      "the cluster at " + head_address_ + " has no alive node '" + spec.id +
                          "' (live run needs one node per scenario node, with the same id)");
      }
    }
    const int want = static_cast<int>(address_of_.size());
    const auto deadline = Clock::now() + o_.view_timeout;
    for (const auto& spec : s_.nodes) {
      if (spec.standby) continue;  // --- autoscaler
      NodeClient c(address_of_[spec.id], token_, std::chrono::milliseconds(1000));
      while (true) {
        auto r = c.Ready();
        if (r.ok() && r->known_nodes() >= want) break;
        if (Clock::now() > deadline) {
          return Status(StatusCode::kDeadlineExceeded, "node " + spec.id +
                                                           " did not learn of all " +
                                                           std::to_string(want) + " nodes in time");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    // One more report period so every node's view carries fresh availability.
    std::this_thread::sleep_for(std::chrono::duration<double>(2 * s_.scheduler.report_period_s));
    return Status::Ok();
  }

  Status CreateInitialObjects() {
    for (size_t k = 0; k < s_.args.size(); ++k) {
      const auto& a = s_.args[k];
      if (a.producer >= 0 || a.node < 0) continue;
      const std::string& node = s_.nodes[a.node].id;
      Status st =
          NodeClient(address_of_[node], token_).PutObject(ObjectIdOfInitial(run_id_, k), a.bytes);
      if (!st.ok()) return st.WithContext("creating an initial object on " + node);
    }
    return Status::Ok();
  }

  const std::string& DriverNode() const { return s_.nodes[s_.driver_node].id; }

  std::string AddressOf(const std::string& node) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = address_of_.find(node);
    return it == address_of_.end() ? std::string() : it->second;
  }

  // `preferred` unless it is down (crashed by a failure): then the driver node, else the first
  // scenario node that is up. REQUIRES: mu_ held.
  std::string PickDeciderLocked(const std::string& preferred) const {
    if (!down_.count(preferred)) return preferred;
    if (!down_.count(DriverNode())) return DriverNode();
    for (const auto& n : s_.nodes) {
      if (!down_.count(n.id) && !n.standby) return n.id;
    }
    return preferred;
  }
  std::string PickDecider(const std::string& preferred) {
    std::lock_guard<std::mutex> l(mu_);
    return PickDeciderLocked(preferred);
  }

  // Task `i`'s current row is final. Its consumers whose producers are all final become ready.
  // REQUIRES: mu_ held.
  void MarkFinalLocked(size_t i, bool ok, const std::string& node, const std::string& why = "") {
    TaskRt& t = tasks_[i];
    if (o_.progress) {
      std::lock_guard<std::mutex> l(progress_mu_);
      *o_.progress << "[live run] task " << i << " (" << t.row.name << ") " << t.row.state
                   << (t.row.attempt > 0 ? " (attempt " + std::to_string(t.row.attempt) + ")" : "")
                   << (node.empty() ? "" : " on " + node) << (why.empty() ? "" : ": " + why)
                   << "\n";
    }
    attempts_[i].push_back(t.row);
    final_[i] = 1;
    ok_[i] = ok ? 1 : 0;
    ran_on_[i] = node;
    ++num_final_;
    // --- lineage: the output's first copy is where it ran.
    if (ok && !node.empty() && s_.tasks[i].output_bytes > 0) {
      copies_[i][node] = EpochLocked(node);
    }
    // A rebuild (its output was lost) wakes the consumers that waited for it; a first run, every
    // consumer (their deps_left counted it from the start).
    const bool rebuilt = t.rebuilding;
    t.rebuilding = false;
    const std::vector<uint32_t> wake = rebuilt ? std::move(t.rebuild_waiters) : dependents_[i];
    t.rebuild_waiters.clear();
    for (uint32_t d : wake) {
      TaskRt& c = tasks_[d];
      if (final_[d]) continue;  // it failed on another lost argument meanwhile
      if (!ok) {
        c.args_failed = true;
        if (rebuilt && c.arg_error.empty()) {
          c.arg_error = "object " + ObjectIdOfTask(run_id_, i) + " was lost and rebuilding it " +
                        "failed: task " + std::to_string(i) + " (" + t.row.name + ") attempt " +
                        std::to_string(t.row.attempt) + " " + t.row.state +
                        (why.empty() ? "" : ": " + why);
        }
      }
      if (--c.deps_left == 0 && c.arrived) ReadyLocked(d);
    }
    cv_.notify_all();
  }

  // ---- lineage reconstruction ----------------------------------------------------------------
  //
  // A task's output lives in the object store of the node it ran on, and a fetched copy stays in
  // the consumer's node store: copies_[i] holds each node with a copy and that node's crash
  // epoch when the copy was made. A copy is gone once its node crashed (a recovered node starts
  // with an empty store), is down, or was declared dead by the head. A consumer whose argument
  // has no copy left has the producing task run again (Ray's lineage reconstruction), counted
  // against that task's max_retries, and waits for it; an actor's output or an object the
  // scenario created at start (no lineage), or a producer out of retries, fails the consumer
  // with the object id, the node(s) that held it and why.

  uint64_t EpochLocked(const std::string& node) const {
    auto it = crash_epoch_.find(node);
    return it == crash_epoch_.end() ? 0 : it->second;
  }

  // Why the copy made on `node` at crash epoch `epoch` is gone; empty if it is still there.
  // REQUIRES: mu_ held.
  std::string CopyGoneWhyLocked(const std::string& node, uint64_t epoch) const {
    if (down_.count(node)) return "node " + node + " crashed";
    if (declared_dead_.count(node)) return "node " + node + " was declared dead by the head";
    if (EpochLocked(node) != epoch) return "node " + node + " crashed (and restarted empty)";
    if (auto it = unreachable_.find(node); it != unreachable_.end() && it->second.first == epoch) {
      return it->second.second;
    }
    return "";
  }

  // A node holding a live copy of task `p`'s output (its producer's node first); empty if none.
  // REQUIRES: mu_ held.
  std::string LiveCopyLocked(size_t p) const {
    const auto& c = copies_[p];
    if (auto it = c.find(ran_on_[p]);
        it != c.end() && CopyGoneWhyLocked(it->first, it->second).empty()) {
      return it->first;
    }
    for (const auto& [node, epoch] : c) {
      if (CopyGoneWhyLocked(node, epoch).empty()) return node;
    }
    return "";
  }

  // Attempts of task `i` that count against its max_retries (not those that only lost an
  // argument). REQUIRES: mu_ held.
  int RetriesUsedLocked(size_t i) const {
    return tasks_[i].row.attempt - tasks_[i].arg_loss_attempts;
  }

  // Task `p`'s output has no copy left: runs `p` again (true), or says why it cannot (false,
  // `why` names the object, the nodes that held it and the cause). REQUIRES: mu_ held, `p`
  // final and ok, not rebuilding.
  bool StartRebuildLocked(size_t p, std::string* why) {
    TaskRt& t = tasks_[p];
    const TaskSpec& ts = s_.tasks[p];
    std::string where, cause;
    for (const auto& [node, epoch] : copies_[p]) {
      where += (where.empty() ? "" : ", ") + node;
      const std::string w = CopyGoneWhyLocked(node, epoch);
      if (!w.empty()) cause += (cause.empty() ? "" : "; ") + w;
    }
    const std::string lost = "object " + ObjectIdOfTask(run_id_, p) + " (the output of task " +
                             std::to_string(p) + ", " + t.row.name + ") is lost: it was only on " +
                             "node " + where + " (" + cause + ")";
    if (ts.kind == WorkKind::kActor) {
      *why = lost + "; an actor's output is not rebuilt (no lineage)";
      return false;
    }
    if (RetriesUsedLocked(p) >= static_cast<int>(ts.max_retries)) {
      *why = lost + "; task " + std::to_string(p) + " has no retries left to rebuild it " +
             "(max_retries " + std::to_string(ts.max_retries) + ", " +
             std::to_string(RetriesUsedLocked(p)) + " used)";
      return false;
    }
    if (o_.progress) {
      std::lock_guard<std::mutex> pl(progress_mu_);
      *o_.progress << "[live run] " << lost << "; rebuilding it: task " << p << " attempt "
                   << t.row.attempt + 1 << "\n";
    }
    rebuilds_.fetch_add(1);
    t.rebuilding = true;
    final_[p] = 0;
    ok_[p] = 0;
    --num_final_;
    copies_[p].clear();
    NewAttemptRow(t);
    pool_.Post([this, p] { Prepare(p); });
    return true;
  }

  // Before task `i` is submitted: each task-output argument without a live copy is rebuilt (`i`
  // waits: true) or fails `i` (true, `i` is final). False: every argument has a live copy.
  // REQUIRES: mu_ held.
  bool AwaitLostArgsLocked(size_t i) {
    const TaskSpec& ts = s_.tasks[i];
    TaskRt& t = tasks_[i];
    int waiting = 0;
    std::string error;
    for (uint32_t k = 0; k < ts.args_count && error.empty(); ++k) {
      const uint32_t idx = ts.args_begin + k;
      const ArgSpec& a = s_.args[idx];
      if (a.producer >= 0) {
        const size_t p = static_cast<size_t>(a.producer);
        if (!final_[p] && tasks_[p].rebuilding) {
          tasks_[p].rebuild_waiters.push_back(static_cast<uint32_t>(i));
          ++waiting;
        } else if (ok_[p] && LiveCopyLocked(p).empty()) {
          if (!StartRebuildLocked(p, &error)) break;
          tasks_[p].rebuild_waiters.push_back(static_cast<uint32_t>(i));
          ++waiting;
        }
      } else if (a.node >= 0) {
        const std::string& node = s_.nodes[a.node].id;
        const std::string gone = CopyGoneWhyLocked(node, 0);
        if (!gone.empty()) {
          error = "object " + ObjectIdOfInitial(run_id_, idx) + " is lost: it was only on node " +
                  node + " (" + gone + "); it was created at the run's start (no task made " +
                  "it), so there is no lineage to rebuild it";
        }
      }
    }
    if (!error.empty()) {
      t.row.state = "failed";
      t.row.wait_reason = "waiting_for_args";
      NoteError(AttemptId(i) + ": " + error);
      MarkFinalLocked(i, false, "", error);
      return true;
    }
    if (waiting == 0) return false;
    t.deps_left += waiting;
    t.row.wait_reason = "waiting_for_args";
    return true;
  }

  void NoteError(const std::string& what) {
    errors_.fetch_add(1);
    std::lock_guard<std::mutex> l(progress_mu_);
    if (first_error_.empty()) first_error_ = what;
  }

  // Whether the head listed `node` as dead at the last sample (SampleLoop asks the head every
  // 100 ms). Not one call per result: that put a head round trip between every task's end and
  // its lease's next task (a 600-task burst on a shared 2-core machine: queue delay p50
  // 2-65 ms -> 70-117 ms over three runs). So a result that arrives within one sample period
  // of the node's declaration can still be accepted here; the head's own records never accept it.
  bool DeclaredDead(const std::string& node) {
    std::lock_guard<std::mutex> l(mu_);
    return declared_dead_.count(node) != 0;
  }

  // Waits (up to 10 s) until the head lists every node of `nodes` dead, then two report periods
  // more so every node's view has it dead too (no spillback to it, affinity to it canceled).
  void WaitDead(std::set<std::string> nodes) {
    HeadClient head(head_address_, token_, std::chrono::milliseconds(2000));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!nodes.empty() && Clock::now() < deadline) {
      auto list = head.ListNodes();
      if (list.ok()) {
        for (const auto& n : list->nodes()) {
          if (n.state() != v1::NODE_STATE_DEAD || !nodes.erase(n.node_id())) continue;
          std::lock_guard<std::mutex> l(mu_);  // not only at the next sample
          declared_dead_.insert(n.node_id());
        }
      }
      if (!nodes.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(2 * s_.scheduler.report_period_s));
  }

  // Whether the head lists `node` as dead now.
  bool HeadSaysDead(const std::string& node) {
    auto list = HeadClient(head_address_, token_, std::chrono::milliseconds(2000)).ListNodes();
    if (!list.ok()) return false;
    for (const auto& n : list->nodes()) {
      if (n.node_id() == node) return n.state() == v1::NODE_STATE_DEAD;
    }
    return false;
  }

  std::set<std::string> Down() {
    std::lock_guard<std::mutex> l(mu_);
    return down_;
  }
  uint64_t CrashEpoch(const std::string& node) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = crash_epoch_.find(node);
    return it == crash_epoch_.end() ? 0 : it->second;
  }

  // ---- tasks through the driver's Submitter ------------------------------------------------
  //
  // Every task goes through one agent::Submitter (the driver's owner, as in the simulator):
  // arrival at its submit time -> its producers final (consumers of a failed producer are
  // canceled) -> its group's bundle -> Submit under its scheduling class. The Submitter's
  // decisions are carried out by the call pool: kRequestLease follows a lease request from the
  // entry node to a grant (AcquireLease), kPushTask runs the task on the granted lease (RunTask),
  // kReturnLease gives a grant back to its node, kFailTask ends the task. A reused lease
  // (owner.reuse_leases) stays granted at its node between tasks (RunTaskRequest.keep_lease: its
  // resources held, no new request, as a Ray worker lease); one its node no longer holds (or one
  // whose last call broke, asked again with grant_or_reject) counts as lost and the task is
  // submitted again.

  // The task arrived at its submit time. Called by the run's thread.
  void Arrive(size_t i) {
    {
      std::lock_guard<std::mutex> l(mu_);
      TaskRt& t = tasks_[i];
      t.row = results::PendingAttemptRow(s_, i, Now());
      t.arrived = true;
      if (t.deps_left > 0) {
        t.row.wait_reason = "waiting_for_args";
        return;
      }
      if (s_.tasks[i].placement_group >= 0) {
        ReadyLocked(i);
        return;
      }
    }
    Prepare(i);  // nothing to wait for: on this thread (a burst posts no jobs)
  }

  // Producers final. REQUIRES: mu_ held.
  void ReadyLocked(size_t i) {
    TaskRt& t = tasks_[i];
    if (t.args_failed && !t.arg_error.empty()) {  // --- lineage: a lost argument not rebuilt
      t.row.state = "failed";
      t.row.wait_reason = "waiting_for_args";
      NoteError(AttemptId(i) + ": " + t.arg_error);
      MarkFinalLocked(i, false, "", t.arg_error);
      return;
    }
    if (t.args_failed) {
      t.row.state = "canceled";
      t.row.wait_reason = "waiting_for_args";
      MarkFinalLocked(i, false, "");
      return;
    }
    pool_.Post([this, i] { Prepare(i); });  // a group's bundle may need waiting for
  }

  // Builds the task's lease request and run request, then submits its first attempt.
  void Prepare(size_t i) {
    const TaskSpec& ts = s_.tasks[i];
    {
      std::lock_guard<std::mutex> l(mu_);
      if (AwaitLostArgsLocked(i)) return;  // --- lineage: waits for a rebuild, or failed
    }
    ResourceRequest shape = s_.shapes[ts.shape];
    const SchedulingStrategy& strategy = s_.strategies[ts.strategy];
    // A task of a placement group asks for its bundle's resources, on the bundle's node.
    std::string bundle_node;
    if (ts.placement_group >= 0) {
      auto b = AwaitBundle(static_cast<size_t>(ts.placement_group), ts.bundle, i);
      if (!b.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        tasks_[i].row.state = "failed";
        tasks_[i].row.wait_reason = "waiting_for_placement_group";
        NoteError(tasks_[i].row.name + ": " + b.status().ToString());
        MarkFinalLocked(i, false, "", std::string(b.status().message()));
        return;
      }
      bundle_node = b->first;
      shape = b->second;
    }
    // Argument locations, as the simulator's RequestFor builds them.
    std::vector<ObjectArg> locality;
    v1::RequestWorkerLeaseRequest req;
    // --- dashboard: the task table shows which job a task belongs to.
    if (const char* job = std::getenv("ORRERY_JOB_ID"); job != nullptr) req.set_job_id(job);
    v1::RunTaskRequest run;
    for (uint32_t k = 0; k < ts.args_count; ++k) {
      const uint32_t idx = ts.args_begin + k;
      const ArgSpec& a = s_.args[idx];
      std::string where, id;
      if (a.producer >= 0) {
        std::lock_guard<std::mutex> l(mu_);
        where = LiveCopyLocked(static_cast<size_t>(a.producer));  // --- lineage: a live copy
        if (where.empty()) where = ran_on_[a.producer];
        id = ObjectIdOfTask(run_id_, static_cast<size_t>(a.producer));
      } else if (a.node >= 0) {
        where = s_.nodes[a.node].id;
        id = ObjectIdOfInitial(run_id_, idx);
      }
      if (where.empty()) continue;
      locality.push_back({a.bytes, {where}});
      auto* loc = req.add_args();
      loc->set_object_id(id);
      loc->set_bytes(a.bytes);
      loc->add_node_ids(where);
      auto* ref = run.add_args();
      ref->set_object_id(id);
      ref->set_bytes(a.bytes);
      ref->set_node_id(where);
    }
    // Where the first lease request goes (the simulator's DeciderFor).
    std::string preferred = DriverNode();
    if (strategy.type == SchedulingStrategy::Type::kNodeAffinity) {
      if (!AddressOf(strategy.node).empty()) preferred = strategy.node;
    } else if (strategy.type != SchedulingStrategy::Type::kSpread && !locality.empty()) {
      if (auto best = ChooseLocalityNode(locality); best && !AddressOf(*best).empty()) {
        preferred = *best;
      }
    }
    if (!bundle_node.empty()) preferred = bundle_node;
    // A shape no node could ever hold waits for an autoscaler that live does not have yet.
    bool feasible = true;
    if (bundle_node.empty() &&
        (strategy.type != SchedulingStrategy::Type::kNodeAffinity || strategy.soft)) {
      feasible = false;
      for (const auto& n : s_.nodes) {
        auto r = NodeResources::Create(n.total);
        feasible = feasible || (r.ok() && r->IsFeasible(shape));
      }
    }
    req.set_name(s_.names[ts.name]);
    // An actor is its creation lease, held for its lifetime (the sleep workload below).
    req.set_actor_creation(ts.kind == WorkKind::kActor);
    if (ts.env >= 0) run.set_runtime_env_json(env_json_[static_cast<size_t>(ts.env)]);
    ToProto(shape.set(), req.mutable_resources());
    ToProto(strategy, req.mutable_strategy());
    run.mutable_workload()->set_duration_ms(static_cast<int64_t>(ts.duration_s * 1000 + 0.5));
    if (ts.output_bytes > 0) {
      run.mutable_workload()->set_kind(v1::Workload::PRODUCE);
      run.mutable_workload()->set_bytes(ts.output_bytes);
      run.set_output_object_id(ObjectIdOfTask(run_id_, i));
    } else {
      run.mutable_workload()->set_kind(
          o_.workload == LiveRunOptions::Workload::kCpu ? v1::Workload::CPU : v1::Workload::SLEEP);
    }
    std::lock_guard<std::mutex> l(mu_);
    TaskRt& t = tasks_[i];
    t.row.node_id = preferred;
    if (!feasible) {
      t.row.state = "infeasible";
      t.row.wait_reason = "infeasible";
      MarkFinalLocked(i, false, "");
      return;
    }
    t.preferred = std::move(preferred);
    t.req = std::move(req);
    t.run = std::move(run);
    SubmitLocked(i);
  }

  // The id of task `i`'s current attempt (a node lease of its own with reuse off).
  std::string AttemptId(size_t i) const {
    const int a = tasks_[i].row.attempt;
    return run_id_ + "-t" + std::to_string(i) + (a > 0 ? ".a" + std::to_string(a) : "");
  }

  // REQUIRES: mu_ held.
  void SubmitLocked(size_t i) {
    const size_t begin = owner_out_.size();
    owner_.Submit(i, class_of_[i], Now(), &owner_out_);
    ApplyLocked(begin);
  }

  // Carries out owner_out_[begin..] (then drops them). REQUIRES: mu_ held.
  void ApplyLocked(size_t begin) {
    for (size_t k = begin; k < owner_out_.size(); ++k) {
      const agent::SubmitDecision d = owner_out_[k];  // applying may append to owner_out_
      const size_t i = static_cast<size_t>(d.task);
      switch (d.kind) {
        case agent::SubmitDecision::Kind::kRequestLease: {
          LeaseRt& lease = leases_[d.lease];
          lease.node_lease_id = owner_.options().reuse_leases
                                    ? run_id_ + "-l" + std::to_string(next_node_lease_++)
                                    : AttemptId(i);
          v1::RequestWorkerLeaseRequest req = tasks_[i].req;
          req.set_task_id(lease.node_lease_id);
          if (lease.node_lease_id != AttemptId(i)) {  // reuse: the row names the front task
            req.set_display_task_id(AttemptId(i));
            req.set_attempt(tasks_[i].row.attempt);
          }
          pool_.Post([this, h = d.lease, i, req = std::move(req),
                      entry = tasks_[i].preferred]() mutable {
            Acquire(h, i, std::move(req), entry);
          });
          break;
        }
        case agent::SubmitDecision::Kind::kPushTask:
          if (o_.trace_leases) {
            auto it = leases_.find(d.lease);
            TraceLocked(d.lease, "push", i, it == leases_.end() ? "" : it->second.node_id, true);
          }
          ++running_tasks_;
          pool_.Post([this, h = d.lease, i] { RunOn(h, i); });
          break;
        case agent::SubmitDecision::Kind::kReturnLease: {
          auto it = leases_.find(d.lease);
          if (it == leases_.end()) break;
          TraceLocked(d.lease, "returned", i, it->second.node_id);
          if ((it->second.unused || it->second.kept) && !it->second.address.empty()) {
            // Granted and never run on, or kept after its last task: the node still holds it.
            pool_.Post([this, address = it->second.address, id = it->second.node_lease_id] {
              (void)NodeClient(address, token_).ReturnWorkerLease(id);
            });
          }
          leases_.erase(it);
          break;
        }
        case agent::SubmitDecision::Kind::kFailTask: {
          TaskRt& t = tasks_[i];
          t.row.state = fail_status_.code() == StatusCode::kCancelled ? "canceled" : "failed";
          NoteError(AttemptId(i) + ": " + fail_status_.ToString());
          MarkFinalLocked(i, false, "", std::string(fail_status_.message()));
          break;
        }
      }
    }
    owner_out_.resize(begin);
  }

  // Follows lease request `h` (for task `i`'s shape) from `entry` to a grant, and tells the
  // Submitter. A lease call that a crashing node dropped (or that spilled to it) is asked again,
  // at an alive node, once every crashed node is seen dead.
  void Acquire(agent::LeaseHandle h, size_t i, v1::RequestWorkerLeaseRequest req,
               const std::string& entry) {
    AcquireOptions ao;
    ao.on_queued = [this, i](v1::WaitReason r) {
      const std::string name = WaitReasonName(FromProto(r));
      std::lock_guard<std::mutex> l(mu_);
      if (!name.empty() && !final_[i]) tasks_[i].row.wait_reason = name;
    };
    if (o_.trace_leases) {
      ao.on_step = [this, h, i](std::string_view step, const std::string& address,
                                const std::string& target, double view_age_s) {
        std::lock_guard<std::mutex> l(mu_);
        TraceLocked(h, step, i, NodeOfAddressLocked(address), false,
                    target.empty() ? std::string() : NodeOfAddressLocked(target), view_age_s);
      };
    }
    // A spillback to a node the head declared dead (the spilling node's view lags the head's by up
    // to a report period or two) goes back to the entry node: asked, a node cut off by a
    // partition took the request once the link healed and granted it before it learned it was
    // dead (net.partition: the retry of a lost attempt ran on the dead node and was killed).
    ao.refuse_target = [this](const std::string& address) {
      std::lock_guard<std::mutex> l(mu_);
      const std::string node = NodeOfAddressLocked(address);
      return !node.empty() && (declared_dead_.count(node) != 0 || down_.count(node) != 0);
    };
    if (owner_.options().reuse_leases) {
      ao.still_needed = [this, h] {
        std::lock_guard<std::mutex> l(mu_);
        return owner_.StillNeeded(h);
      };
    }
    StatusOr<AcquiredLease> lease = Status(StatusCode::kUnavailable, "not asked");
    for (int ask = 0; ask < 5; ++ask) {
      const std::string decider = PickDecider(entry);
      lease = AcquireLease(AddressOf(decider), token_, req, ao);
      if (lease.ok() || lease.status().code() == StatusCode::kCancelled ||
          lease.status().code() == StatusCode::kAborted) {
        break;
      }
      auto down = Down();
      if (down.empty()) {
        // A node killed outside the scenario's failures (found by the lineage test: the reduce
        // went to the dead holder of its argument and failed "Connection refused"): once the
        // head declares it dead it is down for the rest of the run, and the request goes to
        // another node.
        if (lease.status().code() != StatusCode::kUnavailable) break;
        WaitDead({decider});
        if (!HeadSaysDead(decider)) break;
        std::lock_guard<std::mutex> l(mu_);
        down_.insert(decider);
        continue;
      }
      WaitDead(std::move(down));
    }
    std::lock_guard<std::mutex> l(mu_);
    const size_t begin = owner_out_.size();
    if (lease.ok()) {
      LeaseRt& rt = leases_[h];
      rt.node_id = lease->node_id;
      rt.address = lease->address;
      rt.spillbacks = lease->spillbacks;
      rt.unused = true;
      spillbacks_.fetch_add(static_cast<uint64_t>(lease->spillbacks));
      TraceLocked(h, "granted", i, lease->node_id);
      owner_.OnLeaseGranted(h, 0, Now(), &owner_out_);
    } else if (lease.status().code() == StatusCode::kAborted &&
               lease.status().message() == "no longer needed") {
      TraceLocked(h, "dropped", i, "");
      owner_.CancelLease(h);
      leases_.erase(h);
    } else {
      TraceLocked(h, "failed", i, "", false, lease.status().message());
      fail_status_ = lease.status();
      owner_.OnLeaseRequestFailed(h, std::string(lease.status().message()), Now(), &owner_out_);
      leases_.erase(h);
    }
    ApplyLocked(begin);
  }

  // Lease `h`, pushed task `i`, turned out gone before the task ran: the lease is lost and the
  // same attempt goes back to the owner (nothing ran).
  void LoseLeaseBeforeRun(agent::LeaseHandle h, size_t i) {
    std::lock_guard<std::mutex> l(mu_);
    --running_tasks_;
    if (auto it = leases_.find(h); it != leases_.end())
      TraceLocked(h, "lost", i, it->second.node_id);
    const size_t begin = owner_out_.size();
    owner_.OnLeaseLost(h, Now(), &owner_out_);
    leases_.erase(h);
    ApplyLocked(begin);
    SubmitLocked(i);
  }

  // Runs task `i` on granted lease `h`, then tells the Submitter.
  void RunOn(agent::LeaseHandle h, size_t i) {
    const TaskSpec& ts = s_.tasks[i];
    LeaseRt lease;
    v1::RunTaskRequest run;
    v1::RequestWorkerLeaseRequest again;
    int tasks_attempt = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = leases_.find(h);
      TaskRt& t = tasks_[i];
      if (it == leases_.end()) {  // not expected: a pushed lease is granted and known
        --running_tasks_;
        SubmitLocked(i);
        return;
      }
      lease = it->second;
      if (lease.unused) {
        it->second.unused = false;
        t.row.spillbacks = lease.spillbacks;
      } else if (lease.kept) {
        // Reused: the node kept the lease (its resources held) after the last task.
        it->second.kept = false;
        t.row.spillbacks = 0;
      } else {
        // Reused, but the node ended the lease with the last task (it could not keep it: the
        // call broke): ask that node again.
        lease.node_lease_id = run_id_ + "-l" + std::to_string(next_node_lease_++);
        it->second.node_lease_id = lease.node_lease_id;
        again = t.req;
        again.set_task_id(lease.node_lease_id);
        again.set_grant_or_reject(true);
        t.row.spillbacks = 0;
      }
      t.row.node_id = lease.node_id;
      tasks_attempt = t.row.attempt;
      // The granted lease waits for the env (a hit too, briefly), the task's last wait reason,
      // as the simulator records it.
      if (ts.env >= 0) t.row.wait_reason = "waiting_for_runtime_env";
      run = t.run;
    }
    if (!again.task_id().empty()) {
      auto r = NodeClient(lease.address, token_).RequestWorkerLease(again);
      if (!r.ok() || !r->has_granted()) return LoseLeaseBeforeRun(h, i);
    }
    run.set_task_id(lease.node_lease_id);
    if (lease.node_lease_id != AttemptId(i)) {  // reuse: the table names the task, not the lease
      run.set_display_task_id(AttemptId(i));
      run.set_attempt(tasks_attempt);
    }
    const bool reuse = owner_.options().reuse_leases;
    run.set_keep_lease(reuse);
    for (auto& ref : *run.mutable_args()) ref.set_address(AddressOf(ref.node_id()));
    const uint64_t epoch = CrashEpoch(lease.node_id);
    running_.fetch_add(1);
    double start_s = -1;
    auto exit = NodeClient(lease.address, token_).RunTask(run, [&](const v1::RunTaskReply& m) {
      if (m.has_started_pid()) start_s = Now();
    });
    running_.fetch_sub(1);
    if (reuse && lease.kept && start_s < 0 && !exit.ok() &&
        exit.status().code() == StatusCode::kFailedPrecondition) {
      // The node no longer held the kept lease (its unused-lease timeout, or it restarted).
      return LoseLeaseBeforeRun(h, i);
    }
    const double end_s = Now();
    std::string why = exit.ok() ? exit->error() : exit.status().ToString();
    bool ok = exit.ok() && exit->exit_code() == 0;
    // No split brain (DESIGN section 11): a result from a node the head has declared dead is not
    // accepted, even one that reaches us after a partition healed (it was sent into the stream
    // while the node was cut off). The head failed that attempt; it is retried like a lost one.
    const bool from_dead = DeclaredDead(lease.node_id);
    const bool fenced = ok && from_dead;
    if (fenced) {
      ok = false;
      why = "its result came from node " + lease.node_id +
            ", which the head had declared dead: not accepted";
      if (o_.progress) {
        std::lock_guard<std::mutex> pl(progress_mu_);
        *o_.progress << "[live run] task " << i << ": " << why << "\n";
      }
    }
    // The node's runtime-env agent gave up on the install: the lease was canceled (as the
    // simulator cancels it after max_attempts); not a node failure, not retried.
    const bool env_failed = exit.ok() && !ok && why.rfind("runtime env setup failed", 0) == 0;
    // The node died under the attempt: a failure we injected, a broken stream, a node that no
    // longer answers, or one the head declared dead (a failure it reports is its workers killed
    // as it stops, not the task's). Anything else is the task's own failure (not retried).
    const bool node_died =
        !ok && !env_failed &&
        (from_dead || CrashEpoch(lease.node_id) != epoch || !exit.ok() ||
         !NodeClient(lease.address, token_, std::chrono::milliseconds(500)).Ready().ok());
    if (ok) bytes_transferred_.fetch_add(exit->bytes_fetched());
    std::unique_lock<std::mutex> l(mu_);
    --running_tasks_;
    // The run asks no more decisions of a node the head declared dead (it may still answer
    // until it learns so): like a crashed node, it is down for the rest of the run.
    if (fenced) down_.insert(lease.node_id);
    TaskRt& t = tasks_[i];
    t.row.start_s = start_s;
    t.row.end_s = end_s;
    const size_t begin = owner_out_.size();
    TraceLocked(h, node_died ? "lost" : "finished", i, lease.node_id);
    if (node_died) {
      owner_.OnLeaseLost(h, Now(), &owner_out_);
      leases_.erase(h);
    } else {
      // The node kept the lease if the call ended with the workload's exit.
      if (auto it = leases_.find(h); it != leases_.end()) it->second.kept = reuse && exit.ok();
      owner_.OnTaskFinished(h, Now(), &owner_out_);
    }
    if (ok) {
      t.row.state = "finished";
      // --- lineage: the node fetched its arguments; those copies stay in its store.
      for (uint32_t k = 0; k < ts.args_count; ++k) {
        const ArgSpec& a = s_.args[ts.args_begin + k];
        if (a.producer >= 0) copies_[static_cast<size_t>(a.producer)][lease.node_id] = epoch;
      }
      MarkFinalLocked(i, true, lease.node_id);
    } else if (env_failed) {
      t.row.state = "canceled";
      t.row.wait_reason = "waiting_for_runtime_env";
      NoteError(AttemptId(i) + " on " + lease.node_id + ": " + why);
      MarkFinalLocked(i, false, lease.node_id, why);
    } else if (!node_died && !fenced && LostArgsLocked(i, run, why)) {
      // --- lineage: an argument's holder was gone when the node fetched it. The attempt failed
      // without running (not counted against max_retries); the task is prepared again, which
      // rebuilds the argument or fails naming it.
      t.row.state = "failed";
      if (o_.progress) {
        std::lock_guard<std::mutex> pl(progress_mu_);
        *o_.progress << "[live run] task " << i << " (" << t.row.name << ") on " << lease.node_id
                     << ": " << why << "; preparing it again\n";
      }
      attempts_[i].push_back(t.row);
      ApplyLocked(begin);
      t.arg_loss_attempts += 1;
      NewAttemptRow(t);
      pool_.Post([this, i] { Prepare(i); });
      return;
    } else if (node_died && RetriesUsedLocked(i) < static_cast<int>(ts.max_retries)) {
      t.row.state = "failed";
      if (o_.progress) {
        std::lock_guard<std::mutex> pl(progress_mu_);
        *o_.progress << "[live run] task " << i << " (" << t.row.name << ") failed on "
                     << lease.node_id << " (node died), retrying\n";
      }
      attempts_[i].push_back(t.row);
      ApplyLocked(begin);
      l.unlock();
      WaitDead({lease.node_id});
      l.lock();
      // One attempt per pass: a new task id and a new row; only a node failure retries.
      NewAttemptRow(t);
      t.row.node_id = PickDeciderLocked(t.preferred);
      SubmitLocked(i);
      return;
    } else {
      t.row.state = "failed";
      NoteError(AttemptId(i) + " on " + lease.node_id + ": " + why);
      MarkFinalLocked(i, false, lease.node_id, node_died ? "node died" : why);
    }
    ApplyLocked(begin);
  }

  // --- lineage: whether attempt `why` of task `i` failed fetching one of its task-output
  // arguments (the node's "fetching the arguments failed: ... fetch <id> from <node> ..."); if
  // so, that copy is marked unreachable (so the next Prepare rebuilds or fails it).
  // REQUIRES: mu_ held.
  bool LostArgsLocked(size_t i, const v1::RunTaskRequest& run, const std::string& why) {
    if (why.rfind("fetching the arguments failed", 0) != 0) return false;
    const TaskSpec& ts = s_.tasks[i];
    for (uint32_t k = 0; k < ts.args_count; ++k) {
      const ArgSpec& a = s_.args[ts.args_begin + k];
      if (a.producer < 0) continue;
      const std::string id = ObjectIdOfTask(run_id_, static_cast<size_t>(a.producer));
      for (const auto& ref : run.args()) {
        if (ref.object_id() != id) continue;
        if (why.find("fetch " + id + " from " + ref.node_id()) == std::string::npos) continue;
        unreachable_[ref.node_id()] = {EpochLocked(ref.node_id()),
                                       "fetching it from node " + ref.node_id() + " failed: " + why};
        return true;
      }
    }
    return false;
  }

  // ---- placement groups ----------------------------------------------------------------------

  struct GroupState {
    bool asked = false;  // the create call was answered (ok or not)
    Status create = Status::Ok();
  };

  // The group's id on the cluster: unique per run, so runs on one cluster never collide.
  std::string GroupId(size_t g) const { return run_id_ + "-" + s_.placement_groups[g].id; }

  // Creates each group at its `at` time (they are sorted by nothing: each gets its own wait).
  void GroupLoop() {
    std::vector<size_t> order(s_.placement_groups.size());
    for (size_t g = 0; g < order.size(); ++g) order[g] = g;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return s_.placement_groups[a].create_s < s_.placement_groups[b].create_s;
    });
    HeadClient head(head_address_, token_);
    for (size_t g : order) {
      const auto& spec = s_.placement_groups[g];
      std::this_thread::sleep_until(t0_ + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(spec.create_s)));
      v1::CreatePlacementGroupRequest req;
      req.set_group_id(GroupId(g));
      req.set_strategy(PlacementStrategyName(spec.strategy));
      for (const auto& b : spec.bundles) ToProto(b.set(), req.add_bundles());
      auto r = head.CreatePlacementGroup(req);
      {
        std::lock_guard<std::mutex> l(mu_);
        group_state_[g].asked = true;
        if (!r.ok()) group_state_[g].create = r.status().WithContext("creating " + spec.id);
      }
      cv_.notify_all();
    }
  }

  // Waits until group `g` is created; returns the node of the task's bundle (or, for "any
  // bundle", one of the group's nodes, chosen round robin by task index) and the shape the task
  // asks for there: each resource of its shape under the bundle's indexed (or wildcard) name,
  // plus a sliver of the bundle marker so a task without resources is pinned too.
  StatusOr<std::pair<std::string, ResourceRequest>> AwaitBundle(size_t g, int bundle, size_t task) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return group_state_[g].asked; });
      if (!group_state_[g].create.ok()) return group_state_[g].create;
    }
    const std::string id = GroupId(g);
    HeadClient head(head_address_, token_);
    const auto deadline = Clock::now() + o_.group_timeout;
    v1::PlacementGroupInfo info;
    while (true) {
      auto r = head.GetPlacementGroup(id);
      if (r.ok() && r->state() == v1::PLACEMENT_GROUP_STATE_CREATED) {
        info = *r;
        break;
      }
      if (r.ok() && r->state() == v1::PLACEMENT_GROUP_STATE_REMOVED) {
        return Status(StatusCode::kCancelled, "placement group " + id + " was removed");
      }
      if (Clock::now() > deadline) {
        return Status(StatusCode::kDeadlineExceeded,
                      "placement group " + id + " was not created in time" +
                          (r.ok() && !r->reason().empty() ? ": " + r->reason() : ""));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (bundle >= info.bundle_nodes_size()) {
      return InvalidArgument("bundle " + std::to_string(bundle) + " of group " + id +
                             " does not exist");
    }
    const std::string node =
        bundle >= 0 ? info.bundle_nodes(bundle)
                    : info.bundle_nodes(static_cast<int>(task % info.bundle_nodes_size()));
    ResourceSet set;
    const auto name = [&](std::string_view r) {
      return bundle >= 0 ? IndexedBundleResourceName(r, bundle, id)
                         : WildcardBundleResourceName(r, id);
    };
    s_.shapes[s_.tasks[task].shape].set().ForEach(
        [&](std::string_view r, Quantity q) { set.Set(name(r), q); });
    set.Set(name(kBundleMarkerResource), Quantity::FromRaw(10));  // 0.001
    return std::make_pair(node, ResourceRequest::FromSet(std::move(set)));
  }

  // Groups live until removed: the run removes the ones it created.
  void RemoveGroups() {
    HeadClient head(head_address_, token_);
    for (size_t g = 0; g < s_.placement_groups.size(); ++g) {
      if (group_state_[g].asked && group_state_[g].create.ok()) {
        (void)head.RemovePlacementGroup(GroupId(g));
      }
    }
  }

  // Injects the scenario's failures at their times, until the run is done.
  void FailureLoop() {
    for (const auto& f : s_.failures) {
      {
        std::unique_lock<std::mutex> l(mu_);
        const auto at = t0_ + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(f.at_s));
        if (cv_.wait_until(l, at, [this] { return done_; })) return;
      }
      const std::string id = s_.nodes[static_cast<size_t>(f.node)].id;
      const bool crash = f.action == FailureSpec::Action::kCrash;
      if (crash) {
        std::lock_guard<std::mutex> l(mu_);
        down_.insert(id);
        ++crash_epoch_[id];
      }
      if (o_.progress) {
        std::lock_guard<std::mutex> l(progress_mu_);
        *o_.progress << "[live run] t=" << Now() << "s: " << (crash ? "crash" : "recover")
                     << " node " << id << "\n";
      }
      Status st = o_.inject_failure ? o_.inject_failure(id, crash) : KillByPid(id, crash);
      if (!st.ok()) {
        NoteError(std::string(crash ? "crash" : "recover") + " of node " + id + ": " +
                  st.ToString());
        if (crash) {
          std::lock_guard<std::mutex> l(mu_);
          down_.erase(id);
        }
        continue;
      }
      if (!crash) AwaitRecovered(id);
    }
  }

  // Default injector: SIGKILL of a node daemon that is a separate process on this machine.
  Status KillByPid(const std::string& id, bool crash) {
    if (!crash) {
      return Status(StatusCode::kUnimplemented,
                    "recover needs --local (live run cannot start a daemon of another cluster)");
    }
    auto list = HeadClient(head_address_, token_).ListNodes();
    if (!list.ok()) return list.status();
    for (const auto& n : list->nodes()) {
      if (n.node_id() != id) continue;
      const std::string& a = n.address();
      const bool local = a.rfind("127.0.0.1:", 0) == 0 || a.rfind("localhost:", 0) == 0;
      if (!local || n.pid() <= 0 || n.pid() == static_cast<int32_t>(::getpid())) {
        return Status(StatusCode::kUnimplemented,
                      "node " + id + " is not a separate process on this machine");
      }
      if (::kill(n.pid(), SIGKILL) != 0) {
        return Status(StatusCode::kUnavailable, "cannot kill pid " + std::to_string(n.pid()));
      }
      return Status::Ok();
    }
    return Status(StatusCode::kNotFound, "the head has no node '" + id + "'");
  }

  // After a recover: waits (up to 10 s) until the head lists the node alive, takes its new
  // address, and lets two report periods pass so the other nodes see it too.
  void AwaitRecovered(const std::string& id) {
    HeadClient head(head_address_, token_, std::chrono::milliseconds(2000));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      auto list = head.ListNodes();
      if (list.ok()) {
        for (const auto& n : list->nodes()) {
          if (n.node_id() == id && n.state() == v1::NODE_STATE_ALIVE) {
            std::this_thread::sleep_for(
                std::chrono::duration<double>(2 * s_.scheduler.report_period_s));
            std::lock_guard<std::mutex> l(mu_);
            address_of_[id] = n.address();
            down_.erase(id);
            return;
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    NoteError("node " + id + " did not come back within 10 s of its recover");
  }

  // Samples the cluster until the run is done: every kUtilTick for the utilisation and node-second
  // integrals (the head's view changes every report period, 100 ms; a 1 s step function aliases
  // tasks of a second or two badly), and writes timeseries rows every sample period.
  void SampleLoop() {
    static constexpr double kUtilTick = 0.1;
    const double tick = std::min(kUtilTick, o_.sample_period_s);
    std::unique_lock<std::mutex> l(mu_);
    auto next = Clock::now();
    double next_rows = 0;
    while (!done_) {
      // Leases idle past owner.idle_lease_timeout_s go back.
      const size_t begin = owner_out_.size();
      owner_.Tick(Now(), &owner_out_);
      ApplyLocked(begin);
      l.unlock();
      const double t = Now();
      const bool rows = t >= next_rows;
      if (rows) next_rows = t + o_.sample_period_s - tick / 2;
      Sample(rows);
      l.lock();
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(tick));
      cv_.wait_until(l, next, [this] { return done_; });
    }
  }

  // Takes one sample; with `rows`, also appends it to timeseries.csv.
  void Sample(bool rows = true) {
    const double t = Now();
    HeadClient head(head_address_, token_, std::chrono::milliseconds(2000));
    auto nodes = head.ListNodes();
    uint64_t final_count;
    {
      std::lock_guard<std::mutex> l(mu_);
      final_count = num_final_;
    }
    if (nodes.ok()) {  // for DeclaredDead; mu_ is not held together with sample_mu_
      std::set<std::string> dead;
      for (const auto& n : nodes->nodes()) {
        if (n.state() == v1::NODE_STATE_DEAD) dead.insert(n.node_id());
      }
      std::lock_guard<std::mutex> dl(mu_);
      declared_dead_ = std::move(dead);
    }
    const double running = static_cast<double>(running_.load());
    std::lock_guard<std::mutex> l(sample_mu_);
    auto add = [&](const char* metric, std::string labels, double v) {
      if (rows) samples_.push_back({t, metric, std::move(labels), v});
    };
    add("orrery_tasks", "state=running", running);
    add("orrery_tasks", "state=final", static_cast<double>(final_count));
    add("orrery_spillbacks_total", "", static_cast<double>(spillbacks_.load()));
    if (!nodes.ok()) return;
    static const char* kNames[3] = {"CPU", "GPU", "memory"};
    double used[3] = {0, 0, 0}, cap[3] = {0, 0, 0};
    int alive = 0;
    for (const auto& n : nodes->nodes()) {
      if (n.state() != v1::NODE_STATE_ALIVE) continue;
      ++alive;
      auto total = FromProto(n.total(), "total");
      auto avail = FromProto(n.available(), "available");
      if (!total.ok() || !avail.ok()) continue;
      for (int r = 0; r < 3; ++r) {
        const double c = total->Get(kNames[r]).ToDouble();
        cap[r] += c;
        used[r] += c - avail->Get(kNames[r]).ToDouble();
      }
    }
    for (int r = 0; r < 3; ++r) {
      add("orrery_resources", std::string("name=") + kNames[r] + ",state=used", used[r]);
      add("orrery_resources", std::string("name=") + kNames[r] + ",state=available",
          cap[r] - used[r]);
    }
    util_samples_.push_back({t, {used[0], used[1], used[2]}, {cap[0], cap[1], cap[2]}});
    add("orrery_nodes", "state=alive", alive);
    // --- autoscaler: nodes up or launching, integrated over time (node_seconds, as the sim).
    if (s_.autoscaler.enabled) {
      int pending = 0;
      if (auto as = GetAutoscalerStatus(head_address_, token_, std::chrono::milliseconds(2000));
          as.ok()) {
        for (const auto& n : as->nodes()) pending += n.state() == "pending" ? 1 : 0;
      }
      if (as_last_t_ >= 0) as_node_seconds_ += as_last_nodes_ * (t - as_last_t_);
      as_last_t_ = t;
      as_last_nodes_ = alive + pending;
      as_peak_ = std::max(as_peak_, alive);
      add("orrery_autoscaler_pending_nodes", "", pending);
    }
  }

  results::RunRecord Finish(double end) {
    results::RunRecord r = results::ScenarioRunRecord(s_, "live");
    double makespan = 0;
    for (const auto& task : attempts_) {
      for (const auto& row : task) {
        if (row.end_s >= 0) makespan = std::max(makespan, row.end_s);
        r.attempts.push_back(row);
      }
    }
    r.samples = samples_;
    r.lease_events = trace_.Take();
    r.makespan_s = makespan;
    // Time-averaged over [0, makespan] as the simulator integrates it: each sample's state holds
    // until the next sample (a step function), clipped at the makespan, so the idle samples at the
    // start and after the last task do not weigh like busy seconds.
    static const char* kNames[3] = {"CPU", "GPU", "memory"};
    double used_int[3] = {0, 0, 0}, cap_int[3] = {0, 0, 0};
    const double horizon = makespan > 0 ? makespan : end;
    for (size_t k = 0; k < util_samples_.size(); ++k) {
      const double from = util_samples_[k].t;
      const double to =
          std::min(horizon, k + 1 < util_samples_.size() ? util_samples_[k + 1].t : horizon);
      if (to <= from) continue;
      for (int i = 0; i < 3; ++i) {
        used_int[i] += util_samples_[k].used[i] * (to - from);
        cap_int[i] += util_samples_[k].cap[i] * (to - from);
      }
    }
    for (int i = 0; i < 3; ++i) {
      r.utilization[kNames[i]] = cap_int[i] > 0 ? used_int[i] / cap_int[i] : 0.0;
    }
    r.node_seconds = static_cast<double>(s_.nodes.size()) * end;
    r.spillbacks = spillbacks_.load();
    r.bytes_transferred = bytes_transferred_.load();
    r.nodes.initial = s_.nodes.size();
    r.nodes.peak = s_.nodes.size();
    r.autoscaler.peak_nodes = s_.nodes.size();
    if (s_.autoscaler.enabled) {  // --- autoscaler
      std::lock_guard<std::mutex> l(sample_mu_);
      r.node_seconds = as_node_seconds_;
      r.nodes.initial = 0;
      for (const auto& n : s_.nodes) r.nodes.initial += n.standby ? 0 : 1;
      r.nodes.peak = static_cast<uint64_t>(as_peak_);
      r.autoscaler.peak_nodes = static_cast<uint64_t>(as_peak_);
      if (auto as = GetAutoscalerStatus(head_address_, token_); as.ok()) {
        r.autoscaler.launched = static_cast<uint64_t>(as->launched());
        r.autoscaler.terminated = static_cast<uint64_t>(as->terminated());
      }
    }
    r.wall_s = end;
    // Per node, the counters' growth during the run (a node restarted by a recover starts from
    // zero again: then its counters as they are).
    for (const auto& [node, after] : env_after_) {
      const auto b = env_before_.find(node);
      const bool fresh = b == env_before_.end() || after.hits() < b->second.hits() ||
                         after.misses() < b->second.misses();
      const v1::RuntimeEnvCacheStats zero;
      const v1::RuntimeEnvCacheStats& before = fresh ? zero : b->second;
      r.env_cache.hits += after.hits() - before.hits();
      r.env_cache.misses += after.misses() - before.misses();
      r.env_cache.evictions += after.evictions() - before.evictions();
      r.env_cache.bytes_installed += after.bytes_installed() - before.bytes_installed();
    }
    return r;
  }

  // Each scenario node's runtime-env cache counters (a node that does not answer is left out).
  std::map<std::string, v1::RuntimeEnvCacheStats> ReadEnvStats() {
    std::map<std::string, v1::RuntimeEnvCacheStats> out;
    for (const auto& spec : s_.nodes) {
      const std::string address = AddressOf(spec.id);
      if (address.empty()) continue;
      auto stub = v1::NodeService::NewStub(
          OpenChannel(address));
      grpc::ClientContext ctx;
      AttachToken(&ctx, token_);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::RuntimeEnvCacheStats stats;
      if (stub->GetRuntimeEnvCacheStats(&ctx, v1::RuntimeEnvCacheStatsRequest(), &stats).ok()) {
        out[spec.id] = stats;
      } else {
        NoteError("reading the runtime-env cache counters of node " + spec.id);
      }
    }
    return out;
  }

 public:
  std::string first_error() const { return first_error_; }

 private:
  const Scenario& s_;
  const std::string head_address_;
  const std::string token_;
  const LiveRunOptions o_;
  // node id -> NodeService address; guarded by mu_ once the tasks start (a recover changes it).
  std::map<std::string, std::string> address_of_;
  std::string run_id_;
  Clock::time_point t0_;
  std::vector<std::string> env_json_;  // by runtime_envs index: EmulatedRuntimeEnv as JSON
  std::map<std::string, v1::RuntimeEnvCacheStats> env_before_, env_after_;  // by node id

  // Per task, its attempts in order; guarded by mu_.
  std::vector<std::vector<results::TaskAttempt>> attempts_;
  std::mutex mu_;
  std::condition_variable cv_;
  // The driver's owner (guarded by mu_): one Submitter for every task of the run.
  agent::Submitter owner_;
  std::vector<agent::SubmitDecision> owner_out_;  // reused
  Status fail_status_ = Status::Ok();  // why the request of the kFailTask being applied failed
  std::vector<uint32_t> class_of_;     // scheduling class by task (SchedulingClasses)
  struct TaskRt {
    results::TaskAttempt row;  // the current attempt's
    v1::RequestWorkerLeaseRequest req;  // task_id set per lease
    v1::RunTaskRequest run;             // task_id set per lease
    std::string preferred;              // where its lease requests go first
    int deps_left = 0;                  // producers not final yet
    bool arrived = false, args_failed = false;
    // --- lineage (see AwaitLostArgsLocked).
    int arg_loss_attempts = 0;  // attempts that failed only fetching a lost argument
    bool rebuilding = false;    // run again because its output was lost
    std::vector<uint32_t> rebuild_waiters;  // consumers waiting for that rebuild
    std::string arg_error;      // a lost argument that could not be rebuilt
  };

  // The next attempt of a task: its row starts again, pending, submitted now.
  void NewAttemptRow(TaskRt& t) const {
    t.row.attempt += 1;
    t.row.submit_s = Now();
    t.row.start_s = t.row.end_s = -1;
    t.row.state = "pending";
    t.row.spillbacks = 0;
    t.row.wait_reason.clear();
  }

  std::vector<TaskRt> tasks_;                     // guarded by mu_
  std::vector<std::vector<uint32_t>> dependents_;  // consumers by producer; immutable
  struct LeaseRt {
    std::string node_id, address;  // set once granted
    std::string node_lease_id;     // the node's id of the lease (task_id of its requests)
    int spillbacks = 0;
    bool unused = true;  // granted, no task run on it yet
    // The node kept it after its last task (RunTaskRequest.keep_lease): the next task runs on
    // it as is, and the owner's return goes to the node.
    bool kept = false;
  };
  std::unordered_map<agent::LeaseHandle, LeaseRt> leases_;  // guarded by mu_
  results::LeaseTraceRecorder trace_;                       // guarded by mu_

  // A lease event at now (o_.trace_leases only). REQUIRES: mu_ held.
  void TraceLocked(agent::LeaseHandle h, std::string_view event, size_t i, std::string_view node,
                   bool push = false, std::string_view detail = {}, double view_age_s = -1) {
    if (!o_.trace_leases) return;
    trace_.Add(Now(), h, event, s_.names[s_.tasks[i].name], node,
               push ? std::to_string(i) : std::string(), push ? tasks_[i].row.attempt : 0, detail,
               view_age_s);
  }
  // The scenario node serving `address` ("" if none). REQUIRES: mu_ held.
  std::string NodeOfAddressLocked(const std::string& address) const {
    for (const auto& [node, a] : address_of_) {
      if (a == address) return node;
    }
    return std::string();
  }
  uint64_t next_node_lease_ = 0;                            // guarded by mu_
  int64_t running_tasks_ = 0;                               // pushed, not ended; guarded by mu_
  CallPool pool_;
  std::vector<char> final_, ok_;     // guarded by mu_
  std::vector<std::string> ran_on_;  // guarded by mu_
  uint64_t num_final_ = 0;           // guarded by mu_
  bool done_ = false;                // guarded by mu_
  std::set<std::string> down_;       // crashed by a failure, not recovered; guarded by mu_
  std::set<std::string> declared_dead_;          // dead in the head's list at the last sample; mu_
  std::map<std::string, uint64_t> crash_epoch_;  // crashes per node; guarded by mu_
  // --- lineage: by task, the nodes holding a copy of its output and their crash epoch then.
  std::vector<std::map<std::string, uint64_t>> copies_;  // guarded by mu_
  // Nodes a fetch failed from: their crash epoch then and why. Their copies of that epoch count
  // as gone. Guarded by mu_.
  std::map<std::string, std::pair<uint64_t, std::string>> unreachable_;
  std::vector<GroupState> group_state_;          // by placement group; guarded by mu_

  std::atomic<uint64_t> spillbacks_{0}, bytes_transferred_{0}, errors_{0}, rebuilds_{0};
  std::atomic<int64_t> running_{0};
  std::mutex progress_mu_;
  std::string first_error_;  // guarded by progress_mu_

  std::mutex sample_mu_;
  std::vector<results::Sample> samples_;
  struct UtilSample {
    double t;
    double used[3], cap[3];  // CPU, GPU, memory over alive nodes
  };
  std::vector<UtilSample> util_samples_;  // guarded by sample_mu_
  // --- autoscaler: guarded by sample_mu_.
  double as_node_seconds_ = 0, as_last_t_ = -1;
  int as_last_nodes_ = 0, as_peak_ = 0;
};

}  // namespace

StatusOr<results::RunRecord> RunScenario(const Scenario& scenario, const std::string& address,
                                         const std::string& token, const LiveRunOptions& options) {
  ORRERY_RETURN_IF_ERROR(CheckLiveSupport(scenario));
  if (scenario.autoscaler.enabled) {  // --- autoscaler: the cluster must run one
    auto as = GetAutoscalerStatus(address, token);
    if (!as.ok() || !as->enabled()) {
      return Status(StatusCode::kFailedPrecondition,
                    scenario.path + ": cluster.node_types.max_workers: the scenario is autoscaled "
                    "but the cluster at " + address + " runs no autoscaler (start its head with "
                    "--autoscaler-config, or use --local)");
    }
  }
  auto scheduling = ClusterScheduling(scenario, address, token);
  if (!scheduling.ok()) return scheduling.status();
  if (SameScheduling(*scheduling, scenario.scheduler.options)) {
    Runner runner(scenario, address, token, options);
    return runner.Run();
  }
  // The scenario names no policy: it runs with the cluster's, and its record says so.
  Scenario on_cluster = scenario;
  on_cluster.scheduler.options = *scheduling;
  Runner runner(on_cluster, address, token, options);
  return runner.Run();
}

StatusOr<SchedulerOptions> ClusterScheduling(const Scenario& scenario,
                                             const std::string& address,
                                             const std::string& token) {
  auto view = HeadClient(address, token).GetClusterView();
  if (!view.ok()) return view.status().WithContext("asking the cluster for its view");
  auto cluster = SchedulerFromProto(view->scheduler());
  if (!cluster.ok()) return cluster.status().WithContext("the cluster's scheduling setting");
  const SchedulerOptions& asked = scenario.scheduler.options;
  if (scenario.scheduler.policy_given && !SameScheduling(asked, *cluster)) {
    return Status(StatusCode::kFailedPrecondition,
                  scenario.path + ": scheduler: the scenario asks for policy " +
                      DescribeScheduling(asked) + " but the cluster at " + address + " runs " +
                      DescribeScheduling(*cluster) +
                      " (policy is a cluster setting: start the head with --policy " +
                      asked.policy + ", or drop the scenario's policy to use the cluster's)");
  }
  return *cluster;
}

std::vector<std::string> SchedulingOverrides(const SchedulerOptions& o) {
  auto num = [](double d) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    return std::string(buf);
  };
  return {"scheduler.policy=" + o.policy,
          "scheduler.spread_threshold=" + num(o.hybrid.spread_threshold),
          "scheduler.top_k_absolute=" + std::to_string(o.hybrid.top_k_absolute),
          "scheduler.top_k_fraction=" + num(o.hybrid.top_k_fraction),
          std::string("scheduler.avoid_gpu_nodes=") + (o.hybrid.avoid_gpu_nodes ? "true" : "false"),
          std::string("scheduler.fair_granting=") + (o.fair_granting ? "true" : "false"),
          std::string("scheduler.wait_at_best_node=") + (o.wait_at_best_node ? "true" : "false")};
}

}  // namespace orrery::live

#include "live/dashboard/head_routes.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <future>
#include <set>

#include <nlohmann/json.hpp>

#include "core/resources.h"

namespace orrery::live::dashboard {

using nlohmann::json;

namespace {

constexpr size_t kPumpBatch = 500;  // events or log batches sent to one stream per wake-up
constexpr uint64_t kJobLogChunk = 64 << 10;
const char* const kHeadNode = "_head";  // the node id of the head daemon's own log files

http::Response Stopping() { return http::ErrorResponse(503, "the head is stopping"); }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "TASK_STATE_RUNNING" -> "RUNNING" (upper) or "running" (lower).
std::string EnumName(const std::string& full, const std::string& prefix, bool lower) {
  std::string s = full.rfind(prefix, 0) == 0 ? full.substr(prefix.size()) : full;
  return lower ? Lower(s) : s;
}

bool ContainsCI(const std::string& hay, const std::string& needle_lower) {
  if (needle_lower.empty()) return true;
  auto it = std::search(hay.begin(), hay.end(), needle_lower.begin(), needle_lower.end(),
                        [](char a, char b) {
                          return std::tolower(static_cast<unsigned char>(a)) == b;
                        });
  return it != hay.end();
}

double Amount(int64_t raw) { return Quantity::FromRaw(raw).ToDouble(); }

json ResourcesJson(const v1::Resources& r) {
  json j = json::object();
  for (const auto& [k, v] : r.raw()) j[k] = Amount(v);
  return j;
}

// Checks that every query parameter is one of `known` (and "_", a browser cache-buster).
bool KnownParams(const http::Request& req, const std::set<std::string>& known,
                 http::Response* error) {
  for (const auto& [k, v] : req.query) {
    if (k == "_" || known.count(k)) continue;
    std::string names;
    for (const auto& n : known) names += (names.empty() ? "" : ", ") + n;
    *error = http::ErrorResponse(400, "unknown query parameter '" + k.substr(0, 64) +
                                          "' (expected " + names + ")");
    return false;
  }
  return true;
}

// A filter parameter: "" when absent; error when its value is not one of `allowed`.
bool Filter(const http::Request& req, const std::string& name,
            const std::vector<std::string>& allowed, std::string* out, http::Response* error) {
  auto it = req.query.find(name);
  out->clear();
  if (it == req.query.end() || it->second.empty()) return true;
  if (!allowed.empty() &&
      std::find(allowed.begin(), allowed.end(), it->second) == allowed.end()) {
    std::string names;
    for (const auto& n : allowed) names += (names.empty() ? "" : "|") + n;
    *error = http::ErrorResponse(400, "query parameter '" + name + "': unknown value '" +
                                          it->second.substr(0, 64) + "' (expected " + names +
                                          ")");
    return false;
  }
  *out = it->second;
  return true;
}

struct Page {
  long long offset = 0, limit = 100;
};

bool ParsePage(const http::Request& req, Page* p, http::Response* error) {
  std::string e;
  if (!http::QueryInt(req, "offset", 0, 1LL << 40, 0, &p->offset, &e) ||
      !http::QueryInt(req, "limit", 1, 1000, 100, &p->limit, &e)) {
    *error = http::ErrorResponse(400, e);
    return false;
  }
  return true;
}

json ListJson(size_t total, const Page& p, json items) {
  return json{{"total", total}, {"offset", p.offset}, {"limit", p.limit}, {"items", std::move(items)}};
}

const std::vector<std::string> kTaskStates = {"pending",  "leased", "running",
                                              "finished", "failed", "canceled"};
const std::vector<std::string> kNodeStates = {"ALIVE", "DRAINING", "DEAD"};
const std::vector<std::string> kActorStates = {"DEPENDENCIES_UNREADY", "PENDING_CREATION",
                                               "ALIVE", "RESTARTING", "DEAD"};
const std::vector<std::string> kGroupStates = {"PENDING", "PREPARING", "COMMITTING", "CREATED",
                                               "FAILED",  "REMOVED",   "INFEASIBLE"};
const std::vector<std::string> kJobStates = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED",
                                             "STOPPED"};

std::string TaskState(const v1::TaskRecord& t) {
  return EnumName(v1::TaskState_Name(t.state()), "TASK_STATE_", true);
}

std::string NodeStateName(v1::NodeState s) {
  if (s == v1::NODE_STATE_UNSPECIFIED) return "ALIVE";
  return EnumName(v1::NodeState_Name(s), "NODE_STATE_", false);
}

json NodeJson(const v1::NodeInfo& n) {
  json res = json::object();
  for (const auto& [k, total] : n.total().raw()) {
    auto a = n.available().raw().find(k);
    const int64_t avail = a == n.available().raw().end() ? 0 : a->second;
    res[k] = json{{"used", Amount(total - avail)}, {"total", Amount(total)}};
  }
  json gpus = json::array();
  for (const auto& d : n.devices()) {
    if (d.name() != "GPU") continue;
    for (int i = 0; i < d.raw_size(); ++i) {
      gpus.push_back(json{{"index", i}, {"used", 1.0 - Amount(d.raw(i))}, {"total", 1.0}});
    }
  }
  return json{{"node_id", n.node_id()},
              {"address", n.address()},
              {"state", NodeStateName(n.state())},
              {"is_head_node", n.is_head_node()},
              {"labels", std::map<std::string, std::string>(n.labels().begin(), n.labels().end())},
              {"pid", n.pid()},
              {"resources", res},
              {"gpus", gpus},
              {"workers", n.num_workers()},
              {"envs_cached", n.envs_cached()},
              {"ms_since_heartbeat", n.ms_since_heartbeat()},
              {"metrics_address", n.metrics_address()}};
}

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string ShapeText(const v1::Resources& r) {
  std::string s;
  for (const auto& [k, v] : r.raw()) s += (s.empty() ? "" : ", ") + Fmt(Amount(v)) + " " + k;
  return s.empty() ? "no resources" : s;
}

// One sentence on why a pending task waits, from the head's view of the cluster.
std::string WaitDetail(const v1::TaskRecord& t, const v1::ClusterView& view) {
  if (t.state() != v1::TASK_STATE_PENDING) return "";
  const v1::NodeInfo* here = nullptr;
  for (const auto& n : view.nodes()) {
    if (n.node_id() == t.node_id()) here = &n;
  }
  auto raw = [](const v1::Resources& r, const std::string& k) -> int64_t {
    auto it = r.raw().find(k);
    return it == r.raw().end() ? 0 : it->second;
  };
  switch (t.wait_reason()) {
    case v1::WAIT_REASON_INFEASIBLE: {
      std::string s = "no node can ever hold " + ShapeText(t.resources());
      for (const auto& [k, need] : t.resources().raw()) {
        int64_t best = 0;
        for (const auto& n : view.nodes()) best = std::max(best, raw(n.total(), k));
        if (best < need) {
          s += ": the largest " + k + " total is " + Fmt(Amount(best));
          break;
        }
      }
      return s + " (add a bigger node, or let the autoscaler launch one)";
    }
    case v1::WAIT_REASON_WAITING_FOR_RESOURCES: {
      // The first resource the queuing node lacks now (else the first asked).
      std::string key;
      int64_t need = 0;
      for (const auto& [k, v] : t.resources().raw()) {
        if (key.empty() || (here && raw(here->available(), k) < v)) {
          const bool lacking = here && raw(here->available(), k) < v;
          if (key.empty() || lacking) {
            key = k;
            need = v;
          }
          if (lacking) break;
        }
      }
      if (key.empty()) return "waiting for resources";
      int fit = 0, free_now = 0;
      for (const auto& n : view.nodes()) {
        if (n.state() == v1::NODE_STATE_DEAD) continue;
        if (raw(n.total(), key) >= need) ++fit;
        if (raw(n.available(), key) >= need) ++free_now;
      }
      std::string s = "waiting for " + Fmt(Amount(need)) + " " + key;
      if (here) {
        s += ": node " + here->node_id() + " has " + Fmt(Amount(raw(here->available(), key))) +
             " of " + Fmt(Amount(raw(here->total(), key))) + " free";
      }
      s += "; " + std::to_string(fit) + (fit == 1 ? " node" : " nodes") + " could fit it once free";
      if (free_now > 0) {
        s += ", " + std::to_string(free_now) + " ha" + (free_now == 1 ? "s" : "ve") +
             " it free now";
      }
      return s;
    }
    case v1::WAIT_REASON_WAITING_FOR_RUNTIME_ENV:
      return "waiting for its runtime env to be set up" +
             (t.node_id().empty() ? std::string() : " on node " + t.node_id());
    case v1::WAIT_REASON_WAITING_FOR_ARGS:
      return "waiting for its argument objects to be ready";
    case v1::WAIT_REASON_WAITING_FOR_PLACEMENT_GROUP:
      return "waiting for its placement group's bundle to be committed";
    case v1::WAIT_REASON_WAITING_FOR_NODE:
      return "waiting for a node that its scheduling strategy allows";
    default:
      return "queued at node " + t.node_id();
  }
}

json TaskJson(const v1::TaskRecord& t, const v1::ClusterView* view) {
  const std::string id = t.display_task_id().empty() ? t.task_id() : t.display_task_id();
  const bool pending = t.state() == v1::TASK_STATE_PENDING;
  return json{
      {"task_id", id},
      {"name", t.name()},
      {"job_id", t.job_id()},
      {"node_id", t.node_id()},
      {"state", TaskState(t)},
      {"wait_reason",
       pending ? EnumName(v1::WaitReason_Name(t.wait_reason()), "WAIT_REASON_", true) : ""},
      {"wait_detail", pending && view ? WaitDetail(t, *view) : ""},
      {"attempt", t.attempt()},
      {"spillbacks", t.spillbacks()},
      {"resources", ResourcesJson(t.resources())},
      {"submit_ms", t.submit_unix_ms()},
      {"start_ms", t.start_unix_ms()},
      {"end_ms", t.end_unix_ms()},
      {"exit_code", t.exit_code()},
      {"error", t.error()}};
}

json ActorJson(const v1::ActorInfo& a) {
  return json{{"actor_id", a.actor_id()},
              {"class_name", a.class_name()},
              {"job_id", a.job_id()},
              {"node_id", a.node_id()},
              {"worker_pid", a.worker_pid()},
              {"state", EnumName(v1::ActorState_Name(a.state()), "ACTOR_STATE_", false)},
              {"num_restarts", a.num_restarts()},
              {"max_restarts", a.max_restarts()},
              {"death_cause", a.death_cause()},
              {"driver", a.driver()},
              {"update_ms", a.update_unix_ms()}};
}

json GroupJson(const v1::PlacementGroupInfo& g) {
  json bundles = json::array();
  for (int i = 0; i < g.bundles_size(); ++i) {
    bundles.push_back(json{{"index", i},
                           {"resources", ResourcesJson(g.bundles(i))},
                           {"node_id", i < g.bundle_nodes_size() ? g.bundle_nodes(i) : ""}});
  }
  return json{{"group_id", g.group_id()},
              {"strategy", g.strategy()},
              {"state", EnumName(v1::PlacementGroupState_Name(g.state()),
                                 "PLACEMENT_GROUP_STATE_", false)},
              {"attempts", g.attempts()},
              {"reason", g.reason()},
              {"bundles", bundles}};
}

std::string JobState(const v1::JobInfo& j) {
  return EnumName(v1::JobStatus_Name(j.status()), "JOB_STATUS_", false);
}

// The metrics the head samples into its history (live/head/head_dashboard.cc).
const std::set<std::string>& MetricNames() {
  static const std::set<std::string> kNames = {
      "orrery_nodes",           "orrery_head_task_table",         "orrery_placement_groups",
      "orrery_autoscaler_active_nodes", "orrery_autoscaler_pending_nodes",
      "orrery_node_utilization", "orrery_cluster_resource_used", "orrery_cluster_resource_total",
      "orrery_runtime_env_cache_bytes", "orrery_scheduling_latency_seconds"};
  return kNames;
}

}  // namespace

// One open event stream (see Pump).
struct HeadRoutes::Stream {
  enum Kind { kEvents, kLogs, kJobLog } kind = kEvents;
  std::shared_ptr<http::EventSink> sink;
  int64_t cursor = 0;                 // events / log batches: the last seq sent
  std::string job_id, node_id;        // log filter
  std::shared_ptr<JobLog> job_log;    // kJobLog
  uint64_t offset = 0;                // kJobLog: the next byte to send
  bool done = false;                  // kJobLog: the end was sent
};

HeadRoutes::HeadRoutes(HeadSource source, JobRoutes* jobs, EventRing* events,
                       MetricsHistory* metrics, LogHub* logs)
    : source_(std::move(source)), jobs_(jobs), events_(events), metrics_(metrics), logs_(logs) {
  pump_ = std::thread([this] { Pump(); });
}

HeadRoutes::~HeadRoutes() { Stop(); }

void HeadRoutes::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ && !pump_.joinable()) return;
    stopping_ = true;
    streams_.clear();
  }
  cv_.notify_all();
  if (pump_.joinable()) pump_.join();
}

http::Response HeadRoutes::Handle(const http::Request& req) {
  if (jobs_ != nullptr) {
    if (auto r = jobs_->Handle(req)) return std::move(*r);
  }
  const std::string& p = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  auto only_get = [&]() { return http::ErrorResponse(405, p + ": expected GET"); };
  if (p == "/api/mode") return get ? Mode() : only_get();
  if (p == "/api/overview") return get ? Overview() : only_get();
  if (p == "/api/nodes" || p == "/api/nodes/") return get ? Nodes(req) : only_get();
  if (p.rfind("/api/nodes/", 0) == 0) return get ? Node(p.substr(11)) : only_get();
  if (p == "/api/tasks") return get ? Tasks(req) : only_get();
  if (p == "/api/actors") return get ? Actors(req) : only_get();
  if (p == "/api/placement_groups") return get ? PlacementGroups(req) : only_get();
  if (p == "/api/job_list") return get ? JobList(req) : only_get();
  if (p == "/api/events") return get ? Events(req) : only_get();
  if (p == "/api/metrics") return get ? Metrics(req) : only_get();
  if (p == "/api/logs/files") return get ? LogFiles(req) : only_get();
  if (p == "/api/logs/file") return get ? LogFile(req) : only_get();
  if (p == "/api/events/stream" || p == "/api/logs/stream" ||
      (p.rfind("/api/jobs/", 0) == 0 && p.size() > 12 && p.ends_with("/logs/stream"))) {
    return http::ErrorResponse(400, p + ": an event stream (ask with GET, Accept: "
                                        "text/event-stream)");
  }
  return http::ErrorResponse(404, "no route " + p.substr(0, 200));
}

http::Response HeadRoutes::Mode() {
  return http::JsonResponse(json{{"mode", "live"},
                   {"version", source_.version},
                   {"head_address", source_.head_address},
                   {"read_only", source_.read_only}});
}

http::Response HeadRoutes::Overview() {
  v1::ClusterView view;
  std::map<std::string, int> tasks;
  for (const auto& s : kTaskStates) tasks[s] = 0;
  v1::ListActorsReply actors;
  v1::ListPlacementGroupsReply groups;
  v1::AutoscalerStatus autoscaler;
  std::vector<v1::JobInfo> jobs;
  if (!source_.run_on_loop([&] {
        source_.view(&view);
        source_.for_each_task([&](const v1::TaskRecord& t) { ++tasks[TaskState(t)]; });
        source_.actors(&actors);
        source_.groups(&groups);
        source_.autoscaler(&autoscaler);
        jobs = source_.jobs();
      })) {
    return Stopping();
  }
  json nodes{{"alive", 0}, {"draining", 0}, {"dead", 0}};
  std::map<std::string, std::pair<int64_t, int64_t>> res;  // used, total (raw)
  for (const auto& n : view.nodes()) {
    const std::string s = Lower(NodeStateName(n.state()));
    nodes[s] = nodes[s].get<int>() + 1;
    if (n.state() == v1::NODE_STATE_DEAD) continue;
    for (const auto& [k, total] : n.total().raw()) {
      auto a = n.available().raw().find(k);
      res[k].first += total - (a == n.available().raw().end() ? 0 : a->second);
      res[k].second += total;
    }
  }
  json resources = json::object();
  for (const char* k : {"CPU", "GPU", "memory"}) resources[k] = json{{"used", 0}, {"total", 0}};
  for (const auto& [k, ut] : res) {
    resources[k] = json{{"used", Amount(ut.first)}, {"total", Amount(ut.second)}};
  }
  json job_counts = json::object();
  for (const auto& s : kJobStates) job_counts[Lower(s)] = 0;
  for (const auto& j : jobs) {
    const std::string s = Lower(JobState(j));
    job_counts[s] = job_counts.value(s, 0) + 1;
  }
  json actor_counts = json::object();
  for (const auto& s : kActorStates) actor_counts[s] = 0;
  for (const auto& a : actors.actors()) {
    const std::string s = EnumName(v1::ActorState_Name(a.state()), "ACTOR_STATE_", false);
    actor_counts[s] = actor_counts.value(s, 0) + 1;
  }
  json group_counts = json::object();
  for (const auto& s : kGroupStates) group_counts[s] = 0;
  for (const auto& g : groups.groups()) {
    const std::string s =
        EnumName(v1::PlacementGroupState_Name(g.state()), "PLACEMENT_GROUP_STATE_", false);
    group_counts[s] = group_counts.value(s, 0) + 1;
  }
  int active = 0, pending = 0;
  for (const auto& n : autoscaler.nodes()) {
    if (n.state() == "pending") ++pending;
    else if (n.state() == "running") ++active;
  }
  json infeasible = json::array();
  for (const auto& i : autoscaler.infeasible()) {
    infeasible.push_back(json{{"shape", ResourcesJson(i.shape())}, {"count", i.count()}});
  }
  json events = json::array();
  if (events_ != nullptr) {
    const int64_t last = events_->last_seq();
    auto recent = events_->After(std::max<int64_t>(0, last - 20), 20);
    for (auto it = recent.rbegin(); it != recent.rend(); ++it) events.push_back(EventToJson(*it));
  }
  json task_counts(tasks);
  return http::JsonResponse(json{{"nodes", nodes},
                   {"resources", resources},
                   {"tasks", task_counts},
                   {"jobs", job_counts},
                   {"actors", actor_counts},
                   {"placement_groups", group_counts},
                   {"autoscaler", json{{"enabled", autoscaler.enabled()},
                                       {"active_nodes", active},
                                       {"pending_nodes", pending},
                                       {"infeasible", infeasible}}},
                   {"events", events}});
}

http::Response HeadRoutes::Nodes(const http::Request& req) {
  http::Response error;
  Page page;
  std::string state;
  if (!KnownParams(req, {"offset", "limit", "state", "q"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "state", kNodeStates, &state, &error)) {
    return error;
  }
  const std::string q = Lower(req.query.count("q") ? req.query.at("q") : "");
  v1::ClusterView view;
  if (!source_.run_on_loop([&] { source_.view(&view); })) return Stopping();
  json items = json::array();
  size_t total = 0;
  for (const auto& n : view.nodes()) {
    if (!state.empty() && NodeStateName(n.state()) != state) continue;
    if (!q.empty() && !ContainsCI(n.node_id(), q) && !ContainsCI(n.address(), q)) continue;
    if (static_cast<long long>(total) >= page.offset &&
        static_cast<long long>(items.size()) < page.limit) {
      items.push_back(NodeJson(n));
    }
    ++total;
  }
  return http::JsonResponse(ListJson(total, page, std::move(items)));
}

http::Response HeadRoutes::Node(const std::string& id) {
  v1::ClusterView view;
  if (!source_.run_on_loop([&] { source_.view(&view); })) return Stopping();
  const v1::NodeInfo* node = nullptr;
  for (const auto& n : view.nodes()) {
    if (n.node_id() == id) node = &n;
  }
  if (node == nullptr) return http::ErrorResponse(404, "no node '" + id.substr(0, 200) + "'");
  json j = NodeJson(*node);
  json workers = json::array(), envs = json::array(), files = json::array();
  if (node->state() != v1::NODE_STATE_DEAD && source_.node_detail) {
    v1::NodeDetailReply d;
    Status s = source_.node_detail(node->address(), v1::NodeDetailRequest(), &d);
    if (s.ok()) {
      for (const auto& w : d.workers()) {
        workers.push_back(json{{"pid", w.pid()},
                               {"state", w.state()},
                               {"task_id", w.task_id()},
                               {"job_id", w.job_id()},
                               {"env", w.env()}});
      }
      for (const auto& e : d.envs()) {
        envs.push_back(json{{"key", e.key()}, {"bytes", e.bytes()}, {"in_use", e.in_use()}});
      }
      for (const auto& f : d.log_files()) {
        files.push_back(json{{"name", f.name()}, {"size", f.size()}});
      }
    } else {
      j["detail_error"] = "node " + id + " did not answer: " + s.message();
    }
  }
  j["workers"] = workers;
  j["envs"] = envs;
  j["log_files"] = files;
  return http::JsonResponse(j);
}

http::Response HeadRoutes::Tasks(const http::Request& req) {
  http::Response error;
  Page page;
  std::string state, job_id, node_id;
  if (!KnownParams(req, {"offset", "limit", "state", "job_id", "node_id", "q"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "state", kTaskStates, &state, &error) ||
      !Filter(req, "job_id", {}, &job_id, &error) ||
      !Filter(req, "node_id", {}, &node_id, &error)) {
    return error;
  }
  const std::string q = Lower(req.query.count("q") ? req.query.at("q") : "");
  std::map<std::string, int> by_state;
  for (const auto& s : kTaskStates) by_state[s] = 0;
  std::vector<v1::TaskRecord> rows;
  size_t total = 0;
  v1::ClusterView view;
  bool any_pending = false;
  if (!source_.run_on_loop([&] {
        std::vector<const v1::TaskRecord*> match;
        source_.for_each_task([&](const v1::TaskRecord& t) {
          const std::string s = TaskState(t);
          ++by_state[s];
          if (!state.empty() && s != state) return;
          if (!job_id.empty() && t.job_id() != job_id) return;
          if (!node_id.empty() && t.node_id() != node_id) return;
          if (!q.empty() && !ContainsCI(t.task_id(), q) && !ContainsCI(t.name(), q) &&
              !ContainsCI(t.display_task_id(), q)) {
            return;
          }
          match.push_back(&t);
        });
        total = match.size();
        // Newest first: by submit time (records arrive in heartbeat order), from the end.
        std::stable_sort(match.begin(), match.end(), [](const auto* a, const auto* b) {
          return a->submit_unix_ms() < b->submit_unix_ms();
        });
        for (long long i = static_cast<long long>(match.size()) - 1 - page.offset;
             i >= 0 && static_cast<long long>(rows.size()) < page.limit; --i) {
          rows.push_back(*match[static_cast<size_t>(i)]);
          any_pending |= rows.back().state() == v1::TASK_STATE_PENDING;
        }
        if (any_pending) source_.view(&view);
      })) {
    return Stopping();
  }
  json items = json::array();
  for (const auto& t : rows) items.push_back(TaskJson(t, any_pending ? &view : nullptr));
  json out = ListJson(total, page, std::move(items));
  out["by_state"] = by_state;
  return http::JsonResponse(out);
}

http::Response HeadRoutes::Actors(const http::Request& req) {
  http::Response error;
  Page page;
  std::string state, job_id, node_id;
  if (!KnownParams(req, {"offset", "limit", "state", "job_id", "node_id", "q"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "state", kActorStates, &state, &error) ||
      !Filter(req, "job_id", {}, &job_id, &error) ||
      !Filter(req, "node_id", {}, &node_id, &error)) {
    return error;
  }
  const std::string q = Lower(req.query.count("q") ? req.query.at("q") : "");
  v1::ListActorsReply actors;
  if (!source_.run_on_loop([&] { source_.actors(&actors); })) return Stopping();
  json items = json::array();
  size_t total = 0;
  for (const auto& a : actors.actors()) {
    if (!state.empty() && EnumName(v1::ActorState_Name(a.state()), "ACTOR_STATE_", false) != state)
      continue;
    if (!job_id.empty() && a.job_id() != job_id) continue;
    if (!node_id.empty() && a.node_id() != node_id) continue;
    if (!q.empty() && !ContainsCI(a.actor_id(), q) && !ContainsCI(a.class_name(), q)) continue;
    if (static_cast<long long>(total) >= page.offset &&
        static_cast<long long>(items.size()) < page.limit) {
      items.push_back(ActorJson(a));
    }
    ++total;
  }
  return http::JsonResponse(ListJson(total, page, std::move(items)));
}

http::Response HeadRoutes::PlacementGroups(const http::Request& req) {
  http::Response error;
  Page page;
  std::string state;
  if (!KnownParams(req, {"offset", "limit", "state", "q"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "state", kGroupStates, &state, &error)) {
    return error;
  }
  const std::string q = Lower(req.query.count("q") ? req.query.at("q") : "");
  v1::ListPlacementGroupsReply groups;
  if (!source_.run_on_loop([&] { source_.groups(&groups); })) return Stopping();
  json items = json::array();
  size_t total = 0;
  for (const auto& g : groups.groups()) {
    if (!state.empty() && EnumName(v1::PlacementGroupState_Name(g.state()),
                                   "PLACEMENT_GROUP_STATE_", false) != state)
      continue;
    if (!q.empty() && !ContainsCI(g.group_id(), q) && !ContainsCI(g.strategy(), q)) continue;
    if (static_cast<long long>(total) >= page.offset &&
        static_cast<long long>(items.size()) < page.limit) {
      items.push_back(GroupJson(g));
    }
    ++total;
  }
  return http::JsonResponse(ListJson(total, page, std::move(items)));
}

http::Response HeadRoutes::JobList(const http::Request& req) {
  http::Response error;
  Page page;
  std::string status;
  if (!KnownParams(req, {"offset", "limit", "status", "q"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "status", kJobStates, &status, &error)) {
    return error;
  }
  const std::string q = Lower(req.query.count("q") ? req.query.at("q") : "");
  std::vector<v1::JobInfo> jobs;
  if (!source_.run_on_loop([&] { jobs = source_.jobs(); })) return Stopping();
  json items = json::array();
  size_t total = 0;
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {  // newest first
    if (!status.empty() && JobState(*it) != status) continue;
    if (!q.empty() && !ContainsCI(it->submission_id(), q) && !ContainsCI(it->entrypoint(), q))
      continue;
    if (static_cast<long long>(total) >= page.offset &&
        static_cast<long long>(items.size()) < page.limit) {
      items.push_back(JobInfoToJson(*it));
    }
    ++total;
  }
  return http::JsonResponse(ListJson(total, page, std::move(items)));
}

http::Response HeadRoutes::Events(const http::Request& req) {
  http::Response error;
  Page page;
  std::string kind;
  long long after = 0;
  std::string e;
  const std::vector<std::string> kinds(EventKinds().begin(), EventKinds().end());
  if (!KnownParams(req, {"offset", "limit", "after", "kind"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "kind", kinds, &kind, &error)) {
    return error;
  }
  if (!http::QueryInt(req, "after", 0, 1LL << 62, 0, &after, &e)) {
    return http::ErrorResponse(400, e);
  }
  std::vector<Event> all = events_ ? events_->After(after, SIZE_MAX) : std::vector<Event>();
  json items = json::array();
  size_t total = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (!kind.empty() && it->kind != kind) continue;
    if (static_cast<long long>(total) >= page.offset &&
        static_cast<long long>(items.size()) < page.limit) {
      items.push_back(EventToJson(*it));
    }
    ++total;
  }
  return http::JsonResponse(ListJson(total, page, std::move(items)));
}

http::Response HeadRoutes::Metrics(const http::Request& req) {
  http::Response error;
  if (!KnownParams(req, {"names", "since"}, &error)) return error;
  long long since = 0;
  std::string e;
  if (!http::QueryInt(req, "since", 0, 1LL << 50, 0, &since, &e)) {
    return http::ErrorResponse(400, e);
  }
  std::set<std::string> names;
  if (auto it = req.query.find("names"); it != req.query.end()) {
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string name(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (name.empty()) continue;
      if (!MetricNames().count(name)) {
        std::string known;
        for (const auto& n : MetricNames()) known += (known.empty() ? "" : ", ") + n;
        return http::ErrorResponse(400, "query parameter 'names': unknown metric '" +
                                            name.substr(0, 64) + "' (the head keeps " + known +
                                            ")");
      }
      names.insert(name);
    }
  }
  if (metrics_ == nullptr) {
    return http::JsonResponse(json{{"interval_s", 1}, {"series", json::array()}, {"histograms", json::array()}});
  }
  return http::JsonResponse(metrics_->Query(names, since));
}

http::Response HeadRoutes::LogFiles(const http::Request& req) {
  http::Response error;
  Page page;
  std::string node_id, job_id;
  if (!KnownParams(req, {"offset", "limit", "node_id", "job_id"}, &error) ||
      !ParsePage(req, &page, &error) || !Filter(req, "node_id", {}, &node_id, &error) ||
      !Filter(req, "job_id", {}, &job_id, &error)) {
    return error;
  }
  v1::ClusterView view;
  std::vector<v1::JobInfo> jobs;
  if (!source_.run_on_loop([&] {
        source_.view(&view);
        jobs = source_.jobs();
      })) {
    return Stopping();
  }
  std::vector<const v1::NodeInfo*> nodes;
  const bool head_own = node_id.empty() || node_id == kHeadNode;
  bool known = head_own;
  for (const auto& n : view.nodes()) {
    if (!node_id.empty() && n.node_id() != node_id) continue;
    known = true;
    if (n.state() != v1::NODE_STATE_DEAD) nodes.push_back(&n);
  }
  if (!known) return http::ErrorResponse(404, "no node '" + node_id.substr(0, 200) + "'");
  if (!job_id.empty()) {
    bool job_known = false;
    for (const auto& j : jobs) job_known |= j.submission_id() == job_id;
    if (!job_known) return http::ErrorResponse(404, "no job '" + job_id.substr(0, 200) + "'");
  }
  json rows = json::array();
  if (head_own && !source_.head_log_name.empty() && job_id.empty()) {  // the head's own log
    for (auto& f : ListLogFiles(source_.head_log_dir, [&](const std::string& n) {
           return n.rfind(source_.head_log_name, 0) == 0;
         })) {
      rows.push_back(json{{"node_id", kHeadNode},
                          {"name", f.name()},
                          {"kind", "daemon"},
                          {"job_id", ""},
                          {"size", f.size()},
                          {"modified_ms", f.modified_unix_ms()}});
    }
  }
  if (node_id.empty()) {  // driver logs: the job logs, kept by the head
    for (const auto& j : jobs) {
      if (!job_id.empty() && j.submission_id() != job_id) continue;
      rows.push_back(json{{"node_id", ""},
                          {"name", "job " + j.submission_id()},
                          {"kind", "driver"},
                          {"job_id", j.submission_id()},
                          {"size", nullptr},
                          {"modified_ms", j.end_unix_ms() ? j.end_unix_ms() : j.start_unix_ms()}});
    }
  }
  // Ask the nodes at once (each call has its own deadline), 16 at a time.
  std::vector<std::pair<std::string, v1::NodeDetailReply>> replies(nodes.size());
  std::vector<Status> statuses(nodes.size());
  for (size_t start = 0; start < nodes.size(); start += 16) {
    std::vector<std::future<void>> calls;
    for (size_t i = start; i < std::min(nodes.size(), start + 16); ++i) {
      calls.push_back(std::async(std::launch::async, [&, i] {
        replies[i].first = nodes[i]->node_id();
        statuses[i] = source_.node_detail
                          ? source_.node_detail(nodes[i]->address(), v1::NodeDetailRequest(),
                                                &replies[i].second)
                          : Status(StatusCode::kUnavailable, "no node calls");
      }));
    }
    for (auto& c : calls) c.get();
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!statuses[i].ok()) continue;  // a node that does not answer lists nothing
    for (const auto& f : replies[i].second.log_files()) {
      if (!job_id.empty() && f.job_id() != job_id) continue;
      rows.push_back(json{{"node_id", replies[i].first},
                          {"name", f.name()},
                          {"kind", f.kind()},
                          {"job_id", f.job_id()},
                          {"size", f.size()},
                          {"modified_ms", f.modified_unix_ms()}});
    }
  }
  json items = json::array();
  for (long long i = page.offset;
       i < static_cast<long long>(rows.size()) && static_cast<long long>(items.size()) < page.limit;
       ++i) {
    items.push_back(rows[static_cast<size_t>(i)]);
  }
  return http::JsonResponse(ListJson(rows.size(), page, std::move(items)));
}

http::Response HeadRoutes::LogFile(const http::Request& req) {
  http::Response error;
  std::string node_id, name;
  if (!KnownParams(req, {"node_id", "name", "offset", "limit", "tail", "q"}, &error) ||
      !Filter(req, "node_id", {}, &node_id, &error) || !Filter(req, "name", {}, &name, &error)) {
    return error;
  }
  if (node_id.empty()) return http::ErrorResponse(400, "query parameter 'node_id': missing");
  if (name.empty()) return http::ErrorResponse(400, "query parameter 'name': missing");
  long long offset = 0, limit = 0, tail = 0;
  std::string e;
  if (!http::QueryInt(req, "offset", 0, 1LL << 50, 0, &offset, &e) ||
      !http::QueryInt(req, "limit", 1, kMaxLogReadBytes, 1 << 20, &limit, &e) ||
      !http::QueryInt(req, "tail", 0, 1000000, 0, &tail, &e)) {
    return http::ErrorResponse(400, e);
  }
  v1::ReadNodeLogRequest r;
  r.set_name(name);
  r.set_offset(offset);
  r.set_limit(limit);
  r.set_tail(static_cast<int>(tail));
  if (auto it = req.query.find("q"); it != req.query.end()) r.set_search(it->second);
  v1::ReadNodeLogReply reply;
  auto answer = [](const v1::ReadNodeLogReply& rep) {
    return http::JsonResponse(json{{"text", rep.text()},
                     {"offset", rep.offset()},
                     {"next_offset", rep.next_offset()},
                     {"size", rep.size()},
                     {"truncated", rep.truncated()}});
  };
  auto named = [](const Status& s) {
    return http::StatusResponse(Status(s.code(), (s.code() == StatusCode::kInvalidArgument
                                            ? "query parameter "
                                            : "") +
                                           s.message()));
  };
  if (node_id == kHeadNode) {  // the head's own log, read here (a pool thread)
    if (source_.head_log_name.empty()) return http::ErrorResponse(404, "the head keeps no log file");
    auto read = ReadLogFile(source_.head_log_dir, [&](const std::string& n) {
      return n.rfind(source_.head_log_name, 0) == 0;
    }, r);
    return read.ok() ? answer(*read) : named(read.status());
  }
  v1::ClusterView view;
  if (!source_.run_on_loop([&] { source_.view(&view); })) return Stopping();
  const v1::NodeInfo* node = nullptr;
  for (const auto& n : view.nodes()) {
    if (n.node_id() == node_id) node = &n;
  }
  if (node == nullptr) return http::ErrorResponse(404, "no node '" + node_id.substr(0, 200) + "'");
  if (node->state() == v1::NODE_STATE_DEAD) {
    return http::ErrorResponse(503, "node " + node_id + " is dead: its log files cannot be read");
  }
  if (!source_.read_node_log) return http::ErrorResponse(503, "no node calls");
  if (Status s = source_.read_node_log(node->address(), r, &reply); !s.ok()) return named(s);
  return answer(reply);
}

// ---- event streams ---------------------------------------------------------------------------

std::optional<http::Response> HeadRoutes::OpenStream(const http::Request& req,
                                                     std::shared_ptr<http::EventSink> sink) {
  auto s = std::make_shared<Stream>();
  s->sink = std::move(sink);
  http::Response error;
  const std::string& p = req.path;
  if (p == "/api/events/stream") {
    if (!KnownParams(req, {"after"}, &error)) return error;
    long long after = 0;
    std::string e;
    if (!http::QueryInt(req, "after", 0, 1LL << 62, -1, &after, &e)) {
      return http::ErrorResponse(400, e);
    }
    s->kind = Stream::kEvents;
    // Without `after`: what happens from now on.
    s->cursor = after >= 0 ? after : (events_ ? events_->last_seq() : 0);
  } else if (p == "/api/logs/stream") {
    if (!KnownParams(req, {"job_id", "node_id"}, &error) ||
        !Filter(req, "job_id", {}, &s->job_id, &error) ||
        !Filter(req, "node_id", {}, &s->node_id, &error)) {
      return error;
    }
    s->kind = Stream::kLogs;
    // The recent lines first (what the page shows on opening), then new ones.
    s->cursor = 0;
  } else if (p.rfind("/api/jobs/", 0) == 0 && p.ends_with("/logs/stream") && jobs_ != nullptr) {
    const std::string id = p.substr(10, p.size() - 10 - 12);
    if (id.empty() || id.find('/') != std::string::npos) {
      return http::ErrorResponse(404, "no route " + p.substr(0, 200));
    }
    if (!KnownParams(req, {"offset"}, &error)) return error;
    long long offset = 0;
    std::string e;
    if (!http::QueryInt(req, "offset", 0, 1LL << 62, 0, &offset, &e)) {
      return http::ErrorResponse(400, e);
    }
    auto log = jobs_->LogOf(id);
    if (!log.ok()) return http::StatusResponse(log.status());
    s->kind = Stream::kJobLog;
    s->job_log = *log;
    s->offset = static_cast<uint64_t>(offset);
  } else {
    return Handle(req);  // not a stream (e.g. GET /api/jobs/stream: a job named "stream")
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return http::ErrorResponse(503, "the head is stopping");
    streams_.push_back(s);
  }
  cv_.notify_all();  // the first feed at once
  return std::nullopt;
}

bool HeadRoutes::Feed(Stream& s) {
  if (s.sink->closed()) return false;
  switch (s.kind) {
    case Stream::kEvents: {
      if (events_ == nullptr) return true;
      for (const Event& e : events_->After(s.cursor, kPumpBatch)) {
        if (!s.sink->Send("event", EventToJson(e).dump(-1, ' ', false,
                                                       json::error_handler_t::replace))) {
          return false;
        }
        s.cursor = e.seq;
      }
      return true;
    }
    case Stream::kLogs: {
      if (logs_ == nullptr) return true;
      for (const auto& b : logs_->Recent(s.job_id, s.node_id, s.cursor, kPumpBatch)) {
        json lines = json::array();
        for (const auto& line : b->batch.lines()) lines.push_back(line);
        const json j{{"node_id", b->batch.node_id()}, {"pid", b->batch.pid()},
                     {"job_id", b->batch.job_id()},   {"name", b->batch.name()},
                     {"is_err", b->batch.is_err()},   {"lines", lines},
                     {"dropped_lines", b->batch.dropped_lines()}};
        if (!s.sink->Send("log", j.dump(-1, ' ', false, json::error_handler_t::replace))) {
          return false;
        }
        s.cursor = b->seq;
      }
      return true;
    }
    case Stream::kJobLog: {
      if (s.done) return true;
      for (int i = 0; i < 16; ++i) {  // at most 1 MiB per wake-up
        auto r = s.job_log->Read(s.offset, kJobLogChunk);
        if (!r.ok()) return false;
        const uint64_t next = r->offset + r->data.size();
        const bool complete = r->closed && next == r->end_offset;
        if (r->data.empty() && !complete) return true;
        const json j{{"text", std::move(r->data)}, {"offset", r->offset}, {"complete", complete}};
        if (!s.sink->Send("log", j.dump(-1, ' ', false, json::error_handler_t::replace))) {
          return false;
        }
        s.offset = next;
        if (complete) {
          s.done = true;
          return true;
        }
      }
      return true;
    }
  }
  return true;
}

void HeadRoutes::Pump() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    std::vector<std::shared_ptr<Stream>> now = streams_;
    l.unlock();
    std::vector<Stream*> gone;
    for (const auto& s : now) {
      if (!Feed(*s)) gone.push_back(s.get());
    }
    l.lock();
    if (!gone.empty()) {
      std::erase_if(streams_, [&](const auto& s) {
        return std::find(gone.begin(), gone.end(), s.get()) != gone.end();
      });
    }
    cv_.wait_for(l, std::chrono::milliseconds(250));
  }
}

}  // namespace orrery::live::dashboard

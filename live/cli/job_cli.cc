#include "live/cli/job_cli.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "live/client/client.h"
#include "live/common/runtime_env.h"
#include "live/head/jobs/job_manager.h"
#include "live/rpc/convert.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using cli::kExitFailed, cli::kExitOk, cli::kExitUsage;
using nlohmann::json;
using std::chrono::milliseconds;


namespace {
// Python's shlex.quote.
std::string ShellQuote(const std::string& a) {
  if (a.empty()) return "''";
  const bool safe = std::all_of(a.begin(), a.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("@%+=:,./_-", c) != nullptr;
  });
  if (safe) return a;
  std::string q = "'";
  for (char c : a) q += c == '\'' ? std::string("'\"'\"'") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::string ShellJoinEntrypoint(const std::vector<std::string>& argv) {
  if (argv.size() == 1) return argv[0];
  std::string line;
  for (const auto& a : argv) line += (line.empty() ? "" : " ") + ShellQuote(a);
  return line;
}

StatusOr<std::string> ResolveRuntimeEnv(const std::string& json_flag, const std::string& yaml_file,
                                        const std::string& working_dir) {
  if (!json_flag.empty() && !yaml_file.empty()) {
    return InvalidArgument("--runtime-env-json and --runtime-env: pass at most one of them");
  }
  // The runtime-env parser (live/common/runtime_env.h) checks every field and names it on error.
  RuntimeEnv env;
  if (!json_flag.empty()) {
    auto parsed = ParseRuntimeEnvJson(json_flag, "--runtime-env-json");
    if (!parsed.ok()) return parsed.status();
    env = std::move(*parsed);
  }
  if (!yaml_file.empty()) {
    auto parsed = LoadRuntimeEnvFile(yaml_file);
    if (!parsed.ok()) return InvalidArgument("--runtime-env: " + parsed.status().message());
    env = std::move(*parsed);
  }
  if (!working_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(working_dir, ec)) {
      return InvalidArgument("--working-dir " + working_dir + ": no such directory");
    }
    env.working_dir = fs::absolute(working_dir, ec).string();
  }
  return ToJson(env);
}

namespace {


constexpr const char* kJobUsage =
    "usage: orrery job submit [--address A] [--temp-dir DIR] [--submission-id ID]\n"
    "                         [--runtime-env-json J | --runtime-env FILE.yaml] [--working-dir D]\n"
    "                         [--entrypoint-num-cpus N] [--entrypoint-num-gpus N]\n"
    "                         [--entrypoint-resources JSON] [--metadata-json J] [--no-wait]\n"
    "                         -- ENTRYPOINT...\n"
    "       orrery job status ID [--format table|json]\n"
    "       orrery job logs ID [--follow] [--tail N]\n"
    "       orrery job stop ID [--no-wait]\n"
    "       orrery job list [--format table|json]\n"
    "       orrery job delete ID\n"
    "  (every subcommand takes --address A and --temp-dir DIR)\n";

// Blocking job calls to the head (every call carries the token and a deadline).
class JobClient {
 public:
  explicit JobClient(const Cluster& c)
      : stub_(v1::HeadService::NewStub(
            OpenChannel(c.address))),
        token_(c.token) {}

  template <typename Req, typename Rep>
  Status Call(grpc::Status (v1::HeadService::Stub::*fn)(grpc::ClientContext*, const Req&, Rep*),
              const Req& req, Rep* rep, milliseconds deadline = milliseconds(10000)) {
    auto r = CallUnary(*stub_, token_, deadline, fn, req);
    if (!r.ok()) return r.status();
    *rep = *std::move(r);
    return Status::Ok();
  }
  StatusOr<v1::JobInfo> Get(const std::string& id, milliseconds deadline = milliseconds(10000)) {
    v1::GetJobRequest req;
    req.set_submission_id(id);
    v1::JobInfo rep;
    Status s = Call(&v1::HeadService::Stub::GetJob, req, &rep, deadline);
    if (!s.ok()) return s;
    return rep;
  }
  // Streams the log to `sink` (its last `tail_lines` lines if > 0); with follow until the job is
  // terminal. No deadline with follow.
  Status Logs(const std::string& id, bool follow, std::ostream& sink, int tail_lines = 0) {
    grpc::ClientContext ctx;
    AttachToken(&ctx, token_);
    if (!follow) ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(30000));
    v1::JobLogsRequest req;
    req.set_submission_id(id);
    req.set_follow(follow);
    req.set_tail_lines(tail_lines);
    auto reader = stub_->JobLogs(&ctx, req);
    // A followed stream has no deadline: a watchdog ends it if the head stops answering (3
    // failed polls, 2 s apart) or the job has been finished for 5 s without the stream closing.
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread watchdog;
    if (follow) {
      watchdog = std::thread([&] {
        int failures = 0, finished_polls = 0;
        std::unique_lock<std::mutex> l(mu);
        while (!cv.wait_for(l, milliseconds(2000), [&] { return done; })) {
          l.unlock();
          auto job = Get(id, milliseconds(3000));
          failures = job.ok() ? 0 : failures + 1;
          finished_polls = job.ok() && IsTerminal(job->status()) ? finished_polls + 1 : 0;
          l.lock();
          if (failures >= 3 || finished_polls >= 3) {
            ctx.TryCancel();
            break;
          }
        }
      });
    }
    v1::JobLogsChunk c;
    while (reader->Read(&c)) sink << c.data() << std::flush;
    {
      std::lock_guard<std::mutex> l(mu);
      done = true;
    }
    cv.notify_all();
    if (watchdog.joinable()) watchdog.join();
    return FromGrpc(reader->Finish());
  }
  v1::HeadService::Stub* stub() { return stub_.get(); }

 private:
  std::unique_ptr<v1::HeadService::Stub> stub_;
  std::string token_;
};

// Bad requests (unknown id, bad field, wrong state) are the user's input: exit 2.
int ExitFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  std::ostringstream s;
  s << std::put_time(&tm, "%Y-%m-%d %H:%M:%S");
  return s.str();
}

struct Flags {
  std::string address, temp_dir, format = "table";
};

void AddFlags(po::options_description& d, Flags& f) {
  d.add_options()("help,h", "show this help")("address", po::value(&f.address),
                                              "head HOST:PORT (default $ORRERY_ADDRESS)")(
      "temp-dir", po::value(&f.temp_dir), "session root (default /tmp/orrery)");
}

// Parses `orrery job CMD` arguments; the exit code when the command ends here (usage, --help).
std::optional<int> Parse(const std::string& cmd, const std::vector<std::string>& args,
                         const po::options_description& desc, po::variables_map& vm,
                         std::ostream& out, std::ostream& err, const char* positional = nullptr) {
  return cli::ParseCommand("job " + cmd, args, desc, positional, kJobUsage, vm, out, err);
}

// Waits for the job to be terminal (polling), up to `timeout`.
StatusOr<v1::JobInfo> WaitTerminal(JobClient& client, const std::string& id, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto job = client.Get(id);
    if (!job.ok() || IsTerminal(job->status()) || std::chrono::steady_clock::now() > deadline) {
      return job;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

int Submit(std::vector<std::string> args, std::ostream& out, std::ostream& err) {
  std::vector<std::string> entry;
  if (auto dd = std::find(args.begin(), args.end(), "--"); dd != args.end()) {
    entry.assign(dd + 1, args.end());
    args.erase(dd, args.end());
  }
  po::options_description desc("options");
  Flags f;
  AddFlags(desc, f);
  std::string id, env_json, env_file, working_dir, resources_json, metadata_json;
  desc.add_options()("submission-id", po::value(&id), "the job's id (default: generated)")(
      "runtime-env-json", po::value(&env_json), "the runtime env, JSON")(
      "runtime-env", po::value(&env_file), "the runtime env, a YAML file")(
      "working-dir", po::value(&working_dir), "the runtime env's working_dir")(
      "entrypoint-num-cpus", po::value<double>(), "CPUs reserved for the driver (default 0)")(
      "entrypoint-num-gpus", po::value<double>(), "GPUs reserved for the driver (default 0)")(
      "entrypoint-resources", po::value(&resources_json), "other resources, JSON {name: qty}")(
      "metadata-json", po::value(&metadata_json), "metadata, JSON {key: string}")(
      "no-wait", "print the id and return without waiting");
  po::variables_map vm;
  if (auto rc = Parse("submit", args, desc, vm, out, err)) return *rc;
  if (entry.empty()) {
    err << "orrery job submit: missing the entrypoint after --\n" << kJobUsage;
    return kExitUsage;
  }
  v1::SubmitJobRequest req;
  req.set_entrypoint(ShellJoinEntrypoint(entry));
  req.set_submission_id(id);
  auto env = ResolveRuntimeEnv(env_json, env_file, working_dir);
  if (!env.ok()) {
    err << "orrery job submit: " << env.status().message() << "\n";
    return kExitUsage;
  }
  req.set_runtime_env_json(*env);
  std::map<std::string, Quantity> res;
  if (!resources_json.empty()) {
    const json j = json::parse(resources_json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      err << "orrery job submit: --entrypoint-resources: expected a JSON object {name: qty}\n";
      return kExitUsage;
    }
    for (const auto& [k, v] : j.items()) {
      if (k.empty() || k == "CPU" || k == "GPU" || !v.is_number() || v.get<double>() < 0) {
        err << "orrery job submit: --entrypoint-resources." << k
            << ": expected a non-negative number (CPU and GPU have their own flags)\n";
        return kExitUsage;
      }
      if (v.get<double>() > 0) res[k] = Quantity::FromDouble(v.get<double>());
    }
  }
  for (const char* flag : {"entrypoint-num-cpus", "entrypoint-num-gpus"}) {
    if (!vm.count(flag)) continue;
    const double d = vm[flag].as<double>();
    if (!std::isfinite(d) || d < 0) {
      err << "orrery job submit: --" << flag << ": expected a non-negative number\n";
      return kExitUsage;
    }
    if (d > 0)
      res[flag == std::string("entrypoint-num-cpus") ? "CPU" : "GPU"] = Quantity::FromDouble(d);
  }
  ToProto(ResourceSet::FromMap(res), req.mutable_entrypoint_resources());
  if (!metadata_json.empty()) {
    const json j = json::parse(metadata_json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      err << "orrery job submit: --metadata-json: expected a JSON object of strings\n";
      return kExitUsage;
    }
    for (const auto& [k, v] : j.items()) {
      if (!v.is_string()) {
        err << "orrery job submit: --metadata-json." << k << ": expected a string\n";
        return kExitUsage;
      }
      (*req.mutable_metadata())[k] = v.get<std::string>();
    }
  }
  {
    // Everything but the runtime env (ResolveRuntimeEnv checked it; its local working_dir
    // becomes a package URI only once uploaded, below) is checked before any connection.
    v1::SubmitJobRequest check = req;
    check.clear_runtime_env_json();
    if (Status s = ValidateSubmitJob(check); !s.ok()) {
      err << "orrery job submit: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  auto cluster = FindCluster("job submit", f.address, f.temp_dir, err);
  if (!cluster) return kExitUsage;
  if (!req.runtime_env_json().empty()) {  // a local working_dir goes to the head as a package
    auto env = ParseRuntimeEnvJson(req.runtime_env_json(), "runtime env");
    if (env.ok()) env = UploadWorkingDir(*env, cluster->address, cluster->token);
    if (!env.ok()) {
      err << "orrery job submit: " << env.status().message() << "\n";
      return env.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
    }
    req.set_runtime_env_json(ToJson(*env));
    if (Status s = ValidateSubmitJob(req); !s.ok()) {
      err << "orrery job submit: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  JobClient client(*cluster);
  v1::SubmitJobReply rep;
  if (Status s = client.Call(&v1::HeadService::Stub::SubmitJob, req, &rep); !s.ok()) {
    err << "orrery job submit: " << s.message() << "\n";
    return ExitFor(s);
  }
  const std::string sid = rep.submission_id();
  if (vm.count("no-wait")) {
    out << sid << "\n";
    err << "Job '" << sid << "' submitted. Query it with: orrery job status " << sid
        << "; its logs: orrery job logs " << sid << " --follow\n";
    return kExitOk;
  }
  err << "Job '" << sid << "' submitted (entrypoint: " << req.entrypoint()
      << "); its logs follow.\n";
  if (Status s = client.Logs(sid, /*follow=*/true, out); !s.ok()) {
    err << "orrery job submit: lost the log stream of " << sid << ": " << s.message() << "\n";
  }
  auto job = WaitTerminal(client, sid, milliseconds(10000));
  if (!job.ok()) {
    err << "orrery job submit: " << job.status().message() << "\n";
    return kExitFailed;
  }
  err << "Job '" << sid << "' " << JobStatusName(job->status())
      << (job->message().empty() ? "" : ": " + job->message()) << "\n";
  return job->status() == v1::JOB_STATUS_SUCCEEDED ? kExitOk : kExitFailed;
}

// status / logs / stop / delete: one positional ID.
int OneJob(const std::string& cmd, const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err) {
  po::options_description desc("options");
  Flags f;
  AddFlags(desc, f);
  std::string id;
  desc.add_options()("id", po::value(&id), "submission id");
  if (cmd == "status") desc.add_options()("format", po::value(&f.format), "table or json");
  int tail_lines = 0;
  if (cmd == "logs") {
    desc.add_options()("follow,f", "follow until the job is finished")(
        "tail", po::value(&tail_lines), "start at the last N lines");
  }
  if (cmd == "stop") desc.add_options()("no-wait", "return once the stop is requested");
  po::variables_map vm;
  if (auto rc = Parse(cmd, args, desc, vm, out, err, "id")) return *rc;
  if (id.empty()) {
    err << "orrery job " << cmd << ": missing the submission id\n" << kJobUsage;
    return kExitUsage;
  }
  if (f.format != "table" && f.format != "json") {
    err << "orrery job " << cmd << ": --format: expected table or json\n";
    return kExitUsage;
  }
  auto cluster = FindCluster("job " + cmd, f.address, f.temp_dir, err);
  if (!cluster) return kExitUsage;
  JobClient client(*cluster);
  Status s;
  if (cmd == "status") {
    auto job = client.Get(id);
    if (!(s = job.status()).ok()) {
      err << "orrery job status: " << s.message() << "\n";
      return ExitFor(s);
    }
    if (f.format == "json") {
      out << JobInfoToJson(*job).dump(2) << "\n";
    } else {
      out << "Job '" << id << "': " << JobStatusName(job->status()) << "\n";
      if (!job->message().empty()) out << "  " << job->message() << "\n";
      out << "  entrypoint: " << job->entrypoint() << "\n";
    }
    return kExitOk;
  }
  if (cmd == "logs") {
    if (tail_lines < 0) {
      err << "orrery job logs: --tail: expected a number of lines >= 0\n";
      return kExitUsage;
    }
    s = client.Logs(id, vm.count("follow") != 0, out, tail_lines);
    if (!s.ok()) {
      err << "orrery job logs: " << s.message() << "\n";
      return ExitFor(s);
    }
    return kExitOk;
  }
  if (cmd == "stop") {
    v1::StopJobRequest req;
    req.set_submission_id(id);
    v1::StopJobReply rep;
    s = client.Call(&v1::HeadService::Stub::StopJob, req, &rep);
    if (!s.ok()) {
      err << "orrery job stop: " << s.message() << "\n";
      return ExitFor(s);
    }
    if (!rep.stopped()) {
      out << "Job '" << id << "' had already finished.\n";
      return kExitOk;
    }
    if (vm.count("no-wait")) {
      out << "Requested the stop of job '" << id << "'.\n";
      return kExitOk;
    }
    auto job = WaitTerminal(client, id, milliseconds(30000));
    if (!job.ok() || !IsTerminal(job->status())) {
      err << "orrery job stop: job '" << id << "' did not stop within 30 s\n";
      return kExitFailed;
    }
    out << "Job '" << id << "' " << JobStatusName(job->status()) << ".\n";
    return kExitOk;
  }
  // delete
  v1::DeleteJobRequest req;
  req.set_submission_id(id);
  v1::DeleteJobReply rep;
  s = client.Call(&v1::HeadService::Stub::DeleteJob, req, &rep);
  if (!s.ok()) {
    err << "orrery job delete: " << s.message() << "\n";
    return ExitFor(s);
  }
  out << "Job '" << id << "' deleted.\n";
  return kExitOk;
}

int List(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("options");
  Flags f;
  AddFlags(desc, f);
  desc.add_options()("format", po::value(&f.format), "table or json");
  po::variables_map vm;
  if (auto rc = Parse("list", args, desc, vm, out, err)) return *rc;
  if (f.format != "table" && f.format != "json") {
    err << "orrery job list: --format: expected table or json\n";
    return kExitUsage;
  }
  auto cluster = FindCluster("job list", f.address, f.temp_dir, err);
  if (!cluster) return kExitUsage;
  return RunListJobs(*cluster, f.format, out, err);
}

int RunJobCmd(const std::vector<std::string>& all, std::ostream& out, std::ostream& err) {
  if (all.empty() || all[0] == "-h" || all[0] == "--help") {
    (all.empty() ? err : out) << kJobUsage;
    return all.empty() ? kExitUsage : kExitOk;
  }
  const std::string cmd = all[0];
  std::vector<std::string> args(all.begin() + 1, all.end());
  if (cmd == "submit") return Submit(std::move(args), out, err);
  if (cmd == "list") return List(args, out, err);
  if (cmd == "status" || cmd == "logs" || cmd == "stop" || cmd == "delete") {
    return OneJob(cmd, args, out, err);
  }
  err << "orrery job: unknown subcommand '" << cmd << "'\n" << kJobUsage;
  return kExitUsage;
}

}  // namespace

int RunListJobs(const Cluster& cluster, const std::string& format, std::ostream& out,
                std::ostream& err) {
  JobClient client(cluster);
  v1::ListJobsReply rep;
  if (Status s = client.Call(&v1::HeadService::Stub::ListJobs, v1::ListJobsRequest(), &rep);
      !s.ok()) {
    err << "orrery list jobs: " << s.message() << "\n";
    return kExitFailed;
  }
  if (format == "json") {
    json arr = json::array();
    for (const auto& j : rep.jobs()) arr.push_back(JobInfoToJson(j));
    out << arr.dump(2) << "\n";
    return kExitOk;
  }
  out << std::left << std::setw(32) << "SUBMISSION_ID" << std::setw(11) << "STATUS" << std::setw(21)
      << "START" << std::setw(21) << "END"
      << "ENTRYPOINT\n";
  for (const auto& j : rep.jobs()) {
    out << std::setw(32) << j.submission_id() << std::setw(11) << JobStatusName(j.status())
        << std::setw(21) << FormatTime(j.start_unix_ms()) << std::setw(21)
        << FormatTime(IsTerminal(j.status()) ? j.end_unix_ms() : 0) << (j.entrypoint().size() > 60 ? j.entrypoint().substr(0, 57) + "..." : j.entrypoint())
        << "\n";
  }
  return kExitOk;
}

std::vector<cli::Command> JobCommands() {
  return {{"job",
           "job submit|status|logs|stop|list|delete  run and manage jobs (driver programs) on the "
           "live cluster",
           RunJobCmd}};
}

}  // namespace orrery::live

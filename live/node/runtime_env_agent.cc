#include "live/node/runtime_env_agent.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "live/common/process.h"
#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

extern char** environ;

namespace orrery::live {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

void Log(const std::string& line) { std::cerr << "[runtime-env] " << line << std::endl; }

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Bytes of every regular file under `dir` (symlinks not followed).
uint64_t DirBytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2) && !it->is_symlink(e2)) total += it->file_size(e2);
  }
  return total;
}

void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

StatusOr<std::unique_ptr<RuntimeEnvAgent>> RuntimeEnvAgent::Create(RuntimeEnvAgentOptions options,
                                                                   envcache::EnvCache* cache,
                                                                   Post post) {
  if (options.root.empty()) return InvalidArgument("runtime env root: empty");
  if (cache == nullptr) return InvalidArgument("runtime env agent: no install cache");
  if (!(options.setup_timeout_s > 0) || !std::isfinite(options.setup_timeout_s)) {
    return InvalidArgument("runtime-env setup timeout: expected a number of seconds > 0");
  }
  std::error_code ec;
  fs::create_directories(options.root, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable,
                  "cannot create " + options.root.string() + ": " + ec.message());
  }
  return std::unique_ptr<RuntimeEnvAgent>(
      new RuntimeEnvAgent(std::move(options), cache, std::move(post)));
}

RuntimeEnvAgent::~RuntimeEnvAgent() { Stop(); }

void RuntimeEnvAgent::Stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (pid_t pg : running_) ::kill(-pg, SIGKILL);
    for (void* c : downloads_) static_cast<grpc::ClientContext*>(c)->TryCancel();
  }
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard<std::mutex> l(threads_mu_);
    threads.swap(threads_);
  }
  for (auto& [id, t] : threads) {
    if (t.joinable()) t.join();
  }
  (void)cleanup_.RunSync([] {});  // deletions already queued finish
  cleanup_.Stop();
}

double RuntimeEnvAgent::NowS() const {
  return std::chrono::duration<double>(Clock::now() - started_).count();
}

AppliedEnv RuntimeEnvAgent::Applied(const std::string& hash, const RuntimeEnv& env) const {
  AppliedEnv a;
  a.hash = hash;
  std::map<std::string, std::string> vars(env.env_vars.begin(), env.env_vars.end());
  if (!hash.empty()) {
    const fs::path dir = DirOf(hash);
    a.dir = dir.string();
    const char* path = std::getenv("PATH");
    std::string base = vars.count("PATH") ? vars["PATH"] : (path ? path : "/usr/bin:/bin");
    vars["PATH"] = (dir / "bin").string() + (base.empty() ? "" : ":" + base);
    vars["ORRERY_RUNTIME_ENV_DIR"] = dir.string();
    if (!env.working_dir.empty()) a.cwd = (dir / "working_dir").string();
  }
  a.env.assign(vars.begin(), vars.end());
  return a;
}

void RuntimeEnvAgent::Acquire(const RuntimeEnv& env, const std::string& waiter, Done done) {
  if (stopping_) return;
  const std::string hash = InstallHash(env);
  if (hash.empty()) {
    done(Applied("", env));
    return;
  }
  if (!env.working_dir.empty() && !IsPackageUri(env.working_dir)) {
    done(InvalidArgument("working_dir: '" + env.working_dir +
                         "' was not uploaded (expected a pkg:// URI; clients upload local "
                         "directories with UploadWorkingDir)"));
    return;
  }
  specs_[hash] = env;
  waiters_[hash][waiter] = Waiter{env, std::move(done)};
  auto d = cache_.Acquire(hash, kRuntimeEnvKind, waiter, NowS());
  if (!d.ok()) {
    auto w = waiters_[hash].extract(waiter);
    if (!w.empty()) w.mapped().done(d.status());
    return;
  }
  Apply(*d);
}

void RuntimeEnvAgent::Release(const std::string& hash) {
  if (hash.empty() || stopping_) return;
  auto d = cache_.Release(hash);
  if (!d.ok()) {
    Log("release of " + hash + ": " + d.status().ToString());
    return;
  }
  Apply(*d);
}

void RuntimeEnvAgent::Abandon(const std::string& hash, const std::string& waiter) {
  auto it = waiters_.find(hash);
  if (it == waiters_.end() || it->second.erase(waiter) == 0) return;
  (void)cache_.Abandon(hash, waiter);
}

void RuntimeEnvAgent::Apply(const envcache::CacheDecisions& decisions) {
  for (const auto& d : decisions) {
    if (const auto* s = std::get_if<envcache::StartInstall>(&d)) {
      StartAttempt(s->uri, s->attempt);
    } else if (const auto* r = std::get_if<envcache::EnvReady>(&d)) {
      auto& ws = waiters_[r->uri];
      for (const auto& id : r->waiters) {
        auto w = ws.extract(id);
        if (w.empty()) {
          // Abandoned meanwhile: the reference it was given goes back.
          auto more = cache_.Release(r->uri);
          if (more.ok()) Apply(*more);
          continue;
        }
        w.mapped().done(Applied(r->uri, w.mapped().env));
      }
    } else if (const auto* f = std::get_if<envcache::EnvFailed>(&d)) {
      auto& ws = waiters_[f->uri];
      for (const auto& id : f->waiters) {
        auto w = ws.extract(id);
        if (!w.empty()) w.mapped().done(FailedPrecondition(f->message));
      }
    } else if (const auto* e = std::get_if<envcache::Evict>(&d)) {
      // Rename now (cheap, so a new install of the same hash starts clean), delete later.
      const fs::path dir = DirOf(e->uri);
      const fs::path trash =
          options_.root / (".evicted_" + e->uri + "_" + std::to_string(++trash_seq_));
      std::error_code ec;
      fs::rename(dir, trash, ec);
      Log("evicted " + e->uri + " (" + std::to_string(e->bytes) + " bytes, policy " +
          options_.eviction + ")");
      if (!ec) {
        cleanup_.Post([trash] {
          std::error_code ec2;
          fs::remove_all(trash, ec2);
        });
      }
      specs_.erase(e->uri);
      if (on_evict_) on_evict_(dir.string());
    }
  }
}

void RuntimeEnvAgent::StartAttempt(const std::string& hash, int attempt) {
  Attempt a;
  a.hash = hash;
  a.attempt = attempt;
  a.max_attempts = cache_.options().max_attempts;
  a.env = specs_[hash];
  // The operator's --runtime-env-setup-timeout-s is the maximum: an env may only ask for less.
  a.timeout_s = a.env.setup_timeout_s > 0
                    ? std::min(a.env.setup_timeout_s, options_.setup_timeout_s)
                    : options_.setup_timeout_s;
  std::lock_guard<std::mutex> l(threads_mu_);
  if (stopping_) return;
  const uint64_t id = next_thread_++;
  threads_[id] = std::thread([this, id, a] {
    const Outcome o = RunAttempt(a);
    post_([this, id, a, o] { OnAttemptDone(id, a, o); });
  });
}

void RuntimeEnvAgent::OnAttemptDone(uint64_t thread_id, const Attempt& a, const Outcome& o) {
  std::thread t;
  {
    std::lock_guard<std::mutex> l(threads_mu_);
    auto it = threads_.find(thread_id);
    if (it == threads_.end()) return;  // Stop() owns it
    t = std::move(it->second);
    threads_.erase(it);
  }
  if (t.joinable()) t.join();  // it posted this as its last act
  if (stopping_) return;
  StatusOr<envcache::CacheDecisions> d =
      o.ok ? cache_.ReportInstalled(a.hash, a.attempt, o.bytes, NowS())
           : cache_.ReportFailed(a.hash, a.attempt, o.timed_out, o.error, NowS());
  if (!d.ok()) {
    Log("install report for " + a.hash + ": " + d.status().ToString());
    return;
  }
  if (o.ok) {
    Log("installed " + a.hash + " (" + std::to_string(o.bytes) + " bytes, attempt " +
        std::to_string(a.attempt) + ")");
    Apply(*d);
    return;
  }
  Log("attempt " + std::to_string(a.attempt) + " of " + a.hash + " failed: " + o.error);
  // The cache's own failure message is generic; the waiters get the failed command and the log.
  envcache::CacheDecisions out;
  for (auto& x : *d) {
    if (auto* f = std::get_if<envcache::EnvFailed>(&x)) f->message = o.error;
    out.push_back(std::move(x));
  }
  Apply(out);
}

// ---- install threads ------------------------------------------------------------------------

RuntimeEnvAgent::Outcome RuntimeEnvAgent::RunAttempt(const Attempt& a) {
  Outcome o;
  const fs::path dir = DirOf(a.hash);
  const fs::path log = dir / "setup.log";
  const std::string of = " (attempt " + std::to_string(a.attempt) + " of " +
                         std::to_string(a.max_attempts) + ")";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    o.error = "runtime env setup failed: cannot create " + dir.string() + ": " + ec.message() + of;
    return o;
  }
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    o.error = "runtime env setup failed: cannot write " + log.string() + of;
    return o;
  }
  WriteAll(log_fd, "# runtime env " + a.hash + ", attempt " + std::to_string(a.attempt) + "\n");
  if (!a.env.working_dir.empty()) {
    Status s = Download(a.env.working_dir, dir / "working_dir");
    if (!s.ok()) {
      ::close(log_fd);
      o.error =
          "runtime env setup failed: working_dir " + a.env.working_dir + ": " + s.message() + of;
      return o;
    }
  }
  for (const auto& cmd : a.env.setup) {
    if (stopping_) {
      o.error = "runtime env setup failed: the node is stopping";
      break;
    }
    WriteAll(log_fd, "$ " + cmd + "\n");
    bool timed_out = false;
    auto code = RunSetupCommand(cmd, dir, log_fd, a.timeout_s, &timed_out);
    if (code.ok() && *code == 0) continue;
    o.timed_out = timed_out;
    const std::string what = !code.ok()    ? code.status().message()
                             : timed_out   ? "timed out after " + Num(a.timeout_s) + " s"
                             : *code > 128 ? "killed by signal " + std::to_string(*code - 128)
                                           : "exit " + std::to_string(*code);
    WriteAll(log_fd, "# " + what + "\n");
    ::close(log_fd);
    o.error = "runtime env setup failed: " + cmd + ": " + what + of +
              "; last lines of setup.log:\n" + LogTail(log);
    return o;
  }
  ::close(log_fd);
  if (!o.error.empty()) return o;
  o.ok = true;
  o.bytes = DirBytes(dir);
  return o;
}

Status RuntimeEnvAgent::Download(const std::string& uri, const fs::path& dest_dir) {
  auto sha = PackageHashOf(uri);
  if (!sha.ok()) return sha.status();
  auto stub = v1::HeadService::NewStub(
      OpenChannel(options_.head_address));
  grpc::ClientContext ctx;
  AttachToken(&ctx, options_.token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return Status(StatusCode::kCancelled, "the node is stopping");
    downloads_.insert(&ctx);
  }
  v1::DownloadPackageRequest req;
  req.set_sha256(*sha);
  auto reader = stub->DownloadPackage(&ctx, req);
  std::string data;
  v1::PackageChunk c;
  while (reader->Read(&c)) data += c.data();
  grpc::Status s = reader->Finish();
  {
    std::lock_guard<std::mutex> l(mu_);
    downloads_.erase(&ctx);
  }
  if (!s.ok()) {
    return Status(
        static_cast<StatusCode>(s.error_code()),
        "downloading from the head at " + options_.head_address + ": " + s.error_message());
  }
  if (Sha256Hex(data) != *sha) return Status(StatusCode::kDataLoss, "the download's hash differs");
  return UnpackPackage(data, dest_dir);
}

StatusOr<int> RuntimeEnvAgent::RunSetupCommand(const std::string& cmd, const fs::path& dir,
                                               int log_fd, double timeout_s, bool* timed_out) {
  std::vector<std::string> env_s;
  const std::string bin = (dir / "bin").string();
  bool has_path = false;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    if (kv.rfind("PATH=", 0) == 0) {
      kv = "PATH=" + bin + ":" + kv.substr(5);
      has_path = true;
    }
    if (kv.rfind("ORRERY_RUNTIME_ENV_DIR=", 0) == 0) continue;
    env_s.push_back(std::move(kv));
  }
  if (!has_path) env_s.push_back("PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin");
  env_s.push_back("ORRERY_RUNTIME_ENV_DIR=" + dir.string());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", c = "-c", body = cmd;
  char* argv[] = {sh.data(), c.data(), body.data(), nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  SetCleanChildAttributes(&attr);
  pid_t pid = -1;
  int rc;
  {
    // Registered under the lock, so Stop() either sees it or has already set stopping_.
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      rc = ECANCELED;
    } else {
      rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv, envp.data());
      if (rc == 0) running_.insert(pid);
    }
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return Status(StatusCode::kUnavailable,
                  std::string("cannot start /bin/sh: ") + std::strerror(rc));
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000.0));
  int status = 0;
  bool killed = false;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (!killed && (Clock::now() >= deadline || stopping_)) {
      *timed_out = !stopping_;
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Whatever the command left in its group goes too.
  ::kill(-pid, SIGKILL);
  {
    std::lock_guard<std::mutex> l(mu_);
    running_.erase(pid);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

bool RuntimeEnvAgent::IsSetupProcess(pid_t pid) const {
  std::lock_guard<std::mutex> l(mu_);
  return running_.count(pid) != 0;
}

std::string RuntimeEnvAgent::LogTail(const fs::path& log) const {
  std::ifstream in(log, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > options_.log_tail_lines) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  if (out.size() > 4096) out = "..." + out.substr(out.size() - 4096);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace orrery::live

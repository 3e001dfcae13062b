// The driver of the scale benchmarks (issue 18 item 5), one C++ API driver per run:
//
//   scale_driver million N PROGRESS        submit N no-op tasks at once (as fast as Remote returns),
//                                          Get them in submission order -> JSON summary
//   scale_driver actors N HOLD_S PROGRESS  create N actors (zero resources), call each once, Get all,
//                                          then hold them HOLD_S seconds (memory is sampled) -> JSON
//   scale_driver soak SECONDS RATE PROGRESS  RATE tasks a second for SECONDS, one in ten prints a
//                                          log line; each second's tasks are Got before the next
//   scale_driver leases N PROGRESS         N no-op tasks one after the other, each on a lease of its
//                                          own (idle leases go back at once): N rows in the head's
//                                          task table (`orrery list tasks` at its bound)
//
// PROGRESS is a file rewritten (write + rename) every 200 ms with one line
//   unix_s submitted finished failed phase
// that the sampler (bench/scale_sample.py) reads. It connects like any driver ($ORRERY_ADDRESS,
// token from the session). Exit 1 if a task or call failed.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/scale_lib.h"
#include "live/api/orrery_api.h"

namespace {

namespace api = orrery::api;
using Clock = std::chrono::steady_clock;
using orrery::bench::ScaleNoop;
using orrery::bench::ScalePinger;
using orrery::bench::ScaleSay;

// This process's resident set (VmRSS), in kB; 0 if unreadable.
long SelfRssKb() {
  long kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f)) {
      if (std::sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    }
    std::fclose(f);
  }
  return kb;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The counters the progress file shows, and the thread that writes it.
class Progress {
 public:
  explicit Progress(std::string path) : path_(std::move(path)), writer_([this] { Run(); }) {}
  ~Progress() {
    stop_ = true;
    writer_.join();
    Write();
  }
  std::atomic<uint64_t> submitted{0}, finished{0}, failed{0};
  void SetPhase(const std::string& p) {
    std::lock_guard<std::mutex> l(mu_);
    phase_ = p;
  }

 private:
  void Run() {
    while (!stop_) {
      Write();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  void Write() {
    std::string phase;
    {
      std::lock_guard<std::mutex> l(mu_);
      phase = phase_;
    }
    const std::string tmp = path_ + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%.3f %llu %llu %llu %s\n", UnixNow(),
                   static_cast<unsigned long long>(submitted.load()),
                   static_cast<unsigned long long>(finished.load()),
                   static_cast<unsigned long long>(failed.load()), phase.c_str());
      std::fclose(f);
      std::rename(tmp.c_str(), path_.c_str());
    }
  }
  std::string path_;
  std::mutex mu_;
  std::string phase_ = "init";
  std::atomic<bool> stop_{false};
  std::thread writer_;
};

int Fail(const std::string& what, const orrery::Status& s) {
  std::cerr << "scale_driver: " << what << ": " << s.ToString() << "\n";
  return 1;
}

// N no-op tasks, all queued at once; a second thread Gets them in submission order and drops
// each ref once got (as a driver that consumes its results). finished_at[k] is when the k-th
// percent of the tasks had finished, for the first-10 % vs last-10 % throughput.
int RunMillion(size_t n, Progress& p) {
  std::vector<api::ObjectRef<void>> warm;
  for (int i = 0; i < 200; ++i) warm.push_back(api::Task(ScaleNoop).Remote());
  for (auto& r : warm) {
    if (auto s = api::Get(r, std::chrono::seconds(60)); !s.ok()) return Fail("warm-up", s);
  }
  warm.clear();
  const long rss_before_kb = SelfRssKb();
  std::vector<api::ObjectRef<void>> refs(n);
  std::vector<double> finished_at(101, 0);
  const auto t0 = Clock::now();
  std::atomic<size_t> ready{0};
  std::string first_error;
  std::thread getter([&] {
    size_t pct = 1;
    for (size_t i = 0; i < n; ++i) {
      while (ready.load(std::memory_order_acquire) <= i) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      auto s = api::Get(refs[i], std::chrono::seconds(600));
      refs[i] = {};
      if (!s.ok()) {
        if (p.failed++ == 0) first_error = s.ToString();
      }
      ++p.finished;
      while (pct <= 100 && (i + 1) * 100 >= pct * n) finished_at[pct++] = Seconds(Clock::now() - t0);
    }
  });
  p.SetPhase("submitting");
  for (size_t i = 0; i < n; ++i) {
    refs[i] = api::Task(ScaleNoop).Remote();
    ready.store(i + 1, std::memory_order_release);
    ++p.submitted;
  }
  const double submit_s = Seconds(Clock::now() - t0);
  p.SetPhase("draining");
  getter.join();
  p.SetPhase("done");
  const double total_s = Seconds(Clock::now() - t0);
  const double tenth = n / 10.0;
  std::printf(
      "{\"tasks\": %zu, \"submit_s\": %.3f, \"total_s\": %.3f, \"tasks_per_s\": %.1f, "
      "\"first_10pct_tasks_per_s\": %.1f, \"last_10pct_tasks_per_s\": %.1f, \"failed\": %llu, "
      "\"driver_rss_before_kb\": %ld}\n",
      n, submit_s, total_s, n / total_s, tenth / finished_at[10],
      tenth / (finished_at[100] - finished_at[90]),
      static_cast<unsigned long long>(p.failed.load()), rss_before_kb);
  if (p.failed > 0) return Fail("tasks failed (first)", orrery::Status(orrery::StatusCode::kUnknown, first_error));
  return 0;
}

// N actors with zero resources (they take no CPU slot; what bounds them is the node's memory and
// process limits), one Ping each; creation is asynchronous, so "all created" is when every
// first Ping answered.
int RunActors(size_t n, int hold_s, Progress& p) {
  std::vector<api::ActorHandle<ScalePinger>> actors;
  actors.reserve(n);
  const auto t0 = Clock::now();
  p.SetPhase("creating");
  for (size_t i = 0; i < n; ++i) {
    actors.push_back(api::Actor(ScalePinger::Create).SetResources({}).Remote(static_cast<int>(i)));
    ++p.submitted;
  }
  std::vector<api::ObjectRef<int>> pings;
  pings.reserve(n);
  for (auto& a : actors) pings.push_back(a.Task(&ScalePinger::Ping).Remote());
  const double submit_s = Seconds(Clock::now() - t0);
  std::string first_error;
  for (size_t i = 0; i < n; ++i) {
    auto v = api::Get(pings[i], std::chrono::seconds(900));
    if (!v.ok() || *v != static_cast<int>(i) + 1) {
      if (p.failed++ == 0) first_error = v.ok() ? "wrong value" : v.status().ToString();
    }
    ++p.finished;
  }
  const double all_s = Seconds(Clock::now() - t0);
  p.SetPhase("holding");
  std::this_thread::sleep_for(std::chrono::seconds(hold_s));
  // A second call on every actor: all still alive after the hold.
  std::vector<api::ObjectRef<int>> again;
  for (auto& a : actors) again.push_back(a.Task(&ScalePinger::Ping).Remote());
  size_t alive = 0;
  for (size_t i = 0; i < n; ++i) {
    auto v = api::Get(again[i], std::chrono::seconds(120));
    if (v.ok() && *v == static_cast<int>(i) + 2) ++alive;
  }
  p.SetPhase("done");
  std::printf(
      "{\"actors\": %zu, \"submit_s\": %.3f, \"all_created_and_called_s\": %.3f, "
      "\"failed\": %llu, \"alive_after_hold\": %zu}\n",
      n, submit_s, all_s, static_cast<unsigned long long>(p.failed.load()), alive);
  if (p.failed > 0 || alive != n) {
    return Fail("actor calls failed (first)", orrery::Status(orrery::StatusCode::kUnknown, first_error));
  }
  return 0;
}

// RATE tasks a second for SECONDS, spread over ten ticks a second (a steady stream: leases stay
// in use rather than idling out between bursts); every tenth task prints a log line. Each tick's
// tasks are Got before the next tick.
int RunSoak(double seconds, int rate, Progress& p) {
  p.SetPhase("running");
  const auto t0 = Clock::now();
  std::string first_error;
  uint64_t due = 0;
  for (int tick = 1; Seconds(Clock::now() - t0) < seconds; ++tick) {
    std::vector<api::ObjectRef<void>> refs;
    for (const uint64_t until = static_cast<uint64_t>(rate) * tick / 10; due < until; ++due) {
      const uint64_t k = p.submitted++;
      refs.push_back(k % 10 == 0 ? api::Task(ScaleSay).Remote(static_cast<int>(k))
                                 : api::Task(ScaleNoop).Remote());
    }
    for (auto& r : refs) {
      if (auto s = api::Get(r, std::chrono::seconds(120)); !s.ok()) {
        if (p.failed++ == 0) first_error = s.ToString();
      }
      ++p.finished;
    }
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(100 * tick));
  }
  p.SetPhase("done");
  std::printf("{\"seconds\": %.1f, \"tasks\": %llu, \"failed\": %llu}\n", seconds,
              static_cast<unsigned long long>(p.submitted.load()),
              static_cast<unsigned long long>(p.failed.load()));
  if (p.failed > 0) return Fail("tasks failed (first)", orrery::Status(orrery::StatusCode::kUnknown, first_error));
  return 0;
}

// N tasks in sequence, each on its own lease (see main: idle_lease_timeout 0, one worker).
int RunLeases(size_t n, Progress& p) {
  p.SetPhase("leases");
  std::string first_error;
  for (size_t i = 0; i < n; ++i) {
    ++p.submitted;
    if (auto s = api::Get(api::Task(ScaleNoop).Remote(), std::chrono::seconds(60)); !s.ok()) {
      if (p.failed++ == 0) first_error = s.ToString();
    }
    ++p.finished;
  }
  p.SetPhase("done");
  std::printf("{\"leases\": %zu, \"failed\": %llu}\n", n,
              static_cast<unsigned long long>(p.failed.load()));
  if (p.failed > 0) return Fail("tasks failed (first)", orrery::Status(orrery::StatusCode::kUnknown, first_error));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  const char* usage =
      "usage: scale_driver million N PROGRESS | actors N HOLD_S PROGRESS | "
      "soak SECONDS RATE PROGRESS | leases N PROGRESS\n";
  size_t nargs = 0;
  if (!a.empty()) nargs = a[0] == "actors" || a[0] == "soak" ? 4 : a[0] == "million" || a[0] == "leases" ? 3 : 0;
  if (nargs == 0 || a.size() != nargs) {
    std::cerr << usage;
    return 2;
  }
  size_t n = 0;
  double seconds = 0;
  int k = 0;  // actors: HOLD_S; soak: RATE
  try {  // every number first: a bad one is a usage error before anything connects
    if (a[0] == "soak") {
      seconds = std::stod(a[1]);
      k = std::stoi(a[2]);
    } else {
      n = std::stoul(a[1]);
      if (a[0] == "actors") k = std::stoi(a[2]);
    }
  } catch (const std::exception& e) {  // std::invalid_argument, std::out_of_range
    std::cerr << "scale_driver: bad number (" << e.what() << ")\n" << usage;
    return 2;
  }
  if ((a[0] != "soak" && (n == 0 || a[1][0] == '-')) || (a[0] == "soak" && (seconds <= 0 || k <= 0))) {
    std::cerr << "scale_driver: N, SECONDS and RATE must be > 0\n" << usage;
    return 2;
  }
  Progress progress(a.back());
  api::InitOptions options;
  if (a[0] == "leases") {
    options.idle_lease_timeout = std::chrono::milliseconds(0);
    options.max_workers_per_class = 1;
    options.max_pending_leases_per_class = 1;
  }
  if (auto s = api::Init(options); !s.ok()) return Fail("init", s);
  int rc = 0;
  if (a[0] == "million") rc = RunMillion(n, progress);
  if (a[0] == "actors") rc = RunActors(n, k, progress);
  if (a[0] == "soak") rc = RunSoak(seconds, k, progress);
  if (a[0] == "leases") rc = RunLeases(n, progress);
  api::Shutdown();
  return rc;
}

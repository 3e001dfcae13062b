// EventLoop: one thread that owns a piece of daemon state (STYLE rule 13).
//
// gRPC handlers never touch daemon state: they validate and convert the request, then Post() a
// closure here; the closure runs on the loop thread, updates the state and finishes the call.
// Timers (PostAfter) drive periodic work (heartbeats, broadcasts, liveness checks). Closures run
// one at a time, in post order; timers run in deadline order once due.
//
// Thread safety: Post/PostAfter/Stop may be called from any thread. Closures must not block for
// long (no RPCs, no waiting): they are the state's critical section.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace orrery::live {

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts the loop thread.
  EventLoop();
  // Stops (dropping closures not yet run) and joins.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs `fn` on the loop thread after everything posted before it. Dropped after Stop().
  void Post(std::function<void()> fn);
  // Runs `fn` on the loop thread once `delay` has passed.
  void PostAfter(std::chrono::milliseconds delay, std::function<void()> fn);
  // Runs `fn` every `period` (first run after one period) until Stop().
  void Every(std::chrono::milliseconds period, std::function<void()> fn);
  // Runs `fn` on the loop and waits for it. REQUIRES: not called on the loop thread.
  // Returns false (without running it) if the loop is stopped.
  bool RunSync(const std::function<void()>& fn);
  // Stops after the closure running now; pending closures and timers are dropped. Joins unless
  // called from the loop thread itself. Idempotent.
  void Stop();
  bool InLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::multimap<Clock::time_point, std::function<void()>> timers_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace orrery::live

#include "live/rpc/event_loop.h"

#include <future>
#include <memory>

namespace orrery::live {

EventLoop::EventLoop() : thread_([this] { Run(); }) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void EventLoop::PostAfter(std::chrono::milliseconds delay, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    timers_.emplace(Clock::now() + delay, std::move(fn));
  }
  cv_.notify_one();
}

void EventLoop::Every(std::chrono::milliseconds period, std::function<void()> fn) {
  // The closure re-arms itself; it holds the user function by shared pointer so re-arming is
  // cheap and the function lives as long as the timer chain.
  auto shared = std::make_shared<std::function<void()>>(std::move(fn));
  auto tick = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak_tick = tick;
  *tick = [this, shared, period, weak_tick] {
    (*shared)();
    if (auto t = weak_tick.lock()) PostAfter(period, [t] { (*t)(); });
  };
  PostAfter(period, [tick] { (*tick)(); });
}

bool EventLoop::RunSync(const std::function<void()>& fn) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return false;
    queue_.push_back([&fn, done] {
      fn();
      done->set_value();
    });
  }
  cv_.notify_one();
  // If Stop() drops the closure, the promise is destroyed unfulfilled: get() throws
  // broken_promise, which we report as "not run".
  try {
    f.get();
    return true;
  } catch (const std::future_error&) {
    return false;
  }
}

void EventLoop::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopped_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable() && !InLoopThread()) thread_.join();
}

void EventLoop::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    if (stopped_) break;
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      queue_.push_back(std::move(timers_.begin()->second));
      timers_.erase(timers_.begin());
    }
    if (!queue_.empty()) {
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      fn();
      fn = nullptr;  // destroy captures outside the lock too
      l.lock();
      continue;
    }
    if (timers_.empty()) {
      cv_.wait(l);
    } else {
      cv_.wait_until(l, timers_.begin()->first);
    }
  }
  // Drop what is left outside the lock (destructors may post; Post is a no-op now).
  auto q = std::move(queue_);
  auto t = std::move(timers_);
  l.unlock();
}

}  // namespace orrery::live

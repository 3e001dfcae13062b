#include "live/api/log_printer.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "live/rpc/rpc_util.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

using Clock = std::chrono::steady_clock;

bool EnvFlag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return !(s == "0" || s == "false" || s == "no" || s == "off");
}

class LogPrinter::Impl {
 public:
  explicit Impl(LogPrinterOptions o) : options_(std::move(o)), dedup_(options_.dedup_options) {}

  Status Start() {
    auto channel = OpenChannel(options_.head_address);
    stub_ = v1::HeadService::NewStub(channel);
    AttachToken(&ctx_, options_.token);
    v1::SubscribeLogsRequest req;
    req.set_job_id(options_.job_id);
    reader_ = stub_->SubscribeLogs(&ctx_, req);
    reader_thread_ = std::thread([this] { ReadLoop(); });
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, options_.subscribe_timeout, [this] { return subscribed_ || ended_; }) ||
        !subscribed_) {
      const Status why =
          ended_
              ? end_status_
              : Status(StatusCode::kUnavailable,
                       "no log subscription from the head at " + options_.head_address +
                           " within " + std::to_string(options_.subscribe_timeout.count()) + " ms");
      l.unlock();
      ctx_.TryCancel();
      reader_thread_.join();
      return why;
    }
    l.unlock();
    ticker_thread_ = std::thread([this] { TickLoop(); });
    return Status::Ok();
  }

  void Stop(bool drain) {
    std::unique_lock<std::mutex> l(mu_);
    if (stopping_) return;
    const auto begin = Clock::now();
    // Drain: until no line for `quiet`, at most max_drain.
    while (drain && !ended_) {
      const auto now = Clock::now();
      const auto since = std::max(last_line_, begin);
      if (now - since >= options_.quiet || now - begin >= options_.max_drain) break;
      cv_.wait_for(l, std::chrono::milliseconds(20));
    }
    stopping_ = true;
    l.unlock();
    cv_.notify_all();
    ctx_.TryCancel();
    if (reader_thread_.joinable()) reader_thread_.join();
    if (ticker_thread_.joinable()) ticker_thread_.join();
    l.lock();
    for (const auto& r : dedup_.Flush(NowS(), /*all=*/true)) PrintLocked(r);
  }

 private:
  double NowS() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

  void PrintLocked(const LogRecord& r) {
    std::FILE* f = r.is_err ? options_.err : options_.out;
    const std::string s = FormatLogLine(r, options_.local_node) + "\n";
    std::fwrite(s.data(), 1, s.size(), f);
    std::fflush(f);
  }

  void ReadLoop() {
    v1::LogBatch b;
    while (reader_->Read(&b)) {
      std::lock_guard<std::mutex> l(mu_);
      if (!subscribed_) {
        subscribed_ = true;
        cv_.notify_all();
      }
      if (b.dropped_lines() > 0) {
        const std::string s = "(orrery) " + std::to_string(b.dropped_lines()) +
                              " log lines dropped: this driver read them too slowly\n";
        std::fwrite(s.data(), 1, s.size(), options_.err);
        std::fflush(options_.err);
      }
      if (b.lines_size() == 0) continue;
      last_line_ = Clock::now();
      LogRecord r;
      r.node_id = b.node_id();
      r.pid = b.pid();
      r.name = b.name();
      r.is_err = b.is_err();
      for (auto& line : *b.mutable_lines()) {
        r.text = std::move(line);
        if (!options_.dedup) {
          PrintLocked(r);
          continue;
        }
        for (const auto& p : dedup_.Add(r, NowS())) PrintLocked(p);
      }
    }
    const grpc::Status s = reader_->Finish();
    std::lock_guard<std::mutex> l(mu_);
    ended_ = true;
    end_status_ = s.ok() ? Status(StatusCode::kUnavailable, "the head ended the log stream")
                         : Status(static_cast<StatusCode>(s.error_code()),
                                  "log subscription: " + s.error_message());
    cv_.notify_all();
  }

  void TickLoop() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stopping_) {
      cv_.wait_for(l, std::chrono::milliseconds(250));
      if (stopping_) break;
      for (const auto& r : dedup_.Flush(NowS())) PrintLocked(r);
    }
  }

  LogPrinterOptions options_;
  std::unique_ptr<v1::HeadService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::LogBatch>> reader_;
  std::thread reader_thread_;
  std::thread ticker_thread_;
  const Clock::time_point started_ = Clock::now();

  std::mutex mu_;
  std::condition_variable cv_;
  bool subscribed_ = false;
  bool ended_ = false;
  bool stopping_ = false;
  Status end_status_;
  Clock::time_point last_line_{};
  LogDeduplicator dedup_;
};

LogPrinter::LogPrinter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogPrinter::~LogPrinter() { Stop(); }

StatusOr<std::unique_ptr<LogPrinter>> LogPrinter::Start(LogPrinterOptions options) {
  if (options.head_address.empty()) return InvalidArgument("head_address: empty");
  if (options.job_id.empty()) return InvalidArgument("job_id: empty");
  auto impl = std::make_unique<Impl>(std::move(options));
  ORRERY_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<LogPrinter>(new LogPrinter(std::move(impl)));
}

void LogPrinter::Stop(bool drain) {
  if (impl_) impl_->Stop(drain);
}

}  // namespace orrery::live

// Asio 1.74 headers use std::exchange without including <utility> (g++ 12, C++20): first.
#include <utility>
// clang-format off
#include "live/dashboard/http_server.h"
// clang-format on

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "live/common/https.h"
#include "live/dashboard/assets.h"

namespace orrery::live::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

void Log(const std::string& line) { std::cerr << "[dashboard] http: " << line << std::endl; }

constexpr int kHandlerThreads = 4;     // requests handled at once; more wait for a thread
constexpr int kMaxConnections = 256;   // open connections; more are refused with 503
constexpr int kMaxStreams = 64;        // open event streams; more get 503
constexpr size_t kMaxBodyBytes = 1 << 20;
constexpr uint64_t kMaxReplyBytesInFlight = 64ull << 20;  // over all connections; more get 503
constexpr size_t kMaxStreamBacklog = 8 << 20;  // a stream's unsent bytes; more closes it
constexpr auto kIoTimeout = std::chrono::seconds(30);
constexpr auto kPingPeriod = std::chrono::seconds(15);
const char* const kCookie = "orrery_token";

// Equal in time independent of where the strings differ (length aside).
bool SameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or "".
std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view kv = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!kv.empty() && kv.front() == ' ') kv.remove_prefix(1);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == name) {
      return std::string(kv.substr(eq + 1));
    }
  }
  return "";
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

Response Text(int status, std::string body, std::string type = "text/plain; charset=utf-8") {
  Response r;
  r.status = status;
  r.content_type = std::move(type);
  r.body = std::move(body);
  return r;
}

// The target without its `token` query parameter (the redirect after the token exchange).
std::string StripToken(std::string_view target) {
  const size_t q = target.find('?');
  std::string out(target.substr(0, q));
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  std::string kept;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (kv.empty() || kv == "token" || kv.rfind("token=", 0) == 0) continue;
    kept += (kept.empty() ? "" : "&") + std::string(kv);
  }
  if (!kept.empty()) out += "?" + kept;
  return out;
}

}  // namespace

// One stream's queue: written by any thread, drained by the IO thread (Impl::StreamSession).
class SinkImpl : public EventSink {
 public:
  bool Send(const std::string& event, const std::string& data) override {
    std::string msg;
    msg.reserve(event.size() + data.size() + 16);
    msg += "event: ";
    msg += event;
    msg += "\ndata: ";
    for (const char c : data) msg.push_back(c == '\n' ? ' ' : c);  // one data line
    msg += "\n\n";
    return Queue(std::move(msg));
  }
  bool closed() const override {
    std::lock_guard<std::mutex> l(mu_);
    return closed_;
  }
  // Queues raw text; kicks the writer once per batch.
  bool Queue(std::string msg) {
    std::function<void()> kick;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return false;
      backlog_ += msg.size();
      if (backlog_ > kMaxStreamBacklog) {
        closed_ = true;
        pending_.clear();
        kick = kick_;  // the writer notices closed_ and ends the connection
      } else {
        pending_.push_back(std::move(msg));
        if (!kicked_) {
          kicked_ = true;
          kick = kick_;
        }
      }
    }
    if (kick) kick();
    return !closed();
  }
  // IO thread: everything queued so far (empty when nothing), re-arming the kick.
  std::string Take(bool* closed) {
    std::lock_guard<std::mutex> l(mu_);
    std::string out;
    for (auto& m : pending_) out += m;
    pending_.clear();
    kicked_ = false;
    *closed = closed_;
    return out;
  }
  void Written(size_t n) {
    std::lock_guard<std::mutex> l(mu_);
    backlog_ -= std::min(backlog_, n);
  }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    pending_.clear();
    kick_ = nullptr;
  }
  void SetKick(std::function<void()> kick) {
    std::lock_guard<std::mutex> l(mu_);
    kick_ = std::move(kick);
  }

 private:
  mutable std::mutex mu_;
  bool closed_ = false;
  bool kicked_ = false;
  size_t backlog_ = 0;
  std::deque<std::string> pending_;
  std::function<void()> kick_;  // posts a flush to the IO thread; cleared once closed for good
};

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions o, Handler api) : options_(std::move(o)), api_(std::move(api)) {}

  Status Listen() {
    boost::system::error_code ec;
    if (!options_.tls_cert_pem.empty() || !options_.tls_key_pem.empty()) {  // --- TLS
      ssl_.emplace(asio::ssl::context::tls_server);
      ORRERY_RETURN_IF_ERROR(
          ConfigureHttpsServer(*ssl_, options_.tls_cert_pem, options_.tls_key_pem, "dashboard"));
    }
    const auto addr = asio::ip::make_address(options_.bind, ec);
    const std::string where = options_.bind + ":" + std::to_string(options_.port);
    if (ec) {
      return InvalidArgument("dashboard bind address '" + options_.bind + "': " + ec.message());
    }
    const tcp::endpoint ep(addr, static_cast<unsigned short>(options_.port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on " + where + " for the dashboard: " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
    return Status::Ok();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard<std::mutex> l(sinks_mu_);
      for (auto& w : sinks_) {
        if (auto s = w.lock()) s->Close();
      }
      sinks_.clear();
    }
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    handlers_.join();
  }

  int port() const { return port_; }
  bool tls() const { return ssl_.has_value(); }

  // What the server does with one request (a pool thread). `stream` is set when the request
  // opened an event stream (the reply is then its refusal only if set).
  struct Outcome {
    Response response;
    std::shared_ptr<SinkImpl> stream;  // accepted event stream: no response is written
  };

  Outcome Handle(const bhttp::request<bhttp::string_body>& raw) {
    const std::string method(raw.method_string());
    const std::string target(raw.target());
    // Probes carry no token and learn nothing but ready or not (live/common/health.h).
    if (auto probe = AnswerProbe(method, target, options_.not_ready)) {
      return {Text(probe->code, std::move(probe->body))};
    }
    Request req;
    std::string error;
    if (!ParseTarget(target, &req, &error)) return {ErrorResponse(400, error)};
    req.method = method;
    for (const auto& f : raw) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    req.body = raw.body();
    const bool api = req.path == "/api" || req.path.rfind("/api/", 0) == 0;
    const bool read = method == "GET" || method == "HEAD";
    const bool authed = Authorized(req);
    if (api) {
      if (!authed) {
        return {ErrorResponse(401, "missing or wrong token: send 'Authorization: Bearer <cluster "
                                   "token>' (the session dir's 'token' file) or open the "
                                   "dashboard URL with ?token=")};
      }
      if (!read) {
        if (options_.read_only) return {ErrorResponse(405, "this dashboard is read-only")};
        if (method != "POST" && method != "DELETE") {
          return {ErrorResponse(405, method + ": expected GET, POST or DELETE")};
        }
        // A browser says where a page came from: only this dashboard's own pages may change
        // state (another site's page cannot make the browser post with its cookie).
        if (auto o = req.headers.find("origin"); o != req.headers.end()) {
          const auto host = req.headers.find("host");
          const std::string expect =
              std::string(ssl_ ? "https://" : "http://") +
              (host == req.headers.end() ? std::string() : host->second);
          if (host == req.headers.end() || !SameSecret(o->second, expect)) {
            return {ErrorResponse(403, "Origin '" + o->second.substr(0, 200) +
                                           "' is not this dashboard (" + expect + ")")};
          }
        }
      }
      const std::string_view p = req.path;
      if (options_.stream && method == "GET" && p.size() > 7 &&
          p.substr(p.size() - 7) == "/stream") {
        return OpenStream(req);
      }
      Response r = api_ ? api_(req) : ErrorResponse(404, "no route " + req.path);
      return {std::move(r)};
    }
    if (!read) {
      return {ErrorResponse(405, method + " " + req.path.substr(0, 200) + ": expected GET")};
    }
    if (req.path.rfind("/assets/", 0) == 0) {
      if (!authed) return {LoginPage()};
      const dashboard::Asset* a = dashboard::FindAsset(req.path.substr(8));
      if (a == nullptr) return {ErrorResponse(404, "no asset " + req.path.substr(0, 200))};
      Response r = Text(200, std::string(a->body), std::string(a->content_type));
      r.headers.emplace_back("Cache-Control", "no-cache");
      return {std::move(r)};
    }
    if (auto t = req.query.find("token"); t != req.query.end()) {
      if (!SameSecret(t->second, options_.token)) return {LoginPage()};
      // Exchange the token for a cookie and drop it from the address bar and history.
      Response r = Text(303, "");
      r.headers.emplace_back("Location", StripToken(target));
      r.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + options_.token +
                                               "; HttpOnly; SameSite=Strict; Path=/" +
                                               (ssl_ ? "; Secure" : ""));
      return {std::move(r)};
    }
    if (!authed) return {LoginPage()};
    const dashboard::Asset* index = dashboard::FindAsset(options_.index_asset);
    if (index == nullptr) {
      return {ErrorResponse(404, "the dashboard page " + options_.index_asset +
                                     " is not built into this binary")};
    }
    Response r = Text(200, std::string(index->body), std::string(index->content_type));
    r.headers.emplace_back("Cache-Control", "no-cache");
    return {std::move(r)};
  }

  bool Authorized(const Request& req) const {
    if (auto a = req.headers.find("authorization"); a != req.headers.end()) {
      return SameSecret(a->second, "Bearer " + options_.token);
    }
    if (auto c = req.headers.find("cookie"); c != req.headers.end()) {
      return SameSecret(CookieValue(c->second, kCookie), options_.token);
    }
    return false;
  }

  Response LoginPage() const {
    const std::string hint =
        options_.login_hint.empty()
            ? "Open the dashboard URL with its token (…/?token=…), or send 'Authorization: "
              "Bearer &lt;token&gt;'."
            : HtmlEscape(options_.login_hint);
    return Text(401,
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Orrery dashboard: "
                "sign in</title></head><body style=\"font-family:sans-serif;max-width:40em;"
                "margin:3em auto\"><h1>Orrery dashboard</h1><p>This page needs the cluster's "
                "token, which this browser has not given (or it was wrong).</p><p>" +
                    hint + "</p></body></html>\n",
                "text/html; charset=utf-8");
  }

  Outcome OpenStream(const Request& req) {
    if (streams_.fetch_add(1) >= kMaxStreams) {
      --streams_;
      return {ErrorResponse(503, "too many open event streams (" + std::to_string(kMaxStreams) +
                                     "): close a dashboard tab")};
    }
    auto sink = std::make_shared<SinkImpl>();
    std::optional<Response> refused = options_.stream(req, sink);
    if (refused) {
      --streams_;
      return {std::move(*refused)};
    }
    {
      std::lock_guard<std::mutex> l(sinks_mu_);
      std::erase_if(sinks_, [](const auto& w) { return w.expired(); });
      if (stopped_) {
        sink->Close();
      } else {
        sinks_.push_back(sink);
      }
    }
    return {Response{}, sink};
  }

  template <typename Stream>
  class Session;

  void Accept();

  const HttpServerOptions options_;
  const Handler api_;
  // Before ioc_: the sessions it still holds count these down when it goes.
  std::atomic<int> connections_{0};
  std::atomic<int> streams_{0};
  std::atomic<uint64_t> reply_bytes_in_flight_{0};
  std::mutex sinks_mu_;
  std::vector<std::weak_ptr<SinkImpl>> sinks_;  // open streams, closed on Stop
  asio::io_context ioc_{1};
  std::optional<asio::ssl::context> ssl_;  // --- TLS: set = HTTPS
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;  // accepts, reads and writes every connection (asynchronously)
  asio::thread_pool handlers_{kHandlerThreads};
  int port_ = 0;
  std::atomic<bool> stopped_{false};
};

// One connection: read a request, answer, and (keep-alive) read the next one; or, once a
// request opened an event stream, write that stream's messages until it closes. Every read and
// write has a deadline. Requests are handled on the pool; replies are written from the IO thread.
// `Stream` is beast::tcp_stream (HTTP) or an ssl_stream over one (HTTPS: a handshake first).
template <typename Stream>
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <typename... TlsContext>
  Session(Impl* server, tcp::socket socket, TlsContext&... ssl)
      : server_(server), stream_(std::move(socket), ssl...), ping_(stream_.get_executor()) {
    ++server_->connections_;
  }
  ~Session() {
    --server_->connections_;
    server_->reply_bytes_in_flight_ -= reserved_;
    if (sink_) {
      sink_->Close();
      --server_->streams_;
    }
  }

  void Start() {
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    if constexpr (kTls) {  // --- TLS: the handshake shares the first request's 30 s
      // A plain-HTTP request (no TLS ClientHello) gets a plain 400 that says to use https://,
      // not a silently closed connection.
      beast::async_detect_ssl(
          beast::get_lowest_layer(stream_), buf_,
          [self = this->shared_from_this()](beast::error_code ec, bool tls) {
            if (ec) return;
            if (!tls) return self->RefusePlainHttp();
            self->stream_.async_handshake(asio::ssl::stream_base::server, self->buf_.data(),
                                          [self](beast::error_code ec, size_t used) {
                                            self->buf_.consume(used);
                                            if (!ec) self->Read();
                                          });
          });
    } else {
      Read();
    }
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  void RefusePlainHttp() {
    static const std::string kBody =
        "{\"error\": \"this port speaks HTTPS (TLS is on): use https://\"}\n";
    static const std::string kHttpsOnly =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
        "Content-Length: " + std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
    asio::async_write(beast::get_lowest_layer(stream_), asio::buffer(kHttpsOnly),
                      [self = this->shared_from_this()](beast::error_code, size_t) {
                        beast::error_code ignored;
                        beast::get_lowest_layer(self->stream_).socket().shutdown(
                            tcp::socket::shutdown_send, ignored);
                      });
  }

  void Read() {
    parser_.emplace();
    parser_->body_limit(kMaxBodyBytes);
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    bhttp::async_read(
        stream_, buf_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
          ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
          ec != asio::error::eof) {
        keep_alive_ = false;
        Write(ErrorResponse(400, ec.message()), false);
      }
      return;
    }
    keep_alive_ = parser_->get().keep_alive();
    head_ = parser_->get().method() == bhttp::verb::head;
    asio::post(server_->handlers_, [self = this->shared_from_this()] {
      auto out = std::make_shared<Outcome>(self->server_->Handle(self->parser_->get()));
      asio::post(self->stream_.get_executor(), [self, out] {
        if (out->stream) return self->StartStream(std::move(out->stream));
        self->Write(std::move(out->response), true);
      });
    });
  }

  void Write(Response r, bool count) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(bhttp::field::server, "orrery");
    res_.set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res_.insert(k, v);
    if (count) {
      // Replies waiting for slow clients hold their text: bounded over all connections.
      if (server_->reply_bytes_in_flight_.fetch_add(r.body.size()) + r.body.size() >
          kMaxReplyBytesInFlight) {
        server_->reply_bytes_in_flight_ -= r.body.size();
        return Write(ErrorResponse(503, "too many reply bytes waiting for slow clients: retry, "
                                        "or ask for less"),
                     false);
      }
      reserved_ = r.body.size();
    }
    if (r.content_type == "application/json" && (r.body.empty() || r.body.back() != '\n')) {
      r.body.push_back('\n');
    }
    res_.keep_alive(keep_alive_);
    if (head_) {
      res_.content_length(r.body.size());
    } else {
      res_.body() = std::move(r.body);
      res_.prepare_payload();
    }
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    bhttp::async_write(stream_, res_,
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         self->server_->reply_bytes_in_flight_ -= self->reserved_;
                         self->reserved_ = 0;
                         if (ec) return;
                         if (self->keep_alive_) return self->Read();
                         self->Close();
                       });
  }

  void Close() {
    if constexpr (kTls) {  // close_notify, then the socket (bounded by the same deadline)
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_send,
                                                                 ignored);
      });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  // ---- event streams -------------------------------------------------------------------------

  void StartStream(std::shared_ptr<SinkImpl> sink) {
    sink_ = std::move(sink);
    std::weak_ptr<Session> weak = this->shared_from_this();
    auto exec = stream_.get_executor();
    sink_->SetKick([weak, exec] {
      asio::post(exec, [weak] {
        if (auto s = weak.lock()) s->Flush();
      });
    });
    out_ = "HTTP/1.1 200 OK\r\nServer: orrery\r\nContent-Type: text/event-stream\r\n"
           "Cache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n"
           ": stream open\n\n";
    writing_ = true;
    WriteOut();
    Ping();
    // The client sends nothing more; a read that ends tells the stream it went.
    stream_.async_read_some(asio::buffer(discard_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) self->EndStream();
                            });
  }

  void Ping() {
    ping_.expires_after(kPingPeriod);
    ping_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->ended_) return;
      self->sink_->Queue(": ping\n\n");
      self->Ping();
    });
  }

  void Flush() {
    if (writing_ || ended_) return;
    bool closed = false;
    out_ = sink_->Take(&closed);
    if (closed) return EndStream();
    if (out_.empty()) return;
    writing_ = true;
    WriteOut();
  }

  void WriteOut() {
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                        self->writing_ = false;
                        self->sink_->Written(n);
                        if (ec) return self->EndStream();
                        // Nothing is pending: no deadline while the stream waits for news
                        // (pings keep the connection honest).
                        beast::get_lowest_layer(self->stream_).expires_never();
                        self->Flush();
                      });
  }

  void EndStream() {
    if (ended_) return;
    ended_ = true;
    sink_->Close();
    ping_.cancel();
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).socket().close(ignored);
  }

  Impl* server_;
  Stream stream_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  bool keep_alive_ = false;
  bool head_ = false;
  uint64_t reserved_ = 0;  // bytes of the reply being written (reply_bytes_in_flight_)
  // Event stream state (IO thread).
  std::shared_ptr<SinkImpl> sink_;
  asio::steady_timer ping_;
  std::string out_;
  bool writing_ = false;
  bool ended_ = false;
  char discard_[64];
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (!ec && connections_ >= kMaxConnections) {
      // Over the cap: refuse at once (the client retries) rather than queue without bound.
      static const std::string kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: 41\r\n\r\n{\"error\": \"too many connections, "
          "retry\"}\n";
      boost::system::error_code ignored;
      socket.non_blocking(true, ignored);
      if (!ssl_) socket.write_some(asio::buffer(kBusy), ignored);  // HTTPS: no reply before TLS
      socket.close(ignored);
    } else if (!ec && ssl_) {  // --- TLS
      using TlsStream = beast::ssl_stream<beast::tcp_stream>;
      std::make_shared<Session<TlsStream>>(this, std::move(socket), *ssl_)->Start();
    } else if (!ec) {
      std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket))->Start();
    }
    if (acceptor_.is_open()) Accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                        Handler api) {
  if (options.token.empty()) return InvalidArgument("dashboard token: empty");
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return InvalidArgument("dashboard TLS: both a certificate and a key are needed");
  }
  auto impl = std::make_unique<Impl>(options, std::move(api));
  ORRERY_RETURN_IF_ERROR(impl->Listen());
  Log(std::string("dashboard listening on ") + (impl->tls() ? "https://" : "http://") +
      options.bind + ":" + std::to_string(impl->port()));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port(); }
void HttpServer::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live::http

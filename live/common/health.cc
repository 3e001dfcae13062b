// Asio 1.74 headers use std::exchange without including <utility> (g++ 12, C++20): first.
#include <utility>
// clang-format off
#include "live/common/health.h"
// clang-format on

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "live/common/https.h"
#include <thread>

namespace orrery::live {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::optional<ProbeReply> AnswerProbe(std::string_view method, std::string_view target,
                                      const ReadinessCheck& not_ready) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/healthz" && path != "/readyz") return std::nullopt;
  if (method != "GET" && method != "HEAD") {
    return ProbeReply{405, std::string(path) + ": expected GET\n"};
  }
  if (path == "/healthz") return ProbeReply{200, "ok\n"};
  std::string why = not_ready ? not_ready() : std::string();
  if (why.empty()) return ProbeReply{200, "ok\n"};
  // One line: a reason never spills into a second line of the body.
  for (char& c : why) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return ProbeReply{503, "not ready: " + why + "\n"};
}

namespace {
constexpr int kMaxConnections = 64;
}  // namespace

class HealthServer::Impl {
 public:
  explicit Impl(ReadinessCheck not_ready) : not_ready_(std::move(not_ready)), acceptor_(ioc_) {}
  ~Impl() { Stop(); }

  // HTTPS with this identity (PEM), before Listen.
  Status UseTls(const std::string& cert_pem, const std::string& key_pem) {
    ssl_.emplace(asio::ssl::context::tls_server);
    return ConfigureHttpsServer(*ssl_, cert_pem, key_pem, "health probes:");
  }

  Status Listen(const std::string& bind, int port) {
    const std::string where = bind + ":" + std::to_string(port);
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(bind, ec);
    if (ec) return InvalidArgument("--health-port: '" + bind + "' is not an IP address");
    const tcp::endpoint ep(ip, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(
          StatusCode::kUnavailable,
          "cannot listen on " + where + " for the health probes (--health-port): " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
    return Status::Ok();
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    // The posted close may not have run before the stop: close here (the thread is gone), so
    // the port refuses connections at once instead of queueing them unanswered.
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

  int port() const { return port_; }

 private:
  template <typename Stream>
  class Session;
  void Accept();

  ReadinessCheck not_ready_;
  std::optional<asio::ssl::context> ssl_;  // set: HTTPS
  std::atomic<int> connections_{0};
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
};

// One connection: (TLS handshake,) read one request, answer, close; 5 s for each step.
// `Stream` is beast::tcp_stream (HTTP) or an ssl_stream over one (HTTPS).
template <typename Stream>
class HealthServer::Impl::Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <typename... TlsContext>
  Session(Impl* server, tcp::socket socket, TlsContext&... ssl)
      : server_(server), stream_(std::move(socket), ssl...) {
    ++server_->connections_;
  }
  ~Session() { --server_->connections_; }

  void Start() {
    parser_.body_limit(4096);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    if constexpr (kTls) {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    } else {
      Read();
    }
  }

 private:
  void Read() {
    http::async_read(stream_, buf_, parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Answer();
                     });
  }

 public:

 private:
  void Answer() {
    const auto& req = parser_.get();
    auto probe = AnswerProbe(std::string(req.method_string()), std::string(req.target()),
                             server_->not_ready_);
    if (!probe) probe = ProbeReply{404, "no route: this port serves /healthz and /readyz\n"};
    res_.version(11);
    res_.result(static_cast<http::status>(probe->code));
    res_.set(http::field::server, "orrery");
    res_.set(http::field::content_type, "text/plain; charset=utf-8");
    res_.keep_alive(false);
    if (req.method() != http::verb::head) res_.body() = std::move(probe->body);
    res_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    http::async_write(stream_, res_, [self = this->shared_from_this()](beast::error_code, size_t) {
      if constexpr (kTls) {
        self->stream_.async_shutdown([self](beast::error_code) {});
      } else {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      }
    });
  }

  Impl* server_;
  Stream stream_;
  beast::flat_buffer buf_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> res_;
};

void HealthServer::Impl::Accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (!ec && connections_ < kMaxConnections) {
      if (ssl_) {
        using TlsStream = beast::ssl_stream<beast::tcp_stream>;
        std::make_shared<Session<TlsStream>>(this, std::move(socket), *ssl_)->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket))->Start();
      }
    }  // over the cap: the socket closes at once (the prober retries)
    if (acceptor_.is_open()) Accept();
  });
}

HealthServer::HealthServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HealthServer::~HealthServer() { Stop(); }

StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& bind, int port,
                                                            ReadinessCheck not_ready,
                                                            const std::string& tls_cert_pem,
                                                            const std::string& tls_key_pem) {
  if (port < 0 || port > 65535) {
    return InvalidArgument("--health-port: expected 0..65535, got " + std::to_string(port));
  }
  auto impl = std::make_unique<Impl>(std::move(not_ready));
  if (!tls_cert_pem.empty()) ORRERY_RETURN_IF_ERROR(impl->UseTls(tls_cert_pem, tls_key_pem));
  ORRERY_RETURN_IF_ERROR(impl->Listen(bind, port));
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(impl)));
}

int HealthServer::port() const { return impl_->port(); }
void HealthServer::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live

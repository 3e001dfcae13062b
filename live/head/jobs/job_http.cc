// Asio 1.74 headers use std::exchange without including <utility> (g++ 12, C++20): first.
#include <utility>
// clang-format off
#include "live/head/jobs/job_http.h"
// clang-format on

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>
#include <cmath>
#include <iostream>
#include <thread>

#include "core/io/json_input.h"
#include "live/rpc/convert.h"
#include "live/common/https.h"

namespace orrery::live {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

namespace {

void Log(const std::string& line) { std::cerr << "[head] http: " << line << std::endl; }

constexpr int kHandlerThreads = 4;              // requests handled at once; more wait for a thread
constexpr int kMaxConnections = 256;            // open connections; more are refused with 503
constexpr uint64_t kDefaultLogLimit = 1 << 20;  // GET .../logs without limit
constexpr uint64_t kMaxLogLimit = 8 << 20;
constexpr uint64_t kMaxLogBytesInFlight = 64 << 20;  // over all connections; more get 503

struct Reply {
  http::status code = http::status::ok;
  json body;
  uint64_t reserved = 0;  // log bytes counted in flight until the connection is done
  std::optional<std::string> text;  // a text/plain body instead of `body` (health probes)
};

Reply Error(http::status code, const std::string& message) {
  return Reply{code, json{{"error", message}}};
}

Reply FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return Error(http::status::not_found, s.message());
    case StatusCode::kInvalidArgument:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return Error(http::status::bad_request, s.message());
    case StatusCode::kUnavailable:
      return Error(http::status::service_unavailable, s.message());
    default:
      return Error(http::status::internal_server_error, s.message());
  }
}

// Equal in time independent of where the strings differ.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

StatusOr<double> Quantity01(const json& v, const std::string& field) {
  if (!v.is_number()) return InvalidArgument(field + ": expected a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > 1e12) {
    return InvalidArgument(field + ": expected a non-negative number");
  }
  return d;
}

}  // namespace

// The body of POST /api/jobs/ as a request (Ray's JobSubmitRequest fields). InvalidArgument
// naming the field for a wrong type or an unknown field.
StatusOr<v1::SubmitJobRequest> SubmitRequestFromJson(const std::string& body) {
  if (Status deep = io::CheckJsonNesting(body); !deep.ok()) {
    return InvalidArgument("request body: " + deep.message());
  }
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("request body: malformed JSON");
  if (!j.is_object()) return InvalidArgument("request body: expected a JSON object");
  v1::SubmitJobRequest req;
  std::map<std::string, Quantity> resources;
  for (const auto& [k, v] : j.items()) {
    if (v.is_null()) continue;  // Ray's clients send null for unset optional fields
    if (k == "entrypoint" || k == "submission_id" || k == "job_id") {
      if (!v.is_string()) return InvalidArgument(k + ": expected a string");
      if (k == "entrypoint") req.set_entrypoint(v.get<std::string>());
      if (k == "submission_id" || (k == "job_id" && req.submission_id().empty())) {
        req.set_submission_id(v.get<std::string>());
      }
    } else if (k == "runtime_env") {
      if (!v.is_object()) return InvalidArgument("runtime_env: expected a JSON object");
      if (!v.empty()) req.set_runtime_env_json(v.dump());
    } else if (k == "metadata") {
      if (!v.is_object()) return InvalidArgument("metadata: expected a JSON object of strings");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) return InvalidArgument("metadata." + mk + ": expected a string");
        (*req.mutable_metadata())[mk] = mv.get<std::string>();
      }
    } else if (k == "entrypoint_num_cpus" || k == "entrypoint_num_gpus" ||
               k == "entrypoint_memory") {
      auto d = Quantity01(v, k);
      if (!d.ok()) return d.status();
      const std::string name = k == "entrypoint_num_cpus"   ? "CPU"
                               : k == "entrypoint_num_gpus" ? "GPU"
                                                            : "memory";
      if (*d > 0) resources[name] = Quantity::FromDouble(*d);
    } else if (k == "entrypoint_resources") {
      if (!v.is_object()) return InvalidArgument("entrypoint_resources: expected a JSON object");
      for (const auto& [rk, rv] : v.items()) {
        if (rk.empty()) return InvalidArgument("entrypoint_resources: empty resource name");
        auto d = Quantity01(rv, "entrypoint_resources." + rk);
        if (!d.ok()) return d.status();
        if (*d > 0) resources[rk] = Quantity::FromDouble(*d);
      }
    } else {
      return InvalidArgument("unknown field '" + k +
                             "' (expected entrypoint, submission_id, runtime_env, metadata, "
                             "entrypoint_num_cpus, entrypoint_num_gpus, entrypoint_memory, "
                             "entrypoint_resources)");
    }
  }
  if (!j.contains("entrypoint")) return InvalidArgument("entrypoint: missing");
  ToProto(ResourceSet::FromMap(resources), req.mutable_entrypoint_resources());
  ORRERY_RETURN_IF_ERROR(ValidateSubmitJob(req));
  return req;
}

class JobHttpServer::Impl {
 public:
  Impl(JobHttpOptions o, RunOnLoop run, JobManager* jobs)
      : options_(std::move(o)), run_(std::move(run)), jobs_(jobs), acceptor_(ioc_) {}

  Status Listen() {
    boost::system::error_code ec;
    if (!options_.tls_cert_pem.empty()) {  // --- TLS
      ssl_.emplace(asio::ssl::context::tls_server);
      ORRERY_RETURN_IF_ERROR(
          ConfigureHttpsServer(*ssl_, options_.tls_cert_pem, options_.tls_key_pem, "jobs API"));
    }
    const auto addr = asio::ip::make_address(options_.bind, ec);
    const std::string where = options_.bind + ":" + std::to_string(options_.port);
    if (ec)
      return InvalidArgument("dashboard bind address '" + options_.bind + "': " + ec.message());
    const tcp::endpoint ep(addr, static_cast<unsigned short>(options_.port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on " + where + " for the jobs API: " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
    Log(std::string("jobs API listening on ") + (ssl_ ? "https://" : "http://") + options_.bind +
        ":" + std::to_string(port_));
    return Status::Ok();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    handlers_.join();
  }

  int port() const { return port_; }

  // One request -> one reply (server thread).
  Reply Handle(const http::request<http::string_body>& req) {
    // Probes carry no token and learn nothing but ready or not (live/common/health.h).
    if (auto probe = AnswerProbe(std::string(req.method_string()), std::string(req.target()),
                                 options_.not_ready)) {
      return Reply{static_cast<http::status>(probe->code), json(), 0, std::move(probe->body)};
    }
    const auto auth = req[http::field::authorization];
    if (!SameSecret(std::string(auth), "Bearer " + options_.token)) {
      return Error(http::status::unauthorized,
                   "missing or wrong token: send 'Authorization: Bearer <cluster token>' (the "
                   "session dir's 'token' file)");
    }
    std::string path(req.target());
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    if (path == "/api/version" && req.method() == http::verb::get) {
      // Ray's job SDK asks this first; answering it never touches the loop.
      return Reply{http::status::ok, json{{"version", "4"},
                                          {"ray_version", "orrery"},
                                          {"ray_commit", ""},
                                          {"server", "orrery"}}};
    }
    const std::string prefix = "/api/jobs";
    if (path.rfind(prefix, 0) != 0 || (path.size() > prefix.size() && path[prefix.size()] != '/')) {
      return Error(http::status::not_found, "no route " + path);
    }
    std::string rest = path.substr(prefix.size());
    if (!rest.empty()) rest.erase(0, 1);
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    const auto method = req.method();
    if (rest.empty()) {
      if (method == http::verb::post) return Submit(req.body());
      if (method == http::verb::get) {
        json arr = json::array();
        if (!run_([&] {
              for (const auto& j : jobs_->List()) arr.push_back(JobInfoToJson(j));
            })) {
          return Unavailable();
        }
        return Reply{http::status::ok, arr};
      }
      return Error(http::status::method_not_allowed, "/api/jobs/: expected GET or POST");
    }
    const auto slash = rest.find('/');
    const std::string id = rest.substr(0, slash);
    const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (action.empty()) {
      if (method == http::verb::get) {
        StatusOr<v1::JobInfo> job = NotFound("");
        if (!run_([&] { job = jobs_->Get(id); })) return Unavailable();
        if (!job.ok()) return FromStatus(job.status());
        return Reply{http::status::ok, JobInfoToJson(*job)};
      }
      if (method == http::verb::delete_) {
        Status s;
        if (!run_([&] { s = jobs_->Delete(id); })) return Unavailable();
        if (!s.ok()) return FromStatus(s);
        return Reply{http::status::ok, json{{"deleted", true}}};
      }
      return Error(http::status::method_not_allowed, "/api/jobs/{id}: expected GET or DELETE");
    }
    if (action == "logs") {
      if (method != http::verb::get) {
        return Error(http::status::method_not_allowed, "/api/jobs/{id}/logs: expected GET");
      }
      return Logs(id, std::string(req.target()));
    }
    if (action == "stop") {
      if (method != http::verb::post) {
        return Error(http::status::method_not_allowed, "/api/jobs/{id}/stop: expected POST");
      }
      StatusOr<bool> stopped = NotFound("");
      if (!run_([&] { stopped = jobs_->Stop(id); })) return Unavailable();
      if (!stopped.ok()) return FromStatus(stopped.status());
      return Reply{http::status::ok, json{{"stopped", *stopped}}};
    }
    return Error(http::status::not_found, "no route " + path);
  }

 private:
  template <typename Stream>
  class Session;

  static Reply Unavailable() {
    return Error(http::status::service_unavailable, "the head is stopping");
  }

  Reply Submit(const std::string& body) {
    auto req = SubmitRequestFromJson(body);
    if (!req.ok()) return FromStatus(req.status());
    StatusOr<std::string> id = NotFound("");
    if (!run_([&] { id = jobs_->Submit(*req); })) return Unavailable();
    if (!id.ok()) return FromStatus(id.status());
    return Reply{http::status::ok, json{{"submission_id", *id}, {"job_id", *id}}};
  }

  // GET /api/jobs/{id}/logs[?offset=N][&limit=M] or [?tail=N][&limit=M]: a bounded chunk. Only
  // the log handle is fetched on the loop; the file is read here (a pool thread).
  Reply Logs(const std::string& id, std::string_view target) {
    uint64_t offset = 0, limit = kDefaultLogLimit, tail = 0;
    if (auto q = target.find('?'); q != std::string_view::npos) {
      std::string_view query = target.substr(q + 1);
      while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view kv = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const auto eq = kv.find('=');
        const std::string key(kv.substr(0, eq));
        const std::string value(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
        uint64_t* field = key == "offset"  ? &offset
                          : key == "limit" ? &limit
                          : key == "tail"  ? &tail
                                           : nullptr;
        if (field == nullptr) {
          return Error(http::status::bad_request,
                       "unknown query parameter '" + key + "' (expected offset, limit, tail)");
        }
        if (value.empty() || value.size() > 19 ||
            value.find_first_not_of("0123456789") != std::string::npos) {
          return Error(http::status::bad_request,
                       key + ": expected a non-negative integer, got '" + value + "'");
        }
        *field = std::stoull(value);
      }
    }
    if (limit == 0 || limit > kMaxLogLimit) {
      return Error(http::status::bad_request, "limit: expected 1.." + std::to_string(kMaxLogLimit) +
                                                  " bytes, got " + std::to_string(limit));
    }
    if (tail > 1000000) return Error(http::status::bad_request, "tail: expected <= 1000000 lines");
    // Replies waiting for slow clients hold their log text: bounded over all connections.
    if (log_bytes_in_flight_.fetch_add(limit) + limit > kMaxLogBytesInFlight) {
      log_bytes_in_flight_ -= limit;
      return Error(http::status::service_unavailable,
                   "too many log bytes being sent (" + std::to_string(kMaxLogBytesInFlight) +
                       "): retry, or ask for a smaller limit");
    }
    Reply reply = ReadLogChunk(id, offset, limit, tail);
    if (reply.code == http::status::ok) {
      reply.reserved = limit;
    } else {
      log_bytes_in_flight_ -= limit;
    }
    return reply;
  }

  Reply ReadLogChunk(const std::string& id, uint64_t offset, uint64_t limit, uint64_t tail) {
    StatusOr<std::shared_ptr<JobLog>> log = NotFound("");
    if (!run_([&] { log = jobs_->LogOf(id); })) return Unavailable();
    if (!log.ok()) return FromStatus(log.status());
    auto r = tail > 0 ? (*log)->Tail(static_cast<int>(tail), limit) : (*log)->Read(offset, limit);
    if (!r.ok()) return FromStatus(r.status());
    const uint64_t next = r->offset + r->data.size();
    return Reply{http::status::ok, json{{"logs", std::move(r->data)},
                                        {"offset", r->offset},
                                        {"next_offset", next},
                                        {"start_offset", r->start_offset},
                                        {"end_offset", r->end_offset},
                                        {"truncated", next < r->end_offset},
                                        {"complete", r->closed && next == r->end_offset}}};
  }

  void Accept();

  const JobHttpOptions options_;
  const RunOnLoop run_;
  JobManager* const jobs_;
  // Before ioc_: the sessions it still holds count these down when it goes.
  std::atomic<int> connections_{0};
  std::atomic<uint64_t> log_bytes_in_flight_{0};
  asio::io_context ioc_{1};
  std::optional<asio::ssl::context> ssl_;  // --- TLS: set = HTTPS
  tcp::acceptor acceptor_;
  std::thread thread_;  // accepts, reads and writes every connection (asynchronously)
  // Runs the handlers: a slow one (a large log chunk, a busy loop) holds one pool thread, never
  // the accepting thread nor the other requests.
  asio::thread_pool handlers_{kHandlerThreads};
  int port_ = 0;
  bool stopped_ = false;
};

// One connection: read one request, answer, close. Every read and write has a deadline. The
// request is handled on the handler pool; the reply is written from the server thread.
// `Stream` is beast::tcp_stream (HTTP) or an ssl_stream over one (HTTPS: a handshake first).
template <typename Stream>
class JobHttpServer::Impl::Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <typename... TlsContext>
  Session(Impl* server, tcp::socket socket, TlsContext&... ssl)
      : server_(server), stream_(std::move(socket), ssl...) {
    ++server_->connections_;
  }
  ~Session() {
    --server_->connections_;
    server_->log_bytes_in_flight_ -= reserved_;
  }

  void Start() {
    parser_.body_limit(1 << 20);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    if constexpr (kTls) {  // --- TLS: the handshake shares the request's 30 s
      // A plain-HTTP request (no TLS ClientHello) gets a plain 400 that says to use https://,
      // not a silently closed connection.
      beast::async_detect_ssl(
          beast::get_lowest_layer(stream_), buf_,
          [self = this->shared_from_this()](beast::error_code ec, bool tls) {
            if (ec) return;
            if (!tls) return self->RefusePlainHttp();
            self->stream_.async_handshake(
                asio::ssl::stream_base::server, self->buf_.data(),
                [self](beast::error_code ec, size_t used) {
                  self->buf_.consume(used);
                  if (!ec) self->Read();  // a failed handshake just closes
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
    http::async_read(
        stream_, buf_, parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      if (ec != http::error::end_of_stream) Respond(Error(http::status::bad_request, ec.message()));
      return;
    }
    asio::post(server_->handlers_, [self = this->shared_from_this()] {
      auto reply = std::make_shared<Reply>(self->server_->Handle(self->parser_.get()));
      self->reserved_ = reply->reserved;
      asio::post(self->stream_.get_executor(), [self, reply] { self->Respond(*reply); });
    });
  }

  void Respond(const Reply& r) {
    res_.version(11);
    res_.result(r.code);
    res_.set(http::field::server, "orrery");
    res_.set(http::field::content_type, r.text ? "text/plain; charset=utf-8" : "application/json");
    res_.keep_alive(false);
    // Log text need not be UTF-8 (or a chunk may cut a character): replaced, never thrown.
    res_.body() =
        r.text ? *r.text : r.body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    res_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    http::async_write(stream_, res_, [self = this->shared_from_this()](beast::error_code, size_t) {
      if constexpr (kTls) {  // close_notify, then the socket (bounded by the same deadline)
        self->stream_.async_shutdown([self](beast::error_code) {
          beast::error_code ignored;
          beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_send,
                                                                   ignored);
        });
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
  uint64_t reserved_ = 0;  // log bytes of the reply (Reply::reserved)
};

void JobHttpServer::Impl::Accept() {
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

JobHttpServer::JobHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JobHttpServer::~JobHttpServer() { Stop(); }

StatusOr<std::unique_ptr<JobHttpServer>> JobHttpServer::Start(const JobHttpOptions& options,
                                                              RunOnLoop run_on_loop,
                                                              JobManager* jobs) {
  if (options.token.empty()) return InvalidArgument("token: empty");
  auto impl = std::make_unique<Impl>(options, std::move(run_on_loop), jobs);
  ORRERY_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<JobHttpServer>(new JobHttpServer(std::move(impl)));
}

int JobHttpServer::port() const { return impl_->port(); }
void JobHttpServer::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace orrery::live

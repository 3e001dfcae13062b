// Mutual TLS on a real cluster (live/common/tls.h, live/cli/tls_cli.h): `orrery tls init`, a TLS
// cluster through the smoke path (head + node, tasks, a job with a C++ API driver, status, list,
// HTTPS jobs API, stop), and the refusals: plaintext clients, another CA's certificate, TLS
// clients of a plaintext cluster, bad TLS input.
// Asio 1.74 headers use std::exchange without including <utility> (g++ 12, C++20): first.
#include <utility>
// clang-format off
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
// clang-format on
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdio>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "live/common/session.h"
#include "live/common/tls.h"
#include "tests/live/live_cluster.h"

namespace orrery::live {
namespace {

using namespace test;  // NOLINT: the fixture
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// `orrery tls init DIR` in the cluster's scratch dir; the dir's path.
std::string InitTls(LiveCluster& c, const std::string& name) {
  const std::string dir = (fs::path(c.root()).parent_path() / name).string();
  auto r = c.Orrery({"tls", "init", dir, "--san", "node-a.example", "--san", "198.18.0.7"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir;
}

// GET `target` over HTTPS from host:port trusting `ca_file`; the status code, or -1 with `why`.
int HttpsGet(const std::string& host_port, const std::string& ca_file, const std::string& token,
             const std::string& target, std::string* body, std::string* why) {
  try {
    asio::io_context ioc;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(ca_file);
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
    const auto colon = host_port.rfind(':');
    asio::ip::tcp::resolver res(ioc);
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(s).connect(
        res.resolve(host_port.substr(0, colon), host_port.substr(colon + 1)));
    s.handshake(asio::ssl::stream_base::client);
    http::request<http::string_body> req(http::verb::get, target, 11);
    req.set(http::field::host, host_port);
    req.set(http::field::authorization, "Bearer " + token);
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> rep;
    http::read(s, buf, rep);
    *body = rep.body();
    return static_cast<int>(rep.result_int());
  } catch (const std::exception& e) {
    *why = e.what();
    return -1;
  }
}

TEST(TlsTest, InitWritesAUsableCaAndCertificateAndRefusesToOverwrite) {
  LiveCluster c;
  const std::string dir = InitTls(c, "tls");
  for (const char* f : {"ca.key", "tls.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat((fs::path(dir) / f).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  auto loaded = LoadTls(TlsSource{.dir = dir});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(loaded->enabled());
  const std::string before = ReadAll(fs::path(dir) / "tls.crt");

  // A second init refuses, names the file, and leaves the files as they were.
  auto again = c.Orrery({"tls", "init", dir});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_TRUE(Contains(again.err, "ca.key exists")) << again.err;
  EXPECT_TRUE(Contains(again.err, "--force")) << again.err;
  EXPECT_EQ(ReadAll(fs::path(dir) / "tls.crt"), before);
  // --force makes new ones.
  ASSERT_EQ(c.Orrery({"tls", "init", dir, "--force"}).exit_code, 0);
  EXPECT_NE(ReadAll(fs::path(dir) / "tls.crt"), before);

  // Bad input: a directory that cannot be made, a file in the way, bad --san / --days.
  const std::string file = (fs::path(dir) / "ca.crt").string();
  auto under_file = c.Orrery({"tls", "init", file + "/sub"});
  EXPECT_EQ(under_file.exit_code, 2);
  EXPECT_TRUE(Contains(under_file.err, "cannot create " + file + "/sub")) << under_file.err;
  auto is_file = c.Orrery({"tls", "init", file});
  EXPECT_EQ(is_file.exit_code, 2);
  EXPECT_TRUE(Contains(is_file.err, "not a directory")) << is_file.err;
  auto bad_san = c.Orrery({"tls", "init", dir + "2", "--san", "a b"});
  EXPECT_EQ(bad_san.exit_code, 2);
  EXPECT_TRUE(Contains(bad_san.err, "--san 'a b'")) << bad_san.err;
  EXPECT_FALSE(fs::exists(fs::path(dir + "2") / "ca.key"));
  auto bad_days = c.Orrery({"tls", "init", dir + "3", "--days", "0"});
  EXPECT_EQ(bad_days.exit_code, 2);
  EXPECT_TRUE(Contains(bad_days.err, "--days 0")) << bad_days.err;
  // A read-only file system (/proc) is an error naming the path, never a crash.
  auto ro = c.Orrery({"tls", "init", "/proc/orrery-tls-test"});
  EXPECT_EQ(ro.exit_code, 2);
  EXPECT_TRUE(Contains(ro.err, "/proc/orrery-tls-test")) << ro.err;
}

TEST(TlsTest, BadTlsFlagsAreRefusedBeforeAnythingStarts) {
  LiveCluster c;
  const std::string dir = InitTls(c, "tls");
  auto missing = c.Orrery({"status", "--temp-dir", c.root(), "--tls-dir", dir + "-nope"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(Contains(missing.err, "--tls-dir " + dir + "-nope: no such directory"))
      << missing.err;
  // A key that does not belong to the certificate.
  const std::string other = InitTls(c, "other");
  auto mixed = c.Orrery({"start", "--head", "--temp-dir", c.root(), "--tls-dir", dir,
                         "--tls-key", other + "/tls.key"});
  EXPECT_EQ(mixed.exit_code, 2);
  EXPECT_TRUE(Contains(mixed.err, "does not belong to the certificate")) << mixed.err;
  // A certificate another CA signed.
  auto foreign = c.Orrery({"start", "--head", "--temp-dir", c.root(), "--tls-dir", dir,
                           "--tls-ca", other + "/ca.crt"});
  EXPECT_EQ(foreign.exit_code, 2);
  EXPECT_TRUE(Contains(foreign.err, "not usable with the CA")) << foreign.err;
  // The environment is checked the same way.
  auto env = c.Orrery({"status", "--temp-dir", c.root()}, milliseconds(20000),
                      {"ORRERY_TLS_DIR=" + dir + "-nope"});
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_TRUE(Contains(env.err, "ORRERY_TLS_DIR " + dir + "-nope: no such directory")) << env.err;
  EXPECT_TRUE(c.Pids().empty());
}

// Writes `out`: a copy of DIR's leaf certificate (same key and names) signed by DIR's CA whose
// validity ended a day ago. False if OpenSSL failed.
bool WriteExpiredCert(const std::string& dir, const std::string& out) {
  auto read_cert = [](const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "r");
    X509* x = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
    if (f) std::fclose(f);
    return x;
  };
  FILE* kf = std::fopen((dir + "/ca.key").c_str(), "r");
  EVP_PKEY* ca_key = kf ? PEM_read_PrivateKey(kf, nullptr, nullptr, nullptr) : nullptr;
  if (kf) std::fclose(kf);
  X509* leaf = read_cert(dir + "/tls.crt");
  bool ok = ca_key && leaf;
  if (ok) {
    X509_gmtime_adj(X509_getm_notBefore(leaf), -2L * 86400);
    X509_gmtime_adj(X509_getm_notAfter(leaf), -1L * 86400);
    ok = X509_sign(leaf, ca_key, EVP_sha256()) > 0;
  }
  if (ok) {
    FILE* f = std::fopen(out.c_str(), "w");
    ok = f && PEM_write_X509(f, leaf) == 1;
    if (f) std::fclose(f);
  }
  X509_free(leaf);
  EVP_PKEY_free(ca_key);
  return ok;
}

// An expired certificate is refused before anything starts, naming the file and the reason
// (not a peer's "handshake failed" at the first call), by daemons and clients alike.
TEST(TlsTest, AnExpiredCertificateIsRefusedNamingIt) {
  LiveCluster c;
  const std::string dir = InitTls(c, "tls");
  const std::string expired = dir + "/expired.crt";
  ASSERT_TRUE(WriteExpiredCert(dir, expired));
  auto head = c.Orrery({"start", "--head", "--temp-dir", c.root(), "--tls-dir", dir,
                        "--tls-cert", expired});
  EXPECT_EQ(head.exit_code, 2);
  EXPECT_TRUE(Contains(head.err, expired + ": not usable with the CA")) << head.err;
  EXPECT_TRUE(Contains(head.err, "certificate has expired")) << head.err;
  auto status = c.Orrery({"status", "--temp-dir", c.root(), "--tls-dir", dir, "--tls-cert",
                          expired});
  EXPECT_EQ(status.exit_code, 2);
  EXPECT_TRUE(Contains(status.err, "certificate has expired")) << status.err;
  EXPECT_TRUE(c.Pids().empty());
}

// The live smoke path with TLS on: head + a second node, tasks on both, a job whose driver is a
// C++ API program (it and its actor's worker take TLS from the environment the node gives them),
// status, list, the jobs API over HTTPS, stop.
TEST(TlsTest, ATlsClusterRunsTasksJobsAndServesHttps) {
  LiveCluster c;
  const std::string dir = InitTls(c, "tls");
  const std::vector<std::string> tls = {"ORRERY_TLS_DIR=" + dir};
  auto head = c.StartHead("head", {"--num-cpus", "1", "--tls-dir", dir});
  ASSERT_EQ(head.exit_code, 0) << head.err;
  EXPECT_TRUE(Contains(head.out, "Jobs API at https://")) << head.out;
  auto node = c.Orrery({"start", "--address", c.address(), "--temp-dir", c.root(), "--node-name",
                        "second", "--num-cpus", "1"},
                       milliseconds(20000), tls);
  ASSERT_EQ(node.exit_code, 0) << node.err;

  for (const char* where : {"head", "second"}) {
    auto t = c.Orrery({"task", "run", "--temp-dir", c.root(), "--tls-dir", dir, "--node", where,
                       "--", "echo", std::string("hello from ") + where});
    EXPECT_EQ(t.exit_code, 0) << t.err;
    EXPECT_TRUE(Contains(t.out, std::string("hello from ") + where)) << t.out;
  }
  // TLS options after `--` belong to the task's command, not to orrery.
  auto passthrough = c.Orrery({"task", "run", "--temp-dir", c.root(), "--tls-dir", dir, "--",
                               "echo", "--tls-dir", "kept"});
  EXPECT_EQ(passthrough.exit_code, 0) << passthrough.err;
  EXPECT_TRUE(Contains(passthrough.out, "--tls-dir kept")) << passthrough.out;
  auto job = c.Orrery({"job", "submit", "--temp-dir", c.root(), "--", COUNTER_BINARY,
                       "--counter-name", "tls_counter"},
                      milliseconds(40000), tls);
  EXPECT_EQ(job.exit_code, 0) << job.out << job.err;
  EXPECT_TRUE(Contains(job.out, "tls_counter got 5")) << job.out;

  // A C++ API driver run by hand takes TLS from ORRERY_TLS_DIR; without it, a clear refusal.
  const std::vector<std::string> driver_env = {"ORRERY_ADDRESS=" + c.address(),
                                               "ORRERY_TOKEN=" + c.Token()};
  std::vector<std::string> with_tls = driver_env;
  with_tls.push_back("ORRERY_TLS_DIR=" + dir);
  auto direct = c.Exec(COUNTER_BINARY, {"--counter-name", "direct"}, milliseconds(30000), with_tls);
  EXPECT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_TRUE(Contains(direct.out, "direct got 5")) << direct.out;
  auto plain_driver = c.Exec(COUNTER_BINARY, {}, milliseconds(30000), driver_env);
  EXPECT_EQ(plain_driver.exit_code, 1) << plain_driver.out;
  EXPECT_TRUE(Contains(plain_driver.err, "does the cluster use TLS?")) << plain_driver.err;

  auto status = c.Orrery({"status", "--temp-dir", c.root()}, milliseconds(20000), tls);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(Contains(status.out, "2 alive")) << status.out;
  auto list = c.Orrery({"list", "nodes", "--format", "json", "--temp-dir", c.root()},
                       milliseconds(20000), tls);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(json::parse(list.out, nullptr, false).size(), 2u) << list.out;

  // The jobs API speaks HTTPS with the cluster's certificate.
  auto session = LatestSession(c.root());
  ASSERT_TRUE(session.ok());
  auto dash = ReadFileTrimmed(*session / "dashboard_address");
  ASSERT_TRUE(dash.ok());
  std::string body, why;
  EXPECT_EQ(HttpsGet(*dash, dir + "/ca.crt", c.Token(), "/api/jobs/", &body, &why), 200) << why;
  EXPECT_TRUE(Contains(body, "tls_counter")) << body;
  // Plain HTTP to it is answered, in plain HTTP, with what to do.
  {
    asio::io_context ioc;
    beast::tcp_stream plain(ioc);
    const auto colon = dash->rfind(':');
    asio::ip::tcp::resolver res(ioc);
    plain.connect(res.resolve(dash->substr(0, colon), dash->substr(colon + 1)));
    http::request<http::string_body> req(http::verb::get, "/api/version", 11);
    http::write(plain, req);
    beast::flat_buffer buf;
    http::response<http::string_body> rep;
    beast::error_code ec;
    http::read(plain, buf, rep, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(rep.result_int(), 400u);
    EXPECT_TRUE(Contains(rep.body(), "use https://")) << rep.body();
  }
  // Another CA does not trust it.
  const std::string other = InitTls(c, "other");
  EXPECT_EQ(HttpsGet(*dash, other + "/ca.crt", c.Token(), "/api/version", &body, &why), -1);
  EXPECT_TRUE(Contains(why, "certificate verify failed")) << why;

  auto stop = c.Orrery({"stop", "--temp-dir", c.root()}, milliseconds(20000), tls);
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_TRUE(Contains(stop.out, "Stopped")) << stop.out;
}

// Refusals: a plaintext client, a client with another CA's certificate and a plaintext node are
// turned away at once with a message that names TLS; the cluster token is still required.
TEST(TlsTest, ATlsClusterRefusesPlaintextAndForeignClients) {
  LiveCluster c;
  const std::string dir = InitTls(c, "tls");
  const std::string other = InitTls(c, "other");
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "1", "--tls-dir", dir}).exit_code, 0);

  const auto t0 = Clock::now();
  auto plain = c.Orrery({"status", "--temp-dir", c.root()});
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_TRUE(Contains(plain.err, "does the cluster use TLS?")) << plain.err;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5)) << "refused at once, not a hang";

  auto foreign = c.Orrery({"status", "--temp-dir", c.root(), "--tls-dir", other});
  EXPECT_EQ(foreign.exit_code, 2);
  EXPECT_TRUE(Contains(foreign.err, "CA")) << foreign.err;

  auto plain_node = c.AddNode("plain", {"--num-cpus", "1"});
  EXPECT_NE(plain_node.exit_code, 0);
  EXPECT_TRUE(Contains(plain_node.err, "TLS")) << plain_node.err;

  // Right certificate, wrong token: still refused.
  auto wrong_token = c.Orrery({"status", "--address", c.address(), "--tls-dir", dir},
                              milliseconds(20000), {"ORRERY_TOKEN=" + std::string(64, 'a')});
  EXPECT_EQ(wrong_token.exit_code, 2);
  EXPECT_TRUE(Contains(wrong_token.err, "token")) << wrong_token.err;

  // In-process: a plaintext gRPC client of the TLS head fails fast.
  HeadClient in_process(c.address(), c.Token(), milliseconds(3000));
  EXPECT_FALSE(in_process.Ready().ok());

  // The server demands a client certificate from the cluster CA: a client that trusts the
  // head's certificate but presents none, or presents another CA's, is refused; the cluster's
  // own certificate with the right token is served.
  auto ready = [&](const grpc::SslCredentialsOptions& o) {
    auto stub = v1::HeadService::NewStub(grpc::CreateChannel(c.address(), grpc::SslCredentials(o)));
    return CallUnary(*stub, c.Token(), milliseconds(3000), &v1::HeadService::Stub::Ready,
                     v1::ReadyRequest());
  };
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = ReadAll(fs::path(dir) / "ca.crt");
  EXPECT_FALSE(ready(no_cert).ok()) << "a client without a certificate was served";
  grpc::SslCredentialsOptions other_cert = no_cert;
  other_cert.pem_private_key = ReadAll(fs::path(other) / "tls.key");
  other_cert.pem_cert_chain = ReadAll(fs::path(other) / "tls.crt");
  EXPECT_FALSE(ready(other_cert).ok()) << "a client with another CA's certificate was served";
  grpc::SslCredentialsOptions own_cert = no_cert;
  own_cert.pem_private_key = ReadAll(fs::path(dir) / "tls.key");
  own_cert.pem_cert_chain = ReadAll(fs::path(dir) / "tls.crt");
  auto served = ready(own_cert);
  EXPECT_TRUE(served.ok()) << served.status().message();
}

TEST(TlsTest, TlsClientsOfAPlaintextClusterGetAClearError) {
  LiveCluster c;
  const std::string dir = InitTls(c, "tls");
  ASSERT_EQ(c.StartHead("head", {"--num-cpus", "1"}).exit_code, 0);
  auto r = c.Orrery({"status", "--temp-dir", c.root(), "--tls-dir", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "it speaks plaintext")) << r.err;
  auto node = c.AddNode("tls-node", {"--num-cpus", "1", "--tls-dir", dir});
  EXPECT_NE(node.exit_code, 0);
  EXPECT_TRUE(Contains(node.err, "plaintext")) << node.err;
}

TEST(TlsTest, BindingBeyondLoopbackWithoutTlsWarns) {
  LiveCluster c;
  auto plain = c.StartHead("head", {"--num-cpus", "1", "--bind", "0.0.0.0"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_TRUE(Contains(plain.err, "warning: binding 0.0.0.0 without TLS")) << plain.err;
  c.Orrery({"stop", "--temp-dir", c.root()});
  const std::string dir = InitTls(c, "tls");
  auto tls = c.StartHead("head2", {"--num-cpus", "1", "--bind", "0.0.0.0", "--tls-dir", dir});
  ASSERT_EQ(tls.exit_code, 0) << tls.err;
  EXPECT_FALSE(Contains(tls.err, "warning")) << tls.err;
}

}  // namespace
}  // namespace orrery::live

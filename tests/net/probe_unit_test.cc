// Health probes and the advertised address (issue 17 item 4) without root or a network: the pure
// probe answers, the node-address checks against this machine's interfaces, and the node's probe
// server over loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "live/common/health.h"
#include "live/common/node_address.h"

namespace orrery::live {
namespace {

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(AnswerProbe, HealthzIsOkWhateverTheReadiness) {
  auto r = AnswerProbe("GET", "/healthz", [] { return std::string("registering"); });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, 200);
  EXPECT_EQ(r->body, "ok\n");
}

TEST(AnswerProbe, ReadyzSaysWhyNotInOneLine) {
  auto r = AnswerProbe("GET", "/readyz?verbose=1", [] { return std::string("a\nb"); });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, 503);
  EXPECT_EQ(r->body, "not ready: a b\n");
  r = AnswerProbe("HEAD", "/readyz", [] { return std::string(); });
  EXPECT_EQ(r->code, 200);
  r = AnswerProbe("GET", "/readyz", nullptr);  // no check: ready
  EXPECT_EQ(r->code, 200);
}

TEST(AnswerProbe, OtherPathsAreNotProbesAndOtherMethodsAreRefused) {
  EXPECT_FALSE(AnswerProbe("GET", "/api/jobs/", nullptr).has_value());
  EXPECT_FALSE(AnswerProbe("GET", "/healthzz", nullptr).has_value());
  auto r = AnswerProbe("POST", "/readyz", nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, 405);
}

TEST(NodeAddress, AnAddressThisMachineHasIsAccepted) {
  EXPECT_TRUE(CheckNodeIp("127.0.0.1", "127.0.0.1").ok());
  EXPECT_TRUE(CheckNodeIp("127.0.0.1", "0.0.0.0").ok());
  EXPECT_TRUE(CheckBindAddress("0.0.0.0").ok());
  EXPECT_TRUE(CheckBindAddress("127.0.0.1").ok());
  EXPECT_TRUE(CheckBindAddress("localhost").ok()) << "names are resolved later, not here";
}

TEST(NodeAddress, BadAddressesAreRefusedNamingTheFlag) {
  // 198.51.100.0/24 is TEST-NET-2: no machine has it.
  Status s = CheckNodeIp("198.51.100.77", "0.0.0.0");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(),
                       "--node-ip 198.51.100.77: this machine does not have that "
                       "address (its addresses: "))
      << s.message();
  EXPECT_TRUE(Contains(s.message(), "127.0.0.1")) << "lists the machine's addresses";
  s = CheckBindAddress("198.51.100.77");
  EXPECT_TRUE(Contains(s.message(), "--bind 198.51.100.77: this machine does not have"))
      << s.message();
  s = CheckNodeIp("not-an-ip", "0.0.0.0");
  EXPECT_TRUE(Contains(s.message(), "--node-ip: expected an IPv4 or IPv6 address")) << s.message();
  s = CheckNodeIp("0.0.0.0", "0.0.0.0");
  EXPECT_TRUE(Contains(s.message(), "a wildcard cannot be dialled")) << s.message();
  s = CheckNodeIp("127.0.0.1", "127.0.0.2");
  EXPECT_TRUE(Contains(s.message(), "the daemons listen on --bind 127.0.0.2 only")) << s.message();
}

TEST(NodeAddress, AdvertisedHostPrefersNodeIpThenBindThenHostname) {
  EXPECT_EQ(AdvertisedHost("10.0.0.1", "0.0.0.0", "h"), "10.0.0.1");
  EXPECT_EQ(AdvertisedHost("", "10.0.0.2", "h"), "10.0.0.2");
  EXPECT_EQ(AdvertisedHost("", "0.0.0.0", "h"), "h");
  EXPECT_EQ(AdvertisedHost("", "::", "h"), "h");
}

// One HTTP/1.1 GET over loopback: "<status code> <body>".
std::string Get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string resp;
  char buf[512];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, n);
  ::close(fd);
  const auto body = resp.find("\r\n\r\n");
  if (resp.size() < 12 || body == std::string::npos) return "bad reply: " + resp;
  return resp.substr(9, 3) + " " + resp.substr(body + 4);
}

TEST(HealthServer, AnswersTheProbesFromTheDaemonsReadiness) {
  std::atomic<bool> registered{false};
  auto server = HealthServer::Start("127.0.0.1", 0, [&] {
    return registered ? std::string() : std::string("registering with the head at h:1");
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  EXPECT_EQ(Get(port, "/healthz"), "200 ok\n");
  EXPECT_EQ(Get(port, "/readyz"), "503 not ready: registering with the head at h:1\n");
  registered = true;
  EXPECT_EQ(Get(port, "/readyz"), "200 ok\n");
  EXPECT_EQ(Get(port, "/metrics").substr(0, 4), "404 ");
  (*server)->Stop();
  EXPECT_EQ(Get(port, "/healthz"), "connect failed");
}

TEST(HealthServer, APortInUseOrOutOfRangeIsAClearError) {
  auto first = HealthServer::Start("127.0.0.1", 0, nullptr);
  ASSERT_TRUE(first.ok());
  auto second = HealthServer::Start("127.0.0.1", (*first)->port(), nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(Contains(second.status().message(), "for the health probes (--health-port)"))
      << second.status().message();
  auto bad = HealthServer::Start("127.0.0.1", 70000, nullptr);
  EXPECT_TRUE(Contains(bad.status().message(), "--health-port: expected 0..65535"));
}

}  // namespace
}  // namespace orrery::live

#include "live/rpc/rpc_util.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "live/common/port_check.h"
#include "live/common/tls.h"

namespace orrery::live {

std::shared_ptr<grpc::ChannelCredentials> ClientCredentials() {
  const TlsConfig& tls = ProcessTls();
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  // The peer must present a certificate that chains to the cluster CA; its host name is not
  // checked. The CA is the cluster's own (`orrery tls init`): holding a certificate it signed is
  // what makes a member, and members reach each other by whatever address a node advertises (a
  // host name, an address picked at start) -- names no certificate made in advance could list.
  namespace ex = grpc::experimental;
  ex::TlsChannelCredentialsOptions o;
  o.set_certificate_provider(std::make_shared<ex::StaticDataCertificateProvider>(
      tls.ca_pem, std::vector<ex::IdentityKeyCertPair>{{tls.key_pem, tls.cert_pem}}));
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  o.set_verify_server_certs(true);  // the chain, against the CA
  o.set_certificate_verifier(std::make_shared<ex::NoOpCertificateVerifier>());
  o.set_check_call_host(false);
  return ex::TlsCredentials(o);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
  const TlsConfig& tls = ProcessTls();
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = tls.ca_pem;
  o.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(o);
}

std::shared_ptr<grpc::Channel> OpenChannel(const std::string& address,
                                           const grpc::ChannelArguments& args) {
  return grpc::CreateCustomChannel(address, ClientCredentials(), args);
}

grpc::Status CheckToken(const grpc::ServerContextBase& ctx, const std::string& token) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(kAuthMetadataKey);
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing cluster token");
  }
  const std::string got(it->second.data(), it->second.size());
  const std::string want = "Bearer " + token;
  // Constant-time over the expected length.
  unsigned diff = got.size() == want.size() ? 0u : 1u;
  for (size_t i = 0; i < want.size(); ++i) {
    const char g = i < got.size() ? got[i] : '\0';
    diff |= static_cast<unsigned>(static_cast<unsigned char>(g ^ want[i]));
  }
  if (diff != 0 || token.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid cluster token");
  }
  return grpc::Status::OK;
}

void AttachToken(grpc::ClientContext* ctx, const std::string& token) {
  ctx->AddMetadata(kAuthMetadataKey, "Bearer " + token);
}

StatusOr<std::unique_ptr<grpc::Server>> StartDaemonServer(const std::string& bind, int port,
                                                          grpc::Service* service,
                                                          const std::string& what,
                                                          int* bound_port) {
  grpc::ServerBuilder b;
  b.AddListeningPort(bind + ":" + std::to_string(port), ServerCredentials(), bound_port);
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  b.RegisterService(service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || *bound_port == 0) {
    Status why = CheckPortFree(bind, port, what);
    return why.ok() ? Status(StatusCode::kUnavailable,
                             "cannot listen on " + bind + ":" + std::to_string(port))
                    : why;
  }
  return server;
}

}  // namespace orrery::live

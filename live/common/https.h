// The TLS context of the daemons' HTTPS ports (the head's dashboard/jobs port, a node's health
// probes): TLS 1.2 or newer, the process's PEM identity (live/common/tls.h), no client
// certificate asked for (the token authenticates; probes and browsers have none).
//
// Thread safety: configure before the server starts; asio contexts are then read-only.
#pragma once

#include <boost/asio/ssl.hpp>
#include <string>

#include "core/status.h"

namespace orrery::live {

// Sets up `ctx` (a tls_server context) with the certificate chain and key. InvalidArgument
// prefixed with `what` when either cannot be used.
inline Status ConfigureHttpsServer(boost::asio::ssl::context& ctx, const std::string& cert_pem,
                                   const std::string& key_pem, const std::string& what) {
  namespace ssl = boost::asio::ssl;
  boost::system::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (!ec) ctx.use_certificate_chain(boost::asio::buffer(cert_pem), ec);
  if (!ec) ctx.use_private_key(boost::asio::buffer(key_pem), ssl::context::pem, ec);
  if (ec) return InvalidArgument(what + " TLS certificate or key: " + ec.message());
  return Status::Ok();
}

}  // namespace orrery::live

#include "live/rpc/rpc_util.h"

namespace orrery::live {

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

}  // namespace orrery::live

// The head's store of runtime-env packages (live/common/runtime_env.h): working directories uploaded by
// clients, named by the SHA-256 of their bytes, downloaded by node runtime-env agents.
//
// PackageStore: files `<dir>/<sha256>.pkg`, written to a temp name and renamed once the bytes
// hash to their name, so a reader never sees a partial package. Thread-safe (the files are the
// state).
//
// PackageService: the three HeadService RPCs (UploadPackage, HasPackage, DownloadPackage) on top
// of a store. The head's handlers delegate to it; it checks the token, gathers an upload's chunks
// on gRPC's threads (bounded by max_package_bytes) and does the blocking disk work (hashing,
// writing, reading) on its own EventLoop, never on the head's state loop or in a handler.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "live/rpc/event_loop.h"
#include "live/common/runtime_env.h"
#include "orrery.grpc.pb.h"

namespace orrery::live {

class PackageStore {
 public:
  // Uses (creating) `dir`.
  static StatusOr<std::unique_ptr<PackageStore>> Open(const std::filesystem::path& dir);
  // True (and its size) if the package is stored.
  bool Has(const std::string& sha256, uint64_t* bytes = nullptr) const;
  // Stores `bytes` as `sha256`. InvalidArgument if they do not hash to it. Idempotent.
  Status Put(const std::string& sha256, std::string_view bytes);
  // NotFound if absent.
  StatusOr<std::string> Read(const std::string& sha256) const;
  std::filesystem::path PathOf(const std::string& sha256) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit PackageStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

// InvalidArgument naming `field` unless `s` is 64 lowercase hex digits.
Status ValidateSha256(const std::string& s, std::string_view field);

struct PackageServiceOptions {
  std::string token;  // REQUIRES: non-empty
  // Packages go to `<session_dir>/packages/`; empty: a private temp dir removed on destruction.
  std::string session_dir;
  uint64_t max_package_bytes = kDefaultWorkingDirLimitBytes + (uint64_t{1} << 20);  // + headers
};

class PackageService {
 public:
  static StatusOr<std::unique_ptr<PackageService>> Create(PackageServiceOptions options);
  ~PackageService();

  grpc::ServerReadReactor<v1::PackageChunk>* Upload(grpc::CallbackServerContext* ctx,
                                                    v1::UploadPackageReply* reply);
  grpc::ServerUnaryReactor* Has(grpc::CallbackServerContext* ctx, const v1::HasPackageRequest* req,
                                v1::HasPackageReply* reply);
  grpc::ServerWriteReactor<v1::PackageChunk>* Download(grpc::CallbackServerContext* ctx,
                                                       const v1::DownloadPackageRequest* req);
  // Drops the disk work not yet done (calls still open are finished UNAVAILABLE by gRPC's
  // shutdown). Idempotent; call before the server shuts down.
  void Stop();
  const PackageStore& store() const { return *store_; }

 private:
  class UploadReactor;
  PackageService(PackageServiceOptions options, std::unique_ptr<PackageStore> store, bool owned)
      : options_(std::move(options)), store_(std::move(store)), owned_dir_(owned) {}

  PackageServiceOptions options_;
  std::unique_ptr<PackageStore> store_;
  bool owned_dir_ = false;
  EventLoop io_;  // blocking disk work
};

}  // namespace orrery::live

#include "live/head/package_store.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "live/common/file_stream.h"
#include "live/rpc/rpc_handler.h"
#include "live/rpc/rpc_util.h"

namespace orrery::live {

namespace fs = std::filesystem;

namespace {
constexpr size_t kChunk = 1 << 20;
void Log(const std::string& line) { std::cerr << "[head] " << line << std::endl; }
}  // namespace

Status ValidateSha256(const std::string& s, std::string_view field) {
  const bool ok = s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (ok) return Status::Ok();
  return InvalidArgument(std::string(field) + ": expected 64 lowercase hex digits (a SHA-256)");
}

// ---- PackageStore ---------------------------------------------------------------------------

StatusOr<std::unique_ptr<PackageStore>> PackageStore::Open(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status(StatusCode::kUnavailable, "cannot create " + dir.string() + ": " + ec.message());
  return std::unique_ptr<PackageStore>(new PackageStore(dir));
}

fs::path PackageStore::PathOf(const std::string& sha256) const { return dir_ / (sha256 + ".pkg"); }

bool PackageStore::Has(const std::string& sha256, uint64_t* bytes) const {
  std::error_code ec;
  const auto size = fs::file_size(PathOf(sha256), ec);
  if (ec) return false;
  if (bytes != nullptr) *bytes = size;
  return true;
}

Status PackageStore::Put(const std::string& sha256, std::string_view bytes) {
  ORRERY_RETURN_IF_ERROR(ValidateSha256(sha256, "sha256"));
  const std::string got = Sha256Hex(bytes);
  if (got != sha256) {
    return InvalidArgument("sha256: the uploaded bytes hash to " + got + ", not " + sha256);
  }
  if (Has(sha256)) return Status::Ok();
  const fs::path dest = PathOf(sha256);
  std::string tmp = (dir_ / (".upload_XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Status(StatusCode::kUnavailable, "cannot write into " + dir_.string());
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  std::error_code ec;
  if (done != bytes.size()) {
    fs::remove(tmp, ec);
    return Status(StatusCode::kUnavailable, "cannot write " + dest.string());
  }
  fs::rename(tmp, dest, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status(StatusCode::kUnavailable, "cannot store " + dest.string());
  }
  return Status::Ok();
}

StatusOr<std::string> PackageStore::Read(const std::string& sha256) const {
  std::ifstream in(PathOf(sha256), std::ios::binary);
  if (!in) return NotFound("package " + sha256 + " is not stored at the head");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- PackageService -------------------------------------------------------------------------

class PackageService::UploadReactor final : public grpc::ServerReadReactor<v1::PackageChunk> {
 public:
  UploadReactor(PackageService* svc, grpc::CallbackServerContext* ctx,
                v1::UploadPackageReply* reply)
      : svc_(svc), reply_(reply) {
    if (auto s = CheckToken(*ctx, svc_->options_.token); !s.ok()) {
      Finish(s);
      return;
    }
    StartRead(&chunk_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Complete();
      return;
    }
    if (first_) {
      first_ = false;
      sha_ = chunk_.sha256();
      if (auto s = ValidateSha256(sha_, "sha256"); !s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
      if (chunk_.total_bytes() > svc_->options_.max_package_bytes) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "working_dir: the package has " + std::to_string(chunk_.total_bytes()) +
                                " bytes, more than the head's limit of " +
                                std::to_string(svc_->options_.max_package_bytes)));
        return;
      }
      data_.reserve(chunk_.total_bytes());
    }
    data_ += chunk_.data();
    if (data_.size() > svc_->options_.max_package_bytes) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "working_dir: the package is larger than the head's limit of " +
                              std::to_string(svc_->options_.max_package_bytes) + " bytes"));
      return;
    }
    StartRead(&chunk_);
  }
  void OnDone() override { delete this; }

 private:
  static grpc::Status ToGrpc(const Status& s) {
    return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message());
  }
  // The client finished writing: hash and store on the io loop, then answer.
  void Complete() {
    if (first_) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no package chunk sent"));
      return;
    }
    svc_->io_.Post([this] {
      const bool had = svc_->store_->Has(sha_);
      Status s = svc_->store_->Put(sha_, data_);
      data_.clear();
      if (s.ok()) {
        reply_->set_uri(PackageUri(sha_));
        reply_->set_already_present(had);
        if (!had) Log("stored package " + sha_);
      }
      Finish(ToGrpc(s));
    });
  }

  PackageService* svc_;
  v1::UploadPackageReply* reply_;
  v1::PackageChunk chunk_;
  bool first_ = true;
  std::string sha_;
  std::string data_;
};

StatusOr<std::unique_ptr<PackageService>> PackageService::Create(PackageServiceOptions options) {
  fs::path dir;
  bool owned = false;
  if (options.session_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "orrery_packages_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Status(StatusCode::kUnavailable, "cannot create a temp dir for packages");
    }
    dir = tmpl;
    owned = true;
  } else {
    dir = fs::path(options.session_dir) / "packages";
  }
  auto store = PackageStore::Open(dir);
  if (!store.ok()) return store.status();
  return std::unique_ptr<PackageService>(
      new PackageService(std::move(options), std::move(*store), owned));
}

PackageService::~PackageService() {
  Stop();
  if (owned_dir_) {
    std::error_code ec;
    fs::remove_all(store_->dir(), ec);
  }
}

void PackageService::Stop() {
  // Let the disk work already queued finish its calls (bounded), then stop.
  (void)io_.RunSync([] {});
  io_.Stop();
}

grpc::ServerReadReactor<v1::PackageChunk>* PackageService::Upload(grpc::CallbackServerContext* ctx,
                                                                  v1::UploadPackageReply* reply) {
  return new UploadReactor(this, ctx, reply);
}

grpc::ServerUnaryReactor* PackageService::Has(grpc::CallbackServerContext* ctx,
                                              const v1::HasPackageRequest* req,
                                              v1::HasPackageReply* reply) {
  return ValidateThenAnswerOnLoop(ctx, options_.token, io_, [this, req, reply]() -> Validated {
    if (auto s = ValidateSha256(req->sha256(), "sha256"); !s.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, s.message());
    }
    return LoopHalf([this, reply, sha = req->sha256()] {
      uint64_t bytes = 0;
      reply->set_present(store_->Has(sha, &bytes));
      reply->set_bytes(bytes);
      return grpc::Status::OK;
    });
  });
}

grpc::ServerWriteReactor<v1::PackageChunk>* PackageService::Download(
    grpc::CallbackServerContext* ctx, const v1::DownloadPackageRequest* req) {
  auto w = StreamWriter<v1::PackageChunk>::Create(false);
  if (RefuseWithoutToken(*ctx, options_.token, *w)) return w.get();
  if (auto s = ValidateSha256(req->sha256(), "sha256"); !s.ok()) {
    w->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, s.message()));
    return w.get();
  }
  // Flow control: the next chunk is read from disk only once the previous one was written.
  io_.Post([this, w, sha = req->sha256()] {
    StreamFileChunks<v1::PackageChunk>(
        w, io_, store_->PathOf(sha).string(), kChunk,
        [sha](std::string_view data, bool first, uint64_t total) {
          v1::PackageChunk c;
          if (first) {
            c.set_sha256(sha);
            c.set_total_bytes(total);
          }
          c.set_data(data.data(), data.size());
          return c;
        },
        grpc::Status(grpc::StatusCode::NOT_FOUND, "package " + sha + " is not stored at the head"));
  });
  return w.get();
}

}  // namespace orrery::live

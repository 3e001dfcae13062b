#include "live/common/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

namespace orrery::live {

namespace fs = std::filesystem;

namespace {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

// The last libcrypto error as text (and the queue cleared), for messages.
std::string SslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown libcrypto error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

StatusOr<std::string> ReadWhole(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return InvalidArgument(what + ": " + path + " does not exist");
  }
  if (fs::is_directory(path, ec)) return InvalidArgument(what + ": " + path + " is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(what + ": cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

BioPtr MemBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate in a PEM bundle (at least one).
StatusOr<std::vector<X509Ptr>> ParseCerts(const std::string& pem, const std::string& what) {
  std::vector<X509Ptr> out;
  BioPtr bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the bundle reads as an error
  if (out.empty()) return InvalidArgument(what + ": expected a PEM certificate");
  return out;
}

std::string Abs(const std::string& p) {
  std::error_code ec;
  auto a = fs::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

std::string PemOf(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (write(bio.get()) != 1) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

TlsSource TlsSourceFromEnv() {
  TlsSource s;
  auto get = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  s.dir = get("ORRERY_TLS_DIR");
  s.cert = get("ORRERY_TLS_CERT");
  s.key = get("ORRERY_TLS_KEY");
  s.ca = get("ORRERY_TLS_CA");
  s.from_env = true;
  return s;
}

StatusOr<TlsConfig> LoadTls(const TlsSource& source) {
  TlsConfig c;
  if (source.empty()) return c;
  // Messages name where a value came from: a flag, or the environment variable.
  const bool env = source.from_env;
  const std::string dir_flag = env ? "ORRERY_TLS_DIR" : "--tls-dir";
  const char* cert_flag = env ? "ORRERY_TLS_CERT" : "--tls-cert";
  const char* key_flag = env ? "ORRERY_TLS_KEY" : "--tls-key";
  const char* ca_flag = env ? "ORRERY_TLS_CA" : "--tls-ca";
  struct File {
    const std::string& flag_value;
    const char* flag;
    const char* name;
    std::string* path;
  };
  if (!source.dir.empty()) {
    std::error_code ec;
    if (fs::exists(source.dir, ec) && !fs::is_directory(source.dir, ec)) {
      return InvalidArgument(dir_flag + " " + source.dir +
                             ": not a directory (expected one holding ca.crt, tls.crt, tls.key)");
    }
    if (!fs::is_directory(source.dir, ec)) {
      return InvalidArgument(dir_flag + " " + source.dir +
                             ": no such directory (make one with `orrery tls init " + source.dir +
                             "`)");
    }
    c.dir = Abs(source.dir);
  }
  for (const File& f : {File{source.cert, cert_flag, kTlsCertFile, &c.cert_path},
                        File{source.key, key_flag, kTlsKeyFile, &c.key_path},
                        File{source.ca, ca_flag, kTlsCaCertFile, &c.ca_path}}) {
    if (!f.flag_value.empty()) {
      *f.path = Abs(f.flag_value);
    } else if (!source.dir.empty()) {
      *f.path = (fs::path(c.dir) / f.name).string();
    } else {
      return InvalidArgument(std::string(f.flag) + ": missing (without " + dir_flag +
                             ", give all of " + cert_flag + ", " + key_flag + " and " + ca_flag +
                             ")");
    }
  }
  // Messages name the flag the file came from.
  auto what = [&](const std::string& flag_value, const char* flag) {
    return flag_value.empty() ? dir_flag + " " + source.dir : std::string(flag);
  };
  auto cert = ReadWhole(c.cert_path, what(source.cert, cert_flag));
  if (!cert.ok()) return cert.status();
  auto key = ReadWhole(c.key_path, what(source.key, key_flag));
  if (!key.ok()) return key.status();
  auto ca = ReadWhole(c.ca_path, what(source.ca, ca_flag));
  if (!ca.ok()) return ca.status();

  auto certs = ParseCerts(*cert, what(source.cert, cert_flag) + ": " + c.cert_path);
  if (!certs.ok()) return certs.status();
  auto cas = ParseCerts(*ca, what(source.ca, ca_flag) + ": " + c.ca_path);
  if (!cas.ok()) return cas.status();
  BioPtr kb = MemBio(*key);
  // No passphrase: with a null callback OpenSSL would prompt on the terminal for one.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  KeyPtr pkey(PEM_read_bio_PrivateKey(kb.get(), nullptr, no_passphrase, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return InvalidArgument(what(source.key, key_flag) + ": " + c.key_path +
                           ": expected an unencrypted PEM private key");
  }
  X509* leaf = (*certs)[0].get();
  if (X509_check_private_key(leaf, pkey.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(c.key_path + ": this key does not belong to the certificate " +
                           c.cert_path);
  }
  // The leaf must chain to the CA and be valid now: a mismatch found here is a clear message,
  // found at the first handshake it is a peer's "handshake failed".
  StorePtr store(X509_STORE_new());
  for (auto& x : *cas) X509_STORE_add_cert(store.get(), x.get());
  STACK_OF(X509)* chain = sk_X509_new_null();
  for (size_t i = 1; i < certs->size(); ++i) sk_X509_push(chain, (*certs)[i].get());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, chain);
  const bool verified = X509_verify_cert(ctx.get()) == 1;
  const int err = X509_STORE_CTX_get_error(ctx.get());
  sk_X509_free(chain);
  ERR_clear_error();
  if (!verified) {
    return InvalidArgument(c.cert_path + ": not usable with the CA " + c.ca_path + ": " +
                           X509_verify_cert_error_string(err));
  }
  c.cert_pem = *std::move(cert);
  c.key_pem = *std::move(key);
  c.ca_pem = *std::move(ca);
  return c;
}

StatusOr<TlsConfig> ResolveTls(const TlsSource& flags) {
  if (!flags.empty()) return LoadTls(flags);
  return LoadTls(TlsSourceFromEnv());
}

namespace {
std::mutex& TlsMu() {
  static std::mutex mu;
  return mu;
}
std::optional<TlsConfig>& TlsSlot() {
  static std::optional<TlsConfig> slot;
  return slot;
}
}  // namespace

void SetProcessTls(TlsConfig config) {
  // Children see exactly this identity: the files, never a dir whose files were overridden.
  ::unsetenv("ORRERY_TLS_DIR");
  if (config.enabled()) {
    ::setenv("ORRERY_TLS_CERT", config.cert_path.c_str(), 1);
    ::setenv("ORRERY_TLS_KEY", config.key_path.c_str(), 1);
    ::setenv("ORRERY_TLS_CA", config.ca_path.c_str(), 1);
  } else {
    ::unsetenv("ORRERY_TLS_CERT");
    ::unsetenv("ORRERY_TLS_KEY");
    ::unsetenv("ORRERY_TLS_CA");
  }
  std::lock_guard<std::mutex> l(TlsMu());
  TlsSlot() = std::move(config);
}

const TlsConfig& ProcessTls() {
  std::lock_guard<std::mutex> l(TlsMu());
  auto& slot = TlsSlot();
  if (!slot) {
    auto c = ResolveTls(TlsSource{});
    if (!c.ok()) {
      std::cerr << "orrery: TLS: " << c.status().message() << std::endl;
      std::_Exit(2);
    }
    slot = *std::move(c);
  }
  return *slot;
}

std::string DescribeTlsFailure(const Status& s) {
  if (s.code() != StatusCode::kUnavailable && s.code() != StatusCode::kUnknown) return "";
  const std::string& m = s.message();
  const bool tls = ProcessTls().enabled();
  auto has = [&](const char* w) { return m.find(w) != std::string::npos; };
  if (tls && (has("WRONG_VERSION_NUMBER") || has("wrong version number") ||
              has("packet length too long") || has("record layer failure"))) {
    return "the TLS handshake failed: it speaks plaintext (this process has --tls-dir or "
           "ORRERY_TLS_DIR; the cluster was started without TLS)";
  }
  if (tls && (has("CERTIFICATE_VERIFY_FAILED") || has("certificate verify failed"))) {
    return "its certificate is not signed by this --tls-dir's CA (another cluster's certificates?)";
  }
  if (tls && (has("alert") || has("Handshake") || has("handshake"))) {
    return "the TLS handshake failed (the peer rejected this certificate: another cluster's CA?)";
  }
  if (!tls && (has("Socket closed") || has("Connection reset"))) {
    return "the connection was closed at once: does the cluster use TLS? (pass --tls-dir DIR or "
           "set ORRERY_TLS_DIR)";
  }
  return "";
}

Status CheckSan(const std::string& san) {
  unsigned char buf[16];
  if (::inet_pton(AF_INET, san.c_str(), buf) == 1 || ::inet_pton(AF_INET6, san.c_str(), buf) == 1) {
    return Status::Ok();
  }
  auto bad = [&](const std::string& why) {
    return InvalidArgument("--san '" + san + "': expected a host name or an IP address (" + why +
                           ")");
  };
  if (san.empty()) return bad("empty");
  if (san.size() > 253) return bad("longer than 253 characters");
  std::string rest = san.rfind("*.", 0) == 0 ? san.substr(2) : san;
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t dot = rest.find('.', start);
    const std::string label = rest.substr(start, dot == std::string::npos ? dot : dot - start);
    if (label.empty()) return bad("an empty label");
    if (label.size() > 63) return bad("a label longer than 63 characters");
    for (unsigned char ch : label) {
      if (!std::isalnum(ch) && ch != '-') return bad("character '" + std::string(1, ch) + "'");
    }
    if (label.front() == '-' || label.back() == '-') return bad("a label starts or ends with '-'");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return Status::Ok();
}

namespace {

StatusOr<KeyPtr> NewKey() {
  KeyPtr k(EVP_EC_gen("P-256"));
  if (!k) return Status(StatusCode::kInternal, "cannot make a P-256 key: " + SslError());
  return k;
}

// One v3 extension from its config text ("critical,CA:TRUE").
Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Status(StatusCode::kInternal,
                  std::string("certificate extension ") + OBJ_nid2sn(nid) + "=" + value + ": " +
                      SslError());
  }
  return Status::Ok();
}

StatusOr<X509Ptr> NewCert(const std::string& cn, EVP_PKEY* key, int days) {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);  // v3
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get())) == nullptr) {
    return Status(StatusCode::kInternal, "certificate serial: " + SslError());
  }
  // Valid from 5 minutes ago: machines whose clocks differ a little accept it at once.
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -300);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(days) * 86400);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("orrery"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_pubkey(x.get(), key);
  return x;
}

Status WriteFile(const fs::path& path, const std::string& text, mode_t mode, bool force) {
  const int flags = O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL) | O_CLOEXEC | O_NOFOLLOW;
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    const int e = errno;
    if (e == EEXIST) {
      return AlreadyExists(path.string() + " exists (pass --force to overwrite it)");
    }
    return Status(StatusCode::kPermissionDenied,
                  "cannot write " + path.string() + ": " + std::strerror(e));
  }
  // An existing file kept its mode under --force: set it.
  Status s = ::fchmod(fd, mode) == 0 ? Status::Ok()
                                     : Status(StatusCode::kPermissionDenied,
                                              "chmod " + path.string() + ": " +
                                                  std::strerror(errno));
  size_t off = 0;
  while (s.ok() && off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      s = Status(StatusCode::kPermissionDenied,
                 "cannot write " + path.string() + ": " + std::strerror(errno));
    } else {
      off += static_cast<size_t>(n);
    }
  }
  if (::close(fd) != 0 && s.ok()) {
    s = Status(StatusCode::kPermissionDenied, "cannot write " + path.string());
  }
  return s;
}

}  // namespace

StatusOr<std::vector<std::string>> InitTlsDir(const TlsInitOptions& o) {
  if (o.dir.empty()) return InvalidArgument("tls init: expected a directory: orrery tls init DIR");
  if (o.days < 1 || o.days > 36500) {
    return InvalidArgument("--days " + std::to_string(o.days) + ": expected 1..36500");
  }
  for (const auto& san : o.sans) ORRERY_RETURN_IF_ERROR(CheckSan(san));
  const fs::path dir(o.dir);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return InvalidArgument(o.dir + ": exists and is not a directory");
  }
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) {
      return Status(StatusCode::kPermissionDenied,
                    "cannot create " + o.dir + ": " + ec.message());
    }
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  const fs::path files[] = {dir / kTlsCaKeyFile, dir / kTlsCaCertFile, dir / kTlsKeyFile,
                            dir / kTlsCertFile};
  if (!o.force) {  // all or nothing: refuse before writing any
    for (const auto& f : files) {
      if (fs::exists(fs::symlink_status(f, ec))) {
        return AlreadyExists(f.string() + " exists (pass --force to overwrite it)");
      }
    }
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    return Status(StatusCode::kPermissionDenied,
                  "cannot write in " + o.dir + ": " + std::strerror(errno));
  }

  auto ca_key = NewKey();
  if (!ca_key.ok()) return ca_key.status();
  auto ca = NewCert("orrery cluster CA", ca_key->get(), o.days);
  if (!ca.ok()) return ca.status();
  X509* cax = ca->get();
  X509_set_issuer_name(cax, X509_get_subject_name(cax));
  ORRERY_RETURN_IF_ERROR(AddExt(cax, cax, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  ORRERY_RETURN_IF_ERROR(AddExt(cax, cax, NID_key_usage, "critical,keyCertSign,cRLSign"));
  ORRERY_RETURN_IF_ERROR(AddExt(cax, cax, NID_subject_key_identifier, "hash"));
  if (X509_sign(cax, ca_key->get(), EVP_sha256()) <= 0) {
    return Status(StatusCode::kInternal, "cannot sign the CA: " + SslError());
  }

  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto leaf = NewCert("orrery node", key->get(), o.days);
  if (!leaf.ok()) return leaf.status();
  X509* lx = leaf->get();
  X509_set_issuer_name(lx, X509_get_subject_name(cax));
  std::string san = "DNS:localhost,IP:127.0.0.1";
  for (const auto& s : o.sans) {
    unsigned char buf[16];
    const bool ip =
        ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
    san += (ip ? ",IP:" : ",DNS:") + s;
  }
  ORRERY_RETURN_IF_ERROR(AddExt(lx, cax, NID_basic_constraints, "critical,CA:FALSE"));
  ORRERY_RETURN_IF_ERROR(AddExt(lx, cax, NID_key_usage, "critical,digitalSignature,keyAgreement"));
  ORRERY_RETURN_IF_ERROR(AddExt(lx, cax, NID_ext_key_usage, "serverAuth,clientAuth"));
  ORRERY_RETURN_IF_ERROR(AddExt(lx, cax, NID_subject_alt_name, san));
  ORRERY_RETURN_IF_ERROR(AddExt(lx, cax, NID_subject_key_identifier, "hash"));
  ORRERY_RETURN_IF_ERROR(AddExt(lx, cax, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(lx, ca_key->get(), EVP_sha256()) <= 0) {
    return Status(StatusCode::kInternal, "cannot sign the certificate: " + SslError());
  }

  auto key_pem = [](EVP_PKEY* k) {
    return PemOf([k](BIO* b) {
      return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    });
  };
  auto cert_pem = [](X509* x) { return PemOf([x](BIO* b) { return PEM_write_bio_X509(b, x); }); };
  const std::string texts[] = {key_pem(ca_key->get()), cert_pem(cax), key_pem(key->get()),
                               cert_pem(lx)};
  const mode_t modes[] = {0600, 0644, 0600, 0644};
  std::vector<std::string> written;
  for (int i = 0; i < 4; ++i) {
    if (texts[i].empty()) return Status(StatusCode::kInternal, "PEM encoding: " + SslError());
    ORRERY_RETURN_IF_ERROR(WriteFile(files[i], texts[i], modes[i], o.force));
    written.push_back(files[i].string());
  }
  return written;
}

}  // namespace orrery::live

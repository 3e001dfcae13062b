// Mutual TLS for the live cluster (DESIGN section 11): where a process finds its certificates,
// how they are checked, and `orrery tls init`, which makes a cluster CA and one leaf certificate
// with OpenSSL's libcrypto.
//
// A TLS directory holds ca.crt, tls.crt and tls.key (Kubernetes' kubernetes.io/tls names plus the
// CA); `tls init` also writes ca.key there. A process takes its TLS files from flags
// (--tls-dir DIR, or --tls-cert F --tls-key F --tls-ca F, which override single files of the dir)
// or, when no flag is given, from the environment (ORRERY_TLS_DIR, ORRERY_TLS_CERT, ORRERY_TLS_KEY,
// ORRERY_TLS_CA: same meaning). Neither: plaintext.
//
// The TLS identity is a property of the process, like its environment: `main` (the CLI's command
// wrapper, live/cli/live_entry.cc) installs it once with SetProcessTls before any channel is
// opened, and every gRPC channel and server of live/ takes its credentials from ProcessTls()
// through the one pair of factories in live/rpc/rpc_util.h, so no call site can forget it.
// SetProcessTls also exports the files to the environment, so that the workers, job drivers and
// C++ API drivers a node spawns (which inherit it) use the same identity.
//
// Thread safety: LoadTls, InitTlsDir and the parsers are pure apart from their file I/O.
// SetProcessTls must run before other threads start (it calls setenv); ProcessTls is thread-safe.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace orrery::live {

inline constexpr const char* kTlsCaCertFile = "ca.crt";
inline constexpr const char* kTlsCaKeyFile = "ca.key";
inline constexpr const char* kTlsCertFile = "tls.crt";
inline constexpr const char* kTlsKeyFile = "tls.key";

// Where to look: the flags' values (empty: not given). Files override the dir's.
struct TlsSource {
  std::string dir, cert, key, ca;
  bool from_env = false;  // messages name ORRERY_TLS_* rather than the flags
  bool empty() const { return dir.empty() && cert.empty() && key.empty() && ca.empty(); }
};

// The environment's TlsSource (ORRERY_TLS_DIR, _CERT, _KEY, _CA).
TlsSource TlsSourceFromEnv();

// A process's TLS identity: PEM text, checked. Disabled (plaintext) when cert_pem is empty.
struct TlsConfig {
  std::string ca_pem, cert_pem, key_pem;
  std::string ca_path, cert_path, key_path, dir;  // absolute; dir empty unless --tls-dir
  bool enabled() const { return !cert_pem.empty(); }
};

// Reads and checks the files `source` names: each readable and PEM, the key matches the
// certificate, the certificate is signed by the CA and valid now. Empty source: a disabled
// config. Otherwise InvalidArgument naming the flag (or ORRERY_TLS_* variable), the file and
// what was expected.
StatusOr<TlsConfig> LoadTls(const TlsSource& source);

// Flags if any was given, else the environment; then LoadTls.
StatusOr<TlsConfig> ResolveTls(const TlsSource& flags);

// Installs `config` as this process's identity and exports it to the environment (unset when
// disabled). REQUIRES: no other thread is running (setenv).
void SetProcessTls(TlsConfig config);
// This process's identity. If SetProcessTls was never called: loaded once from the environment
// (a C++ API driver, a worker); a bad environment is a fatal error (message on stderr, exit 2):
// never a silent fall back to plaintext.
const TlsConfig& ProcessTls();

// A hint for a failed call when TLS is the likely cause (this process speaks TLS and the peer
// does not, or the other way round, or the peer's CA is another); "" when it does not look
// like TLS. `status` is what the call returned (gRPC's text).
std::string DescribeTlsFailure(const Status& status);

// `orrery tls init DIR [--san NAME_OR_IP ...] [--days N] [--force]`.
struct TlsInitOptions {
  std::string dir;
  std::vector<std::string> sans;  // host names or IP addresses, besides localhost and 127.0.0.1
  int days = 365;                 // validity of both certificates, 1..36500
  bool force = false;             // overwrite existing files
};

// Checks one --san value: a DNS name (letters, digits, '-', '.', a leading "*.") or an IPv4/IPv6
// address. InvalidArgument naming the value otherwise.
Status CheckSan(const std::string& san);

// Creates DIR (mode 0700) if missing and writes ca.key + ca.crt (a self-signed P-256 CA) and
// tls.key + tls.crt (a leaf for serverAuth and clientAuth signed by it, SANs localhost, 127.0.0.1
// and `sans`); keys 0600, certificates 0644. Refuses (AlreadyExists naming the file) if any of
// the four exists unless `force`. Returns the paths written.
StatusOr<std::vector<std::string>> InitTlsDir(const TlsInitOptions& options);

}  // namespace orrery::live

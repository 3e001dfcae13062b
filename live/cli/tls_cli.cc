#include "live/cli/tls_cli.h"

#include <grpc/support/log.h>

#include <boost/program_options.hpp>
#include <cstring>
#include <iostream>

#include "core/cli/cli_util.h"
#include "live/common/tls.h"

namespace orrery::live {

namespace po = boost::program_options;
using cli::kExitFailed, cli::kExitOk, cli::kExitUsage;

namespace {

constexpr const char* kTlsUsage =
    "usage: orrery tls init DIR [--san NAME_OR_IP ...] [--days N] [--force]\n"
    "Makes a cluster CA (DIR/ca.crt, DIR/ca.key) and one certificate for every daemon and\n"
    "client (DIR/tls.crt, DIR/tls.key; serverAuth and clientAuth; names localhost, 127.0.0.1\n"
    "and each --san). Give every address or host name nodes and clients reach daemons by.\n"
    "Then pass --tls-dir DIR (or set ORRERY_TLS_DIR=DIR) to every orrery command.\n";

int RunTls(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kTlsUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "init") {
    err << "orrery tls: unknown subcommand '" << args[0] << "' (expected: init)\n" << kTlsUsage;
    return kExitUsage;
  }
  TlsInitOptions o;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("dir", po::value(&o.dir), "output directory")(
      "san", po::value(&o.sans)->composing(),
      "a host name or IP address the daemons are reached by (repeatable)")(
      "days", po::value(&o.days), "validity in days (default 365)")(
      "force", po::bool_switch(&o.force), "overwrite existing files");
  po::variables_map vm;
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (auto rc = cli::ParseCommand("tls init", rest, desc, "dir", kTlsUsage, vm, out, err)) {
    return *rc;
  }
  if (o.dir.empty()) {
    err << "orrery tls init: expected a directory: orrery tls init DIR\n";
    return kExitUsage;
  }
  auto written = InitTlsDir(o);
  if (!written.ok()) {
    err << "orrery tls init: " << written.status().message() << "\n";
    return written.status().code() == StatusCode::kInternal ? kExitFailed : kExitUsage;
  }
  for (const auto& f : *written) out << "wrote " << f << "\n";
  out << "Use it: orrery start --head --tls-dir " << o.dir << " (and --tls-dir " << o.dir
      << " or ORRERY_TLS_DIR=" << o.dir << " for every other command)\n";
  return kExitOk;
}

// Takes --tls-dir/--tls-cert/--tls-key/--tls-ca ("--flag V" or "--flag=V") out of `args`, up to
// a "--". False with `why` on a flag without a value.
bool TakeTlsFlags(std::vector<std::string>* args, TlsSource* src, std::string* why) {
  const std::pair<const char*, std::string*> flags[] = {{"--tls-dir", &src->dir},
                                                        {"--tls-cert", &src->cert},
                                                        {"--tls-key", &src->key},
                                                        {"--tls-ca", &src->ca}};
  std::vector<std::string> kept;
  for (size_t i = 0; i < args->size(); ++i) {
    const std::string& a = (*args)[i];
    if (a == "--") {
      kept.insert(kept.end(), args->begin() + static_cast<long>(i), args->end());
      break;
    }
    bool taken = false;
    for (const auto& [name, slot] : flags) {
      const std::string n(name);
      if (a == n) {
        if (i + 1 >= args->size() || (*args)[i + 1].empty()) {
          *why = n + ": expected a value";
          return false;
        }
        *slot = (*args)[++i];
        taken = true;
      } else if (a.rfind(n + "=", 0) == 0) {
        *slot = a.substr(n.size() + 1);
        if (slot->empty()) {
          *why = n + ": expected a value";
          return false;
        }
        taken = true;
      }
      if (taken) break;
    }
    if (!taken) kept.push_back(a);
  }
  *args = std::move(kept);
  return true;
}

// The --bind value of `start` (default 127.0.0.1).
std::string BindOf(const std::vector<std::string>& args) {
  std::string bind = "127.0.0.1";
  for (size_t i = 0; i < args.size() && args[i] != "--"; ++i) {
    if (args[i] == "--bind" && i + 1 < args.size()) bind = args[i + 1];
    if (args[i].rfind("--bind=", 0) == 0) bind = args[i].substr(7);
  }
  return bind;
}

// gRPC logs each failed TLS handshake on stderr; a client command explains the failure in its own
// words (DescribeTlsFailure), so those lines are dropped there. Everything else goes through.
void ClientGrpcLog(gpr_log_func_args* a) {
  const char* file = a->file ? a->file : "";
  if (std::strstr(file, "ssl_transport_security") || std::strstr(file, "security_handshaker")) {
    return;
  }
  std::cerr << gpr_log_severity_string(a->severity) << " gRPC " << file << ":" << a->line << "] "
            << (a->message ? a->message : "") << std::endl;
}

}  // namespace

bool IsLoopbackBind(const std::string& bind) {
  return bind.rfind("127.", 0) == 0 || bind == "::1" || bind == "[::1]" || bind == "localhost";
}

cli::Command TlsCommand() {
  return {"tls", "tls init DIR [--san NAME_OR_IP ...]  make a cluster CA and certificate", RunTls};
}

cli::Command WithTls(cli::Command command) {
  cli::CommandFn run = std::move(command.run);
  const std::string name = command.name;
  command.run = [run, name](const std::vector<std::string>& in, std::ostream& out,
                            std::ostream& err) {
    std::vector<std::string> args = in;
    TlsSource flags;
    std::string why;
    if (!TakeTlsFlags(&args, &flags, &why)) {
      err << "orrery " << name << ": " << why << "\n";
      return kExitUsage;
    }
    auto tls = ResolveTls(flags);
    if (!tls.ok()) {
      err << "orrery " << name << ": " << tls.status().message() << "\n";
      return kExitUsage;
    }
    if (name == "start" && !tls->enabled() && !IsLoopbackBind(BindOf(args))) {
      err << "orrery start: warning: binding " << BindOf(args)
          << " without TLS: RPCs and the cluster token cross the network in plaintext "
             "(make certificates with `orrery tls init DIR --san ADDRESS`, then pass --tls-dir "
             "DIR)\n";
    }
    if (!name.starts_with("__")) gpr_set_log_function(ClientGrpcLog);  // daemons log it all
    SetProcessTls(*std::move(tls));
    const int rc = run(args, out, err);
    const bool help = std::find(args.begin(), args.end(), "--help") != args.end() ||
                      std::find(args.begin(), args.end(), "-h") != args.end();
    if (help && !name.starts_with("__")) {
      out << "TLS (every live command): --tls-dir DIR (ca.crt, tls.crt, tls.key; see `orrery tls "
             "init`) or --tls-cert F --tls-key F --tls-ca F; default $ORRERY_TLS_DIR\n";
    }
    return rc;
  };
  return command;
}

}  // namespace orrery::live

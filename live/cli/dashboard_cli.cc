#include "live/cli/dashboard_cli.h"

#include <signal.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "core/cli/cli_util.h"
#include "live/common/port_check.h"
#include "live/common/session.h"
#include "live/dashboard/http_server.h"
#include "live/dashboard/results_api.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using cli::kExitFailed, cli::kExitOk, cli::kExitUsage;

constexpr const char* kUsage =
    "usage: orrery dashboard RESULTS_DIR [RESULTS_DIR_B] [--port P] [--bind ADDR]\n"
    "  Serves the dashboard read-only over the result directory of `orrery sim run`, `orrery live\n"
    "  run` or `orrery compare` (a compare directory shows its sim and live runs): summary, task\n"
    "  timeline per node, running/pending over time, per-node utilisation, wait reasons, JCT and\n"
    "  queue-delay CDFs; two directories side by side on the same axes. Prints the address with\n"
    "  a fresh token and serves until Ctrl-C.\n";

int RunDashboard(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::vector<std::string> dirs;
  int port = 8266;
  std::string bind = "127.0.0.1";
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")(
      "dirs", po::value(&dirs)->multitoken(), "result directories (one or two)")(
      "port", po::value(&port), "port to listen on (default 8266; 0: any free port)")(
      "bind", po::value(&bind), "address to listen on (default 127.0.0.1)");
  // Both positionals go to --dirs (ParseCommand's single `positional` takes one).
  po::positional_options_description pos;
  pos.add("dirs", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err << "orrery dashboard: " << e.what() << "\n" << kUsage;
    return kExitUsage;
  }
  if (vm.count("help")) {
    out << kUsage << desc;
    return kExitOk;
  }
  if (dirs.empty() || dirs.size() > 2) {
    err << "orrery dashboard: expected one or two result directories, got " << dirs.size()
        << "\n"
        << kUsage;
    return kExitUsage;
  }
  if (port < 0 || port > 65535) {
    err << "orrery dashboard: --port: expected 0..65535, got " << port << "\n";
    return kExitUsage;
  }
  std::vector<fs::path> paths(dirs.begin(), dirs.end());
  auto api = dashboard::ResultsApi::Open(paths);
  if (!api.ok()) {
    err << "orrery dashboard: " << api.status().message() << "\n";
    return kExitUsage;
  }
  if (port > 0) {
    if (Status s = CheckPortFree(bind, port, "dashboard"); !s.ok()) {
      const bool in_use = s.message().find("in use") != std::string::npos;
      err << "orrery dashboard: " << s.message() << (in_use ? " (pick another with --port)" : "")
          << "\n";
      return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
    }
  }
  auto token = GenerateToken();
  if (!token.ok()) {
    err << "orrery dashboard: " << token.status().message() << "\n";
    return kExitFailed;
  }
  // Block the stop signals before the server's threads start, so they inherit the mask and
  // only sigwait below sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  http::HttpServerOptions options;
  options.bind = bind;
  options.port = port;
  options.token = *token;
  options.index_asset = "results.html";
  options.read_only = true;
  options.login_hint =
      "open the URL `orrery dashboard` printed when it started (it has ?token=...); a new "
      "`orrery dashboard` prints a new token";
  auto server = http::HttpServer::Start(options, (*api)->AsHandler());
  if (!server.ok()) {
    pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
    err << "orrery dashboard: " << server.status().message() << "\n";
    return kExitFailed;
  }
  size_t attempts = 0;
  for (const auto& run : (*api)->runs()) attempts += run.attempts.size();
  out << "Serving " << (*api)->runs().size() << " run(s), " << attempts
      << " task attempts, read-only:\n";
  for (const auto& run : (*api)->runs()) out << "  " << run.label << "  " << run.dir << "\n";
  const std::string host = bind == "0.0.0.0" || bind == "::" ? "127.0.0.1" : bind;
  out << "Dashboard: http://" << (host.find(':') != std::string::npos ? "[" + host + "]" : host)
      << ":" << (*server)->port() << "/?token=" << *token << "\n"
      << "Press Ctrl-C to stop." << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->Stop();
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  out << "orrery dashboard: got " << strsignal(sig) << "; stopped" << std::endl;
  return kExitOk;
}

}  // namespace

cli::Command DashboardCommand() {
  return {"dashboard",
          "dashboard RESULTS_DIR [RESULTS_DIR_B] [--port P]  browse result directories",
          RunDashboard};
}

}  // namespace orrery::live

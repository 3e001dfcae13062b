#include "core/cli/cli.h"

#include <algorithm>

#include <ostream>

#include "core/cli/explain.h"
#include "core/gpu/gpu_policy_registry.h"  // GPU placement policies
#include "core/scheduling/policy_registry.h"

namespace orrery::cli {
namespace {

constexpr const char* kVersion = "0.1.0";

void PrintUsage(std::ostream& os, const std::vector<Command>& backends) {
  os << "usage: orrery <command> [args]\n"
        "\n"
        "commands:\n";
  for (const auto& c : backends) {
    if (!c.usage.empty()) os << "  " << c.usage << "\n";  // empty usage: hidden
  }
  os << "  explain CASE.json [--json]   why would a task land there / why is it pending\n"
        "  policies                     list the scheduling policies selectable by name\n"
        "  version                      print the version\n"
        "\n"
        "Run 'orrery <command> --help' for a command's options.\n";
}

int RunPolicies(std::ostream& out) {
  for (const auto& e : PolicyRegistry::Builtin().entries()) {
    out << e.name << std::string(e.name.size() < 18 ? 18 - e.name.size() : 1, ' ')
        << e.description << "\n";
  }
  // --- GPU placement policies (core/gpu/; scenarios of kind gpu_placement) ---
  out << "\nGPU placement policies (gpu_placement scenarios, --policy NAME):\n";
  for (const auto& e : gpu::GpuPolicyRegistry::Builtin().entries()) {
    out << e.name << std::string(e.name.size() < 18 ? 18 - e.name.size() : 1, ' ')
        << e.description << "\n";
  }
  // --- end GPU placement policies ---
  return kExitOk;
}

}  // namespace

const char* Version() { return kVersion; }

namespace {
std::vector<Command>& Registered() {
  static std::vector<Command> commands;  // filled during static initialisation, then read-only
  return commands;
}
}  // namespace

void RegisterCommand(Command command) { Registered().push_back(std::move(command)); }

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const std::vector<Command>& extra) {
  std::vector<Command> backends = Registered();
  backends.insert(backends.end(), extra.begin(), extra.end());
  std::stable_sort(backends.begin(), backends.end(),
                   [](const Command& a, const Command& b) { return a.name < b.name; });
  if (args.empty()) {
    PrintUsage(err, backends);
    return kExitUsage;
  }
  const std::string& cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    PrintUsage(out, backends);
    return kExitOk;
  }
  if (cmd == "version" || cmd == "--version") {
    out << "orrery " << kVersion << "\n";
    return kExitOk;
  }
  if (cmd == "explain") return RunExplain(rest, out, err);
  if (cmd == "policies") return RunPolicies(out);
  for (const auto& c : backends) {
    if (c.name == cmd) return c.run(rest, out, err);
  }
  err << "orrery: unknown command '" << cmd << "'\n\n";
  PrintUsage(err, backends);
  return kExitUsage;
}

}  // namespace orrery::cli

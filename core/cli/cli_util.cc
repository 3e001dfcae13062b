#include "core/cli/cli_util.h"

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

#include "core/cli/cli.h"

namespace orrery::cli {

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + path.string());
  f << text;
  f.close();
  if (!f) return Status(StatusCode::kUnavailable, "error writing " + path.string());
  return Status::Ok();
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool ParseOptions(const std::string& cmd, const std::vector<std::string>& args,
                  const boost::program_options::options_description& desc,
                  boost::program_options::variables_map& vm, std::ostream& err,
                  const char* positional) {
  namespace po = boost::program_options;
  po::positional_options_description pos;
  if (positional != nullptr) pos.add(positional, 1);
  try {
    auto parser = po::command_line_parser(args).options(desc);
    parser.positional(pos);
    po::store(parser.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err << "orrery " << cmd << ": " << e.what() << "\n";
    return false;
  }
  return true;
}

std::optional<int> ParseCommand(const std::string& cmd, const std::vector<std::string>& args,
                                const boost::program_options::options_description& desc,
                                const char* positional, const std::string& usage,
                                boost::program_options::variables_map& vm, std::ostream& out,
                                std::ostream& err) {
  if (!ParseOptions(cmd, args, desc, vm, err, positional)) {
    err << usage;
    return kExitUsage;
  }
  if (vm.count("help")) {
    out << usage << desc;
    return kExitOk;
  }
  return std::nullopt;
}

std::vector<std::string> SimRunFlags::Overrides() const {
  std::vector<std::string> o = sets;
  if (!policy.empty()) o.push_back("scheduler.policy=" + policy);
  if (seed >= 0) o.push_back("seed=" + std::to_string(seed));
  return o;
}

std::optional<int> ParseSimRunFlags(const std::vector<std::string>& args, const SimRunHelp& help,
                                    SimRunFlags* flags, std::ostream& out, std::ostream& err) {
  namespace po = boost::program_options;
  po::options_description desc("options");
  SimRunFlags& f = *flags;
  desc.add_options()("help,h", "show this help")("scenario", po::value(&f.scenario_path),
                                                 help.scenario)(
      "policy", po::value(&f.policy), help.policy)("seed", po::value(&f.seed),
                                                   "random seed (overrides the file)")(
      "set", po::value(&f.sets)->composing(), "override a scenario field: dotted.path=value")(
      "out", po::value(&f.out_dir), help.out)("decision-log", po::value(&f.decision_log),
                                              help.decision_log)("no-progress", help.no_progress)(
      "trace", help.trace)("timing-seed", po::value(&f.timing_seed), help.timing_seed);
  po::variables_map vm;
  if (auto rc = ParseCommand("sim run", args, desc, "scenario", help.usage, vm, out, err))
    return rc;
  if (vm.count("seed") && f.seed < 0) {
    err << "orrery sim run: --seed: expected a non-negative integer\n";
    return kExitUsage;
  }
  if (vm.count("timing-seed") && f.timing_seed < 0) {
    err << "orrery sim run: --timing-seed: expected a non-negative integer\n";
    return kExitUsage;
  }
  f.no_progress = vm.count("no-progress") != 0;
  f.trace = vm.count("trace") != 0;
  return std::nullopt;
}

}  // namespace orrery::cli

// `orrery sim run|compare` for scenarios of kind gpu_placement (core/scenario/gpu_scenario.h): the
// placement-only GPU fragmentation study (replay.h). sim/sim_cli.cc routes here when the scenario
// file's top-level `kind` says so; everything else goes to the SimGrid simulator.
//
//   orrery sim run SCENARIO.yaml [--policy NAME] [--seed N] [--set path=value]... [--out DIR]
//     writes DIR/{allocation.csv, fragmentation.csv, placements.csv, summary.json}
//     [default DIR: out/<scenario name>]
//   orrery sim compare SCENARIO.yaml [--policies a,b,c] [--seeds N] [--set path=value]...
//                      [--out DIR] [--jobs N] [--run-dirs]
//     runs every policy (default: all GPU policies) with seeds 1..N [1], prints a table of
//     unallocated GPU % at 100 % arrived load and at the end (mean, sample standard deviation,
//     min, max), and writes DIR/{compare.csv (one row per run), compare_summary.csv (one row per
//     policy), compare_curve.csv, compare.svg (allocated vs arrived GPU %, one line per policy),
//     compare_zoom.svg (the same from 70 % arrived), compare_frag.svg (fragmentation ratio vs
//     arrived GPU %)} [default DIR: out/compare];
//     --run-dirs also writes each run's files under DIR/<policy>-seed<N>/.
//
// Exit codes: 0 success; 1 a run or a write failed; 2 bad usage, bad scenario or bad trace input
// (the message names the file, line and field or column).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace orrery::gpu_replay {

// True if the first positional argument of `sim run|compare ARGS` names a gpu_placement scenario.
bool IsGpuPlacementInvocation(const std::vector<std::string>& args);

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CompareCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace orrery::gpu_replay

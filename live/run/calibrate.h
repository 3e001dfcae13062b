// Calibration of the simulator's control-plane latencies on a live cluster (issue 15, item 3).
//
// `orrery calibrate` measures, on a running cluster, each latency the simulator models, as a
// distribution over many samples, and writes them as a scenario `control_plane:` block
// (scenarios/README.md, "control_plane") that scenarios include:
//
//   lease_request      owner -> node -> owner: a lease request granted at once (the round trip
//                      the owner sees, network included)
//   spillback          the same for a request the node cannot hold, answered with a spillback
//   task_start         RunTask sent on a granted lease -> the task runs on a reused worker
//   worker_start       extra time when the task needs a new worker process (an unseen runtime
//                      env): its start-up
//   task_finish        the task ends -> its node can grant the freed resources to a queued
//                      request (measured as: 0-ms task's exit reply -> the queued grant, plus
//                      the exit's own trip)
//   resources_visible_remote
//                      a change of a node's availability -> seen in the head's cluster view
//                      (what other nodes decide with): report period, heartbeat and broadcast
//   report_period, report_jitter
//                      the spacing of the cluster-view broadcasts and its spread (p95 - p50)
//   object_latency, object_bandwidth
//                      fetching a 1 KiB object from a node (latency) and a 16 MiB one
//                      (bandwidth); from where calibrate runs, i.e. between two processes of
//                      this host under --local
//
// Two nodes are needed for spillback (one is filled with an affinity lease and the other must
// have a free CPU); with one node those lines are left out and the reason is noted. The cluster
// should be idle: other work's leases skew every number, and calibrate's own leases and tasks
// (ids "calibrate-...") appear in `orrery list tasks`.
//
// Thread safety: Calibrate blocks its caller; it uses helper threads of its own.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/status.h"

namespace orrery::live {

struct CalibrateOptions {
  int samples = 200;              // per round-trip latency (worker starts: samples / 10, >= 5)
  std::ostream* progress = nullptr;  // a line per measurement when set
  // The cluster is calibrate's own (--local) and goes away with it: no note about the objects
  // calibrate leaves in a node's store.
  bool private_cluster = false;
  // New workers started at once for the worker_start_batch record (0 or 1: not measured).
  int worker_start_batch = 0;
};

// One measured latency: samples in seconds and their summary. `value` is what the simulator
// gets: the mean of the samples below the 95th percentile (a shared machine's rare stalls of
// several milliseconds would otherwise dominate a sub-millisecond mean).
struct LatencyStats {
  std::vector<double> samples_s;
  double mean = 0, value = 0, p50 = 0, p95 = 0, p99 = 0, max = 0;
  static LatencyStats Of(std::vector<double> samples_s);
};

struct Calibration {
  std::string node_a, node_b;  // the nodes measured (b empty: one node)
  std::map<std::string, LatencyStats> latencies;  // by the names in the header comment
  double object_bandwidth_Bps = 0;  // 0: not measured
  std::vector<std::string> notes;   // what was not measured, and why
  // The host's cores when every node runs on this host (a private --local cluster): how many
  // worker start-ups run at once (worker_start_parallel). 0: not known (nodes on other hosts).
  int host_cores = 0;
  int worker_start_batch = 0;  // the batch size of the worker_start_batch record (0: none)
};

// Measures the cluster whose head is at `head_address`. Unavailable if the head or a node cannot
// be reached; FailedPrecondition if no node is alive or the chosen node never grants.
StatusOr<Calibration> Calibrate(const std::string& head_address, const std::string& token,
                                const CalibrateOptions& options);

// The `control_plane:` block (LatencyStats::value, in seconds, with the distributions as comments), preceded
// by `header` lines as comments. Scenarios include the file with `control_plane: FILE`.
std::string ControlPlaneYaml(const Calibration& c, const std::vector<std::string>& header);

}  // namespace orrery::live

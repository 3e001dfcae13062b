#!/usr/bin/env python3
"""Where a GPU class's wait comes from, per run of `orrery compare --trace` (issue 15).

For every run directory given (a sim or live result with leases.csv from --trace), prints:
the GPU class's mean queue delay; the seconds during which a GPU request waited at a GPU node
that had a free GPU (its CPUs were taken); and the seconds each other class's tasks ran on the
GPU nodes (a 3-CPU task on a 4-CPU, 2-GPU node leaves one GPU without a CPU).

    bench/gpu_idle.py [--gpu-class gpu] [--gpus-per-node 2] RUN_DIR...

Node ids starting with "gpu" are the GPU nodes (as in scenarios/fidelity/pg-gpu-10n.yaml).
"""
import argparse
import collections
import csv
import statistics
import sys


def run_stats(d, gpu_class, gpus_per_node):
    leases = collections.defaultdict(list)
    with open(d + "/leases.csv") as f:
        for r in csv.DictReader(f):
            if r["name"] == gpu_class:
                leases[r["lease"]].append(r)
    points = []  # (time, "held" | "waiting", node, +1 | -1)
    for rows in leases.values():
        granted = [(float(r["t_s"]), r["node"]) for r in rows if r["event"] == "granted"]
        returned = [float(r["t_s"]) for r in rows if r["event"] == "returned"]
        if granted and returned:
            points += [(granted[0][0], "held", granted[0][1], 1), (returned[0], "held", granted[0][1], -1)]
        asked = [(float(r["t_s"]), r["node"]) for r in rows
                 if r["event"] == "request" and r["node"].startswith("gpu")]
        if asked and granted and granted[0][0] - asked[-1][0] > 0.01:
            points += [(asked[-1][0], "waiting", asked[-1][1], 1), (granted[0][0], "waiting", asked[-1][1], -1)]
    points.sort()
    count = {"held": collections.Counter(), "waiting": collections.Counter()}
    last, idle = 0.0, 0.0
    for t, kind, node, delta in points:
        for n in set(count["waiting"]):
            if count["waiting"][n] > 0 and count["held"][n] < gpus_per_node:
                idle += t - last
        last = t
        count[kind][node] += delta
    waits, on_gpu = [], collections.Counter()
    with open(d + "/tasks.csv") as f:
        for r in csv.DictReader(f):
            if r["state"] != "finished":
                continue
            if r["name"] == gpu_class:
                waits.append(float(r["start_s"]) - float(r["submit_s"]))
            elif r["node_id"].startswith("gpu"):
                on_gpu[r["name"]] += float(r["end_s"]) - float(r["start_s"])
    return statistics.mean(waits) if waits else float("nan"), idle, on_gpu


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--gpu-class", default="gpu")
    p.add_argument("--gpus-per-node", type=int, default=2)
    a = p.parse_args()
    names = set()
    stats = []
    for d in a.runs:
        try:
            s = run_stats(d, a.gpu_class, a.gpus_per_node)
        except OSError as e:
            sys.exit(f"gpu_idle.py: {d}: {e.strerror}: {e.filename} (a run of compare --trace?)")
        stats.append((d, s))
        names |= set(s[2])
    names = sorted(names)
    print("run,gpu_wait_s,gpu_free_while_waiting_s," + ",".join(f"{n}_s_on_gpu_nodes" for n in names))
    for d, (w, idle, on_gpu) in stats:
        print(f"{d},{w:.3f},{idle:.2f}," + ",".join(f"{on_gpu.get(n, 0):.1f}" for n in names))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Replay an expanded Orrery scenario on real Ray and write Orrery's result schema.

usage: ray_replay.py EXPANDED.json OUT_DIR [--warmup] [--timeout S]

EXPANDED.json is `orrery sim expand SCENARIO.yaml --out EXPANDED.json`: every task with its
submit time, duration, resource shape, strategy, argument producers and output size, after the
scenario's generators ran. This script starts a local multi-node Ray cluster with one raylet per
scenario node (ray.cluster_utils.Cluster; the scenario's driver node is Ray's head, where the
driver's raylet is), submits every task at its submit time from one driver, and writes
OUT_DIR/tasks.csv and OUT_DIR/summary.json in the schema `orrery compare` reads, so that
`orrery compare --sim-results SIM --live-results RAY_1 --live-results RAY_2` judges the
simulator (or a live run) against real Ray per task class.

How the workload maps onto Ray (the semantics the comparison relies on):
  - a task group's name is its function: each name gets its own @ray.remote function, so its
    tasks form their own scheduling class, as in a real program;
  - a task sleeps for its duration; the start time is taken inside the task, on the same clock
    as the driver's submit time (time.time(), one machine);
  - outputs are real objects of output_bytes, passed to their consumers as object refs
    (dependencies resolve as in Ray: the consumer is scheduled once its arguments exist);
  - SPREAD, node affinity (hard/soft) and placement groups (created at their create time, tasks
    with PlacementGroupSchedulingStrategy and their bundle index) use Ray's own strategies;
  - GPUs are declared per node (num_gpus) and requested by tasks; no device is touched.
Runtime environments are not replayed (an error names the first task that has one).
"""
import argparse
import csv
import heapq
import json
import math
import os
import sys
import threading
import time


def die(msg):
    print(f"ray_replay.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: {e}")
    for key in ("nodes", "tasks", "driver"):
        if key not in doc:
            die(f"{path}: missing '{key}' (expected the output of `orrery sim expand`)")
    for t in doc["tasks"]:
        if "runtime_env" in t:
            die(f"{path}: task {t['id']} ({t['name']}) has a runtime env; not replayed on Ray")
        if t.get("kind") == "actor":
            die(f"{path}: task {t['id']} ({t['name']}) is an actor; not replayed on Ray")
    return doc


def node_args(node):
    res = dict(node["resources"])
    args = {"num_cpus": int(round(res.pop("CPU", 0))), "num_gpus": int(round(res.pop("GPU", 0)))}
    res.pop("memory", None)
    res.pop("object_store_memory", None)
    args["resources"] = res
    args["object_store_memory"] = 200 * 1024 * 1024
    return args


def percentile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("expanded")
    ap.add_argument("out_dir")
    ap.add_argument("--warmup", action="store_true",
                    help="run one no-op task per CPU on every node first (warm workers)")
    ap.add_argument("--timeout", type=float, default=900.0)
    a = ap.parse_args()
    doc = load(a.expanded)
    os.makedirs(a.out_dir, exist_ok=True)

    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                                PlacementGroupSchedulingStrategy)

    nodes = [n for n in doc["nodes"] if not n.get("standby")]
    driver = next((n for n in nodes if n["id"] == doc["driver"]), nodes[0])
    order = [driver] + [n for n in nodes if n is not driver]
    t_boot = time.time()
    head_args = node_args(driver)
    head_args["include_dashboard"] = False
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    ray_node_of = {driver["id"]: cluster.head_node.node_id}
    for n in order[1:]:
        ray_node_of[n["id"]] = cluster.add_node(**node_args(n)).node_id
    cluster.wait_for_nodes()
    cluster.connect()
    name_of_ray_node = {v: k for k, v in ray_node_of.items()}
    print(f"ray_replay: {len(order)} nodes up in {time.time() - t_boot:.1f} s "
          f"(ray {ray.__version__})", file=sys.stderr)

    def make(name):
        def body(dur, out_bytes, *deps):
            start = time.time()
            time.sleep(dur)
            end = time.time()
            meta = (start, end, ray.get_runtime_context().get_node_id())
            if out_bytes > 0:
                return b"\0" * out_bytes, meta
            return meta
        body.__name__ = body.__qualname__ = name
        return ray.remote(body)

    fns = {}
    for t in doc["tasks"]:
        if t["name"] not in fns:
            fns[t["name"]] = make(t["name"])

    if a.warmup:
        @ray.remote(num_cpus=1)
        def warm():
            time.sleep(0.2)
        refs = []
        for n in order:
            for _ in range(int(round(n["resources"].get("CPU", 0)))):
                refs.append(warm.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    ray_node_of[n["id"]], soft=False)).remote())
        ray.get(refs)

    # One timeline: placement groups at their create time, tasks at their submit time.
    events = []
    for i, g in enumerate(doc.get("placement_groups", [])):
        events.append((g["create_s"], 0, i, "pg"))
    for t in doc["tasks"]:
        events.append((t["submit_s"], 1, t["id"], "task"))
    events.sort()
    groups = {}
    data_ref = {}   # task id -> ref of its output object
    meta_ref = {}   # task id -> ref of its (start, end, node) tuple
    submitted = {}  # task id -> submit time (s since t0)
    tasks = {t["id"]: t for t in doc["tasks"]}
    t0 = time.time()
    for at, _, key, what in events:
        delay = t0 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        if what == "pg":
            g = doc["placement_groups"][key]
            bundles = [{("CPU" if k == "CPU" else "GPU" if k == "GPU" else k): v
                        for k, v in b.items()} for b in g["bundles"]]
            groups[g["id"]] = ray.util.placement_group(bundles, strategy=g["strategy"])
            continue
        t = tasks[key]
        res = dict(t["resources"])
        opts = {"num_cpus": res.pop("CPU", 0), "num_gpus": res.pop("GPU", 0),
                "max_retries": t.get("max_retries", 3)}
        res.pop("memory", None)
        if res:
            opts["resources"] = res
        if "placement_group" in t:
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                groups[t["placement_group"]],
                placement_group_bundle_index=max(-1, t.get("bundle", -1)))
        elif t["strategy"] == "SPREAD":
            opts["scheduling_strategy"] = "SPREAD"
        elif t["strategy"] == "NODE_AFFINITY":
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                ray_node_of[t["node"]], soft=bool(t.get("soft", False)))
        out_bytes = int(t.get("output_bytes", 0))
        if out_bytes > 0:
            opts["num_returns"] = 2
        args = [data_ref[p] for p in t.get("args", []) if p in data_ref]
        submitted[key] = time.time() - t0
        r = fns[t["name"]].options(**opts).remote(t["duration_s"], out_bytes, *args)
        if out_bytes > 0:
            data_ref[key], meta_ref[key] = r
        else:
            meta_ref[key] = r

    rows, failed = [], 0
    deadline = time.time() + a.timeout
    ids = sorted(meta_ref)
    pending = [meta_ref[i] for i in ids]
    ray.wait(pending, num_returns=len(pending), timeout=max(1.0, deadline - time.time()))
    for i in ids:
        t = tasks[i]
        try:
            start, end, rnode = ray.get(meta_ref[i], timeout=max(0.1, deadline - time.time()))
            rows.append([i, t["name"], 0, "task", f"{submitted[i]:.6f}", f"{start - t0:.6f}",
                         f"{end - t0:.6f}", name_of_ray_node.get(rnode, rnode), "finished", 0, 0,
                         ""])
        except Exception as e:  # a failed or timed-out task is a row, not a crash
            failed += 1
            rows.append([i, t["name"], 0, "task", f"{submitted[i]:.6f}", "", "", "", "failed", 0,
                         0, type(e).__name__])
    with open(os.path.join(a.out_dir, "tasks.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task_id", "name", "job_id", "kind", "submit_s", "start_s", "end_s",
                    "node_id", "state", "attempt", "spillbacks", "wait_reason"])
        w.writerows(rows)
    done = [r for r in rows if r[8] == "finished"]
    q = [float(r[5]) - float(r[4]) for r in done]
    jct = [float(r[6]) - float(r[4]) for r in done]
    makespan = max((float(r[6]) for r in done), default=0.0)
    cpu_total = sum(n["resources"].get("CPU", 0) for n in nodes)
    cpu_used = sum(tasks[r[0]]["resources"].get("CPU", 0) * tasks[r[0]]["duration_s"]
                   for r in done)
    summary = {
        "scenario": doc["name"], "backend": "ray", "ray_version": ray.__version__,
        "policy": "ray-default", "seed": doc.get("seed", 0),
        "tasks": {"total": len(rows), "finished": len(done), "failed": failed, "canceled": 0,
                  "infeasible": 0, "pending": 0},
        "makespan_s": makespan,
        "jct_s": {"mean": sum(jct) / max(1, len(jct)), "p50": percentile(jct, 0.5),
                  "p95": percentile(jct, 0.95), "p99": percentile(jct, 0.99)},
        "queue_delay_s": {"mean": sum(q) / max(1, len(q)), "p50": percentile(q, 0.5),
                          "p95": percentile(q, 0.95), "p99": percentile(q, 0.99)},
        "utilization": {"CPU": cpu_used / (cpu_total * makespan) if makespan > 0 else 0.0},
        "node_seconds": makespan * len(nodes),
    }
    with open(os.path.join(a.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"ray_replay: {len(done)}/{len(rows)} finished, makespan {makespan:.2f} s, "
          f"queue p95 {summary['queue_delay_s']['p95']:.3f} s -> {a.out_dir}", file=sys.stderr)
    ray.shutdown()
    cluster.shutdown()
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

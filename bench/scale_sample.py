#!/usr/bin/env python3
"""Samples a local Orrery cluster for the scale benchmarks (bench/driver_million.sh,
bench/actors_thousand.sh, bench/soak.sh) and writes one CSV row per sample:

  t_s,unix_s,submitted,finished,failed,phase,head_rss_kb,node_rss_kb,driver_rss_kb,
  workers,workers_rss_kb,workers_pss_kb,status_ms,list_ms,list_rows

RSS from /proc/PID/status (VmRSS) of the head, the node and the driver; `workers` are the node's
child processes (workers and job drivers); workers_pss_kb (with --pss) sums their proportional
set size (/proc/PID/smaps_rollup), which splits shared pages (the orrery binary, libraries)
among the processes that map them. status_ms and list_ms (with --cli) time `orrery status` and
`orrery list tasks` (its rows counted). The driver's counters come from its progress file
(bench/scale_driver.cc). Samples every --interval seconds until the driver pid exits or
--duration passes. Standard library only.
"""
import argparse
import csv
import os
import subprocess
import sys
import time


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            continue
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
    ms = (time.monotonic() - t0) * 1000.0
    return ms, r.returncode, r.stdout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--head", type=int, required=True)
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--driver", type=int, default=0)
    p.add_argument("--progress", default="")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=0.0)
    p.add_argument("--orrery", default="")
    p.add_argument("--temp-dir", default="")
    p.add_argument("--cli", action="store_true")
    p.add_argument("--pss", action="store_true")
    a = p.parse_args()
    cols = ["t_s", "unix_s", "submitted", "finished", "failed", "phase", "head_rss_kb",
            "node_rss_kb", "driver_rss_kb", "workers", "workers_rss_kb", "workers_pss_kb",
            "status_ms", "list_ms", "list_rows"]
    t0 = time.monotonic()
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        while True:
            start = time.monotonic()
            prog = ["", "", "", ""]
            if a.progress:
                try:
                    with open(a.progress) as pf:
                        prog = pf.read().split()[1:5]
                except OSError:
                    pass
            kids = children(a.node)
            row = {
                "t_s": f"{start - t0:.2f}", "unix_s": f"{time.time():.2f}",
                "submitted": prog[0] if len(prog) > 0 else "",
                "finished": prog[1] if len(prog) > 1 else "",
                "failed": prog[2] if len(prog) > 2 else "",
                "phase": prog[3] if len(prog) > 3 else "",
                "head_rss_kb": rss_kb(a.head), "node_rss_kb": rss_kb(a.node),
                "driver_rss_kb": rss_kb(a.driver) if a.driver else 0,
                "workers": len(kids), "workers_rss_kb": sum(rss_kb(k) for k in kids),
                "workers_pss_kb": sum(pss_kb(k) for k in kids) if a.pss else "",
                "status_ms": "", "list_ms": "", "list_rows": "",
            }
            if a.cli:
                base = [a.orrery]
                td = ["--temp-dir", a.temp_dir] if a.temp_dir else []
                try:
                    ms, rc, _ = timed(base + ["status"] + td)
                    row["status_ms"] = f"{ms:.1f}" if rc == 0 else f"-{ms:.1f}"
                    ms, rc, out = timed(base + ["list", "tasks"] + td)
                    row["list_ms"] = f"{ms:.1f}" if rc == 0 else f"-{ms:.1f}"
                    row["list_rows"] = max(0, out.count(b"\n") - 1)
                except subprocess.TimeoutExpired:
                    row["status_ms"] = row["status_ms"] or "-60000"
                    row["list_ms"] = "-60000"
            w.writerow([row[c] for c in cols])
            f.flush()
            if a.driver and not alive(a.driver):
                break
            if not alive(a.head):
                print("scale_sample: the head is gone", file=sys.stderr)
                break
            if a.duration and time.monotonic() - t0 >= a.duration:
                break
            time.sleep(max(0.0, a.interval - (time.monotonic() - start)))


if __name__ == "__main__":
    main()

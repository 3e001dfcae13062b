#!/usr/bin/env python3
"""Spill decisions of traced runs (leases.csv of `orrery sim run|live run|compare --trace`).

For each run directory: how many spillbacks, how many were rejected at the target, how many
went to a target that was already too full when the decision was made (its true usage is
rebuilt from the trace: every lease of the run is the driver's, so a node's CPUs in use are the
granted and not yet returned leases there), and the distribution of how old the deciding node's
report of the target was (view_age_s). Optionally an SVG with the CDF of view ages per run.

  bench/trace_spills.py [--cpus NAME=N ...] [--svg FILE] LABEL=DIR [LABEL=DIR ...]

--cpus gives each class's CPUs per lease (default 1) and --node-cpus the CPUs of every node
(default 4); without them the "target too full" column is computed for 1-CPU, 4-CPU nodes.
Python standard library only.
"""
import argparse
import csv
import sys
from pathlib import Path


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "view_age_s" not in rows[0]:
        sys.exit(f"{path}: expected a view_age_s column (a trace from this version of orrery)")
    return rows


def analyse(rows, cpus, node_cpus):
    used = {}      # node -> CPUs held by granted, not yet returned leases
    node_of = {}   # lease -> node it was granted at
    out = {"spills": 0, "rejected": 0, "too_full": 0, "ages": []}
    for r in rows:
        ev, lease, name = r["event"], r["lease"], r["name"]
        need = cpus.get(name, 1)
        if ev == "granted":
            node_of[lease] = r["node"]
            used[r["node"]] = used.get(r["node"], 0) + need
        elif ev in ("returned", "lost") and lease in node_of:
            n = node_of.pop(lease)
            used[n] -= need
        elif ev == "spilled":
            out["spills"] += 1
            if node_cpus - used.get(r["detail"], 0) < need:
                out["too_full"] += 1
            if r["view_age_s"]:
                out["ages"].append(float(r["view_age_s"]))
        elif ev == "rejected":
            out["rejected"] += 1
    out["ages"].sort()
    return out


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def svg(runs, path):
    w, h, pad = 640, 360, 50
    xmax = max((a["ages"][-1] for _, a in runs if a["ages"]), default=0.2) * 1.05
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="12">',
             f'<text x="{w/2}" y="18" text-anchor="middle">Age of the deciding node\'s report '
             f'of the spill target (CDF)</text>',
             f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="black"/>']
    for i in range(0, 6):
        x = pad + (w - 2 * pad) * i / 5
        parts.append(f'<text x="{x}" y="{h-pad+16}" text-anchor="middle">'
                     f'{xmax * i / 5 * 1000:.0f} ms</text>')
        y = h - pad - (h - 2 * pad) * i / 5
        parts.append(f'<text x="{pad-6}" y="{y+4}" text-anchor="end">{i/5:.1f}</text>')
    for k, (label, a) in enumerate(runs):
        xs = a["ages"]
        if not xs:
            continue
        pts = " ".join(f'{pad + (w-2*pad) * x / xmax:.1f},{h - pad - (h-2*pad) * (j+1) / len(xs):.1f}'
                       for j, x in enumerate(xs))
        c = colors[k % len(colors)]
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{w-pad-150}" y="{h-pad-40-16*k}" fill="{c}">{label} '
                     f'(p50 {pct(xs, .5)*1000:.0f} ms)</text>')
    parts.append("</svg>\n")
    Path(path).write_text("\n".join(parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpus", action="append", default=[], help="NAME=N: CPUs per lease of a class")
    ap.add_argument("--node-cpus", type=int, default=4)
    ap.add_argument("--svg")
    ap.add_argument("runs", nargs="+", help="LABEL=DIR (DIR holds leases.csv)")
    args = ap.parse_args()
    cpus = {}
    for c in args.cpus:
        name, _, n = c.partition("=")
        if not n.isdigit():
            sys.exit(f"--cpus {c}: expected NAME=N")
        cpus[name] = int(n)
    runs = []
    print(f"{'run':<14}{'spills':>8}{'rejected':>10}{'too full':>10}"
          f"{'age p5':>9}{'p50':>7}{'mean':>7}{'p95':>7}{'max':>7}  (ms)")
    for spec in args.runs:
        label, _, d = spec.partition("=")
        if not d:
            sys.exit(f"{spec}: expected LABEL=DIR")
        a = analyse(load(Path(d) / "leases.csv"), cpus, args.node_cpus)
        runs.append((label, a))
        xs = a["ages"]
        mean = sum(xs) / len(xs) if xs else float("nan")
        print(f"{label:<14}{a['spills']:>8}{a['rejected']:>10}"
              f"{a['too_full']:>6} ({100*a['too_full']/max(1,a['spills']):.0f}%)"
              f"{pct(xs,.05)*1000:>7.0f}{pct(xs,.5)*1000:>7.0f}{mean*1000:>7.0f}"
              f"{pct(xs,.95)*1000:>7.0f}{(xs[-1] if xs else float('nan'))*1000:>7.0f}")
    if args.svg:
        svg(runs, args.svg)


if __name__ == "__main__":
    main()

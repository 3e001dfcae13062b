#!/usr/bin/env python3
"""Figures, plots and README sections of the scale benchmarks from bench/scale_sample.py's CSV.

  scale_report.py million --csv C --driver J --baseline-kb "HEAD NODE" --out DIR --command S --machine S
  scale_report.py actors  --csv C --driver J --baseline-kb "HEAD NODE" --out DIR --command S --machine S
  scale_report.py soak    --csv C --out DIR --command S --machine S [--threshold-mb-per-h X]

Each writes DIR/<name>.json and replaces its own section (between `<!-- name -->` and
`<!-- /name -->`) of DIR/README.md; million and soak also draw DIR/<name>.png when matplotlib
is there. The soak verdict: a least-squares line through each daemon's RSS over the second half
of the run, growth in MB per hour, against the threshold.
"""
import argparse
import csv
import json
import os
import re
import statistics
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def num(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def replace_section(readme, name, text):
    head = ("# Soak: no memory growth in any daemon (issue 18 item 5)\n\n" if name == "soak" else
            "# Scale of one node and one driver (issue 18 item 5)\n\n")
    body = open(readme).read() if os.path.exists(readme) else head
    block = f"<!-- {name} -->\n{text.rstrip()}\n<!-- /{name} -->\n"
    pat = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->\n", re.S)
    body = pat.sub(lambda _: block, body) if pat.search(body) else body.rstrip() + "\n\n" + block
    open(readme, "w").write(body)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


def cli_stats(rows):
    out = {}
    for key in ("status_ms", "list_ms"):
        vals = [num(r[key]) for r in rows if num(r[key]) is not None]
        ok = [v for v in vals if v >= 0]
        out[key] = {"n": len(vals), "failed": len(vals) - len(ok),
                    "p50": round(statistics.median(ok), 1) if ok else None,
                    "max": round(max(ok), 1) if ok else None,
                    "over_1s": sum(1 for v in ok if v > 1000)}
    rows_n = [num(r["list_rows"]) for r in rows if num(r["list_rows"]) is not None]
    out["list_rows_max"] = int(max(rows_n)) if rows_n else None
    return out


def million(a):
    rows = load(a.csv)
    drv = json.loads(open(a.driver).read().strip().splitlines()[-1])
    base_head, base_node = (int(x) for x in a.baseline_kb.split())
    queued = [int(num(r["submitted"], 0) - num(r["finished"], 0)) for r in rows]
    peak_q = max(queued) if queued else 0
    peak = {k: max(int(num(r[k], 0)) for r in rows) for k in ("head_rss_kb", "node_rss_kb",
                                                              "driver_rss_kb", "workers_rss_kb")}
    base = {"head_rss_kb": base_head, "node_rss_kb": base_node,
            "driver_rss_kb": drv.get("driver_rss_before_kb", 0)}
    per_task = {k.replace("_rss_kb", ""): round((peak[k] - base[k]) * 1024 / peak_q, 1)
                if peak_q else None for k in base}
    total_peak_kb = max(int(num(r["head_rss_kb"], 0) + num(r["node_rss_kb"], 0) +
                            num(r["driver_rss_kb"], 0)) for r in rows)
    cli = cli_stats(rows)
    res = {"command": a.command, "machine": a.machine, "driver": drv, "peak_queued": peak_q,
           "baseline_rss_kb": base, "peak_rss_kb": peak, "bytes_per_queued_task": per_task,
           "total_peak_mib": round(total_peak_kb / 1024, 1),
           "within_2gib": total_peak_kb <= 2 * 1024 * 1024, "cli": cli}
    table_text = ""
    if a.table_csv and os.path.exists(a.table_csv):
        trows = load(a.table_csv)
        full = [r for r in trows if num(r["list_rows"], 0) >= 9000]
        head_kb = [num(r["head_rss_kb"], 0) for r in trows]
        rows_max = max((int(num(r["list_rows"], 0)) for r in trows), default=0)
        leases = int(num(trows[-1]["finished"], 0)) if trows else 0
        t = {"leases": leases, "rows_max": rows_max, "samples_at_9000_rows_or_more": len(full),
             "cli_at_full_table": cli_stats(full) if full else None,
             "head_rss_kb_first": int(head_kb[0]) if head_kb else None,
             "head_rss_kb_max": int(max(head_kb)) if head_kb else None,
             "head_bytes_per_row": round((max(head_kb) - head_kb[0]) * 1024 / rows_max, 1)
             if rows_max else None}
        res["table"] = t
        c = t["cli_at_full_table"]
        table_text = f"""
Head task table at its bound (`table.csv`): {leases} tasks on a lease each gave the head one row
per lease; `orrery list tasks` showed at most {rows_max} rows (HeadOptions::max_tasks = 10,000: the
oldest rows go first). Head RSS {t['head_rss_kb_first'] / 1024:.0f} -> {t['head_rss_kb_max'] / 1024:.0f} MiB
(about {t['head_bytes_per_row']} bytes per row).
"""
        if c:
            table_text += (f"With 9,000 rows or more ({len(full)} samples): `orrery list tasks` p50 "
                           f"{c['list_ms']['p50']} ms, max {c['list_ms']['max']} ms ({c['list_ms']['over_1s']} over 1 s); "
                           f"`orrery status` p50 {c['status_ms']['p50']} ms, max {c['status_ms']['max']} ms.\n")
    json.dump(res, open(os.path.join(a.out, "million.json"), "w"), indent=2)
    if plt:
        t = [num(r["t_s"]) for r in rows]
        fig, ax = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
        ax[0].plot(t, [num(r["finished"], 0) for r in rows], label="finished")
        ax[0].plot(t, [num(r["submitted"], 0) for r in rows], label="submitted")
        ax[0].set_ylabel("tasks")
        ax[0].legend()
        for k in ("head_rss_kb", "node_rss_kb", "driver_rss_kb", "workers_rss_kb"):
            ax[1].plot(t, [num(r[k], 0) / 1024 for r in rows], label=k.replace("_rss_kb", ""))
        ax[1].set_ylabel("RSS (MiB)")
        ax[1].legend()
        for k in ("status_ms", "list_ms"):
            ax[2].plot(t, [abs(num(r[k], 0)) for r in rows], label=f"orrery {k[:-3]}")
        ax[2].set_ylabel("CLI latency (ms)")
        ax[2].set_xlabel("seconds")
        ax[2].legend()
        fig.suptitle(f"{drv['tasks']} no-op tasks, one driver, one node")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "million.png"), dpi=80)
    s, l = cli["status_ms"], cli["list_ms"]
    text = f"""## One driver, 10^6 no-op tasks queued at once (bench/driver_million.sh)

Command: `{a.command}`. Machine: {a.machine} (shared: other engineers building).
Samples every second: `million.csv`; plot `million.png`; figures `million.json`.

- {drv['tasks']} tasks: submitted in {drv['submit_s']:.1f} s, all finished in {drv['total_s']:.1f} s
  ({drv['tasks_per_s']:.0f} tasks/s), {drv['failed']} failed. Peak queued (submitted - finished): {peak_q}.
- Throughput, first 10 % of tasks: {drv['first_10pct_tasks_per_s']:.0f}/s; last 10 %: {drv['last_10pct_tasks_per_s']:.0f}/s.
- Bytes per queued task (peak RSS - RSS before submitting, / peak queued): driver {per_task['driver']},
  node {per_task['node']}, head {per_task['head']}.
- Peak RSS: driver {peak['driver_rss_kb'] / 1024:.0f} MiB, node {peak['node_rss_kb'] / 1024:.0f} MiB,
  head {peak['head_rss_kb'] / 1024:.0f} MiB (workers {peak['workers_rss_kb'] / 1024:.0f} MiB). Head + node + driver peak
  {res['total_peak_mib']:.0f} MiB: within 2 GiB: **{'yes' if res['within_2gib'] else 'NO'}**.
- `orrery status`: p50 {s['p50']} ms, max {s['max']} ms ({s['over_1s']} of {s['n']} over 1 s, {s['failed']} failed).
  `orrery list tasks`: p50 {l['p50']} ms, max {l['max']} ms ({l['over_1s']} of {l['n']} over 1 s, {l['failed']} failed;
  at most {cli['list_rows_max']} rows). Both include the CLI's process start.
""" + table_text
    replace_section(os.path.join(a.out, "README.md"), "million", text)
    print(json.dumps(res, indent=2))


def actors(a):
    rows = load(a.csv)
    drv = json.loads(open(a.driver).read().strip().splitlines()[-1])
    base_head, base_node = (int(x) for x in a.baseline_kb.split())
    n = drv["actors"]
    # The actors' memory while all are alive: the last sample of the hold, or (a hold shorter
    # than the sampling period) the sample with the most workers.
    hold = [r for r in rows if r["phase"] == "holding"]
    last = hold[-1] if hold else max(rows, key=lambda r: num(r["workers"], 0))
    workers = int(num(last["workers"], 0))
    wrss, wpss = num(last["workers_rss_kb"], 0), num(last["workers_pss_kb"], 0)
    res = {"command": a.command, "machine": a.machine, "driver": drv, "workers": workers,
           "worker_rss_kb_mean": round(wrss / workers) if workers else None,
           "worker_pss_kb_mean": round(wpss / workers) if workers else None,
           "workers_pss_mib": round(wpss / 1024), "node_rss_mib": round(num(last["node_rss_kb"]) / 1024),
           "node_rss_delta_per_actor_kb": round((num(last["node_rss_kb"]) - base_node) / n, 1),
           "head_rss_mib": round(num(last["head_rss_kb"]) / 1024),
           "head_rss_delta_per_actor_kb": round((num(last["head_rss_kb"]) - base_head) / n, 1),
           "driver_rss_mib": round(num(last["driver_rss_kb"]) / 1024),
           "driver_rss_per_actor_kb": round(num(last["driver_rss_kb"]) / n, 1),
           "cli": cli_stats(rows)}
    res["total_mib"] = round(res["workers_pss_mib"] + res["node_rss_mib"] + res["head_rss_mib"] +
                             res["driver_rss_mib"])
    res.update(a.extra and json.loads(a.extra) or {})
    json.dump(res, open(os.path.join(a.out, "actors.json"), "w"), indent=2)
    s, l = res["cli"]["status_ms"], res["cli"]["list_ms"]
    text = f"""## 1,000 concurrent actors on one node (bench/actors_thousand.sh)

Command: `{a.command}`. Machine: {a.machine}. Samples: `actors.csv`; figures `actors.json`.

- {n} actors (zero resources each, see below) created and called once: all answered after
  {drv['all_created_and_called_s']:.1f} s ({drv['failed']} failed); after the hold, {drv['alive_after_hold']} of {n} answered a second call.
- Worker processes: {workers}; per worker RSS {res['worker_rss_kb_mean']} kB, PSS {res['worker_pss_kb_mean']} kB
  (PSS splits the shared binary and libraries; all workers together {res['workers_pss_mib']} MiB PSS).
- Daemons with {n} actors: node {res['node_rss_mib']} MiB (+{res['node_rss_delta_per_actor_kb']} kB per actor),
  head {res['head_rss_mib']} MiB (+{res['head_rss_delta_per_actor_kb']} kB per actor), driver {res['driver_rss_mib']} MiB
  ({res['driver_rss_per_actor_kb']} kB per actor). Total (workers PSS + daemons RSS): {res['total_mib']} MiB.
- `orrery status` p50 {s['p50']} ms, max {s['max']} ms; `orrery list tasks` p50 {l['p50']} ms, max {l['max']} ms.
"""
    if a.notes:
        text += "\n" + open(a.notes).read()
    replace_section(os.path.join(a.out, "README.md"), "actors", text)
    print(json.dumps(res, indent=2))


def fit(ts, ys):
    n = len(ts)
    if n < 3:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else 0.0


def soak(a):
    # A sample where the driver (or a daemon) had already exited reads RSS 0: not a sample of it.
    rows = [r for r in load(a.csv)
            if all(num(r[k], 0) > 0 for k in ("head_rss_kb", "node_rss_kb", "driver_rss_kb"))]
    t = [num(r["t_s"]) for r in rows]
    dur = t[-1] if t else 0
    second = [r for r in rows if num(r["t_s"]) >= dur / 2]
    ts = [num(r["t_s"]) for r in second]
    verdict = {}
    for k in ("head_rss_kb", "node_rss_kb", "driver_rss_kb"):
        ys = [num(r[k], 0) / 1024 for r in second]
        slope = fit(ts, ys) * 3600  # MiB per hour
        verdict[k.replace("_rss_kb", "")] = {
            "mib_per_hour": round(slope, 2), "first": round(num(rows[0][k], 0) / 1024, 1),
            "min": round(min(num(r[k], 0) for r in rows) / 1024, 1),
            "max": round(max(num(r[k], 0) for r in rows) / 1024, 1),
            "last": round(num(rows[-1][k], 0) / 1024, 1),
            "grows": slope > a.threshold_mb_per_h}
    submitted = int(num(rows[-1]["submitted"], 0)) if rows else 0
    failed = int(num(rows[-1]["failed"], 0)) if rows else 0
    ok = not any(v["grows"] for v in verdict.values())
    res = {"command": a.command, "machine": a.machine, "seconds": round(dur), "samples": len(rows),
           "tasks": submitted, "failed": failed, "threshold_mib_per_hour": a.threshold_mb_per_h,
           "rss": verdict, "no_growth": ok}
    res.update(a.extra and json.loads(a.extra) or {})
    json.dump(res, open(os.path.join(a.out, "verdict.json"), "w"), indent=2)
    if plt:
        fig, ax = plt.subplots(figsize=(9, 5))
        for k in ("head_rss_kb", "node_rss_kb", "driver_rss_kb", "workers_rss_kb"):
            ax.plot([x / 60 for x in t], [num(r[k], 0) / 1024 for r in rows], label=k.replace("_rss_kb", ""))
        ax.axvline(dur / 120, color="grey", ls=":", label="second half starts")
        ax.set_xlabel("minutes")
        ax.set_ylabel("RSS (MiB)")
        ax.set_title(f"soak: {submitted} tasks, jobs every ~30 s, log lines; RSS every 10 s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "rss.png"), dpi=80)
    lines = [f"{d}: {v['mib_per_hour']:+.2f} MiB/h (RSS {v['first']} -> {v['last']} MiB, max {v['max']})"
             for d, v in verdict.items()]
    line = (f"VERDICT: {'no memory growth' if ok else 'MEMORY GROWTH'} over {dur / 60:.0f} min "
            f"(threshold {a.threshold_mb_per_h} MiB/h, least-squares fit over the second half): " +
            "; ".join(lines))
    extra = "".join(f"- {k}: {v}\n" for k, v in (json.loads(a.extra) if a.extra else {}).items())
    text = f"""## Soak (bench/soak.sh)

Command: `{a.command}`. Machine: {a.machine}.
RSS of every daemon sampled every 10 s: `rss.csv`, plot `rss.png`, figures `verdict.json`, verdict line `verdict.txt`.
{submitted} tasks ({failed} failed).
{extra}
{line}
"""
    open(os.path.join(a.out, "verdict.txt"), "w").write(line + "\n")
    replace_section(os.path.join(a.readme_dir or a.out, "README.md"), "soak", text)
    print(line)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["million", "actors", "soak"])
    p.add_argument("--csv", required=True)
    p.add_argument("--driver")
    p.add_argument("--table-csv", default="")
    p.add_argument("--baseline-kb", default="0 0")
    p.add_argument("--out", required=True)
    p.add_argument("--readme-dir", default="")
    p.add_argument("--command", default="")
    p.add_argument("--machine", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--extra", default="")
    p.add_argument("--threshold-mb-per-h", type=float, default=10.0)
    a = p.parse_args()
    return {"million": million, "actors": actors, "soak": soak}[a.what](a) or 0


if __name__ == "__main__":
    sys.exit(main())

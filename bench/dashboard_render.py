#!/usr/bin/env python3
"""Time to first full render of every live dashboard view in headless Chromium (issue 16 item 6).

Loads each view by its address (a full page load, so module loading and the first API calls
count) and reads the performance mark 'orrery:rendered' that js/app.js sets when the view has
drawn its first full table or chart: its startTime is milliseconds since navigation start.
Runs each view --repeat times and writes a Markdown table (median, max, the list's total).
Target: <= 1000 ms per view.

Usage (in the test venv that ./bootstrap.sh --test makes, which has selenium):
  .venv-test/bin/python bench/dashboard_render.py --url 'http://127.0.0.1:8265/?token=...' \\
      [--repeat 5] [--out results/dashboard/render-bench.md] [--note 'state: ...']
The URL is the one `orrery start --head` prints (or bench/dashboard_load's). Exit 1 if a view
never renders or a view's median is over the target; 2 for bad usage.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "dashboard"))
from harness import Browser, chromedriver_path, chromium_path  # noqa: E402

TARGET_MS = 1000


def api(base, token, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="dashboard URL with ?token=")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", help="write the Markdown table here")
    ap.add_argument("--note", default="", help="a line about the cluster state, for the report")
    a = ap.parse_args()
    m = re.match(r"(https?://[^/?]+)/?\?(?:.*&)?token=([^&]+)", a.url)
    if not m or a.repeat < 1:
        ap.error("--url must be the dashboard address with ?token=, --repeat >= 1")
    base, token = m.group(1), m.group(2)
    if not chromium_path() or not chromedriver_path():
        sys.exit("dashboard_render: needs chromium and chromedriver (Debian chromium, chromium-driver)")

    ov = api(base, token, "/api/overview")
    jobs = api(base, token, "/api/job_list?limit=1")
    nodes = api(base, token, "/api/nodes?limit=1")
    tasks = api(base, token, "/api/tasks?limit=1")
    actors = api(base, token, "/api/actors?limit=1")
    views = [("overview", "/overview"), ("jobs", "/jobs"), ("cluster", "/cluster"),
             ("actors", "/actors"), ("tasks", "/tasks"), ("tasks", "/tasks?state=pending"),
             ("metrics", "/metrics"), ("logs", "/logs")]
    if jobs["items"]:
        views.insert(2, ("job", "/jobs/" + urllib.parse.quote(jobs["items"][0]["submission_id"], safe="")))
    if nodes["items"]:
        views.insert(4, ("node", "/nodes/" + urllib.parse.quote(nodes["items"][0]["node_id"], safe="")))
    state = (f"{nodes['total']} nodes, {tasks['total']} tasks, {actors['total']} actors, "
             f"{jobs['total']} jobs ({ov['nodes']})")

    b = Browser(None)
    results = []
    try:
        b.get(a.url)  # token → cookie
        for view, path in views:
            times = []
            for _ in range(a.repeat):
                b.get(base + path)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 20:
                    v = b.js("const e = performance.getEntriesByName('orrery:rendered');"
                             "return e.length ? e[0].startTime : null")
                    if v is not None:
                        break
                    time.sleep(0.02)
                else:
                    v = None
                times.append(v)
            errs = [e["message"] for e in b.console_errors()]
            ok = [t for t in times if t is not None]
            rows = b.count("tbody tr")
            results.append({"view": view, "path": path, "times": times, "rows": rows, "errors": errs,
                            "median": statistics.median(ok) if ok else None, "max": max(ok) if ok else None})
            print(f"{path:28s} median {results[-1]['median']} ms max {results[-1]['max']} ms rows {rows}"
                  + (f" ERRORS {errs}" if errs else ""), flush=True)
    finally:
        b.quit()

    chrome = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Dashboard render time (headless Chromium)",
        "",
        f"Time from navigation start to the performance mark `orrery:rendered` (the view's first full",
        f"table or chart drawn from the head's JSON), {a.repeat} full page loads per view, target "
        f"<= {TARGET_MS} ms.",
        "",
        f"- state: {state}" + (f"; {a.note}" if a.note else ""),
        f"- browser: {chrome}, 1280x800, headless; machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load {os.getloadavg()[0]:.1f})",
        f"- command: `bench/dashboard_render.py --url URL --repeat {a.repeat}`",
        "",
        "| view | path | median ms | max ms | table rows drawn | console errors |",
        "|---|---|---:|---:|---:|---|",
    ]
    bad = False
    for r in results:
        fmt = lambda v: "never" if v is None else f"{v:.0f}"  # noqa: E731
        lines.append(f"| {r['view']} | `{r['path']}` | {fmt(r['median'])} | {fmt(r['max'])} | {r['rows']} | "
                     f"{len(r['errors'])} |")
        if r["median"] is None or r["median"] > TARGET_MS or None in r["times"]:
            bad = True
    lines.append("")
    lines.append("Result: " + ("every view within the target." if not bad else "SOME VIEW MISSED THE TARGET."))
    text = "\n".join(lines) + "\n"
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

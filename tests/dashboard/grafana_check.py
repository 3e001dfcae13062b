#!/usr/bin/env python3
"""The Grafana dashboard of live/deploy/grafana/ against the metrics the daemons export.

Checks: the JSON parses and is a dashboard (title, uid, panels with gridPos and targets); every
target's expr names at least one orrery_* metric, and each of those (histogram series suffixes
_bucket/_sum/_count taken off) is registered by live/common/metrics.cc (the Prometheus registry
of the head and the nodes); every panel's datasource is the dashboard's Prometheus variable; and,
where Debian's promtool is installed, every expr parses as PromQL (as a recording rule, with the
dashboard variables replaced). Stdlib only, so it runs without the test venv.

Usage: grafana_check.py SOURCE_DIR        exit 0 ok, 1 a check failed
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = None


def registered_metrics(src):
    """Metric names given to prometheus-cpp's builders in live/common/metrics.cc."""
    with open(os.path.join(src, "live/common/metrics.cc"), encoding="utf-8") as f:
        text = f.read()
    names = set(re.findall(r'Gauge\(\s*\w+,\s*"(orrery_[a-z_]+)"', text))
    names |= set(re.findall(r'\.Name\(\s*"(orrery_[a-z_]+)"\s*\)', text))
    return names


class GrafanaDashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path = os.path.join(SRC, "live/deploy/grafana/orrery-dashboard.json")
        with open(path, encoding="utf-8") as f:
            cls.dash = json.load(f)  # a parse error fails here, naming line and column
        cls.metrics = registered_metrics(SRC)
        cls.exprs = [(p["title"], t["expr"]) for p in cls.dash["panels"] for t in p.get("targets", [])]

    def test_source_scan_finds_the_registry(self):
        # Guards the scan itself: if metrics.cc changes shape, this fails instead of passing empty.
        for name in ("orrery_tasks", "orrery_scheduling_latency_seconds", "orrery_nodes"):
            self.assertIn(name, self.metrics)

    def test_is_a_dashboard(self):
        d = self.dash
        self.assertTrue(d.get("title") and d.get("uid"))
        self.assertGreaterEqual(len(d["panels"]), 8)
        vars_ = {v["name"] for v in d["templating"]["list"]}
        self.assertIn("datasource", vars_)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for p in d["panels"]:
            self.assertTrue(p.get("targets"), f"panel {p['title']!r} has no query")
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            g = p["gridPos"]
            self.assertTrue(0 <= g["x"] and g["x"] + g["w"] <= 24, f"{p['title']!r} leaves the grid")

    def test_every_expr_names_existing_metrics(self):
        for title, expr in self.exprs:
            used = set(re.findall(r"\b(orrery_[a-z_]+)", expr))
            self.assertTrue(used, f"{title!r}: {expr} names no orrery_* metric")
            for m in used:
                base = re.sub(r"_(bucket|sum|count)$", "", m)
                self.assertIn(base, self.metrics, f"{title!r}: {m} is not exported (live/common/metrics.cc)")

    def test_every_registered_metric_is_shown(self):
        shown = {re.sub(r"_(bucket|sum|count)$", "", m)
                 for _, e in self.exprs for m in re.findall(r"\b(orrery_[a-z_]+)", e)}
        self.assertEqual(sorted(self.metrics - shown), [], "metrics without a panel")

    def test_exprs_parse_as_promql(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (Debian package prometheus)")
        rules = {"groups": [{"name": "grafana", "rules": [
            {"record": f"orrery_grafana_check_{i}",
             "expr": e.replace("$job", ".*").replace("$node", ".*")} for i, (_, e) in enumerate(self.exprs)]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rules, f)  # JSON is YAML
        try:
            out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        finally:
            os.unlink(f.name)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"{len(self.exprs)} rules found", out.stdout + out.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    SRC = sys.argv.pop(1)
    unittest.main(verbosity=2)

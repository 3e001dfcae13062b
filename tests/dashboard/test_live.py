"""The live dashboard in a real browser against a real 3-node cluster (issue 16 item 5).

One cluster for the whole file (head + 2 nodes, 2 CPUs each) running: a Counter actor and a
2-bundle placement group (dashboard_fixture), a job that ends (SUCCEEDED) and prints time stamps,
a long job the test stops from its page, and a task that cannot be placed (its wait reason).
Every view is loaded, checked for its content and for console errors, and screenshot.
Run by run.sh (ctest dashboard.live).
"""
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.error

from harness import Browser, DashboardTestCase, LiveCluster, wait_until

ORRERY = os.environ.get("ORRERY_BINARY", "")
FIXTURE = os.environ.get("ORRERY_DASHBOARD_FIXTURE", "")
SHOTS = os.environ.get("ORRERY_DASHBOARD_SCREENSHOTS") or None
STAMP_JOB = ("echo hello; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1; "
             "echo \"stamp $(date +%s%3N)\"; done; echo line2")
# What a view may log on purpose: the 404s of the unknown-id checks.
NOT_FOUND = r"status of 404"


class LiveDashboardTest(DashboardTestCase, unittest.TestCase):
    cluster = None
    browser = None

    @classmethod
    def setUpClass(cls):
        if not ORRERY or not FIXTURE:
            raise unittest.SkipTest("run through run.sh: ORRERY_BINARY and ORRERY_DASHBOARD_FIXTURE unset")
        cls.cluster = LiveCluster(ORRERY, nodes=3, cpus=2)
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        c = cls.cluster.start()
        cls.fixture = c.spawn([FIXTURE], stdin=subprocess.PIPE)
        line = cls.fixture.stdout.readline()
        if not line.startswith("ready"):
            raise AssertionError(f"dashboard_fixture did not get ready: {line!r} {cls.fixture.stderr.read()}")
        # A task no node can run: it stays pending with a wait reason.
        cls.pending = c.spawn([ORRERY, "task", "run", "--resources", '{"dash_missing": 1}', "--", "true"])
        c.run("job", "submit", "--no-wait", "--submission-id", "dash-stop", "--", "sleep 300")
        # An entrypoint that is markup: must show as text.
        c.run("job", "submit", "--no-wait", "--submission-id", "dash-markup", "--",
              "echo '<img src=x id=injected>'")
        cls.browser = Browser(SHOTS)
        # No cookie yet: the page itself must be the 401 page that says how to get in.
        cls.browser.get(c.base + "/overview")
        cls.unauth_text = cls.browser.text()
        cls.browser.shot("unauthorized")
        cls.browser.console()  # the 401 of the page load is expected here
        cls.browser.get(c.url)  # ?token= → cookie → redirect without it

    @classmethod
    def tearDownClass(cls):
        if cls.browser:
            cls.browser.quit()
        if cls.cluster:
            cls.cluster.stop()

    def open(self, path, view, timeout=15):
        self.browser.get(self.cluster.base + path)
        self.browser.wait_rendered(view, timeout)

    # --- auth
    def test_00_no_token_gets_the_401_page(self):
        status, body = self.cluster.get_raw("/overview")
        self.assertEqual(status, 401)
        self.assertIn("token", body.lower())
        self.assertIn("token", self.unauth_text.lower(), "the 401 page does not say how to get in")
        status, body = self.cluster.get_raw("/api/overview")
        self.assertEqual(status, 401)
        self.assertIn("error", body)
        status, _ = self.cluster.get_raw("/api/overview", {"Authorization": "Bearer wrong"})
        self.assertEqual(status, 401)
        # The token left the address bar after the exchange, and the cookie works.
        self.assertNotIn("token=", self.browser.driver.current_url)
        self.open("/overview", "overview")
        self.assert_no_console_errors()

    # --- views
    def test_01_overview_counts_three_nodes(self):
        self.open("/overview", "overview")
        self.browser.wait_for(lambda: self.browser.text("[data-testid=nodes-alive]") == "3", 10,
                              "3 alive nodes on the overview")
        self.browser.wait_for(lambda: "ALIVE" in self.browser.text("#ov-cards"), 10, "the actor count")
        self.browser.shot("overview")
        self.assert_no_console_errors()

    def test_02_cluster_and_node_page(self):
        self.open("/cluster", "cluster")
        self.browser.wait_for(lambda: self.browser.count("[data-testid=node-link]") == 3, 10, "3 node rows")
        for name in ("head", "worker1", "worker2"):
            self.assertIn(name, self.browser.text("#node-table"))
        self.browser.shot("cluster")
        self.assert_no_console_errors()
        self.browser.js("[...document.querySelectorAll('[data-testid=node-link]')]"
                        ".find(a => a.textContent === 'worker1').click()")
        self.browser.wait_rendered("node")
        self.assertTrue(self.browser.driver.current_url.endswith("/nodes/worker1"))
        text = self.browser.text()
        self.assertIn("Workers", text)
        self.assertEqual(self.browser.count("a[href='/logs?node_id=worker1']"), 1, "no link to the node's logs")
        self.assertEqual(self.browser.count("a[href='/metrics?node_id=worker1']"), 1, "no link to its metrics")
        self.browser.shot("node")
        self.assert_no_console_errors()

    def test_03_job_log_streams_live_and_job_succeeds(self):
        self.cluster.run("job", "submit", "--no-wait", "--submission-id", "dash-hello", "--", STAMP_JOB)
        self.open("/jobs/dash-hello", "job")
        log = "[data-testid=driver-log]"
        self.browser.wait_for(lambda: "hello" in (self.browser.text(log) or ""), 15, "the driver's first line")
        # From now on, record when each stamp line shows up in the page (browser clock = ours).
        self.browser.js("""
          window.__seen = {}; window.__since = Date.now();
          const el = document.querySelector(arguments[0]);
          const scan = () => { for (const m of el.textContent.matchAll(/stamp (\\d+)/g))
                                 if (!(m[1] in window.__seen)) window.__seen[m[1]] = Date.now(); };
          scan(); new MutationObserver(scan).observe(el, {childList: true, subtree: true, characterData: true});""", log)
        self.browser.wait_for(lambda: "line2" in self.browser.text(log), 30, "the driver's last line")
        seen = self.browser.js("return [window.__since, window.__seen]")
        since, stamps = seen[0], {int(k): v for k, v in seen[1].items()}
        fresh = {w: s for w, s in stamps.items() if w > since + 50}  # written after we started watching
        self.assertGreaterEqual(len(fresh), 3, f"too few stamp lines seen live: {stamps} (watching since {since})")
        delays = sorted(s - w for w, s in fresh.items())
        self.assertLessEqual(delays[-1], 2000, f"a log line took {delays[-1]} ms to appear (delays {delays})")
        print(f"driver log delays, written → shown: {delays} ms", file=sys.stderr)
        self.browser.wait_for(lambda: self.browser.text("[data-state=SUCCEEDED]"), 20, "the job to reach SUCCEEDED")
        self.browser.shot("job")
        self.assert_no_console_errors()
        self.open("/jobs", "jobs")
        self.browser.wait_for(lambda: "dash-hello" in self.browser.text("#jobs-table"), 5, "the job in the list")
        row = self.browser.js("return [...document.querySelectorAll('#jobs-table tr')]"
                              ".find(r => r.innerText.includes('dash-hello')).innerText")
        self.assertIn("SUCCEEDED", row)
        # The markup entrypoint is text, not an element.
        self.browser.wait_for(lambda: "<img src=x id=injected>" in self.browser.text("#jobs-table"), 5,
                              "the markup entrypoint shown as text")
        self.assertEqual(self.browser.count("#injected"), 0, "server text was inserted as HTML")
        self.browser.shot("jobs")
        self.assert_no_console_errors()

    def test_03b_job_page_lists_its_tasks_and_actors(self):
        # A job whose driver runs a task (`orrery task run`) and the seed's Counter example (an
        # actor): both carry the job's id (ORRERY_JOB_ID), so the job page lists them.
        counter = os.path.join(os.path.dirname(ORRERY), "live", "examples", "counter")
        self.cluster.run("job", "submit", "--submission-id", "dash-work",
                         "--runtime-env-json", '{"env_vars": {"counter_name": "dash_job"}}', "--",
                         f"{ORRERY} task run -- echo from-a-task && {counter}", timeout=120)
        self.open("/jobs/dash-work", "job")
        self.browser.wait_for(lambda: "echo from-a-task" in self.browser.text("#job-tasks"), 15,
                              "the job's task on its page")
        self.browser.wait_for(lambda: "Counter" in self.browser.text("#job-actors"), 15,
                              "the job's actor on its page")
        self.assertIn("dash-work", self.cluster.api("/api/tasks?job_id=dash-work")["items"][0]["job_id"])
        self.assert_no_console_errors()

    def test_04_stop_button_stops_a_running_job(self):
        wait_until(lambda: self.cluster.api("/api/jobs/dash-stop")["status"] == "RUNNING", 20, "dash-stop RUNNING")
        self.open("/jobs/dash-stop", "job")
        self.browser.wait_for(lambda: self.browser.count("button[data-action=stop]") == 1, 5, "the Stop button")
        self.browser.click("button[data-action=stop]")
        self.browser.wait_for(lambda: self.browser.text("[data-state=STOPPED]"), 15, "the job to show STOPPED")
        self.assertEqual(self.cluster.api("/api/jobs/dash-stop")["status"], "STOPPED")
        self.assertEqual(self.browser.count("button[data-action=stop]"), 0, "a stopped job still offers Stop")
        self.assert_no_console_errors()

    def test_05_actors_filter_and_search(self):
        self.open("/actors", "actors")
        table = "#actor-table"
        self.browser.wait_for(lambda: "Counter" in self.browser.text(table), 10, "the Counter actor")
        # The fixture's Counter, not the DEAD one test_03b's job left (either may come first).
        rows = self.browser.js("return [...document.querySelectorAll('#actor-table tbody tr')]"
                               ".map(r => r.innerText).filter(t => t.includes('Counter'))")
        fixture_rows = [r for r in rows if "dash-work" not in r]
        self.assertEqual(len(fixture_rows), 1, rows)
        self.assertIn("ALIVE", fixture_rows[0])
        self.browser.shot("actors")
        self.browser.type_into("#actor-q", "no-such-actor-xyz")
        self.browser.wait_for(lambda: "No actors match" in self.browser.text(table), 5, "an empty search")
        self.browser.type_into("#actor-q", "counter")
        self.browser.wait_for(lambda: "Counter" in self.browser.text(table), 5, "the search to find Counter")
        self.browser.type_into("#actor-q", "")
        self.browser.js("const s = document.querySelector('#actor-state'); s.value = 'DEAD';"
                        "s.dispatchEvent(new Event('change'))")
        # (the job of test_03b left a DEAD Counter: the filter keeps that one, never the ALIVE one)
        self.browser.wait_for(lambda: "ALIVE" not in self.browser.text(table), 5, "the state filter")
        self.assertIn("state=DEAD", self.browser.driver.current_url)
        self.assert_no_console_errors()

    def test_06_pending_task_shows_its_wait_reason_and_groups_their_nodes(self):
        self.open("/tasks?state=pending", "tasks")
        reason = "[data-testid=wait-reason]"
        self.browser.wait_for(lambda: self.browser.count(reason) >= 1 and self.browser.text(reason).strip(), 15,
                              "a pending task's wait reason")
        self.assertIn("dash_missing", self.browser.text("#task-table"),
                      "the wait detail does not name the missing resource")
        self.browser.wait_for(lambda: "dash-pg" in self.browser.text("#pg-table"), 10, "the placement group")
        pg = self.browser.text("#pg-table")
        self.assertIn("CREATED", pg.upper())
        self.assertGreaterEqual(self.browser.count("#pg-table a[href^='/nodes/']"), 2, "bundles without nodes")
        self.browser.shot("tasks")
        self.assert_no_console_errors()

    def test_07_metrics_chart_has_points(self):
        self.open("/metrics", "metrics")
        self.browser.wait_for(lambda: int(self.browser.js(
            "const s = document.querySelector('#chart-cpu svg'); return s ? s.dataset.points : 0") or 0) > 0,
            15, "points in the CPU utilisation chart")
        self.browser.wait_for(lambda: int(self.browser.js(
            "const s = document.querySelector('#chart-tasks svg'); return s ? s.dataset.points : 0") or 0) > 0,
            15, "points in the tasks chart")
        self.assertGreater(self.browser.count("#chart-cpu polyline"), 0)
        self.browser.shot("metrics")
        self.assert_no_console_errors()

    def test_08_logs_browse_and_read_a_worker_file(self):
        actor = self.cluster.api("/api/actors?q=Counter")["items"][0]
        node = actor["node_id"]
        self.open(f"/logs?node_id={node}", "logs")
        self.browser.wait_for(lambda: self.browser.count("#log-files a[data-file]") > 0, 10, "log files of the node")
        name = self.browser.js(f"const a = [...document.querySelectorAll('#log-files a[data-file]')]"
                               f".find(a => a.dataset.file.includes('-{actor['worker_pid']}.')); "
                               "if (a) { a.click(); return a.dataset.file; } return null")
        self.assertTrue(name, f"no log file of the actor's worker pid {actor['worker_pid']}")
        self.browser.wait_for(lambda: "Counter" in (self.browser.text("[data-testid=log-text]") or ""), 10,
                              f"the actor marker in {name}")
        self.browser.type_into("#log-q", "ACTOR_NAME")  # search: matching lines only, any case
        self.browser.wait_for(lambda: "matching" in self.browser.text("#log-state"), 10, "the search result")
        found = self.browser.text("[data-testid=log-text]")
        self.assertIn(":actor_name:Counter", found)
        self.assertNotIn(":job_id:", found)
        self.browser.type_into("#log-q", "")
        self.browser.wait_for(lambda: ":job_id:" in self.browser.text("[data-testid=log-text]"), 10,
                              "the whole file again")
        self.browser.shot("logs")
        self.assert_no_console_errors()

    def test_09_bad_input_gets_a_message_not_a_blank_page(self):
        for path, expect in (("/jobs/no-such-job", "no-such-job"), ("/nodes/%3Cb%3Eodd%20name", "odd"),
                             ("/no/such/view", "no dashboard view")):
            self.browser.get(self.cluster.base + path)
            self.browser.wait_for(lambda: self.browser.count(".error") > 0, 10, f"an error message at {path}")
            self.assertIn(expect, self.browser.text(".error") or "")
            self.assertEqual(self.browser.count("main b"), 0, "an id was inserted as HTML")
        self.assert_no_console_errors(allow=(NOT_FOUND,))

    def test_09b_tables_poll_every_2s_and_pause_while_hidden(self):
        self.open("/overview", "overview")
        polls = lambda: self.browser.js(  # noqa: E731
            "return performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/api/overview')).length")
        c0 = polls()
        time.sleep(5)
        c1 = polls()
        self.assertTrue(1 <= c1 - c0 <= 3, f"{c1 - c0} overview polls in 5 s (every 2 s expected)")
        self.browser.js("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                        "document.dispatchEvent(new Event('visibilitychange'))")
        time.sleep(0.5)
        c2 = polls()
        time.sleep(5)
        self.assertEqual(polls() - c2, 0, "the overview kept polling while the tab was hidden")
        self.browser.js("Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
                        "document.dispatchEvent(new Event('visibilitychange'))")
        self.browser.wait_for(lambda: polls() > c2, 1.5, "a poll as soon as the tab shows again")
        self.assert_no_console_errors()

    def test_10_lost_cookie_shows_how_to_get_in(self):
        # Last: it drops the session's cookie. The next API call of the open page answers 401 and
        # the page shows the server's message instead of a blank or broken view.
        self.open("/overview", "overview")
        self.browser.driver.delete_all_cookies()
        self.browser.click("#nav a[data-view=jobs]")
        self.browser.wait_for(lambda: self.browser.count("#unauthorized") == 1, 10, "the 401 message")
        self.assertIn("token", self.browser.text("#unauthorized").lower())
        self.browser.shot("unauthorized-page")
        self.assert_no_console_errors(allow=(r"status of 401",))


if __name__ == "__main__":
    unittest.main()

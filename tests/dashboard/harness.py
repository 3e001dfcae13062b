"""The dashboard browser tests' harness: a real live cluster on 127.0.0.1 and headless Chromium.

    cluster = LiveCluster(orrery_binary, nodes=3)   # head + 2 nodes, own temp root
    cluster.start()                                 # cluster.url: the dashboard URL with ?token=
    cluster.api("/api/overview")                    # JSON over REST with the Bearer token
    browser = Browser(screenshot_dir)               # 1280x800, headless=new, console log kept
    browser.get(cluster.base + "/overview"); browser.wait_for(lambda: ..., 10, "three nodes")
    browser.console_errors()                        # SEVERE console entries since the last call
    browser.shot("overview")                        # screenshot_dir/overview.png
    cluster.stop(); browser.quit()

Conventions for test files (test_*.py, run by run.sh in the test venv): read the binaries and
directories from the environment run.sh sets (ORRERY_BINARY, ORRERY_SOURCE_DIR,
ORRERY_DASHBOARD_FIXTURE, ORRERY_DASHBOARD_SCREENSHOTS), use unittest (no pytest), end every
view check with `assert_no_console_errors`. Nothing here mocks the head: the pages talk to the
real daemons.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_CANDIDATES = ("chromedriver",)


def find_tool(names, extra=()):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    for p in extra:
        if os.path.exists(p):
            return p
    return None


def chromium_path():
    return find_tool(CHROMIUM_CANDIDATES)


def chromedriver_path():
    return find_tool(CHROMEDRIVER_CANDIDATES, ("/usr/lib/chromium/chromedriver",))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what, interval=0.1):
    """Polls cond() until truthy (returned) or raises AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below if it never comes true
            last_error = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


class LiveCluster:
    """A head and `nodes - 1` more node daemons of the built `orrery`, all on one temp root."""

    def __init__(self, orrery, nodes=3, cpus=2):
        self.orrery = os.path.abspath(orrery)
        self.nodes = nodes
        self.cpus = cpus
        self.tmp = tempfile.mkdtemp(prefix="orrery-dash-")
        self.root = os.path.join(self.tmp, "root")
        self.address = None
        self.token = None
        self.base = None   # http://127.0.0.1:PORT
        self.url = None    # the dashboard URL with ?token= that `start --head` prints
        self.procs = []
        self.head_output = ""

    def run(self, *args, check=True, timeout=60, env=None):
        """Runs `orrery ARGS...` against this cluster; returns CompletedProcess (text)."""
        e = dict(os.environ)
        if self.address:
            e.update(ORRERY_ADDRESS=self.address, ORRERY_TOKEN=self.token)
        for k, v in (env or {}).items():  # None: unset
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        p = subprocess.run([self.orrery, *args], capture_output=True, text=True, timeout=timeout, env=e)
        if check and p.returncode != 0:
            raise AssertionError(f"orrery {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def spawn(self, argv, env=None, stdin=None):
        """Starts a background process with the cluster's address and token; killed by stop()."""
        e = dict(os.environ, ORRERY_ADDRESS=self.address, ORRERY_TOKEN=self.token, **(env or {}))
        p = subprocess.Popen(argv, env=e, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def start(self):
        port, dport = free_port(), free_port()
        out = self.run("start", "--head", "--port", str(port), "--dashboard-port", str(dport),
                       "--temp-dir", self.root, "--num-cpus", str(self.cpus), "--node-name", "head",
                       env={"ORRERY_TOKEN": None, "ORRERY_ADDRESS": None})
        self.head_output = out.stdout + out.stderr
        self.address = f"127.0.0.1:{port}"
        session = os.path.join(self.root, "session_latest")
        with open(os.path.join(session, "token"), encoding="utf-8") as f:
            self.token = f.read().strip()
        m = re.search(r"(https?://[^\s]+[?&]token=[^\s&]+)", self.head_output)
        if m:
            self.url = m.group(1)
            self.base = re.match(r"https?://[^/?]+", self.url).group(0)
        else:  # a head that does not print the URL yet: build it from the session files
            with open(os.path.join(session, "dashboard_address"), encoding="utf-8") as f:
                addr = f.read().strip()
            self.base = addr if addr.startswith("http") else f"http://{addr}"
            self.url = f"{self.base}/?token={self.token}"
        for i in range(1, self.nodes):
            self.run("start", "--address", self.address, "--temp-dir", self.root,
                     "--node-name", f"worker{i}", "--num-cpus", str(self.cpus))
        wait_until(lambda: self.api("/api/overview")["nodes"]["alive"] == self.nodes, 30,
                   f"{self.nodes} alive nodes in /api/overview")
        return self

    def api(self, path, method="GET", body=None, token=True):
        """The JSON of a REST call (Bearer token); raises urllib.error.HTTPError on >= 400."""
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def get_raw(self, path, headers=None):
        """(status, body text) of a plain GET without the token."""
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                if p.stdin:
                    try:
                        p.stdin.close()
                    except OSError:
                        pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if os.path.isdir(self.root):
            subprocess.run([self.orrery, "stop", "--temp-dir", self.root], capture_output=True, timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Browser:
    """Headless Chromium through chromedriver (selenium), 1280x800, with its console log."""

    def __init__(self, screenshot_dir=None, width=1280, height=800):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        o = Options()
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run",
                  "--disable-extensions", "--disable-background-networking"):
            o.add_argument(a)
        o.binary_location = chromium_path()
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(chromedriver_path()), options=o)
        self.driver.set_page_load_timeout(30)
        # The viewport itself 1280x800 (the window size includes no chrome in headless=new, but be sure).
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.screenshot_dir = screenshot_dir
        self._log = []

    def get(self, url):
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def text(self, css=None):
        if css is None:
            return self.js("return document.body ? document.body.innerText : ''")
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : null", css)

    def count(self, css):
        return self.js("return document.querySelectorAll(arguments[0]).length", css)

    def click(self, css):
        self.js("document.querySelector(arguments[0]).click()", css)

    def type_into(self, css, value):
        """Sets an input's value as typing would (fires input events)."""
        self.js("const e = document.querySelector(arguments[0]); e.value = arguments[1];"
                "e.dispatchEvent(new Event('input', {bubbles: true}));"
                "e.dispatchEvent(new Event('change', {bubbles: true}));", css, value)

    def wait_for(self, cond, timeout, what):
        try:
            return wait_until(cond, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- page {self.driver.current_url}:\n{self.text()[:1500]}") from None

    def wait_rendered(self, view, timeout=15):
        return self.wait_for(lambda: self.js("return document.body.dataset.rendered") == view, timeout,
                             f"the {view} view to render (performance mark orrery:rendered)")

    def console(self):
        """Every console entry since the last call (selenium hands each out once)."""
        self._log.extend(self.driver.get_log("browser"))
        out, self._log = self._log, []
        return out

    def console_errors(self, allow=()):
        return [e for e in self.console() if e.get("level") == "SEVERE"
                and not any(re.search(a, e.get("message", "")) for a in allow)]

    def shot(self, name):
        if not self.screenshot_dir:
            return None
        os.makedirs(self.screenshot_dir, exist_ok=True)
        path = os.path.join(self.screenshot_dir, f"{name}.png")
        self.js("window.scrollTo(0, 0)")
        self.driver.save_screenshot(path)
        return path

    def quit(self):
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass


class DashboardTestCase:
    """Mixin: assert_no_console_errors for unittest.TestCase subclasses that set self.browser."""

    def assert_no_console_errors(self, allow=()):
        errors = self.browser.console_errors(allow)
        self.assertEqual(errors, [], "browser console errors:\n" + "\n".join(e["message"] for e in errors))

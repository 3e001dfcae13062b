#!/usr/bin/env python3
"""`orrery dashboard RESULTS_DIR [RESULTS_DIR_B]` in headless Chromium.

    test_results.py ORRERY_BINARY SOURCE_DIR [SCREENSHOT_DIR]

Runs the simulator on scenarios/quickstart.yaml twice (hybrid and spread, ~2,000 tasks each),
serves one run, then the pair, then a compare-style directory (DIR/sim, DIR/live), and in each
opens every results view: no console error, no error message, the view marks itself rendered;
the timeline's bars stand for every row of tasks.csv (data-drawn-tasks); the charts have data.
Screenshots of every view go to SCREENSHOT_DIR (default $ORRERY_DASHBOARD_SCREENSHOTS, else
./dashboard-screenshots; results/dashboard holds the committed ones) as
results-*.png. Exits 77 (ctest SKIP) when chromium, chromedriver or selenium are missing.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
HOSTILE = '<img src=x onerror=document.body.dataset.xss=1>'
VIEWS = ['summary', 'timeline', 'series', 'heatmap', 'wait-reasons', 'cdf']


def find_chromium():
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    return None


def start_browser():
    """A headless Chromium via chromedriver, with the browser console log kept; None to skip."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print('SKIP: selenium is not installed (./bootstrap.sh --test makes the test venv)')
        return None
    chromium, driver = find_chromium(), shutil.which('chromedriver')
    if not chromium or not driver:
        print('SKIP: chromium or chromedriver missing (Debian packages chromium, chromium-driver)')
        return None
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                '--window-size=1400,1000', '--disable-gpu'):
        opts.add_argument(arg)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(service=Service(driver), options=opts)


class Dashboard:
    """`orrery dashboard DIRS --port 0`, its printed URL, stopped with SIGINT."""

    def __init__(self, binary, dirs):
        self.proc = subprocess.Popen([binary, 'dashboard', *dirs, '--port', '0'],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = None
        deadline = time.time() + 30
        lines = []
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.match(r'Dashboard: (http://[^/]+)/\?token=(\w+)', line)
            if m:
                self.base, self.token = m.group(1), m.group(2)
                self.url = line.split(' ', 1)[1].strip()
                return
        self.proc.kill()
        raise RuntimeError('orrery dashboard printed no URL:\n' + ''.join(lines) +
                           self.proc.stderr.read())

    def stop(self):
        self.proc.send_signal(2)  # SIGINT, as Ctrl-C
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = 'killed'
        return rc


class Checker:
    def __init__(self):
        self.failures = 0

    def check(self, what, ok, detail=''):
        print(('ok: ' if ok else 'FAIL: ') + what + ('' if ok else f' ({detail})'))
        if not ok:
            self.failures += 1
        return ok


def rows_of(tasks_csv):
    with open(tasks_csv) as f:
        return sum(1 for line in f if line.strip()) - 1


def console_errors(driver):
    return [e['message'] for e in driver.get_log('browser') if e['level'] == 'SEVERE']


def open_view(driver, url, timeout=20):
    """Loads `url` and waits for the page's rendered mark; returns seconds to render."""
    t0 = time.time()
    driver.get(url)
    while time.time() - t0 < timeout:
        if driver.execute_script("return document.body.dataset.rendered || ''"):
            return time.time() - t0
        time.sleep(0.05)
    raise RuntimeError(f'{url}: not rendered within {timeout} s')


def screenshot(driver, path):
    """The whole page (up to 3,000 px high): the window made as tall as the page, then back."""
    height = driver.execute_script('return document.documentElement.scrollHeight')
    driver.set_window_size(1400, max(1000, min(3000, height + 140)))
    time.sleep(0.1)
    driver.save_screenshot(path)
    driver.set_window_size(1400, 1000)


def exercise(driver, c, dash, runs, shots, tag):
    """Every view of a dashboard over `runs` ([tasks.csv path per run])."""
    driver.get(dash.url)  # ?token= → cookie, then redirected to /
    c.check(f'[{tag}] the token URL lands on / without the token',
            'token=' not in driver.current_url, driver.current_url)
    for view in VIEWS:
        path = '/' if view == 'summary' else f'/{view}'
        took = open_view(driver, dash.base + path)
        err = driver.execute_script("return document.body.dataset.error || ''")
        c.check(f'[{tag}] {view} renders without an error message ({took:.2f} s)', not err, err)
        c.check(f'[{tag}] {view} has no console error', not console_errors(driver),
                console_errors(driver))
        mark = driver.execute_script(
            "return performance.getEntriesByName('orrery:rendered').length")
        c.check(f'[{tag}] {view} marks orrery:rendered', mark >= 1)
        if view == 'timeline':
            # Wait for the charts' data attributes (set when drawn).
            for k, tasks_csv in enumerate(runs):
                drawn = int(driver.execute_script(
                    f"return document.getElementById('timeline-{k}').dataset.drawnTasks"))
                c.check(f'[{tag}] timeline of run {k} draws every attempt of tasks.csv',
                        drawn == rows_of(tasks_csv), f'{drawn} drawn, {rows_of(tasks_csv)} rows')
        if view == 'summary':
            cols = driver.execute_script(
                "return document.querySelectorAll('#summary-table thead th:not(.diff)').length")
            c.check(f'[{tag}] summary has a column per run', cols == len(runs) + 1, cols)
        if view in ('series', 'cdf'):
            points = driver.execute_script(
                "return [...document.querySelectorAll('[data-points]')].map(e => +e.dataset.points)")
            c.check(f'[{tag}] {view} charts have points', points and min(points) > 0, points)
        if view == 'heatmap':
            cells = driver.execute_script(
                "return [...document.querySelectorAll('.heatmap')].map(e => +e.dataset.cells)")
            c.check(f'[{tag}] a heat map per run with cells',
                    len(cells) == len(runs) and min(cells) > 0, cells)
        if view == 'wait-reasons':
            bars = driver.execute_script("return +document.getElementById('wait-bars').dataset.bars")
            c.check(f'[{tag}] wait reasons have bars', bars > 0, bars)
        if shots:
            screenshot(driver, os.path.join(shots, f'results-{view}{tag and "-" + tag}.png'))
    # One run alone, its tasks table, and a zoom of its timeline.
    took = open_view(driver, dash.base + '/runs/0/tasks')
    rows = driver.execute_script("return document.querySelectorAll('#tasks-table tbody tr').length")
    c.check(f'[{tag}] /runs/0/tasks lists a page of attempts', rows == min(100, rows_of(runs[0])),
            rows)
    if shots:
        screenshot(driver, os.path.join(shots, f'results-tasks{tag and "-" + tag}.png'))
    if tag == '':
        text = driver.execute_script("return document.querySelector('#tasks-table tbody').textContent")
        xss = driver.execute_script("return document.body.dataset.xss || ''")
        c.check('a task name like markup shows as text and runs nothing', HOSTILE in text and not xss,
                f'xss={xss!r}')
    open_view(driver, dash.base + '/runs/0/timeline')
    before = driver.execute_script("return document.getElementById('tl-window').textContent")
    driver.execute_script("""
      const cv = document.querySelector('#timeline-0 canvas'), r = cv.getBoundingClientRect();
      cv.dispatchEvent(new WheelEvent('wheel', {deltaY: -500, clientX: r.left + r.width / 2,
                                                clientY: r.top + 40, bubbles: true, cancelable: true}));""")
    time.sleep(0.8)
    after = driver.execute_script("return document.getElementById('tl-window').textContent")
    in_window = int(driver.execute_script(
        "return document.getElementById('timeline-0').dataset.tasksInWindow"))
    drawn = int(driver.execute_script(
        "return document.getElementById('timeline-0').dataset.drawnTasks"))
    c.check(f'[{tag}] wheel zooms the timeline and the bars still count the window',
            before != after and drawn == in_window, f'{before} -> {after}, {drawn}/{in_window}')
    # Bad addresses: a message, never a blank page.
    open_view(driver, dash.base + '/runs/9/timeline')
    err = driver.execute_script("return document.body.dataset.error || ''")
    c.check(f'[{tag}] an unknown run says so', 'no run 9' in err, err)
    driver.get_log('browser')  # the 404 of /runs/9 is an expected console entry


def reexec_in_test_venv(src):
    """Without selenium here, run again with the test venv's Python (bootstrap.sh --test makes
    SOURCE_DIR/.venv-test; $ORRERY_TEST_PYTHON overrides it)."""
    try:
        import selenium  # noqa: F401
        return
    except ImportError:
        pass
    python = os.environ.get('ORRERY_TEST_PYTHON') or os.path.join(src, '.venv-test', 'bin', 'python')
    # (A venv's python is a symlink to the system one: compare paths unresolved, and run again
    # at most once.)
    if os.path.exists(python) and not os.environ.get('ORRERY_TEST_REEXEC'):
        os.environ['ORRERY_TEST_REEXEC'] = '1'
        os.execv(python, [python, *sys.argv])


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    binary, src = sys.argv[1], sys.argv[2]
    reexec_in_test_venv(src)
    # Default: the working directory (ctest's), so a test run leaves the committed screenshots
    # alone; ORRERY_DASHBOARD_SCREENSHOTS=results/dashboard refreshes them (as tests/dashboard/run.sh).
    shots = (sys.argv[3] if len(sys.argv) > 3 else
             os.environ.get('ORRERY_DASHBOARD_SCREENSHOTS',
                            os.path.join(os.getcwd(), 'dashboard-screenshots')))
    driver = start_browser()
    if driver is None:
        # Under CI (bootstrap.sh --test installs them) a missing browser is a failure, as in
        # tests/dashboard/run.sh.
        return 1 if os.environ.get('CI') == 'true' else SKIP
    os.makedirs(shots, exist_ok=True)
    c = Checker()
    tmp = tempfile.mkdtemp(prefix='results_dash_')
    try:
        scenario = os.path.join(src, 'scenarios', 'quickstart.yaml')
        for name, policy in (('hybrid', 'hybrid'), ('spread', 'spread')):
            subprocess.run([binary, 'sim', 'run', scenario, '--policy', policy, '--no-progress',
                            '--out', os.path.join(tmp, name)], check=True,
                           stdout=subprocess.DEVNULL)
        a, b = os.path.join(tmp, 'hybrid'), os.path.join(tmp, 'spread')
        # Text from the files is escaped: a task named like markup stays text.
        with open(os.path.join(a, 'tasks.csv')) as f:
            lines = f.read().split('\n')
        cells = lines[1].split(',')
        cells[1] = HOSTILE
        lines[1] = ','.join(cells)
        with open(os.path.join(a, 'tasks.csv'), 'w') as f:
            f.write('\n'.join(lines))
        # A compare directory's layout (`orrery compare --out C`: C/sim, C/live).
        shutil.copytree(a, os.path.join(tmp, 'cmp', 'sim'))
        shutil.copytree(b, os.path.join(tmp, 'cmp', 'live'))

        dash = Dashboard(binary, [a])
        try:
            # No token: 401 for the page and the API.
            for path in ('/', '/api/mode'):
                try:
                    urllib.request.urlopen(dash.base + path, timeout=5)
                    code = 200
                except urllib.error.HTTPError as e:
                    code = e.code
                c.check(f'no token: {path} answers 401', code == 401, code)
            exercise(driver, c, dash, [os.path.join(a, 'tasks.csv')], shots, '')
        finally:
            rc = dash.stop()
            c.check('orrery dashboard exits 0 on SIGINT', rc == 0, rc)

        dash = Dashboard(binary, [a, b])
        try:
            exercise(driver, c, dash, [os.path.join(a, 'tasks.csv'), os.path.join(b, 'tasks.csv')],
                     shots, 'pair')
        finally:
            dash.stop()
        dash = Dashboard(binary, [os.path.join(tmp, 'cmp')])
        try:
            exercise(driver, c, dash, [os.path.join(tmp, 'cmp', 'sim', 'tasks.csv'),
                                       os.path.join(tmp, 'cmp', 'live', 'tasks.csv')], None,
                     'compare')
        finally:
            dash.stop()
    finally:
        driver.quit()
        shutil.rmtree(tmp, ignore_errors=True)
    print('PASS' if c.failures == 0 else f'{c.failures} check(s) failed')
    return 0 if c.failures == 0 else 1


if __name__ == '__main__':
    sys.exit(main())

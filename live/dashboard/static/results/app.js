// The results dashboard (`orrery dashboard RESULTS_DIR [RESULTS_DIR_B]`): a small router over
// stable URLs and the views of one or more runs (live/dashboard/results_api.h has the routes).
//   /  or /summary            every run's summary.json side by side
//   /timeline /series /heatmap /wait-reasons /cdf   every run on the same axes
//   /runs/<i>/<view>          one run alone (view as above, or tasks: the attempts table)
// Every view ends with performance.mark('orrery:rendered') and body[data-rendered=<view>];
// errors show as a message (body[data-error]) rather than a blank page.
import { DASHES, PALETTE, barChart, esc, fmtNum, heatMap, lineChart } from './charts.js';
import { STATE_COLOURS, timelines } from './timeline.js';

const VIEWS = ['summary', 'timeline', 'series', 'heatmap', 'wait-reasons', 'cdf', 'tasks'];
const main = document.getElementById('view');
let mode = null;

async function get(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON: reported below */ }
  if (!r.ok) throw new Error(`${path}: ${(body && body.error) || `HTTP ${r.status} ${r.statusText}`}`);
  if (body === null) throw new Error(`${path}: the answer is not JSON`);
  return body;
}

function route() {
  const parts = location.pathname.split('/').filter(Boolean);
  if (parts[0] === 'runs') {
    const index = /^\d+$/.test(parts[1] || '') ? Number(parts[1]) : NaN;
    return { index, view: parts[2] || 'summary', bad: !Number.isInteger(index) };
  }
  return { index: null, view: parts[0] || 'summary' };
}

const maxMakespan = (runs) => Math.max(1e-9, ...runs.map((r) => Number(r.summary.makespan_s) || 0));
const runColour = (k) => PALETTE[k % PALETTE.length];
const runDash = (k) => DASHES[k % DASHES.length];

function cards(runs, inner) {
  return `<div class="runs">${runs.map((r) => `<section class="card"><h2>${esc(r.label)}</h2>
    <p class="muted">${esc(r.dir)}</p>${inner(r)}</section>`).join('')}</div>`;
}

// Flattens a summary into dotted keys in file order ("jct_s.p50": 3.2).
function flatten(obj, prefix = '', out = new Map()) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out.set(key, v);
  }
  return out;
}

function summaryView(runs) {
  const flats = runs.map((r) => flatten(r.summary));
  const keys = [];
  for (const f of flats) for (const k of f.keys()) if (!keys.includes(k)) keys.push(k);
  const cell = (v) => (typeof v === 'number' ? `<td class="num">${esc(fmtNum(v))}</td>`
                                               : `<td class="num">${esc(v === undefined ? '–' : JSON.stringify(v).replace(/^"|"$/g, ''))}</td>`);
  // Two runs: the difference (second − first) and its percentage of the first.
  const diff = (k) => {
    if (runs.length !== 2) return '';
    const [x, y] = flats.map((f) => f.get(k));
    if (typeof x !== 'number' || typeof y !== 'number') return '<td></td>';
    const pct = x !== 0 ? ` (${(((y - x) / Math.abs(x)) * 100).toFixed(1)} %)` : '';
    return `<td class="num">${esc(fmtNum(y - x) + pct)}</td>`;
  };
  main.innerHTML = `<h1>Run summary</h1><div class="card narrow"><table id="summary-table"><thead><tr><th>metric</th>${
    runs.map((r) => `<th class="num">${esc(r.label)}</th>`).join('')}${runs.length === 2 ? '<th class="num diff">second − first</th>' : ''}</tr></thead><tbody>${
    keys.map((k) => `<tr><td>${esc(k)}</td>${flats.map((f) => cell(f.get(k))).join('')}${diff(k)}</tr>`).join('')
  }</tbody></table></div>`;
}

async function seriesView(runs) {
  const t1 = maxMakespan(runs);
  main.innerHTML = '<h1>Tasks running and pending over time</h1><div class="card" id="series-chart"></div>';
  const data = await Promise.all(runs.map((r) => get(`/api/runs/${r.index}/series?buckets=400&t1=${t1}`)));
  const series = [];
  data.forEach((d, k) => {
    const tag = runs.length > 1 ? `${runs[k].label}: ` : '';
    series.push({ label: `${tag}running`, color: STATE_COLOURS.running, dash: runDash(k),
                  points: d.t.map((t, i) => [t, d.running[i]]) });
    series.push({ label: `${tag}pending`, color: STATE_COLOURS.pending, dash: runDash(k),
                  points: d.t.map((t, i) => [t, d.pending[i]]) });
  });
  const el = main.querySelector('#series-chart');
  el.dataset.points = String(lineChart(el, { series, xLabel: 'time (s)', yLabel: 'attempts', xMax: t1 }));
}

async function heatmapView(runs) {
  const t1 = maxMakespan(runs);
  main.innerHTML = '<h1>Per-node utilisation</h1>' + cards(runs, (r) => `<div class="heatmap" id="heatmap-${r.index}"></div><p class="muted" id="heatmap-src-${r.index}"></p>`);
  const data = await Promise.all(runs.map((r) => get(`/api/runs/${r.index}/heatmap?buckets=80&t1=${t1}`)));
  data.forEach((d, k) => {
    const el = main.querySelector(`#heatmap-${runs[k].index}`);
    if (!d.nodes.length) { el.innerHTML = '<p class="muted">No node ran an attempt in this run.</p>'; el.dataset.cells = '0'; return; }
    el.dataset.cells = String(heatMap(el, { ...d, t1 }));
    main.querySelector(`#heatmap-src-${runs[k].index}`).textContent =
      d.source === 'timeseries' ? `mean of ${d.metric} samples (timeseries.csv) per ${fmtNum(d.bucket_s)} s bucket`
                                : `from tasks.csv (no per-node samples): ${d.metric}, per ${fmtNum(d.bucket_s)} s bucket`;
  });
}

async function waitReasonsView(runs) {
  const t1 = maxMakespan(runs);
  main.innerHTML = `<h1>Wait reasons</h1><div class="card"><h2>Attempts by their last wait reason</h2>
    <div id="wait-bars"></div></div><div class="card"><h2>Unschedulable tasks over time (timeseries.csv)</h2>
    <div id="wait-series"></div></div>`;
  const data = await Promise.all(runs.map((r) => get(`/api/runs/${r.index}/wait_reasons`)));
  const categories = [];
  for (const d of data) for (const x of d.reasons) if (!categories.includes(x.reason)) categories.push(x.reason);
  const groups = data.map((d, k) => ({ label: runs[k].label, color: runColour(k),
    values: categories.map((c) => (d.reasons.find((x) => x.reason === c) || { attempts: 0 }).attempts) }));
  const bars = main.querySelector('#wait-bars');
  bars.dataset.bars = String(barChart(bars, { categories, groups, xLabel: 'attempts' }));
  const series = [];
  const reasons = [];
  data.forEach((d) => d.series.forEach((s) => { if (!reasons.includes(s.reason)) reasons.push(s.reason); }));
  // Reasons that never had a task waiting are left out of the chart (listed below it).
  const idle = new Set(reasons);
  data.forEach((d) => d.series.forEach((s) => { if (s.value.some((v) => v > 0)) idle.delete(s.reason); }));
  data.forEach((d, k) => d.series.filter((s) => !idle.has(s.reason)).forEach((s) => series.push({
    label: `${runs.length > 1 ? `${runs[k].label}: ` : ''}${s.reason}`,
    color: PALETTE[reasons.indexOf(s.reason) % PALETTE.length], dash: runDash(k), step: true,
    points: s.t.map((t, i) => [t, s.value[i]]) })));
  const el = main.querySelector('#wait-series');
  if (series.length) el.dataset.points = String(lineChart(el, { series, xLabel: 'time (s)', yLabel: 'tasks', xMax: t1 }));
  else el.innerHTML = `<p class="muted">${reasons.length ? 'No task was ever counted unschedulable.'
                                                        : 'No orrery_scheduler_unschedulable_tasks samples in timeseries.csv.'}</p>`;
  if (idle.size && series.length) el.insertAdjacentHTML('beforeend', `<p class="muted">Always 0: ${esc([...idle].join(', '))}</p>`);
}

async function cdfView(runs) {
  main.innerHTML = `<h1>Job completion time and queue delay</h1><div class="runs">
    <div class="card"><h2>JCT CDF (end of the last attempt − first submit, finished tasks)</h2><div id="cdf-jct"></div></div>
    <div class="card"><h2>Queue delay CDF (start − submit, started attempts)</h2><div id="cdf-queue_delay"></div></div></div>`;
  for (const metric of ['jct', 'queue_delay']) {
    const data = await Promise.all(runs.map((r) => get(`/api/runs/${r.index}/cdf?metric=${metric}&points=400`)));
    const series = data.map((d, k) => ({ label: `${runs[k].label} (n=${d.n})`, color: runColour(k),
                                         dash: runDash(k), step: true, points: d.points }));
    const el = main.querySelector(`#cdf-${metric}`);
    el.dataset.points = String(lineChart(el, { series, xLabel: 'seconds', yLabel: 'fraction ≤ x', yMax: 1 }));
    if (data.every((d) => d.n === 0)) {
      el.insertAdjacentHTML('afterbegin', `<p class="muted">No ${metric === 'jct' ? 'finished task' : 'started attempt'} in ${runs.length > 1 ? 'these runs' : 'this run'}.</p>`);
    }
  }
}

async function tasksView(runs) {
  const run = runs[0];
  const state = { offset: 0, limit: 100, q: '', state: '' };
  const by = Object.keys(await get(`/api/runs/${run.index}/tasks?limit=1`).then((d) => d.by_state));
  main.innerHTML = `<h1>Task attempts · ${esc(run.label)}</h1><div class="card">
    <div class="toolbar"><select id="t-state"><option value="">every state</option>${
      by.map((s) => `<option>${esc(s)}</option>`).join('')}</select>
    <input id="t-q" type="search" placeholder="task id or name"></div>
    <table id="tasks-table"><thead><tr>${['task', 'attempt', 'name', 'job', 'node', 'state', 'submit s', 'start s',
      'end s', 'spillbacks', 'wait reason'].map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody></tbody></table>
    <div class="pager"><button id="t-prev" type="button">‹ prev</button><span id="t-page"></span>
    <button id="t-next" type="button">next ›</button></div></div>`;
  let total = 0;
  const load = async () => {
    const q = new URLSearchParams({ offset: state.offset, limit: state.limit });
    if (state.q) q.set('q', state.q);
    if (state.state) q.set('state', state.state);
    const d = await get(`/api/runs/${run.index}/tasks?${q}`);
    total = d.total;
    main.querySelector('#tasks-table tbody').innerHTML = d.items.map((t) => `<tr>
      <td class="num">${esc(t.task_id)}</td><td class="num">${esc(t.attempt)}</td><td>${esc(t.name)}</td>
      <td>${esc(t.job_id)}</td><td>${esc(t.node_id)}</td><td>${esc(t.state)}</td>
      <td class="num">${esc(fmtNum(t.submit_s))}</td><td class="num">${esc(fmtNum(t.start_s))}</td>
      <td class="num">${esc(fmtNum(t.end_s))}</td><td class="num">${esc(t.spillbacks)}</td>
      <td>${esc(t.wait_reason)}</td></tr>`).join('');
    main.querySelector('#t-page').textContent = total
      ? `${state.offset + 1}–${Math.min(total, state.offset + state.limit)} of ${total}` : 'no attempts match';
  };
  const show = (e) => main.insertAdjacentHTML('afterbegin', `<p class="error">${esc(e.message)}</p>`);
  main.querySelector('#t-prev').onclick = () => { state.offset = Math.max(0, state.offset - state.limit); load().catch(show); };
  main.querySelector('#t-next').onclick = () => { if (state.offset + state.limit < total) { state.offset += state.limit; load().catch(show); } };
  main.querySelector('#t-state').onchange = (ev) => { state.state = ev.target.value; state.offset = 0; load().catch(show); };
  let timer = null;
  main.querySelector('#t-q').oninput = (ev) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = ev.target.value.trim(); state.offset = 0; load().catch(show); }, 200);
  };
  await load();
}

async function render() {
  const { index, view, bad } = route();
  document.body.removeAttribute('data-rendered');
  document.body.removeAttribute('data-error');
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.view === view);
    const v = a.dataset.view;
    if (v !== 'tasks') a.setAttribute('href', index === null ? (v === 'summary' ? '/' : `/${v}`) : `/runs/${index}/${v}`);
    else a.setAttribute('href', `/runs/${index ?? 0}/tasks`);
  }
  try {
    if (!mode) mode = await get('/api/mode');
    renderPicker(index);
    if (bad || (index !== null && !mode.runs[index])) {
      throw new Error(`no run ${location.pathname.split('/')[2] || ''} here: runs are 0..${mode.runs.length - 1} (see /)`);
    }
    if (!VIEWS.includes(view)) throw new Error(`no view '${view}': views are ${VIEWS.join(', ')}`);
    const runs = index === null ? mode.runs : [mode.runs[index]];
    document.title = `Orrery results · ${view}`;
    main.innerHTML = '<p class="muted">Loading…</p>';
    showWarnings(index === null ? mode.warnings || [] : []);
    if (view === 'summary') summaryView(runs);
    else if (view === 'timeline') {
      main.innerHTML = '<h1>Task timeline per node</h1><div id="timelines"></div>';
      await timelines(main.querySelector('#timelines'), runs, get);
    } else if (view === 'series') await seriesView(runs);
    else if (view === 'heatmap') await heatmapView(runs);
    else if (view === 'wait-reasons') await waitReasonsView(runs);
    else if (view === 'cdf') await cdfView(runs);
    else if (view === 'tasks') await tasksView(runs);
    document.body.dataset.rendered = view;
    performance.mark('orrery:rendered');
  } catch (e) {
    main.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    document.body.dataset.error = e.message;
    document.body.dataset.rendered = view;
    performance.mark('orrery:rendered');
  }
}

// Runs side by side of different scenarios or seeds: said above every view.
function showWarnings(warnings) {
  let el = document.getElementById('warnings');
  if (!el) {
    el = document.createElement('div');
    el.id = 'warnings';
    main.before(el);
  }
  el.innerHTML = warnings.map((w) => `<p class="warning">${esc(w)}</p>`).join('');
}

function renderPicker(index) {
  const host = document.getElementById('runs-picker');
  if (!mode || mode.runs.length < 2) { host.innerHTML = ''; return; }
  host.innerHTML = `<select aria-label="runs"><option value="">all ${mode.runs.length} runs side by side</option>${
    mode.runs.map((r) => `<option value="${r.index}"${index === r.index ? ' selected' : ''}>${esc(r.label)}</option>`).join('')}</select>`;
  host.querySelector('select').onchange = (ev) => {
    const view = route().view;
    navigate(ev.target.value === '' ? (view === 'summary' ? '/' : `/${view === 'tasks' ? 'summary' : view}`)
                                    : `/runs/${ev.target.value}/${view}`);
  };
}

function navigate(path) {
  if (path !== location.pathname) history.pushState(null, '', path);
  render();
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-link]');
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
// Charts are drawn for the window's width: draw again when it changes (not on height changes).
let resizeTimer = null, drawnWidth = window.innerWidth;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (window.innerWidth !== drawnWidth) { drawnWidth = window.innerWidth; render(); }
  }, 250);
});
render();

// Metrics: time-series charts of the orrery_* metrics from the head's in-memory history
// (GET /api/metrics, the full window once, then `since` the newest point every 2 s): tasks by
// state, CPU and GPU utilisation per node, the scheduling-latency histogram, the runtime-env
// cache and the autoscaler's nodes. ?node_id=X keeps that node's series only.
import { getJSON } from '../api.js';
import { html, setHTML, errorBox, fmtBytes } from '../ui.js';
import { lineChart, barChart } from '../chart.js';

export const title = 'Metrics';
const WINDOW_MS = 15 * 60 * 1000;
const NAMES = ['orrery_tasks', 'orrery_node_cpu_utilization', 'orrery_node_gpus_utilization',
  'orrery_scheduling_latency_seconds', 'orrery_runtime_env_cache_bytes',
  'orrery_runtime_env_cache_evictions_total', 'orrery_autoscaler_active_nodes',
  'orrery_autoscaler_pending_nodes', 'orrery_nodes', 'orrery_resources'];

const CHARTS = [
  { id: 'tasks', title: 'Tasks by state (all nodes)', metric: 'orrery_tasks', key: l => l.state, sum: true,
    keep: l => ['pending', 'leased', 'running'].includes(l.state) },
  { id: 'tasks-done', title: 'Tasks ended (since each daemon started)', metric: 'orrery_tasks', key: l => l.state, sum: true,
    keep: l => ['finished', 'failed', 'canceled'].includes(l.state) },
  { id: 'cpu', title: 'CPU utilisation per node', metric: 'orrery_node_cpu_utilization', key: l => l.node || 'node',
    yMax: 1, yFormat: v => `${Math.round(v * 100)}%` },
  { id: 'gpu', title: 'GPU utilisation per node and device', metric: 'orrery_node_gpus_utilization',
    key: l => `${l.node || 'node'} gpu ${l.gpu ?? '?'}`, yMax: 1, yFormat: v => `${Math.round(v * 100)}%`,
    empty: 'no GPUs in this cluster' },
  { id: 'latency', title: 'Scheduling latency (lease request → granted)', histogram: 'orrery_scheduling_latency_seconds' },
  { id: 'envcache', title: 'Runtime-env cache size per node', metric: 'orrery_runtime_env_cache_bytes', key: l => l.node || 'node',
    yFormat: fmtBytes },
  { id: 'evictions', title: 'Runtime-env cache evictions per node', metric: 'orrery_runtime_env_cache_evictions_total', key: l => l.node || 'node' },
  { id: 'autoscaler', title: 'Autoscaler nodes', metric: ['orrery_autoscaler_active_nodes', 'orrery_autoscaler_pending_nodes'],
    key: (l, m) => `${m === 'orrery_autoscaler_active_nodes' ? 'active' : 'pending'} ${l.node_type || ''}`.trim(), sum: true },
  { id: 'nodes', title: 'Nodes by state', metric: 'orrery_nodes', key: l => l.state, sum: true },
  { id: 'cpu-used', title: 'CPUs used (all nodes)', metric: 'orrery_resources', key: l => `${l.name} ${l.state}`, sum: true,
    keep: l => l.name === 'CPU' },
];

export function mount(root, ctx) {
  const nodeFilter = ctx.query.get('node_id') || '';
  setHTML(root, html`<h1>Metrics${nodeFilter ? html` of node <span class="mono">${nodeFilter}</span>` : ''}</h1>
    <p class="muted">The head's history of the last 15 minutes, one sample per report period.
      ${nodeFilter ? html`<a href="/metrics">All nodes</a>` : ''}</p>
    <div id="metrics-error"></div>
    <div class="charts">${CHARTS.map(c => html`<div class="chart" id="chart-${c.id}" data-chart="${c.id}"><h3>${c.title}</h3><div class="plot"></div></div>`)}</div>`);
  const errEl = root.querySelector('#metrics-error');
  const series = new Map();   // metric \u0000 labels JSON → {metric, labels, points}
  let histograms = [];
  let interval = 1000, newest = 0;

  const keepNode = l => !nodeFilter || !l.node || l.node === nodeFilter;
  function merge(r) {
    interval = Math.max(100, (r.interval_s || 1) * 1000);
    for (const s of r.series || []) {
      if (!keepNode(s.labels || {})) continue;
      const k = `${s.metric}\u0000${JSON.stringify(s.labels || {})}`;
      let cur = series.get(k);
      if (!cur) { cur = { metric: s.metric, labels: s.labels || {}, points: [] }; series.set(k, cur); }
      const last = cur.points.length ? cur.points[cur.points.length - 1][0] : -Infinity;
      for (const p of s.points || []) if (p[0] > last) cur.points.push(p);
      if (cur.points.length) newest = Math.max(newest, cur.points[cur.points.length - 1][0]);
    }
    const cut = newest - WINDOW_MS;
    for (const s of series.values()) {
      let i = 0;
      while (i < s.points.length && s.points[i][0] < cut) i++;
      if (i) s.points.splice(0, i);
    }
    histograms = (r.histograms || []).filter(h => keepNode(h.labels || {}));
  }

  function lines(c) {
    const metrics = Array.isArray(c.metric) ? c.metric : [c.metric];
    const groups = new Map();
    for (const s of series.values()) {
      if (!metrics.includes(s.metric) || (c.keep && !c.keep(s.labels))) continue;
      const name = c.key(s.labels, s.metric);
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(s.points);
    }
    const out = [];
    for (const [name, lists] of [...groups.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0])))) {
      if (lists.length === 1 && !c.sum) { out.push({ name, points: lists[0] }); continue; }
      const acc = new Map();  // samples of different nodes in the same period add up
      for (const pts of lists) for (const [t, v] of pts) {
        const b = Math.round(t / interval) * interval;
        acc.set(b, (acc.get(b) || 0) + v);
      }
      out.push({ name, points: [...acc.entries()].sort((a, b) => a[0] - b[0]) });
    }
    return out;
  }

  function latencyBars(metric) {
    const byLe = new Map();
    for (const h of histograms) {
      if (h.metric !== metric) continue;
      for (const b of h.buckets || []) byLe.set(String(b.le), (byLe.get(String(b.le)) || 0) + (b.count || 0));
    }
    const les = [...byLe.keys()].sort((a, b) => Number(a) - Number(b));  // "+Inf" sorts last
    const bars = [];
    let prev = 0;
    for (const le of les) {   // Prometheus buckets are cumulative: each bar is its own share
      const cum = byLe.get(le);
      const n = Number(le);
      bars.push({ label: isFinite(n) ? (n < 1 ? `≤${Math.round(n * 1000)}ms` : `≤${n}s`) : '+Inf', value: Math.max(0, cum - prev) });
      prev = cum;
    }
    return bars.every(b => b.value === 0) ? [] : bars;
  }

  function draw() {
    for (const c of CHARTS) {
      const plot = root.querySelector(`#chart-${c.id} .plot`);
      if (c.histogram) barChart(plot, latencyBars(c.histogram), { empty: 'no lease granted yet' });
      else lineChart(plot, lines(c), { yMax: c.yMax, yFormat: c.yFormat, empty: c.empty || 'no samples yet' });
    }
  }

  ctx.every(2000, async () => {
    try {
      const r = await getJSON('/api/metrics', newest ? { names: NAMES.join(','), since: newest + 1 } : { names: NAMES.join(',') });
      errEl.replaceChildren();
      merge(r);
      draw();
      ctx.rendered();
    } catch (e) { setHTML(errEl, errorBox(e)); }
  });
}

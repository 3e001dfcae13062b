// Metrics: time-series charts of the orrery_* metrics from the head's in-memory history
// (GET /api/metrics, the full window once, then `since` the newest point every 2 s): tasks by
// state, CPU, GPU and memory utilisation per node, cluster CPUs, the scheduling-latency
// histogram, the runtime-env cache, nodes, the autoscaler's nodes and placement groups. ?node_id=X keeps that node's series only.
import { getJSON } from '../api.js';
import { html, setHTML, errorBox, fmtBytes } from '../ui.js';
import { lineChart, barChart } from '../chart.js';

export const title = 'Metrics';
const WINDOW_MS = 15 * 60 * 1000;
const pct = v => `${Math.round(v * 100)}%`;

// Each chart draws from the first of its sources that has series in the head's history (the
// head samples its own view: orrery_head_task_table, orrery_node_utilization{resource}, ...;
// the per-node Prometheus names are used where the history has them).
const CHARTS = [
  { id: 'tasks', title: 'Tasks by state', sources: [
    { metric: 'orrery_head_task_table', key: l => l.state, sum: true,
      keep: l => !['finished', 'failed', 'canceled'].includes(String(l.state).toLowerCase()) },
    { metric: 'orrery_tasks', key: l => l.state, sum: true, keep: l => ['pending', 'leased', 'running'].includes(l.state) }] },
  { id: 'tasks-done', title: 'Tasks ended', sources: [
    { metric: 'orrery_head_task_table', key: l => l.state, sum: true,
      keep: l => ['finished', 'failed', 'canceled'].includes(String(l.state).toLowerCase()) },
    { metric: 'orrery_tasks', key: l => l.state, sum: true, keep: l => ['finished', 'failed', 'canceled'].includes(l.state) }] },
  { id: 'cpu', title: 'CPU utilisation per node', yMax: 1, yFormat: pct, sources: [
    { metric: 'orrery_node_utilization', key: l => l.node, keep: l => l.resource === 'CPU' },
    { metric: 'orrery_node_cpu_utilization', key: l => l.node }] },
  { id: 'gpu', title: 'GPU utilisation per node', yMax: 1, yFormat: pct, empty: 'no GPUs in this cluster', sources: [
    { metric: 'orrery_node_gpus_utilization', key: l => `${l.node} gpu ${l.gpu ?? '?'}` },
    { metric: 'orrery_node_utilization', key: l => l.node, keep: l => l.resource === 'GPU' }] },
  { id: 'latency', title: 'Scheduling latency (lease request → granted)', histogram: 'orrery_scheduling_latency_seconds' },
  { id: 'resources', title: 'Cluster CPUs used of total', sources: [
    { metric: ['orrery_cluster_resource_used', 'orrery_cluster_resource_total'], keep: l => l.resource === 'CPU',
      key: (l, m) => (m.endsWith('_used') ? 'used' : 'total') }] },
  { id: 'memory', title: 'Memory utilisation per node', yMax: 1, yFormat: pct, empty: 'no memory resource', sources: [
    { metric: 'orrery_node_utilization', key: l => l.node, keep: l => l.resource === 'memory' }] },
  { id: 'envcache', title: 'Runtime-env cache size per node', yFormat: fmtBytes, empty: 'no runtime env cached yet', sources: [
    { metric: 'orrery_runtime_env_cache_bytes', key: l => l.node }] },
  { id: 'nodes', title: 'Nodes by state', sources: [{ metric: 'orrery_nodes', key: l => l.state, sum: true }] },
  { id: 'autoscaler', title: 'Autoscaler nodes', empty: 'no autoscaler', sources: [
    { metric: ['orrery_autoscaler_active_nodes', 'orrery_autoscaler_pending_nodes'], sum: true,
      key: (l, m) => `${m.endsWith('active_nodes') ? 'active' : 'pending'} ${l.node_type || ''}`.trim() }] },
  { id: 'groups', title: 'Placement groups by state', sources: [{ metric: 'orrery_placement_groups', key: l => l.state, sum: true }] },
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

  function linesOf(src) {
    const metrics = Array.isArray(src.metric) ? src.metric : [src.metric];
    const groups = new Map();
    for (const s of series.values()) {
      if (!metrics.includes(s.metric) || (src.keep && !src.keep(s.labels))) continue;
      const name = String(src.key(s.labels, s.metric) ?? s.metric);
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(s.points);
    }
    const out = [];
    for (const [name, lists] of [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      if (lists.length === 1 && !src.sum) { out.push({ name, points: lists[0] }); continue; }
      const acc = new Map();  // samples of different nodes in the same period add up
      for (const pts of lists) for (const [t, v] of pts) {
        const b = Math.round(t / interval) * interval;
        acc.set(b, (acc.get(b) || 0) + v);
      }
      out.push({ name, points: [...acc.entries()].sort((a, b) => a[0] - b[0]) });
    }
    return out;
  }
  function lines(c) {
    for (const src of c.sources) {
      const out = linesOf(src);
      if (out.length) return out;
    }
    return [];
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
      const r = await getJSON('/api/metrics', newest ? { since: newest + 1 } : {});
      errEl.replaceChildren();
      merge(r);
      draw();
      ctx.rendered();
    } catch (e) { setHTML(errEl, errorBox(e)); }
  });
}

// One node: its details, workers, cached runtime envs and log files, with links to its logs and
// metrics (GET /api/nodes/{id} every 2 s).
import { getJSON } from '../api.js';
import { html, setHTML, badge, fmtDur, fmtBytes, ListPanel, errorBox, enc } from '../ui.js';
import { resourceCells, gpuCells, labels } from './cluster.js';

export const title = 'Node';

export function mount(root, ctx) {
  const id = ctx.params[0];
  setHTML(root, html`<h1>Node <span class="mono">${id}</span></h1>
    <p><a href="/logs?node_id=${enc(id)}">Logs of this node</a> · <a href="/metrics?node_id=${enc(id)}">Metrics of this node</a> ·
      <a href="/tasks?node_id=${enc(id)}">Tasks on this node</a></p>
    <div class="panel" id="node-info"><p class="muted">Loading…</p></div>
    <h2>Workers</h2><div id="node-workers"></div>
    <h2>Runtime envs cached</h2><div id="node-envs"></div>
    <h2>Log files</h2><div id="node-logs"></div>`);
  const info = root.querySelector('#node-info');
  const workers = new ListPanel(root.querySelector('#node-workers'), {
    empty: 'No workers.', columns: [
      { title: 'PID', cls: 'num', cell: w => w.pid },
      { title: 'State', cell: w => badge(w.state) },
      { title: 'Task', cell: w => w.task_id ? html`<span class="mono">${w.task_id}</span>` : '–' },
      { title: 'Job', cell: w => w.job_id ? html`<a href="/jobs/${enc(w.job_id)}" class="mono">${w.job_id}</a>` : '–' },
      { title: 'Env', cls: 'wrap', cell: w => w.env ? html`<code>${w.env}</code>` : '–' },
    ] });
  const envs = new ListPanel(root.querySelector('#node-envs'), {
    empty: 'No runtime envs cached.', columns: [
      { title: 'Key', cls: 'wrap', cell: e => html`<code>${e.key}</code>` },
      { title: 'Size', cls: 'num', cell: e => fmtBytes(e.bytes) },
      { title: 'In use', cell: e => e.in_use ? 'yes' : 'no' },
    ] });
  const logs = new ListPanel(root.querySelector('#node-logs'), {
    empty: 'No log files.', columns: [
      { title: 'File', cell: f => html`<a href="/logs?node_id=${enc(id)}&name=${enc(f.name)}" class="mono">${f.name}</a>` },
      { title: 'Size', cls: 'num', cell: f => fmtBytes(f.size) },
    ] });
  ctx.every(2000, async () => {
    let n;
    try { n = await getJSON(`/api/nodes/${enc(id)}`); } catch (e) { setHTML(info, errorBox(e)); return; }
    setHTML(info, html`${n.detail_error ? html`<p class="error">Workers, envs and log files are missing: ${n.detail_error}</p>` : ''}<dl class="kv">
      <dt>State</dt><dd>${badge(n.state)} ${n.is_head_node ? html`<span class="badge">head</span>` : ''}</dd>
      <dt>Address</dt><dd class="mono">${n.address}</dd><dt>PID</dt><dd>${n.pid ?? '–'}</dd>
      <dt>Labels</dt><dd>${labels(n.labels)}</dd>
      <dt>Resources</dt><dd>${resourceCells(n.resources)}</dd>
      <dt>GPUs</dt><dd>${gpuCells(n.gpus)}</dd>
      <dt>Heartbeat</dt><dd>${fmtDur(n.ms_since_heartbeat)} ago</dd>
      <dt>Metrics</dt><dd>${n.metrics_address ? html`<span class="mono">http://${n.metrics_address}/metrics</span>` : '–'}</dd></dl>`);
    await Promise.all([workers.setRows(Array.isArray(n.workers) ? n.workers : []),
                       envs.setRows(n.envs || []), logs.setRows(n.log_files || [])]);
    ctx.rendered();
  });
}

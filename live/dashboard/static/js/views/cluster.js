// Cluster: one row per node with address, state, labels, resources used/total (each GPU device
// too), workers, runtime envs cached and heartbeat age (GET /api/nodes, paginated, every 2 s).
import { getJSON } from '../api.js';
import { html, setHTML, badge, fmtRes, fmtDur, resBar, ListPanel, debounce, enc } from '../ui.js';

export const title = 'Cluster';

export function resourceCells(resources) {
  return html`<div class="res">${Object.entries(resources || {}).map(([k, v]) => html`<span>${k}</span>${resBar(v.used, v.total)}<span class="mono">${fmtRes(k, v.used)} / ${fmtRes(k, v.total)}</span>`)}</div>`;
}
export function gpuCells(gpus) {
  if (!gpus || !gpus.length) return html`<span class="muted">–</span>`;
  return html`<div class="res">${gpus.map(g => html`<span>GPU ${g.index}</span>${resBar(g.used, g.total)}<span class="mono">${fmtRes('GPU', g.used)} / ${fmtRes('GPU', g.total)}</span>`)}</div>`;
}
export function labels(l) {
  const e = Object.entries(l || {});
  return e.length ? html`${e.map(([k, v]) => html`<code>${k}=${v}</code> `)}` : html`<span class="muted">–</span>`;
}

export function mount(root, ctx) {
  const st = ctx.query.get('state') || '';
  setHTML(root, html`<h1>Cluster</h1>
    <div class="toolbar"><label>State <select id="node-state">${['', 'ALIVE', 'DRAINING', 'DEAD'].map(s => html`<option value="${s}" ${s === st ? html`selected` : ''}>${s || 'any'}</option>`)}</select></label>
      <input type="search" id="node-q" placeholder="search node id or address" value="${ctx.query.get('q') || ''}"></div>
    <div id="node-table"></div>`);
  const sel = root.querySelector('#node-state'), q = root.querySelector('#node-q');
  const table = new ListPanel(root.querySelector('#node-table'), {
    empty: 'No nodes match.',
    load: (offset, limit) => getJSON('/api/nodes', { state: sel.value, q: q.value.trim(), offset, limit }),
    columns: [
      { title: 'Node', cell: n => html`<a href="/nodes/${enc(n.node_id)}" data-testid="node-link">${n.node_id}</a>${n.is_head_node ? html` <span class="badge">head</span>` : ''}` },
      { title: 'Address', cell: n => html`<span class="mono">${n.address}</span>` },
      { title: 'State', cell: n => badge(n.state) },
      { title: 'Labels', cls: 'wrap', cell: n => labels(n.labels) },
      { title: 'Resources (used / total)', cell: n => resourceCells(n.resources) },
      { title: 'GPUs', cell: n => gpuCells(n.gpus) },
      { title: 'Workers', cls: 'num', cell: n => n.workers ?? 0 },
      { title: 'Envs cached', cls: 'num', cell: n => n.envs_cached ?? 0 },
      { title: 'Heartbeat', cls: 'num', cell: n => n.state === 'DEAD' ? '–' : fmtDur(n.ms_since_heartbeat) },
      { title: '', cell: n => html`<a href="/logs?node_id=${enc(n.node_id)}">logs</a> · <a href="/metrics?node_id=${enc(n.node_id)}">metrics</a>` },
    ],
    onRendered: () => ctx.rendered(),
  });
  const changed = () => { ctx.setQuery({ state: sel.value, q: q.value.trim() }); table.reset(); table.refresh(); };
  sel.addEventListener('change', changed);
  q.addEventListener('input', debounce(changed, 250));
  ctx.every(2000, () => table.refresh());
}

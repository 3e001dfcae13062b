// Overview: nodes, resources used/total, tasks, jobs, actors, placement groups, the autoscaler
// and recent events (GET /api/overview every 2 s; new events also arrive by SSE).
import { getJSON } from '../api.js';
import { html, setHTML, badge, fmtTime, fmtRes, resBar, errorBox, ListPanel } from '../ui.js';

export const title = 'Overview';

function counts(obj, link) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return html`<p class="muted">none</p>`;
  return html`<dl class="kv">${entries.map(([k, v]) => html`<dt>${link ? html`<a href="${link(k)}">${k}</a>` : k}</dt><dd>${v}</dd>`)}</dl>`;
}

function eventRow(e) {
  return html`<span class="sev-${e.severity}">${e.severity}</span>`;
}

export function mount(root, ctx) {
  setHTML(root, html`<h1>Overview</h1><div id="ov-cards" class="cards"><p class="muted">Loading…</p></div>
    <h2>Recent events</h2><div id="ov-events"></div>`);
  const cards = root.querySelector('#ov-cards');
  let events = [];
  const seen = new Set();
  const table = new ListPanel(root.querySelector('#ov-events'), {
    limit: 20, empty: 'No events yet.',
    columns: [
      { title: 'Time', cell: e => fmtTime(e.time_ms) },
      { title: 'Severity', cell: eventRow },
      { title: 'Kind', cell: e => html`<code>${e.kind}</code>` },
      { title: 'Message', cls: 'wrap', cell: e => e.message },
      { title: 'Where', cell: e => html`${e.node_id ? html`<a href="/nodes/${encodeURIComponent(e.node_id)}">${e.node_id}</a> ` : ''}${e.job_id ? html`<a href="/jobs/${encodeURIComponent(e.job_id)}">${e.job_id}</a>` : ''}` },
    ],
  });
  const addEvents = list => {
    let added = false;
    for (const e of list) if (!seen.has(e.seq)) { seen.add(e.seq); events.push(e); added = true; }
    if (added) { events.sort((a, b) => b.seq - a.seq); events = events.slice(0, 500); table.setRows(events); }
  };
  table.setRows(events);
  ctx.every(2000, async () => {
    let ov;
    try { ov = await getJSON('/api/overview'); } catch (e) { setHTML(cards, errorBox(e)); return; }
    const n = ov.nodes || {};
    // Placement-group bundle resources (CPU_group_0_<pg>, bundle_group_<pg>) are counted, not listed.
    const allRes = Object.entries(ov.resources || {});
    const res = allRes.filter(([k]) => !/_group_|^bundle_group/.test(k));
    const pgRes = allRes.length - res.length;
    const a = ov.autoscaler || {};
    setHTML(cards, html`
      <div class="card" id="card-nodes"><h3>Nodes</h3><div class="big"><a href="/cluster" data-testid="nodes-alive">${n.alive ?? 0}</a> alive</div>
        <div class="muted">${n.draining ?? 0} draining · ${n.dead ?? 0} dead</div></div>
      <div class="card"><h3>Resources (used / total)</h3>${res.length ? html`<div class="res">${res.map(([k, v]) => html`<span>${k}</span>${resBar(v.used, v.total)}<span class="mono">${fmtRes(k, v.used)} / ${fmtRes(k, v.total)}</span>`)}</div>` : html`<p class="muted">none</p>`}
        ${pgRes ? html`<p class="muted">+ ${pgRes} placement-group bundle resources (see <a href="/cluster">Cluster</a>)</p>` : ''}</div>
      <div class="card"><h3><a href="/tasks">Tasks</a></h3>${counts(ov.tasks, k => `/tasks?state=${encodeURIComponent(k)}`)}</div>
      <div class="card"><h3><a href="/jobs">Jobs</a></h3>${counts(ov.jobs, k => `/jobs?status=${encodeURIComponent(k.toUpperCase())}`)}</div>
      <div class="card"><h3><a href="/actors">Actors</a></h3>${counts(ov.actors, k => `/actors?state=${encodeURIComponent(k)}`)}</div>
      <div class="card"><h3><a href="/tasks#pgs">Placement groups</a></h3>${counts(ov.placement_groups)}</div>
      <div class="card"><h3>Autoscaler</h3>${a.enabled
        ? html`<dl class="kv"><dt>active nodes</dt><dd>${a.active_nodes ?? 0}</dd><dt>pending nodes</dt><dd>${a.pending_nodes ?? 0}</dd></dl>`
        : html`<p class="muted">off (no --autoscaler-config)</p>`}
        ${(a.infeasible || []).length ? html`<h3>Infeasible demand</h3><ul class="plain">${a.infeasible.map(d => html`<li><code>${JSON.stringify(d.shape)}</code> × ${d.count}</li>`)}</ul>` : ''}</div>`);
    addEvents(ov.events || []);
    ctx.rendered();
  });
  ctx.stream('/api/events/stream', 'event', e => addEvents([e]));
}

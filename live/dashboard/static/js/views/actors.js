// Actors: state, class, job, node, pid, restarts and death cause; state filter and search
// (GET /api/actors, paginated, every 2 s).
import { getJSON } from '../api.js';
import { html, setHTML, badge, fmtTime, ListPanel, debounce, enc } from '../ui.js';

export const title = 'Actors';
const STATES = ['', 'DEPENDENCIES_UNREADY', 'PENDING_CREATION', 'ALIVE', 'RESTARTING', 'DEAD'];

export function actorColumns() {
  return [
    { title: 'Actor', cell: a => html`<span class="mono">${a.actor_id}</span>` },
    { title: 'Class', cell: a => a.class_name },
    { title: 'State', cell: a => badge(a.state) },
    { title: 'Job', cell: a => a.job_id ? html`<a href="/jobs/${enc(a.job_id)}" class="mono">${a.job_id}</a>` : '–' },
    { title: 'Node', cell: a => a.node_id ? html`<a href="/nodes/${enc(a.node_id)}">${a.node_id}</a>` : '–' },
    { title: 'PID', cls: 'num', cell: a => a.worker_pid || '–' },
    { title: 'Restarts', cls: 'num', cell: a => `${a.num_restarts ?? 0} / ${a.max_restarts === -1 ? '∞' : (a.max_restarts ?? 0)}` },
    { title: 'Death cause', cls: 'wrap', cell: a => a.death_cause || '–' },
    { title: 'Updated', cell: a => fmtTime(a.update_ms) },
  ];
}

export function mount(root, ctx) {
  const st = ctx.query.get('state') || '';
  setHTML(root, html`<h1>Actors</h1>
    <div class="toolbar"><label>State <select id="actor-state">${STATES.map(s => html`<option value="${s}" ${s === st.toUpperCase() ? html`selected` : ''}>${s || 'any'}</option>`)}</select></label>
      <input type="search" id="actor-q" placeholder="search id or class" value="${ctx.query.get('q') || ''}">
      <input type="text" id="actor-job" placeholder="job id" value="${ctx.query.get('job_id') || ''}"></div>
    <div id="actor-table"></div>`);
  const sel = root.querySelector('#actor-state'), q = root.querySelector('#actor-q'), job = root.querySelector('#actor-job');
  const table = new ListPanel(root.querySelector('#actor-table'), {
    empty: 'No actors match.',
    load: (offset, limit) => getJSON('/api/actors', { state: sel.value, q: q.value.trim(), job_id: job.value.trim(), offset, limit }),
    columns: actorColumns(),
    onRendered: () => ctx.rendered(),
  });
  const changed = () => { ctx.setQuery({ state: sel.value, q: q.value.trim(), job_id: job.value.trim() }); table.reset(); table.refresh(); };
  sel.addEventListener('change', changed);
  q.addEventListener('input', debounce(changed, 250));
  job.addEventListener('input', debounce(changed, 250));
  ctx.every(2000, () => table.refresh());
}

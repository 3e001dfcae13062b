// Tasks and placement groups: tasks by state (chips from by_state), the wait reason and detail of
// every pending task, and placement groups with their bundles and nodes. Both paginated, every 2 s.
import { getJSON } from '../api.js';
import { html, setHTML, badge, fmtTime, fmtDur, ListPanel, debounce, enc, resourcesText } from '../ui.js';

export const title = 'Tasks';
const STATES = ['pending', 'leased', 'running', 'finished', 'failed', 'canceled'];

export function taskColumns() {
  return [
    { title: 'Task', cell: t => html`<span class="mono">${t.task_id}</span>` },
    { title: 'Name', cls: 'wrap', cell: t => t.name },
    { title: 'State', cell: t => badge(t.state) },
    { title: 'Why pending', cls: 'wrap', cell: t => t.wait_reason
        ? html`<span class="wait" data-testid="wait-reason"><b>${t.wait_reason}</b>${t.wait_detail ? html`: ${t.wait_detail}` : ''}</span>`
        : html`<span class="muted">–</span>` },
    { title: 'Job', cell: t => t.job_id ? html`<a href="/jobs/${enc(t.job_id)}" class="mono">${t.job_id}</a>` : '–' },
    { title: 'Node', cell: t => t.node_id ? html`<a href="/nodes/${enc(t.node_id)}">${t.node_id}</a>` : '–' },
    { title: 'Resources', cls: 'wrap', cell: t => resourcesText(t.resources) },
    { title: 'Attempt', cls: 'num', cell: t => t.attempt ?? 0 },
    { title: 'Spills', cls: 'num', cell: t => t.spillbacks ?? 0 },
    { title: 'Submitted', cell: t => fmtTime(t.submit_ms) },
    { title: 'Ran', cls: 'num', cell: t => t.start_ms ? fmtDur((t.end_ms || Date.now()) - t.start_ms) : '–' },
    { title: 'Exit / error', cls: 'wrap', cell: t => html`${t.exit_code ?? ''} ${t.error || ''}` },
  ];
}

function pgColumns() {
  return [
    { title: 'Group', cell: g => html`<span class="mono">${g.group_id}</span>` },
    { title: 'Strategy', cell: g => g.strategy },
    { title: 'State', cell: g => badge(g.state) },
    { title: 'Attempts', cls: 'num', cell: g => g.attempts ?? 0 },
    { title: 'Last failure', cls: 'wrap', cell: g => g.reason || '–' },
    { title: 'Bundles → nodes', cls: 'wrap', cell: g => html`<ul class="plain">${(g.bundles || []).map(b => html`<li>#${b.index} <code>${resourcesText(b.resources)}</code> → ${b.node_id ? html`<a href="/nodes/${enc(b.node_id)}">${b.node_id}</a>` : html`<span class="muted">unplaced</span>`}</li>`)}</ul>` },
  ];
}

export function mount(root, ctx) {
  let state = ctx.query.get('state') || '';
  setHTML(root, html`<h1>Tasks</h1>
    <div class="toolbar"><div class="chips" id="task-states"></div>
      <input type="search" id="task-q" placeholder="search id or name" value="${ctx.query.get('q') || ''}">
      <input type="text" id="task-job" placeholder="job id" value="${ctx.query.get('job_id') || ''}">
      <input type="text" id="task-node" placeholder="node id" value="${ctx.query.get('node_id') || ''}"></div>
    <div id="task-table"></div>
    <h2 id="pgs">Placement groups</h2>
    <div class="toolbar"><input type="search" id="pg-q" placeholder="search group id"></div>
    <div id="pg-table"></div>`);
  const chips = root.querySelector('#task-states');
  const q = root.querySelector('#task-q'), job = root.querySelector('#task-job'), node = root.querySelector('#task-node');
  const pgq = root.querySelector('#pg-q');
  let byState = {};
  const drawChips = () => setHTML(chips, html`${['', ...STATES].map(s => html`<button type="button" class="chip ${s === state ? 'on' : ''}" data-state="${s}">${s || 'all'}${s ? html` <span class="muted">${byState[s] ?? 0}</span>` : ''}</button>`)}`);
  drawChips();
  let tasksDone = false, pgsDone = false;
  const maybeRendered = () => { if (tasksDone && pgsDone) ctx.rendered(); };
  const tasks = new ListPanel(root.querySelector('#task-table'), {
    empty: 'No tasks match.',
    load: async (offset, limit) => {
      const r = await getJSON('/api/tasks', { state, q: q.value.trim(), job_id: job.value.trim(), node_id: node.value.trim(), offset, limit });
      byState = r.by_state || {};
      drawChips();
      return r;
    },
    columns: taskColumns(),
    onRendered: () => { tasksDone = true; maybeRendered(); },
  });
  const pgs = new ListPanel(root.querySelector('#pg-table'), {
    limit: 20, empty: 'No placement groups.',
    load: (offset, limit) => getJSON('/api/placement_groups', { q: pgq.value.trim(), offset, limit }),
    columns: pgColumns(),
    onRendered: () => { pgsDone = true; maybeRendered(); },
  });
  const changed = () => {
    ctx.setQuery({ state, q: q.value.trim(), job_id: job.value.trim(), node_id: node.value.trim() });
    tasks.reset(); tasks.refresh();
  };
  chips.addEventListener('click', e => {
    const b = e.target.closest('button[data-state]');
    if (!b) return;
    state = b.dataset.state;
    drawChips();
    changed();
  });
  for (const i of [q, job, node]) i.addEventListener('input', debounce(changed, 250));
  pgq.addEventListener('input', debounce(() => { pgs.reset(); pgs.refresh(); }, 250));
  ctx.every(2000, () => Promise.all([tasks.refresh(), pgs.refresh()]));
}

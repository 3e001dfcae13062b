// Jobs: every job with status, entrypoint, runtime env, start/end and duration
// (GET /api/job_list, status filter and search, paginated, every 2 s).
import { getJSON } from '../api.js';
import { html, setHTML, badge, fmtTime, fmtDur, ListPanel, debounce, enc } from '../ui.js';

export const title = 'Jobs';
const STATUSES = ['', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'];

export function jobColumns() {
  return [
    { title: 'Job', cell: j => html`<a href="/jobs/${enc(j.submission_id)}" class="mono">${j.submission_id}</a>` },
    { title: 'Status', cell: j => badge(j.status) },
    { title: 'Entrypoint', cls: 'wrap', cell: j => html`<code>${j.entrypoint}</code>` },
    { title: 'Runtime env', cls: 'wrap', cell: j => j.runtime_env && Object.keys(j.runtime_env).length ? html`<code>${JSON.stringify(j.runtime_env)}</code>` : html`<span class="muted">–</span>` },
    { title: 'Start', cell: j => fmtTime(j.start_time) },
    { title: 'End', cell: j => fmtTime(j.end_time) },
    { title: 'Duration', cls: 'num', cell: j => j.start_time ? fmtDur((j.end_time || Date.now()) - j.start_time) : '–' },
  ];
}

export function mount(root, ctx) {
  const status = ctx.query.get('status') || '';
  setHTML(root, html`<h1>Jobs</h1>
    <div class="toolbar"><label>Status <select id="jobs-status">${STATUSES.map(s => html`<option value="${s}" ${s === status ? html`selected` : ''}>${s || 'any'}</option>`)}</select></label>
    <input type="search" id="jobs-q" placeholder="search id or entrypoint" value="${ctx.query.get('q') || ''}"></div>
    <div id="jobs-table"></div>`);
  const sel = root.querySelector('#jobs-status');
  const q = root.querySelector('#jobs-q');
  const table = new ListPanel(root.querySelector('#jobs-table'), {
    empty: 'No jobs. Submit one with: orrery job submit -- COMMAND',
    load: (offset, limit) => getJSON('/api/job_list', { status: sel.value, q: q.value.trim(), offset, limit }),
    columns: jobColumns(),
    onRendered: () => ctx.rendered(),
  });
  const changed = () => { ctx.setQuery({ status: sel.value, q: q.value.trim() }); table.reset(); table.refresh(); };
  sel.addEventListener('change', changed);
  q.addEventListener('input', debounce(changed, 250));
  ctx.every(2000, () => table.refresh());
}

// One job: its details, a Stop button (POST /api/jobs/{id}/stop), the driver log streaming live
// (SSE /api/jobs/{id}/logs/stream; polling /api/jobs/{id}/logs if the stream fails), and the
// job's tasks and actors.
import { getJSON, postJSON, apiUrl } from '../api.js';
import { html, setHTML, badge, fmtTime, fmtDur, ListPanel, errorBox, enc } from '../ui.js';
import { taskColumns } from './tasks.js';
import { actorColumns } from './actors.js';

export const title = 'Job';
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'STOPPED']);
const MAX_LOG_CHARS = 2 * 1024 * 1024;

export function mount(root, ctx) {
  const id = ctx.params[0];
  const base = `/api/jobs/${enc(id)}`;
  setHTML(root, html`<h1>Job <span class="mono">${id}</span></h1>
    <div class="panel" id="job-info"><p class="muted">Loading…</p></div>
    <h2>Driver log <span class="muted" id="job-log-state"></span></h2>
    <pre class="log" id="job-log" data-testid="driver-log"></pre>
    <h2>Tasks</h2><div id="job-tasks"></div>
    <h2>Actors</h2><div id="job-actors"></div>`);
  const info = root.querySelector('#job-info');
  const logEl = root.querySelector('#job-log');
  const logState = root.querySelector('#job-log-state');
  let stopping = false, stopMsg = null, known = false;

  info.addEventListener('click', async e => {
    const b = e.target.closest('button[data-action=stop]');
    if (!b) return;
    b.disabled = true;
    stopping = true;
    try {
      const r = await postJSON(`${base}/stop`);
      stopMsg = r.stopped ? 'Stop requested.' : 'The job had already ended.';
    } catch (err) {
      stopMsg = err.message;
      stopping = false;
    }
    refreshInfo();
  });

  async function refreshInfo() {
    let j;
    try { j = await getJSON(base); } catch (e) { setHTML(info, errorBox(e)); return; }
    if (!known) { known = true; streamLog(); }
    const done = TERMINAL.has(j.status);
    setHTML(info, html`<div class="toolbar">${badge(j.status)}
        ${done ? '' : html`<button type="button" class="danger" data-action="stop" ${stopping ? html`disabled` : ''}>Stop</button>`}
        ${stopMsg ? html`<span class="muted" id="job-stop-msg">${stopMsg}</span>` : ''}</div>
      <dl class="kv">
        <dt>Entrypoint</dt><dd><code>${j.entrypoint}</code></dd>
        <dt>Message</dt><dd>${j.message || '–'}</dd>
        <dt>Runtime env</dt><dd><code>${JSON.stringify(j.runtime_env || {})}</code></dd>
        <dt>Start</dt><dd>${fmtTime(j.start_time)}</dd><dt>End</dt><dd>${fmtTime(j.end_time)}</dd>
        <dt>Duration</dt><dd>${j.start_time ? fmtDur((j.end_time || Date.now()) - j.start_time) : '–'}</dd>
        <dt>Driver</dt><dd>${j.driver_node_id ? html`<a href="/nodes/${enc(j.driver_node_id)}">${j.driver_node_id}</a>` : '–'} pid ${j.driver_pid ?? '–'}, exit code ${j.driver_exit_code ?? '–'}</dd>
        <dt>Metadata</dt><dd><code>${JSON.stringify(j.metadata || {})}</code></dd>
      </dl>`);
  }

  // The driver log: appended in order by byte offset, whichever way it comes.
  let logOffset = 0, complete = false, polling = false;
  function appendLog(text, offset, next) {
    if (offset !== undefined && offset !== null && offset > logOffset && logEl.textContent.length) {
      logEl.append(`\n[… ${offset - logOffset} bytes not shown …]\n`);
    }
    if (offset !== undefined && offset !== null && offset < logOffset) {
      text = text.slice(logOffset - offset);  // a repeat of what we have (after a reconnect)
    }
    if (text) {
      const stick = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
      logEl.append(text);
      if (logEl.textContent.length > MAX_LOG_CHARS) logEl.textContent = logEl.textContent.slice(-MAX_LOG_CHARS);
      if (stick) logEl.scrollTop = logEl.scrollHeight;
    }
    if (next !== undefined && next !== null) logOffset = Math.max(logOffset, next);
  }
  function pollLog() {
    if (polling) return;
    polling = true;
    logState.textContent = '(polling)';
    ctx.every(2000, async () => {
      if (complete) return;
      try {
        const r = await getJSON(`${base}/logs`, { offset: logOffset });
        appendLog(r.logs || '', r.offset, r.next_offset);
        if (r.complete && !r.truncated) { complete = true; logState.textContent = '(complete)'; }
      } catch (e) { logState.textContent = `(${e.message})`; }
    });
  }
  let es = null;
  function streamLog() {  // once the job is known, so an unknown id opens no stream
    es = ctx.stream(apiUrl(`${base}/logs/stream`), 'log', d => {
      appendLog(d.text || '', d.offset, (d.offset ?? logOffset) + new TextEncoder().encode(d.text || '').length);
      logState.textContent = d.complete ? '(complete)' : '(live)';
      if (d.complete) { complete = true; es.close(); }
    }, s => { if (!complete) { s.close(); pollLog(); } });
  }

  const tasks = new ListPanel(root.querySelector('#job-tasks'), {
    limit: 20, empty: 'No tasks of this job.',
    load: (offset, limit) => getJSON('/api/tasks', { job_id: id, offset, limit }),
    columns: taskColumns(),
  });
  const actors = new ListPanel(root.querySelector('#job-actors'), {
    limit: 20, empty: 'No actors of this job.',
    load: (offset, limit) => getJSON('/api/actors', { job_id: id, offset, limit }),
    columns: actorColumns(),
  });
  ctx.every(2000, async () => {
    await refreshInfo();
    if (known) { await Promise.all([tasks.refresh(), actors.refresh()]); ctx.rendered(); }
  });
}

// Logs: the log files of every node (worker, driver and daemon logs; filter by node and job),
// one file's tail followed live, search within a file, and the live line stream of a node or
// job. Following: every line batch the head publishes for the node (SSE /api/logs/stream)
// triggers a read from the last offset; a 2 s poll covers files nobody publishes (daemon logs).
import { getJSON, apiUrl } from '../api.js';
import { html, setHTML, fmtBytes, fmtTime, ListPanel, errorBox, debounce, enc } from '../ui.js';

export const title = 'Logs';
const TAIL_LINES = 500;
const MAX_CHARS = 2 * 1024 * 1024;

export function mount(root, ctx) {
  const st = { node_id: ctx.query.get('node_id') || '', job_id: ctx.query.get('job_id') || '',
               name: ctx.query.get('name') || '', q: ctx.query.get('q') || '' };
  setHTML(root, html`<h1>Logs</h1>
    <div class="toolbar"><label>Node <select id="log-node"><option value="">all nodes</option>${st.node_id ? html`<option value="${st.node_id}" selected>${st.node_id}</option>` : ''}</select></label>
      <input type="text" id="log-job" placeholder="job id" value="${st.job_id}"></div>
    <div class="split"><div><h2>Files</h2><div id="log-files"></div></div>
      <div><h2 id="log-title">${st.name ? st.name : 'Live lines'}</h2>
        <div class="toolbar"><label><input type="checkbox" id="log-follow" checked> follow</label>
          <input type="search" id="log-q" placeholder="search this file" value="${st.q}">
          <span class="muted" id="log-state"></span></div>
        <pre class="log" id="log-text" data-testid="log-text"></pre></div></div>`);
  const nodeSel = root.querySelector('#log-node'), jobIn = root.querySelector('#log-job');
  const follow = root.querySelector('#log-follow'), qIn = root.querySelector('#log-q');
  const text = root.querySelector('#log-text'), stateEl = root.querySelector('#log-state');
  const titleEl = root.querySelector('#log-title');

  getJSON('/api/nodes', { limit: 1000 }).then(r => {
    setHTML(nodeSel, html`<option value="">all nodes</option><option value="_head" ${st.node_id === '_head' ? html`selected` : ''}>head daemon</option>${r.items.map(n => html`<option value="${n.node_id}" ${n.node_id === st.node_id ? html`selected` : ''}>${n.node_id}${n.is_head_node ? ' (head)' : ''}</option>`)}`);
  }).catch(e => { stateEl.textContent = e.message; });

  const files = new ListPanel(root.querySelector('#log-files'), {
    limit: 30, empty: 'No log files match.',
    load: (offset, limit) => getJSON('/api/logs/files', { node_id: st.node_id, job_id: st.job_id, offset, limit }),
    columns: [
      // A job's driver output is kept by the head (node_id ""): its page follows it.
      { title: 'File', cls: 'wrap', cell: f => f.kind === 'driver' && !f.node_id && f.job_id
          ? html`<a href="/jobs/${enc(f.job_id)}" class="mono">${f.name}</a>`
          : html`<a href="/logs?node_id=${enc(f.node_id)}&name=${enc(f.name)}" class="mono" data-file="${f.name}">${f.name}</a>` },
      { title: 'Node', cell: f => f.node_id === '_head' ? 'head daemon' : (f.node_id || 'head') },
      { title: 'Kind', cell: f => f.kind },
      { title: 'Job', cell: f => f.job_id || '–' },
      { title: 'Size', cls: 'num', cell: f => fmtBytes(f.size) },
      { title: 'Modified', cell: f => fmtTime(f.modified_ms) },
    ],
    onRendered: () => ctx.rendered(),
  });

  // --- one file
  let next = null, reading = false, again = false;
  function show(chunk, replace) {
    const stick = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
    if (replace) text.textContent = chunk; else if (chunk) text.append(chunk);
    if (text.textContent.length > MAX_CHARS) text.textContent = text.textContent.slice(-MAX_CHARS);
    if (stick || replace) text.scrollTop = text.scrollHeight;
  }
  async function readFile() {
    if (!st.name || !st.node_id) return;
    if (reading) { again = true; return; }
    reading = true;
    try {
      do {
        again = false;
        const params = { node_id: st.node_id, name: st.name };
        if (st.q) { params.q = st.q; params.tail = TAIL_LINES; }
        else if (next === null) params.tail = TAIL_LINES;
        else params.offset = next;
        const r = await getJSON('/api/logs/file', params);
        if (!ctx.alive()) return;
        if (st.q) { show(r.text || '(no line matches)', true); stateEl.textContent = `lines matching “${st.q}”`; }
        else {
          if (next !== null && r.size < next) { next = null; again = true; continue; }  // rotated
          show(r.text || '', next === null);
          next = r.next_offset;
          stateEl.textContent = `${fmtBytes(r.size)}${follow.checked ? ' · following' : ''}`;
        }
      } while (again && ctx.alive());
    } catch (e) {
      setHTML(text, errorBox(e));
    } finally { reading = false; }
  }

  // --- live lines (no file chosen): the node's or job's published worker lines
  function liveLine(d) {
    const who = `${d.name || ''}${d.pid ? ` pid=${d.pid}` : ''}${d.node_id ? ` node=${d.node_id}` : ''}`;
    const lines = (d.lines || []).map(l => `(${who}) ${l}\n`).join('');
    show(lines + (d.dropped_lines ? `[${d.dropped_lines} lines dropped]\n` : ''), false);
  }

  let es = null;
  function restream() {
    if (es) { es.close(); es = null; }
    if (!follow.checked || st.q) return;
    const params = st.job_id && !st.name ? { job_id: st.job_id } : (st.node_id ? { node_id: st.node_id } : null);
    if (!params) return;
    es = ctx.stream(apiUrl('/api/logs/stream', params), 'log', d => {
      if (st.name) readFile();  // a new batch on this node: read on from the offset
      else liveLine(d);
    });
  }

  function chosen() {
    titleEl.textContent = st.name ? `${st.node_id} / ${st.name}` : (st.job_id ? `Live lines of job ${st.job_id}` : (st.node_id ? `Live lines of node ${st.node_id}` : 'Live lines'));
    next = null;
    text.textContent = st.name ? '' : (st.node_id || st.job_id ? '' : 'Pick a file, or a node or job to follow its lines live.');
    stateEl.textContent = '';
    readFile();
    restream();
  }
  const filtersChanged = () => {
    st.node_id = nodeSel.value; st.job_id = jobIn.value.trim(); st.name = '';
    ctx.setQuery({ node_id: st.node_id, job_id: st.job_id, name: '', q: '' });
    files.reset(); files.refresh(); chosen();
  };
  nodeSel.addEventListener('change', filtersChanged);
  jobIn.addEventListener('input', debounce(filtersChanged, 300));
  follow.addEventListener('change', restream);
  qIn.addEventListener('input', debounce(() => {
    st.q = qIn.value.trim();
    ctx.setQuery({ q: st.q });
    next = null; readFile(); restream();
  }, 300));
  // Links inside the file list change the file without a full route change.
  root.querySelector('#log-files').addEventListener('click', e => {
    const a = e.target.closest('a[data-file]');
    if (!a) return;
    e.preventDefault();
    const u = new URL(a.href);
    st.node_id = u.searchParams.get('node_id') || ''; st.name = u.searchParams.get('name') || '';
    ctx.setQuery({ node_id: st.node_id, name: st.name, q: st.q });
    chosen();
  });
  chosen();
  ctx.every(2000, async () => {
    await files.refresh();
    if (st.name && follow.checked && !st.q) await readFile();
  });
}

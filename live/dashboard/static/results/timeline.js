// The task timeline: one Gantt chart per run on canvas, lanes per node, attempts stacked in rows
// (the server's layout, /api/runs/{i}/timeline), coloured by state. Wheel zooms around the
// pointer, a drag selects a time range, a double click or "Reset zoom" shows the whole run; with
// two runs both charts share the time window (same axes). Each chart element carries
// data-drawn-tasks: the attempts its bars stand for (a merged bar of n sub-pixel attempts counts
// n), so the browser test can compare it with tasks.csv.
import { esc, fmtNum, setupCanvas, showTooltip, ticks } from './charts.js';

export const STATE_COLOURS = {
  finished: '#16a34a', running: '#2563eb', pending: '#f59e0b', failed: '#dc2626',
  canceled: '#6b7280', infeasible: '#7c3aed', leased: '#0891b2',
};
const colourOf = (s) => STATE_COLOURS[s] || '#0d9488';

// Draws the timelines of `runs` ([{index, label, summary}]) into `host`; `get(path)` fetches
// JSON. Resolves once every chart is drawn.
export async function timelines(host, runs, get) {
  const end = Math.max(1e-9, ...runs.map((r) => Number(r.summary.makespan_s) || 0));
  const view = { t0: 0, t1: end };
  host.innerHTML = `<div class="toolbar"><button type="button" id="tl-reset">Reset zoom</button>
    <span class="muted">wheel: zoom · drag: select a time range · double click: reset</span>
    <span id="tl-window" class="muted"></span></div>
    <div class="legend">${Object.entries(STATE_COLOURS).map(([s, c]) =>
      `<span><i style="background:${c}"></i>${esc(s)}</span>`).join('')}</div>` +
    runs.map((r) => `<section class="card"><h2>${esc(r.label)}</h2>
      <div class="timeline" id="timeline-${r.index}" data-run="${r.index}" data-drawn-tasks="0">
      <div style="position:relative"><canvas></canvas><div class="sel" hidden
        style="position:absolute;top:0;bottom:0;background:rgba(37,99,235,.15);border:1px solid #2563eb;pointer-events:none"></div>
      </div><p class="muted tl-note"></p></div></section>`).join('');
  const charts = runs.map((r) => ({ run: r, el: host.querySelector(`#timeline-${r.index}`) }));
  let seq = 0;

  async function load() {
    const mine = ++seq;
    host.querySelector('#tl-window').textContent =
      `window ${fmtNum(view.t0)}–${fmtNum(view.t1)} s of ${fmtNum(end)} s`;
    const datas = await Promise.all(charts.map((c) => {
      const px = Math.max(100, Math.min(8000, Math.round(c.el.clientWidth || 1000)));
      return get(`/api/runs/${c.run.index}/timeline?t0=${view.t0}&t1=${view.t1}&px=${px}`);
    }));
    if (mine !== seq) return;  // a newer zoom superseded this one
    datas.forEach((d, k) => draw(charts[k], d));
  }

  function draw(c, d) {
    const canvas = c.el.querySelector('canvas');
    const totalRows = d.lanes.reduce((a, l) => a + Math.max(1, l.rows), 0);
    const rowH = Math.max(1, Math.min(10, 560 / Math.max(1, totalRows)));
    const gap = d.lanes.length > 60 ? 1 : 3, top = 22;
    // Node ids as labels, long ones shortened with an ellipsis (the tooltip has the full id).
    const probe = canvas.getContext('2d');
    probe.font = '11px system-ui, sans-serif';
    const short = (id) => (id.length > 24 ? `${id.slice(0, 11)}…${id.slice(-11)}` : id);
    const labelW = Math.min(200, Math.max(70, ...d.lanes.map((l) =>
      probe.measureText(short(l.node_id || '(never ran)')).width + 12)));
    const laneY = [];
    let y = top;
    for (const l of d.lanes) { laneY.push(y); y += Math.max(1, l.rows) * rowH + gap; }
    const { ctx, w } = setupCanvas(canvas, y + 4);
    const plot = { x: labelW, w: w - labelW - 8 };
    const X = (t) => plot.x + ((t - d.t0) / (d.t1 - d.t0)) * plot.w;
    ctx.fillStyle = '#667085';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.strokeStyle = '#eef0f3';
    for (const t of ticks(d.t0, d.t1, Math.max(3, Math.floor(plot.w / 100)))) {
      ctx.fillText(fmtNum(t), X(t), 4);
      ctx.beginPath(); ctx.moveTo(X(t), top - 4); ctx.lineTo(X(t), y); ctx.stroke();
    }
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const every = Math.ceil(10 / Math.max(1, ...d.lanes.map((l) => Math.max(1, l.rows) * rowH)));
    d.lanes.forEach((l, i) => {
      const h = Math.max(1, l.rows) * rowH;
      ctx.fillStyle = i % 2 ? '#fafbfc' : '#f3f4f6';
      ctx.fillRect(plot.x, laneY[i], plot.w, h);
      ctx.fillStyle = '#1d2330';
      if (i % every === 0) ctx.fillText(short(l.node_id || '(never ran)'), plot.x - 6, laneY[i] + h / 2);
    });
    const perLane = d.lanes.map(() => []);
    let drawnTasks = 0;
    for (const b of d.bars) {
      const [lane, row, from, to, state, n] = b;
      const x0 = Math.max(plot.x, X(from)), x1 = Math.min(plot.x + plot.w, X(to));
      const bw = Math.max(1, x1 - x0);
      ctx.fillStyle = colourOf(d.states[state]);
      ctx.fillRect(x0, laneY[lane] + row * rowH, bw, Math.max(1, rowH - (rowH > 3 ? 1 : 0)));
      perLane[lane].push({ x0, x1: x0 + bw, row, b });
      drawnTasks += n;
    }
    c.el.dataset.drawnTasks = String(drawnTasks);
    c.el.dataset.bars = String(d.bars.length);
    c.el.dataset.tasksInWindow = String(d.tasks_in_window);
    const merged = d.bars.filter((b) => b[5] > 1).length;
    c.el.querySelector('.tl-note').textContent =
      `${d.tasks_in_window} attempts in the window, ${d.bars.length} bars` +
      (merged ? ` (${merged} bar${merged > 1 ? 's' : ''} merge attempts narrower than a pixel: zoom in to separate them)` : '');
    c.hit = (ev) => {
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left, my = ev.clientY - r.top;
      for (let i = 0; i < d.lanes.length; i++) {
        const h = Math.max(1, d.lanes[i].rows) * rowH;
        if (my < laneY[i] || my >= laneY[i] + h) continue;
        const row = Math.floor((my - laneY[i]) / rowH);
        const hit = perLane[i].find((p) => p.row === row && mx >= p.x0 - 1 && mx <= p.x1 + 1);
        if (!hit) return null;
        const [, , from, to, state, n, taskId, attempt, name] = hit.b;
        const node = d.lanes[i].node_id || '(never ran)';
        if (n > 1) return `${n} attempts (${d.states[state]}) on ${node}\n${fmtNum(from)}–${fmtNum(to)} s\nzoom in to separate them`;
        return `task ${taskId} · attempt ${attempt}\n${name}\nstate: ${d.states[state]}\nnode: ${node}\n` +
               `${fmtNum(from)}–${fmtNum(to)} s (${fmtNum(to - from)} s)`;
      }
      return null;
    };
    c.X = X;
    c.plot = plot;
  }

  function timeAt(c, ev) {
    const r = c.el.querySelector('canvas').getBoundingClientRect();
    const f = (ev.clientX - r.left - c.plot.x) / c.plot.w;
    return view.t0 + Math.max(0, Math.min(1, f)) * (view.t1 - view.t0);
  }
  let timer = null;
  const reload = () => { clearTimeout(timer); timer = setTimeout(() => load().catch(fail), 120); };
  const fail = (e) => { host.insertAdjacentHTML('afterbegin', `<p class="error">${esc(e.message)}</p>`); };
  const setWindow = (t0, t1) => {
    const minSpan = Math.max(end * 1e-6, 1e-6);
    if (t1 - t0 < minSpan) { const m = (t0 + t1) / 2; t0 = m - minSpan / 2; t1 = m + minSpan / 2; }
    view.t0 = Math.max(0, t0);
    view.t1 = Math.min(end, t1);
    if (!(view.t1 > view.t0)) { view.t0 = 0; view.t1 = end; }
    reload();
  };
  host.querySelector('#tl-reset').addEventListener('click', () => setWindow(0, end));
  for (const c of charts) {
    const canvas = c.el.querySelector('canvas'), sel = c.el.querySelector('.sel');
    let dragFrom = null;
    canvas.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const t = timeAt(c, ev), k = ev.deltaY < 0 ? 0.8 : 1.25;
      setWindow(t - (t - view.t0) * k, t + (view.t1 - t) * k);
    }, { passive: false });
    canvas.addEventListener('mousedown', (ev) => { dragFrom = ev.clientX; });
    canvas.addEventListener('mousemove', (ev) => {
      if (dragFrom !== null && Math.abs(ev.clientX - dragFrom) > 3) {
        const r = canvas.getBoundingClientRect();
        sel.hidden = false;
        sel.style.left = `${Math.min(dragFrom, ev.clientX) - r.left}px`;
        sel.style.width = `${Math.abs(ev.clientX - dragFrom)}px`;
        showTooltip('', ev);
        return;
      }
      showTooltip(c.hit ? c.hit(ev) : '', ev);
    });
    canvas.addEventListener('mouseup', (ev) => {
      sel.hidden = true;
      if (dragFrom !== null && Math.abs(ev.clientX - dragFrom) > 3) {
        const a = timeAt(c, { clientX: Math.min(dragFrom, ev.clientX) });
        const b = timeAt(c, { clientX: Math.max(dragFrom, ev.clientX) });
        setWindow(a, b);
      }
      dragFrom = null;
    });
    canvas.addEventListener('mouseleave', (ev) => { sel.hidden = true; dragFrom = null; showTooltip('', ev); });
    canvas.addEventListener('dblclick', () => setWindow(0, end));
  }
  await load();
}

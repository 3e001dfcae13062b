// Canvas charts of the results views: line/step charts (several runs on the same axes), grouped
// bars and the per-node heat map. Plain canvas, no library; text from result files is drawn with
// fillText (never parsed as HTML) and every HTML label goes through esc().

export const esc = (s) => String(s ?? '').replace(/[&<>"']/g,
  (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

export const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2',
                        '#db2777', '#65a30d'];
// Line styles per run: run 0 solid, run 1 dashed, ...
export const DASHES = [[], [7, 4], [2, 3], [10, 3, 2, 3]];

// A canvas sized to its CSS box at the device pixel ratio; returns the 2D context in CSS pixels.
export function setupCanvas(canvas, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(200, canvas.parentElement.clientWidth || 600);
  canvas.style.height = `${cssHeight}px`;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, cssHeight);
  ctx.font = '11px system-ui, sans-serif';
  return { ctx, w, h: cssHeight };
}

// About n round tick values covering [lo, hi].
export function ticks(lo, hi, n = 6) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

export function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(2)} G`;
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
  return String(parseFloat(v.toPrecision(3)));
}

export function showTooltip(text, ev) {
  const tip = document.getElementById('tooltip');
  if (!text) { tip.hidden = true; return; }
  tip.textContent = text;
  tip.hidden = false;
  const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
  tip.style.left = `${x}px`;
  tip.style.top = `${y}px`;
}

// Axes with ticks in the plot box; returns the x/y mappings.
function axes(ctx, box, xr, yr, xLabel, yLabel, yFmt = fmtNum) {
  const X = (v) => box.x + ((v - xr[0]) / (xr[1] - xr[0] || 1)) * box.w;
  const Y = (v) => box.y + box.h - ((v - yr[0]) / (yr[1] - yr[0] || 1)) * box.h;
  ctx.strokeStyle = '#e5e7eb';
  ctx.fillStyle = '#667085';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const t of ticks(yr[0], yr[1], 5)) {
    ctx.beginPath(); ctx.moveTo(box.x, Y(t)); ctx.lineTo(box.x + box.w, Y(t)); ctx.stroke();
    ctx.fillText(yFmt(t), box.x - 5, Y(t));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of ticks(xr[0], xr[1], Math.max(3, Math.floor(box.w / 90)))) {
    ctx.beginPath(); ctx.moveTo(X(t), box.y + box.h); ctx.lineTo(X(t), box.y + box.h + 4); ctx.stroke();
    ctx.fillText(fmtNum(t), X(t), box.y + box.h + 6);
  }
  ctx.strokeStyle = '#98a2b3';
  ctx.strokeRect(box.x, box.y, box.w, box.h);
  ctx.fillText(xLabel, box.x + box.w / 2, box.y + box.h + 22);
  ctx.save();
  ctx.translate(12, box.y + box.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  return { X, Y };
}

export function legendHtml(items) {
  return `<div class="legend">${items.map((it) =>
    `<span><i style="background:${it.dash && it.dash.length ? 'none' : esc(it.color)};` +
    `${it.dash && it.dash.length ? `border-top:2px dashed ${esc(it.color)};height:0` : ''}"></i>` +
    `${esc(it.label)}</span>`).join('')}</div>`;
}

// Line chart: series [{label, color, dash, points: [[x, y], ...], step}] on shared axes.
// Returns how many points were drawn.
export function lineChart(host, { series, xLabel, yLabel, xMax, yMax, yMin = 0, height = 280 }) {
  host.innerHTML = `${legendHtml(series)}<canvas></canvas>`;
  const canvas = host.querySelector('canvas');
  const { ctx, w, h } = setupCanvas(canvas, height);
  let xmax = xMax ?? 0, ymax = yMax ?? 0;
  for (const s of series) for (const [x, y] of s.points) {
    if (xMax === undefined) xmax = Math.max(xmax, x);
    if (yMax === undefined) ymax = Math.max(ymax, y);
  }
  if (!(ymax > yMin)) ymax = yMin + 1;
  if (!(xmax > 0)) xmax = 1;
  const box = { x: 56, y: 8, w: w - 70, h: h - 44 };
  const { X, Y } = axes(ctx, box, [0, xmax], [yMin, ymax], xLabel, yLabel);
  let drawn = 0;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.6;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    s.points.forEach(([x, y], i) => {
      if (i === 0) ctx.moveTo(X(x), Y(y));
      else {
        if (s.step) ctx.lineTo(X(x), Y(s.points[i - 1][1]));
        ctx.lineTo(X(x), Y(y));
      }
      drawn++;
    });
    ctx.stroke();
  }
  ctx.setLineDash([]);
  canvas.addEventListener('mousemove', (ev) => {
    const r = canvas.getBoundingClientRect();
    const x = ((ev.clientX - r.left - box.x) / box.w) * xmax;
    if (x < 0 || x > xmax) { showTooltip('', ev); return; }
    const lines = [`${xLabel}: ${fmtNum(x)}`];
    for (const s of series) {
      let best = null;
      for (const p of s.points) if (p[0] <= x) best = p; else break;
      if (best) lines.push(`${s.label}: ${fmtNum(best[1])}`);
    }
    showTooltip(lines.join('\n'), ev);
  });
  canvas.addEventListener('mouseleave', (ev) => showTooltip('', ev));
  return drawn;
}

// Horizontal grouped bars: categories × groups [{label, color, values}]. Returns bars drawn.
export function barChart(host, { categories, groups, xLabel }) {
  const barH = 12, gap = 10;
  const height = Math.max(80, categories.length * (groups.length * barH + gap) + 40);
  host.innerHTML = `${legendHtml(groups)}<canvas></canvas>`;
  const canvas = host.querySelector('canvas');
  const { ctx, w } = setupCanvas(canvas, height);
  let labelW = 60;
  for (const c of categories) labelW = Math.max(labelW, ctx.measureText(c).width + 12);
  const box = { x: labelW, y: 4, w: w - labelW - 60, h: height - 36 };
  const max = Math.max(1, ...groups.flatMap((g) => g.values));
  const X = (v) => box.x + (v / max) * box.w;
  ctx.fillStyle = '#667085';
  ctx.textBaseline = 'top';
  ctx.textAlign = 'center';
  for (const t of ticks(0, max, 5)) ctx.fillText(fmtNum(t), X(t), box.y + box.h + 6);
  ctx.fillText(xLabel, box.x + box.w / 2, box.y + box.h + 20);
  let drawn = 0;
  categories.forEach((c, i) => {
    const y0 = box.y + i * (groups.length * barH + gap);
    ctx.fillStyle = '#1d2330';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(c, box.x - 6, y0 + (groups.length * barH) / 2);
    groups.forEach((g, k) => {
      const v = g.values[i] || 0;
      ctx.fillStyle = g.color;
      ctx.fillRect(box.x, y0 + k * barH, Math.max(1, X(v) - box.x), barH - 2);
      ctx.fillStyle = '#1d2330';
      ctx.textAlign = 'left';
      ctx.fillText(fmtNum(v), X(v) + 4, y0 + k * barH + barH / 2 - 1);
      drawn++;
    });
  });
  return drawn;
}

// Utilisation 0..1 → colour (white → blue → dark navy); null → hatched grey.
function heatColour(v) {
  const t = Math.max(0, Math.min(1, v));
  const stops = [[247, 251, 255], [107, 174, 214], [8, 48, 107]];
  const seg = t < 0.5 ? 0 : 1, f = t < 0.5 ? t / 0.5 : (t - 0.5) / 0.5;
  const c = stops[seg].map((a, i) => Math.round(a + (stops[seg + 1][i] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// Heat map of nodes × time buckets ({nodes, cells, bucket_s}). Returns cells drawn.
export function heatMap(host, { nodes, cells, bucket_s, t1, metric }) {
  const rowH = Math.max(4, Math.min(18, Math.floor(480 / Math.max(1, nodes.length))));
  const height = nodes.length * rowH + 44;
  host.innerHTML = `<div class="legend"><span>0</span><span style="display:inline-block;width:120px;` +
    `height:10px;background:linear-gradient(90deg,${heatColour(0)},${heatColour(0.5)},${heatColour(1)})">` +
    `</span><span>1</span><span class="muted">${esc(metric)}</span></div><canvas></canvas>`;
  const canvas = host.querySelector('canvas');
  const { ctx, w } = setupCanvas(canvas, height);
  let labelW = 40;
  for (const n of nodes) labelW = Math.max(labelW, ctx.measureText(n).width + 10);
  const buckets = cells.length ? cells[0].length : 0;
  const box = { x: labelW, y: 4, w: w - labelW - 12, h: nodes.length * rowH };
  const cw = box.w / Math.max(1, buckets);
  let drawn = 0;
  nodes.forEach((n, r) => {
    ctx.fillStyle = '#1d2330';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    if (rowH >= 8 || r % Math.ceil(8 / rowH) === 0) ctx.fillText(n, box.x - 5, box.y + r * rowH + rowH / 2);
    for (let b = 0; b < buckets; b++) {
      const v = cells[r][b];
      ctx.fillStyle = v === null ? '#e5e7eb' : heatColour(v);
      ctx.fillRect(box.x + b * cw, box.y + r * rowH, Math.ceil(cw), rowH - (rowH > 5 ? 1 : 0));
      drawn++;
    }
  });
  const span = t1 ?? bucket_s * buckets;
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of ticks(0, span, Math.max(3, Math.floor(box.w / 90)))) {
    ctx.fillText(fmtNum(t), box.x + (t / span) * box.w, box.y + box.h + 6);
  }
  ctx.fillText('time (s)', box.x + box.w / 2, box.y + box.h + 22);
  canvas.addEventListener('mousemove', (ev) => {
    const rc = canvas.getBoundingClientRect();
    const b = Math.floor((ev.clientX - rc.left - box.x) / cw), r = Math.floor((ev.clientY - rc.top - box.y) / rowH);
    if (b < 0 || b >= buckets || r < 0 || r >= nodes.length) { showTooltip('', ev); return; }
    const v = cells[r][b];
    showTooltip(`${nodes[r]}\n${fmtNum(b * bucket_s)}–${fmtNum((b + 1) * bucket_s)} s\n` +
                (v === null ? 'no samples' : `${(v * 100).toFixed(1)} %`), ev);
  });
  canvas.addEventListener('mouseleave', (ev) => showTooltip('', ev));
  return drawn;
}

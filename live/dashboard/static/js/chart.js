// chart.js: small hand-made SVG charts for the dashboard (live views and the results views).
// No library: the page works offline and a chart is a few hundred elements at most.
//
//   lineChart(container, series, options)
//     series:  [{name, points: [[x, y], ...], color?}]  (points sorted by x; NaN/null y skipped)
//     options: {width [480], height [200], xTime [true]: x is Unix ms, labelled as clock time;
//               yMin [0 or the data's minimum if negative], yMax [the data's maximum],
//               yFormat(v) → text, xFormat(x) → text, legend [true], empty: text when no points}
//   barChart(container, bars, options)
//     bars:    [{label, value, color?}]         options: {width, height, yFormat, empty}
//   cdfChart(container, series, options)
//     series:  [{name, values: [numbers], color?}] → the empirical CDF of each (y from 0 to 1)
//     options: as lineChart (xTime defaults to false), xFormat for the value axis
//   palette(i) → the i-th series colour
//
// Each function replaces the container's children with one <svg> (class "orrery-chart",
// attribute data-points = the number of points or bars drawn; tests read it) and, for more than
// one series, a legend. Nothing is parsed from strings (DOM calls only), so series names need no
// escaping and a strict CSP holds. Colours are SVG presentation attributes, not style.

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#3b6ea5', '#e0802b', '#2e8b57', '#c0392b', '#7d5ba6', '#8c6d31', '#d6609f',
                '#5f7e8c', '#b5a33a', '#17a2b8', '#6b6ecf', '#9c9ede'];
export function palette(i) { return COLORS[((i % COLORS.length) + COLORS.length) % COLORS.length]; }

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}
function text(parent, x, y, s, attrs) {
  const t = el('text', Object.assign({ x, y }, attrs || {}), parent);
  t.textContent = s;
  return t;
}
function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}
function defaultNum(v) {
  if (!isFinite(v)) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  if (a === 0 || a >= 1) return String(Math.round(v * 100) / 100);
  return v.toPrecision(2);
}
function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
}
function frame(container, w, h) {
  container.replaceChildren();
  const svg = el('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'orrery-chart', role: 'img' });
  container.appendChild(svg);
  return svg;
}
function legend(container, names) {
  if (names.length < 2) return;
  const div = document.createElement('div');
  div.className = 'legend';
  const MAX_LEGEND = 16;  // a 100-node chart names its first 16 lines and counts the rest
  names.slice(0, MAX_LEGEND).forEach((n, i) => {
    const span = document.createElement('span');
    const sw = el('svg', { width: 10, height: 10 });
    el('rect', { width: 10, height: 10, rx: 2, fill: n.color || palette(i) }, sw);
    span.appendChild(sw);
    span.appendChild(document.createTextNode(' ' + n.name));
    div.appendChild(span);
  });
  if (names.length > MAX_LEGEND) {
    const more = document.createElement('span');
    more.textContent = `… and ${names.length - MAX_LEGEND} more (hover a line for its name)`;
    div.appendChild(more);
  }
  container.appendChild(div);
}
function emptyNote(svg, w, h, msg) {
  text(svg, w / 2, h / 2, msg || 'no data yet', { 'text-anchor': 'middle' });
  svg.setAttribute('data-points', '0');
}

// Axes + plot area; returns {x(v), y(v), plot} mapping data to pixels.
function axes(svg, w, h, x0, x1, y0, y1, o) {
  const L = 46, R = 8, T = 8, B = 22;
  const pw = w - L - R, ph = h - T - B;
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y1 = y0 + 1; }
  const sx = v => L + (v - x0) / (x1 - x0) * pw;
  const sy = v => T + ph - (v - y0) / (y1 - y0) * ph;
  const g = el('g', { class: 'axes' }, svg);
  const yStep = niceStep(y1 - y0, 4);
  for (let v = Math.ceil(y0 / yStep) * yStep; v <= y1 + 1e-9; v += yStep) {
    el('line', { x1: L, x2: L + pw, y1: sy(v), y2: sy(v), stroke: '#e6e9ee' }, g);
    text(g, L - 4, sy(v) + 3, (o.yFormat || defaultNum)(v), { 'text-anchor': 'end' });
  }
  const xStep = niceStep(x1 - x0, 5);
  for (let v = Math.ceil(x0 / xStep) * xStep; v <= x1 + 1e-9; v += xStep) {
    el('line', { x1: sx(v), x2: sx(v), y1: T + ph, y2: T + ph + 3, stroke: '#9aa3af' }, g);
    text(g, sx(v), h - 6, (o.xFormat || (o.xTime ? clock : defaultNum))(v), { 'text-anchor': 'middle' });
  }
  el('line', { x1: L, x2: L + pw, y1: T + ph, y2: T + ph, stroke: '#9aa3af' }, g);
  return { x: sx, y: sy };
}

export function lineChart(container, series, options) {
  const o = Object.assign({ width: 480, height: 200, xTime: true, legend: true }, options);
  const svg = frame(container, o.width, o.height);
  const clean = series.map((s, i) => ({
    name: s.name, color: s.color || palette(i),
    points: (s.points || []).filter(p => p && isFinite(p[0]) && p[1] !== null && isFinite(p[1])),
  }));
  const all = clean.flatMap(s => s.points);
  if (!all.length) { emptyNote(svg, o.width, o.height, o.empty); return svg; }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [x, y] of all) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  y0 = o.yMin ?? Math.min(0, y0);
  y1 = o.yMax ?? Math.max(y1, y0 + 1e-9);
  const m = axes(svg, o.width, o.height, x0, x1, y0, y1, o);
  for (const s of clean) {
    if (!s.points.length) continue;
    const pts = s.points.map(([x, y]) => `${m.x(x).toFixed(1)},${m.y(y).toFixed(1)}`).join(' ');
    const line = el('polyline', { points: pts, fill: 'none', stroke: s.color, 'stroke-width': 1.6,
                                  'data-series': s.name }, svg);
    const last = s.points[s.points.length - 1];
    el('title', {}, line).textContent = `${s.name}: ${(o.yFormat || defaultNum)(last[1])} (latest)`;
    if (s.points.length === 1) el('circle', { cx: m.x(last[0]), cy: m.y(last[1]), r: 2.5, fill: s.color }, svg);
  }
  svg.setAttribute('data-points', String(all.length));
  if (o.legend) legend(container, clean);
  return svg;
}

export function barChart(container, bars, options) {
  const o = Object.assign({ width: 480, height: 200 }, options);
  const svg = frame(container, o.width, o.height);
  if (!bars.length) { emptyNote(svg, o.width, o.height, o.empty); return svg; }
  const L = 46, R = 8, T = 8, B = 22;
  const pw = o.width - L - R, ph = o.height - T - B;
  const ymax = Math.max(1e-9, ...bars.map(b => b.value || 0));
  const step = niceStep(ymax, 4);
  for (let v = 0; v <= ymax + 1e-9; v += step) {
    const y = T + ph - v / ymax * ph;
    el('line', { x1: L, x2: L + pw, y1: y, y2: y, stroke: '#e6e9ee' }, svg);
    text(svg, L - 4, y + 3, (o.yFormat || defaultNum)(v), { 'text-anchor': 'end' });
  }
  const bw = pw / bars.length;
  const every = Math.ceil(bars.length / Math.max(1, Math.floor(pw / 44)));
  bars.forEach((b, i) => {
    const hgt = Math.max(0, (b.value || 0) / ymax * ph);
    const r = el('rect', { x: L + i * bw + 1, y: T + ph - hgt, width: Math.max(1, bw - 2), height: hgt,
                           fill: b.color || palette(0) }, svg);
    el('title', {}, r).textContent = `${b.label}: ${(o.yFormat || defaultNum)(b.value || 0)}`;
    if (i % every === 0) text(svg, L + i * bw + bw / 2, o.height - 6, b.label, { 'text-anchor': 'middle' });
  });
  el('line', { x1: L, x2: L + pw, y1: T + ph, y2: T + ph, stroke: '#9aa3af' }, svg);
  svg.setAttribute('data-points', String(bars.length));
  return svg;
}

export function cdfChart(container, series, options) {
  const o = Object.assign({ xTime: false, yMin: 0, yMax: 1, yFormat: v => `${Math.round(v * 100)}%` }, options);
  const lines = series.map((s, i) => {
    const v = (s.values || []).filter(x => x !== null && isFinite(x)).slice().sort((a, b) => a - b);
    const pts = [];
    v.forEach((x, k) => { pts.push([x, k / v.length]); pts.push([x, (k + 1) / v.length]); });
    return { name: s.name, color: s.color || palette(i), points: pts };
  });
  return lineChart(container, lines, o);
}

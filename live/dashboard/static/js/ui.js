// ui.js: small shared pieces of the live views.
//
//   html`...${v}...`     a template that HTML-escapes every value (arrays joined, null → ''),
//                        except values made by html`` or raw(); returns a Safe; .toString() its text
//   esc(s)               HTML-escape one string      enc(s)   percent-encode an id for a URL path
//   setHTML(el, safe)    el.innerHTML = safe (only Safe values, so nothing unescaped slips in)
//   fmtTime(ms) fmtDur(ms) fmtBytes(n) fmtNum(x) badge(state) resBar(used, total)
//   ListPanel            a paginated table over an API list ({total, offset, limit, items}) or a
//                        plain array, refreshed on demand; errors are shown inline in its element
//   debounce(fn, ms)

export class Safe {
  constructor(s) { this.s = s; }
  toString() { return this.s; }
}
export function raw(s) { return new Safe(String(s)); }

export function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
export function enc(s) { return encodeURIComponent(String(s)); }

function part(v) {
  if (v instanceof Safe) return v.s;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === null || v === undefined || v === false) return '';
  return esc(v);
}
export function html(strings, ...vals) {
  let out = strings[0];
  for (let i = 0; i < vals.length; i++) out += part(vals[i]) + strings[i + 1];
  return new Safe(out);
}
// Also applies data-frac (bar width) and data-color (background) through the CSSOM, so no
// style attribute is ever parsed from markup (a strict style-src CSP stays possible).
export function setHTML(el, safe) {
  if (!(safe instanceof Safe)) throw new Error('setHTML takes html`` output only');
  el.innerHTML = safe.s;
  for (const b of el.querySelectorAll('[data-frac]')) b.style.width = `${(Number(b.dataset.frac) * 100).toFixed(1)}%`;
  for (const c of el.querySelectorAll('[data-color]')) c.style.background = c.dataset.color;
}

export function fmtTime(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const p = n => String(n).padStart(2, '0');
  const today = new Date();
  const hms = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return hms;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${hms}`;
}
export function fmtDur(ms) {
  if (ms === null || ms === undefined || !isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} m`;
}
export function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}
export function fmtNum(x) {
  if (x === null || x === undefined || !isFinite(x)) return '–';
  if (Math.abs(x) >= 1e6) return (x / 1e6).toFixed(1) + 'M';
  if (Math.abs(x) >= 1e4) return (x / 1e3).toFixed(1) + 'k';
  return Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) < 1 ? 3 : 2).replace(/\.?0+$/, '');
}
export function fmtRes(name, v) { return name === 'memory' || name.endsWith('_bytes') ? fmtBytes(v) : fmtNum(v); }

const STATE_CLASS = {
  ALIVE: 'ok', SUCCEEDED: 'ok', FINISHED: 'ok', CREATED: 'ok', IDLE: 'ok',
  RUNNING: 'run', LEASED: 'run', BUSY: 'run', STARTING: 'run', PENDING_CREATION: 'warn',
  PENDING: 'warn', DRAINING: 'warn', RESTARTING: 'warn', RESCHEDULING: 'warn', DEPENDENCIES_UNREADY: 'warn',
  PREPARING: 'warn', COMMITTING: 'warn',
  DEAD: 'bad', FAILED: 'bad', STOPPED: 'bad', CANCELED: 'bad', INFEASIBLE: 'bad', REMOVED: '',
};
export function badge(state) {
  const s = String(state ?? '?');
  return html`<span class="badge ${STATE_CLASS[s.toUpperCase()] ?? ''}" data-state="${s}">${s}</span>`;
}
export function resBar(used, total) {
  const f = total > 0 ? Math.max(0, Math.min(1, used / total)) : 0;
  return html`<div class="bar" title="${fmtNum(used)} of ${fmtNum(total)}"><span data-frac="${f.toFixed(4)}"></span></div>`;
}
export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
export function errorBox(e) {
  return html`<div class="error" role="alert">${e && e.message ? e.message : String(e)}</div>`;
}
export function resourcesText(res) {
  return Object.entries(res || {}).map(([k, v]) => `${k}: ${fmtRes(k, v)}`).join(', ');
}

// A paginated table. options:
//   load(offset, limit) → Promise<{total, offset, limit, items}>   (or items: set `rows` instead)
//   columns: [{title, cell(item) → Safe|string, cls}]
//   empty: text when there are no rows           limit: page size [50]
//   onRendered(): after each successful render
export class ListPanel {
  constructor(el, options) {
    this.el = el;
    this.o = Object.assign({ limit: 50, empty: 'Nothing here.' }, options);
    this.offset = 0;
    this.rows = null;  // a client-side array instead of load()
    this.busy = false;
    el.addEventListener('click', e => {
      const b = e.target.closest('button[data-page]');
      if (!b || !el.contains(b)) return;
      const d = b.dataset.page;
      const total = this.lastTotal ?? 0;
      if (d === 'first') this.offset = 0;
      else if (d === 'prev') this.offset = Math.max(0, this.offset - this.o.limit);
      else if (d === 'next') this.offset = Math.min(this.offset + this.o.limit, Math.max(0, total - 1));
      else if (d === 'last') this.offset = Math.max(0, Math.floor((total - 1) / this.o.limit) * this.o.limit);
      this.refresh();
    });
  }
  setRows(rows) { this.rows = rows; return this.refresh(); }
  reset() { this.offset = 0; }
  async refresh() {
    if (this.busy) return;
    this.busy = true;
    try {
      let page;
      if (this.rows) {
        page = { total: this.rows.length, offset: this.offset, limit: this.o.limit,
                 items: this.rows.slice(this.offset, this.offset + this.o.limit) };
      } else {
        page = await this.o.load(this.offset, this.o.limit);
      }
      if (page.total > 0 && this.offset >= page.total) {  // the list shrank under us
        this.offset = Math.max(0, Math.floor((page.total - 1) / this.o.limit) * this.o.limit);
        this.busy = false;
        return this.refresh();
      }
      this.render(page);
      if (this.o.onRendered) this.o.onRendered(page);
    } catch (e) {
      setHTML(this.el, errorBox(e));
    } finally {
      this.busy = false;
    }
  }
  render(page) {
    this.lastTotal = page.total;
    const cols = this.o.columns;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    const atStart = page.offset <= 0, atEnd = last >= page.total;
    const pager = html`<div class="pager">
      <button type="button" data-page="first" ${raw(atStart ? 'disabled' : '')}>«</button>
      <button type="button" data-page="prev" ${raw(atStart ? 'disabled' : '')}>‹ Prev</button>
      <span class="range">${first}–${last} of ${page.total}</span>
      <button type="button" data-page="next" ${raw(atEnd ? 'disabled' : '')}>Next ›</button>
      <button type="button" data-page="last" ${raw(atEnd ? 'disabled' : '')}>»</button></div>`;
    const body = page.items.length
      ? page.items.map(it => html`<tr>${cols.map(c => html`<td class="${c.cls || ''}">${c.cell(it)}</td>`)}</tr>`)
      : html`<tr><td colspan="${cols.length}" class="muted">${this.o.empty}</td></tr>`;
    setHTML(this.el, html`<table class="data"><thead><tr>${cols.map(c => html`<th class="${c.cls || ''}">${c.title}</th>`)}</tr></thead>
      <tbody>${body}</tbody></table>${pager}`);
  }
}

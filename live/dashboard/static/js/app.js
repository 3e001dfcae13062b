// app.js: the live dashboard's single-page shell: routes location.pathname to a view module
// (js/views/*.js), keeps the nav bar in step, and gives each view a context whose timers and
// streams end when the view does.
//
// A view module exports `title` and `mount(root, ctx)`; ctx:
//   ctx.params        the decoded path parts (e.g. the job id of /jobs/<id>)
//   ctx.query         URLSearchParams of the address
//   ctx.every(ms, fn) runs fn now and again ms (at least 2000) after each run ends; paused while
//                     the tab is hidden, run at once when it shows again
//   ctx.stream(url, event, fn, onError?)  an EventSource (server-sent events) delivering parsed
//                     JSON of `event` to fn; closed with the view
//   ctx.rendered()    the view drew its first full table/chart: sets performance mark
//                     'orrery:rendered' once (bench/dashboard_render.py reads it) and
//                     <body data-rendered="view">
//   ctx.navigate(path) / ctx.setQuery(params)  change the address (pushState / replaceState)
//   ctx.alive()       false once the view was left (async work should stop)
import { onUnauthorized, getJSON } from './api.js';
import { html, setHTML } from './ui.js';

const ROUTES = [
  [/^\/(?:overview)?$/, 'overview'],
  [/^\/jobs\/?$/, 'jobs'],
  [/^\/jobs\/([^/]+)$/, 'job'],
  [/^\/cluster\/?$/, 'cluster'],
  [/^\/nodes\/([^/]+)$/, 'node'],
  [/^\/actors\/?$/, 'actors'],
  [/^\/tasks\/?$/, 'tasks'],
  [/^\/metrics\/?$/, 'metrics'],
  [/^\/logs\/?$/, 'logs'],
];
const NAV_OF = { job: 'jobs', node: 'cluster' };
const MIN_POLL_MS = 2000;

let current = null;     // {ctx, view}
let unauthorized = false;
const root = document.getElementById('view');

function makeContext(name, params) {
  const timers = new Set();
  const streams = new Set();
  let alive = true;
  let marked = false;
  const pollers = [];
  const ctx = {
    name, params, query: new URLSearchParams(location.search),
    alive: () => alive,
    every(ms, fn) {
      const p = { ms: Math.max(MIN_POLL_MS, ms), fn, timer: null, running: false, due: false };
      const run = async () => {
        p.timer = null;
        if (!alive) return;
        if (document.hidden) { p.due = true; return; }
        p.running = true;
        try { await fn(); } catch (e) { console.warn(e); }
        p.running = false;
        if (alive) { p.timer = setTimeout(run, p.ms); timers.add(p.timer); }
      };
      p.run = run;
      pollers.push(p);
      run();
    },
    stream(url, event, fn, onError) {
      const es = new EventSource(url, { withCredentials: true });
      streams.add(es);
      es.addEventListener(event, ev => {
        let data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        if (alive) fn(data);
      });
      es.onerror = () => { if (alive && onError) onError(es); };
      return es;
    },
    rendered() {
      if (marked || !alive) return;
      marked = true;
      performance.mark('orrery:rendered');
      document.body.dataset.rendered = name;
    },
    navigate, setQuery(params) {
      const u = new URL(location.href);
      for (const [k, v] of Object.entries(params)) {
        if (v === null || v === undefined || v === '') u.searchParams.delete(k); else u.searchParams.set(k, v);
      }
      history.replaceState(null, '', u.pathname + u.search);
      ctx.query = new URLSearchParams(u.search);
    },
    _visible() {
      for (const p of pollers) if (p.due && !p.running && !p.timer) { p.due = false; p.run(); }
    },
    _close() {
      alive = false;
      for (const t of timers) clearTimeout(t);
      for (const p of pollers) if (p.timer) clearTimeout(p.timer);
      for (const s of streams) s.close();
    },
  };
  return ctx;
}

async function route() {
  if (unauthorized) return;
  if (current) { current.ctx._close(); if (current.view.unmount) current.view.unmount(); current = null; }
  delete document.body.dataset.rendered;
  const path = location.pathname;
  let name = null, params = [];
  for (const [re, n] of ROUTES) {
    const m = path.match(re);
    if (m) {
      name = n;
      try { params = m.slice(1).map(decodeURIComponent); } catch (e) { name = 'bad'; }
      break;
    }
  }
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.view === (NAV_OF[name] || name));
  }
  if (!name || name === 'bad') {
    document.title = 'Not found · Orrery';
    setHTML(root, html`<h1>Not found</h1><p class="error">There is no dashboard view at <code>${path}</code>.</p>
      <p>Views: <a href="/overview" data-nav>Overview</a>, <a href="/jobs" data-nav>Jobs</a>,
      <a href="/cluster" data-nav>Cluster</a>, <a href="/actors" data-nav>Actors</a>,
      <a href="/tasks" data-nav>Tasks</a>, <a href="/metrics" data-nav>Metrics</a>,
      <a href="/logs" data-nav>Logs</a>.</p>`);
    return;
  }
  const ctx = makeContext(name, params);
  let view;
  try {
    view = await import(`./views/${name}.js`);
  } catch (e) {
    setHTML(root, html`<p class="error">Could not load the ${name} view: ${e.message}</p>`);
    return;
  }
  if (!ctx.alive()) return;
  current = { ctx, view };
  document.title = `${view.title || name} · Orrery`;
  root.replaceChildren();
  try {
    view.mount(root, ctx);
  } catch (e) {
    setHTML(root, html`<p class="error">The ${name} view failed: ${e.message}</p>`);
  }
}

export function navigate(path) {
  if (path === location.pathname + location.search) return;
  history.pushState(null, '', path);
  route();
}

document.addEventListener('click', e => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || u.pathname.startsWith('/api/') || u.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  navigate(u.pathname + u.search);
});
window.addEventListener('popstate', route);
document.addEventListener('visibilitychange', () => { if (!document.hidden && current) current.ctx._visible(); });

onUnauthorized(msg => {
  if (unauthorized) return;
  unauthorized = true;
  if (current) current.ctx._close();
  document.title = 'Not signed in · Orrery';
  setHTML(root, html`<h1>401: not signed in</h1><div class="error" role="alert" id="unauthorized">${msg}</div>
    <p>Open the dashboard address with the cluster token (<code>http://HOST:8265/?token=…</code>), as
    <code>orrery start --head</code> printed it; the page then keeps a cookie.</p>`);
});

// The connection indicator: the head's version, or why it cannot be reached.
const conn = document.getElementById('conn');
async function ping() {
  try {
    const m = await getJSON('/api/mode');
    conn.textContent = `${m.head_address || ''} · ${m.version || ''}`;
    conn.classList.remove('bad');
  } catch (e) {
    conn.textContent = e.status === 401 ? 'not signed in' : 'head unreachable';
    conn.classList.add('bad');
  }
}
ping();
setInterval(() => { if (!document.hidden && !unauthorized) ping(); }, 10000);
route();

// api.js: the dashboard's only door to the head's JSON API (live/dashboard/API.md).
//
//   getJSON(path, params)  GET /api/..., resolves to the parsed JSON; rejects with an ApiError
//   postJSON(path, body)   POST (same-origin, so the browser sends Origin and the cookie)
//   apiUrl(path, params)   the address with the query (empty/null parameters left out)
//   ApiError               {status, message}: the server's {"error": ...} text, or what failed
//   onUnauthorized(fn)     fn(message) runs once per 401, with the server's "how to get in" text
//
// The cookie (HttpOnly, set when the page was opened with ?token=) authenticates; nothing here
// sees or stores the token.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let unauthorizedHandler = null;
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export function apiUrl(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

async function request(method, path, params, body) {
  let r;
  try {
    r = await fetch(apiUrl(path, params), {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { Accept: 'application/json' }
                                  : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `the head did not answer ${method} ${path}: ${e.message}`);
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!r.ok) {
    const msg = (data && typeof data.error === 'string') ? data.error
      : (text && text.length < 500 ? text : `HTTP ${r.status} ${r.statusText}`);
    const err = new ApiError(r.status, `${method} ${path}: ${msg}`);
    if (r.status === 401 && unauthorizedHandler) unauthorizedHandler(msg);
    throw err;
  }
  if (data === null && text) throw new ApiError(r.status, `${method} ${path}: the answer is not JSON`);
  return data;
}

export function getJSON(path, params) { return request('GET', path, params); }
export function postJSON(path, body) { return request('POST', path, undefined, body ?? {}); }

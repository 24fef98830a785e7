// REST client for the v1 API. Keeps the guest session (name + token) in
// sessionStorage, so every tab is its own guest (two tabs = two people, as a
// newcomer trying it alone expects) while a reload keeps the tab's session;
// the last name used is remembered in localStorage for the next tab. A call
// that gets 401 transparently creates a new session.

const SESSION_KEY = 'hongbao.session';
const NAME_KEY = 'hongbao.name';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

function storage() {
  try { return globalThis.sessionStorage ?? null; } catch { return null; }
}

function names() {
  try { return globalThis.localStorage ?? null; } catch { return null; }
}

/** The display name this browser used last, to prefill the join form. */
export function rememberedName() {
  try { return names()?.getItem(NAME_KEY) ?? ''; } catch { return ''; }
}

export function loadSession() {
  try {
    const s = JSON.parse(storage()?.getItem(SESSION_KEY) ?? 'null');
    if (s && typeof s.name === 'string' && s.name) return s;
  } catch { /* corrupt entry */ }
  return null;
}

function saveSession(s) {
  try {
    if (s) {
      storage()?.setItem(SESSION_KEY, JSON.stringify(s));
      names()?.setItem(NAME_KEY, s.name);
    } else {
      storage()?.removeItem(SESSION_KEY);
    }
  } catch { /* private mode */ }
}

export class Api {
  constructor({ base = '', fetchImpl = globalThis.fetch.bind(globalThis) } = {}) {
    this.base = base;
    this.fetch = fetchImpl;
    this.session = loadSession();
    this.renewing = null;
    this.listeners = new Set();
  }

  get token() { return this.session?.token ?? null; }
  get user() { return this.session?.user ?? null; }

  onSessionChange(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  setSession(s) {
    this.session = s;
    saveSession(s);
    for (const fn of this.listeners) fn(s);
  }

  forget() { this.setSession(null); }

  /** POST /api/v1/sessions: a fresh guest (funded with ¥100.00). */
  async createSession(name) {
    const body = await this.request('POST', '/api/v1/sessions', { body: { name }, auth: false });
    const s = { name, token: body.token, user: body.user };
    this.setSession(s);
    return s;
  }

  /** Reuse the stored session for this name or create a new one. */
  async ensureSession(name) {
    if (this.session?.token && this.session.name === name) return this.session;
    return this.createSession(name);
  }

  /** One shared renewal, however many calls hit 401 at once. */
  renew() {
    if (!this.renewing) {
      const name = this.session?.name;
      if (!name) return Promise.reject(new ApiError(401, 'unauthorized', 'no session'));
      this.renewing = this.createSession(name).finally(() => { this.renewing = null; });
    }
    return this.renewing;
  }

  async request(method, path, { body, auth = true, retry = true, signal, withHeaders = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = this.token;
    if (auth && token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await this.fetch(this.base + path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin', cache: 'no-store',
      });
    } catch (e) {
      if (e?.name === 'AbortError') throw e;
      throw new ApiError(0, 'unavailable', e?.message || 'network error');
    }
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (res.ok) return withHeaders ? { data: data ?? {}, headers: res.headers } : data ?? {};
    if (res.status === 401 && auth && retry && this.session?.name) {
      // Only renew if nobody else already did while this call was in flight.
      if (this.token === token) await this.renew();
      return this.request(method, path, { body, auth, retry: false, signal, withHeaders });
    }
    const err = data?.error ?? {};
    const code = err.code || (res.status === 401 ? 'unauthorized' : res.status === 404 ? 'not_found'
      : res.status === 429 ? 'rate_limited' : res.status >= 500 ? 'unavailable' : 'invalid_request');
    throw new ApiError(res.status, code, err.message || res.statusText);
  }

  me() { return this.request('GET', '/api/v1/me'); }
  /** GET /api/v1/me/claims (received): {rows, next} where next is X-Next-Cursor or ''. */
  myClaims(opts) { return this.page('/api/v1/me/claims', opts); }
  /** GET /api/v1/me/packets (sent): {rows, next}. */
  myPackets(opts) { return this.page('/api/v1/me/packets', opts); }
  /** GET /api/v1/me/summary: the year's sent, received and refunded totals. */
  mySummary(year) { return this.request('GET', `/api/v1/me/summary${year ? `?year=${year}` : ''}`); }
  async page(path, { limit = 20, cursor = '' } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor) q.set('cursor', cursor);
    const { data, headers } = await this.request('GET', `${path}?${q}`, { withHeaders: true });
    // A bare array per docs/protocol.md; {items: [...]} is accepted too.
    const rows = Array.isArray(data) ? data : Array.isArray(data?.items) ? data.items : [];
    return { rows, next: headers.get('X-Next-Cursor') ?? '' };
  }
  packet(id, opts) { return this.request('GET', `/api/v1/packets/${encodeURIComponent(id)}`, opts); }
  /** A password packet's grab carries the phrase. */
  grab(id, password) {
    return this.request('POST', `/api/v1/packets/${encodeURIComponent(id)}/grab`, password === undefined ? {} : { body: { password } });
  }
  roomPackets(room, { status = 'all', limit = 50 } = {}) {
    return this.request('GET', `/api/v1/rooms/${encodeURIComponent(room)}/packets?status=${status}&limit=${limit}`);
  }
  /** to (user ids), password and opens_at (unix ms) only when set. */
  sendPacket(room, { kind, total, count, greeting, to, password, opens_at: opensAt }) {
    const body = { kind, total, count, greeting };
    if (to !== undefined) body.to = to;
    if (password !== undefined) body.password = password;
    if (opensAt !== undefined) body.opens_at = opensAt;
    return this.request('POST', `/api/v1/rooms/${encodeURIComponent(room)}/packets`, { body });
  }
  startRain(room, body) {
    return this.request('POST', `/api/v1/rooms/${encodeURIComponent(room)}/rains`, { body });
  }
}

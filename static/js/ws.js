// WebSocket client for one room: authenticates with a subprotocol entry (the
// token never goes in the URL, where proxies log it), reconnects with
// exponential backoff and full jitter, honours the server's close codes, and
// matches `result` frames to requests by `ref`.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 10000;
/** After a limit refusal (4001..4004): wait at least this long, plus jitter. */
export const LIMIT_BACKOFF_MS = 30000;
export const LIMIT_JITTER_MS = 30000;
/** After 1001 (the server drains): reconnect at once, spread over this much. */
export const DRAIN_JITTER_MS = 1000;
const RESULT_TIMEOUT_MS = 10000;
export const SUBPROTOCOL = 'hongbao.v1';

/** Close codes the server sends (docs/protocol.md, "Close codes"). */
export const CLOSE = Object.freeze({
  GOING_AWAY: 1001, // the server is draining: go to another instance
  POLICY: 1008, // flood or a full send queue (maybe a token problem)
  INTERNAL: 1011, // the server failed on this connection
  USER_CONNS: 4001, // too many connections for this user
  IP_CONNS: 4002, // too many connections from this address
  ROOMS: 4003, // this server has too many rooms
  NEW_ROOMS: 4004, // too many new rooms from this address
});

/** 4001..4004: a cap refused the connection. */
export function isLimitClose(code) {
  return code >= CLOSE.USER_CONNS && code <= CLOSE.NEW_ROOMS;
}

/**
 * Full-jitter backoff (AWS architecture blog): a uniformly random delay in
 * [0, min(cap, base·2^attempt)).
 */
export function backoffDelay(attempt, { base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * What to do after a socket closed with code:
 *  why       limit | draining | policy | failed | closed
 *  delay     ms before the next attempt
 *  checkAuth let the app check the session first (an HTTP 401 at upgrade
 *            is invisible to browsers: the socket just fails before opening)
 *  hold      a limit refusal: automatic retries (online, visible) wait too
 *  backoff   the attempt counts towards the exponential backoff
 */
export function closePlan(code, opened, attempt, random = Math.random) {
  if (isLimitClose(code)) {
    return { why: 'limit', delay: LIMIT_BACKOFF_MS + Math.floor(random() * LIMIT_JITTER_MS), checkAuth: false, hold: true, backoff: true };
  }
  if (code === CLOSE.GOING_AWAY) {
    return { why: 'draining', delay: Math.floor(random() * DRAIN_JITTER_MS), checkAuth: false, hold: false, backoff: false };
  }
  const delay = backoffDelay(attempt, { random });
  if (code === CLOSE.POLICY) return { why: 'policy', delay, checkAuth: true, hold: false, backoff: true };
  if (!opened) return { why: 'failed', delay, checkAuth: true, hold: false, backoff: true };
  return { why: 'closed', delay, checkAuth: false, hold: false, backoff: true }; // 1011 and drops
}

/** ws: or wss: URL for the page's own host; since resumes the room's stream. */
export function wsURL(room, { since = null } = {}, loc = globalThis.location) {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ room });
  if (since) q.set('since', since);
  return `${proto}//${loc.host}/ws?${q}`;
}

/** The subprotocols to offer: ours, and the token as "bearer.<jwt>". */
export function wsProtocols(token) {
  return token ? [SUBPROTOCOL, `bearer.${token}`] : [SUBPROTOCOL];
}

export class SocketError extends Error {
  constructor(code, message) { super(message || code); this.code = code; }
}

/**
 * Events (EventTarget):
 *  - "state"   detail {state: connecting|open|closed, attempt, retryAt?: ms epoch, why?, code?, reason?}
 *  - "message" detail: the parsed server frame
 *  - "open"    detail {reconnect: boolean}
 */
export class RoomSocket extends EventTarget {
  /**
   * @param {object} o
   * @param {() => string} o.url          URL builder, called for every attempt
   * @param {() => string[]} [o.protocols] subprotocols, called for every attempt (fresh token)
   * @param {(why: string) => Promise<void>} o.onAuthProblem  check or renew the session
   * @param {typeof WebSocket} [o.WebSocketImpl]
   * @param {() => number} [o.random]
   */
  constructor({ url, protocols = () => [], onAuthProblem, WebSocketImpl = globalThis.WebSocket, random = Math.random }) {
    super();
    this.url = url;
    this.protocols = protocols;
    this.onAuthProblem = onAuthProblem;
    this.WS = WebSocketImpl;
    this.random = random;
    this.ws = null;
    this.state = 'closed';
    this.attempt = 0;
    this.timer = 0;
    this.stopped = true;
    this.everOpened = false;
    this.refSeq = 0;
    this.pending = new Map();
    this.retryAt = 0;
    /** After a limit refusal, no automatic retry before this (ms epoch). */
    this.holdUntil = 0;
    this.onOnline = () => this.retryNow();
    this.onVisible = () => { if (document.visibilityState === 'visible' && this.state === 'closed') this.retryNow(); };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    globalThis.addEventListener?.('online', this.onOnline);
    globalThis.document?.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    globalThis.removeEventListener?.('online', this.onOnline);
    globalThis.document?.removeEventListener('visibilitychange', this.onVisible);
    this.detach();
    this.setState('closed');
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, attempt: this.attempt, ...extra } }));
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.detach();
    this.setState('connecting');
    let ws;
    try {
      ws = new this.WS(this.url(), this.protocols());
    } catch {
      // A URL or subprotocol the browser refuses: nothing the session can fix.
      this.scheduleRetry({ why: 'failed', delay: backoffDelay(this.attempt, { random: this.random }), checkAuth: false, hold: false, backoff: true });
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      const reconnect = this.everOpened;
      this.everOpened = true;
      this.setState('open');
      this.dispatchEvent(new CustomEvent('open', { detail: { reconnect } }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'welcome') this.attempt = 0; // a healthy session resets the backoff
      if (msg.type === 'result' && msg.ref && this.pending.has(msg.ref)) {
        const p = this.pending.get(msg.ref);
        this.pending.delete(msg.ref);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg);
        else p.reject(new SocketError(msg.error?.code || 'invalid_request', msg.error?.message));
      }
      this.dispatchEvent(new CustomEvent('message', { detail: msg }));
    };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending('unavailable');
      this.scheduleRetry(closePlan(ev.code, opened, this.attempt, this.random), ev);
    };
  }

  async scheduleRetry(plan, ev = {}) {
    if (this.stopped) return;
    if (plan.backoff) this.attempt++;
    this.retryAt = Date.now() + plan.delay;
    this.holdUntil = plan.hold ? this.retryAt : 0;
    this.setState('closed', { retryAt: this.retryAt, why: plan.why, code: ev.code, reason: ev.reason });
    if (plan.checkAuth && this.onAuthProblem) {
      const before = this.ws;
      try { await this.onAuthProblem(plan.why); } catch { /* network still down: keep retrying */ }
      // Stopped, or someone (retryNow) already connected meanwhile.
      if (this.stopped || this.ws !== before || this.state !== 'closed') return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), Math.max(0, this.retryAt - Date.now()));
  }

  /**
   * Connect now if closed. After a limit refusal only the user's own retry
   * (manual) may cut the wait short; coming online or back to the tab may not.
   */
  retryNow({ manual = false } = {}) {
    if (this.stopped || this.state !== 'closed') return;
    if (!manual && Date.now() < this.holdUntil) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** Drop the current socket, if any, without triggering a retry. */
  detach() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onclose = ws.onmessage = ws.onerror = null;
    try { ws.close(1000, 'reconnect'); } catch { /* already closed */ }
    this.failPending('unavailable');
  }

  /** Force a fresh connection (e.g. after the session changed). */
  reconnect() {
    if (this.stopped) return;
    this.attempt = 0;
    this.holdUntil = 0;
    this.connect();
  }

  get isOpen() { return this.ws?.readyState === 1; }

  failPending(code) {
    for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new SocketError(code, 'connection lost')); }
    this.pending.clear();
  }

  /** Send a frame that expects a `result`; resolves with it or rejects with SocketError. */
  request(frame, { timeout = RESULT_TIMEOUT_MS } = {}) {
    if (!this.isOpen) return Promise.reject(new SocketError('unavailable', 'not connected'));
    const ref = `c${++this.refSeq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new SocketError('unavailable', 'timed out'));
      }, timeout);
      this.pending.set(ref, { resolve, reject, timer });
      try {
        this.ws.send(JSON.stringify({ ...frame, ref }));
      } catch {
        clearTimeout(timer);
        this.pending.delete(ref);
        reject(new SocketError('unavailable', 'send failed'));
      }
    });
  }

  /** A password packet's grab carries the phrase. */
  grab(packetId, password) {
    return this.request(password === undefined ? { type: 'grab', packet_id: packetId } : { type: 'grab', packet_id: packetId, password });
  }
  chat(text) { return this.request({ type: 'chat', text }); }
}

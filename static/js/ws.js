// WebSocket client for one room: reconnects with exponential backoff and
// full jitter, matches `result` frames to requests by `ref`.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 10000;
const RESULT_TIMEOUT_MS = 10000;
/** 4001: the server rejected our token. 1008: a policy violation, maybe the token. */
const CLOSE_AUTH = 4001;
const CLOSE_POLICY = 1008;

/**
 * Full-jitter backoff (AWS architecture blog): a uniformly random delay in
 * [0, min(cap, base·2^attempt)).
 */
export function backoffDelay(attempt, { base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** ws: or wss: URL for the page's own host. */
export function wsURL(room, token, loc = globalThis.location) {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ room, token: token ?? '' });
  return `${proto}//${loc.host}/ws?${q}`;
}

export class SocketError extends Error {
  constructor(code, message) { super(message || code); this.code = code; }
}

/**
 * Events (EventTarget):
 *  - "state"   detail {state: connecting|open|closed, retryAt?: ms epoch, attempt}
 *  - "message" detail: the parsed server frame
 *  - "open"    detail {reconnect: boolean}
 */
export class RoomSocket extends EventTarget {
  /**
   * @param {object} o
   * @param {() => string} o.url          URL builder, called for every attempt (fresh token)
   * @param {(why: string) => Promise<void>} o.onAuthProblem  renew the session
   * @param {typeof WebSocket} [o.WebSocketImpl]
   */
  constructor({ url, onAuthProblem, WebSocketImpl = globalThis.WebSocket }) {
    super();
    this.url = url;
    this.onAuthProblem = onAuthProblem;
    this.WS = WebSocketImpl;
    this.ws = null;
    this.state = 'closed';
    this.attempt = 0;
    this.timer = 0;
    this.stopped = true;
    this.everOpened = false;
    this.refSeq = 0;
    this.pending = new Map();
    this.retryAt = 0;
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
      ws = new this.WS(this.url());
    } catch {
      this.scheduleRetry(false);
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
      // An HTTP 401 at upgrade is invisible to browsers: the socket just
      // fails before opening. Let the app check the session in that case,
      // and after a 1008 (the app asks GET /me, which is 401 only if the
      // token is bad). 4001 means the token was refused.
      let why = opened ? 'closed' : 'failed';
      if (ev.code === CLOSE_AUTH) why = 'auth';
      else if (ev.code === CLOSE_POLICY) why = 'policy';
      this.scheduleRetry(why !== 'closed', why);
    };
  }

  async scheduleRetry(checkAuth, why = 'failed') {
    if (this.stopped) return;
    const delay = why === 'auth' ? 0 : backoffDelay(this.attempt);
    this.attempt++;
    this.retryAt = Date.now() + delay;
    this.setState('closed', { retryAt: this.retryAt, why });
    if (checkAuth && this.onAuthProblem) {
      const before = this.ws;
      try { await this.onAuthProblem(why); } catch { /* network still down: keep retrying */ }
      // Stopped, or someone (retryNow) already connected meanwhile.
      if (this.stopped || this.ws !== before || this.state !== 'closed') return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), Math.max(0, this.retryAt - Date.now()));
  }

  retryNow() {
    if (this.stopped || this.state !== 'closed') return;
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

  grab(packetId) { return this.request({ type: 'grab', packet_id: packetId }); }
  chat(text) { return this.request({ type: 'chat', text }); }
}

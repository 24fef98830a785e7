// The kinds of packet beyond lucky/equal (issue 11), as pure functions the
// page and its node tests share: exclusive (专属, "to"), password (口令) and
// countdown (定时, "opens_at"); the countdown's clock arithmetic; matching a
// chat line against the room's password packets; the year's totals; and
// the paging state of "My red packets".

import { normalisePassword } from './money.js';

export { MAX_RECIPIENTS, MAX_PASSWORD_CHARS, MAX_COUNTDOWN_MS, validateExtras, parseCountdown, normalisePassword } from './money.js';

/**
 * The clock offset is only as good as one network trip: a card counts as
 * open this close to opens_at, and the server has the last word (not_yet).
 */
export const OPEN_SLACK_MS = 250;

/**
 * Milliseconds until opensAt (server clock), seen from a local clock that
 * is offset behind the server's: offset = server_time − Date.now() at the
 * welcome frame. Never negative.
 */
export function msUntil(opensAt, localNow, offset = 0) {
  if (!Number.isFinite(opensAt)) return 0;
  return Math.max(0, opensAt - (localNow + offset));
}

/** Whether a countdown packet is open now, within OPEN_SLACK_MS. */
export function isOpenAt(opensAt, localNow, offset = 0) {
  return msUntil(opensAt, localNow, offset) <= OPEN_SLACK_MS;
}

/** 65 400 ms → "1:06" (whole seconds, rounded up so 0:00 means open). */
export function formatCountdown(ms) {
  const s = Math.ceil(Math.max(0, ms) / 1000);
  return `${Math.trunc(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Whether user may grab vm at all: not an exclusive packet for others. */
export function isForUser(vm, userId) {
  if (!Array.isArray(vm?.to) || vm.to.length === 0) return true;
  return vm.to.some((u) => (u?.id ?? u) === userId);
}

/**
 * The password packet a chat line grabs, QQ style: an active packet of the
 * room whose phrase equals the line (NFC, surrounding spaces trimmed), that
 * this user has not grabbed and may grab, and that is open. The newest such
 * packet wins. Returns its view model or null.
 */
export function matchPassword(text, packets, { userId, localNow = Date.now(), offset = 0 } = {}) {
  const line = normalisePassword(String(text ?? '').trim());
  if (!line) return null;
  let best = null;
  for (const vm of packets) {
    if (typeof vm?.password !== 'string' || normalisePassword(vm.password) !== line) continue;
    if (vm.status !== 'active' || vm.grabbed_by_me != null || !isForUser(vm, userId)) continue;
    if (vm.opens_at && !isOpenAt(vm.opens_at, localNow, offset)) continue;
    if (!best || (vm.created_at ?? 0) >= (best.created_at ?? 0)) best = vm;
  }
  return best;
}

/**
 * The names an exclusive packet is for: "小明、小红" (zh) or "Alice, Bob"
 * (en); after `max` names, the rest are counted.
 */
export function recipientNames(to, lang = 'zh', max = 3) {
  const names = (Array.isArray(to) ? to : []).map((u) => String(u?.name ?? u?.id ?? u ?? ''));
  const shown = names.slice(0, max).join(lang === 'zh' ? '、' : ', ');
  const more = names.length - Math.min(max, names.length);
  if (!more) return shown;
  return lang === 'zh' ? `${shown} 等 ${names.length} 人` : `${shown} and ${more} more`;
}

const ZERO = Object.freeze({ total: 0, count: 0 });

function pair(v) {
  const total = Number.isSafeInteger(v?.total) ? v.total : 0;
  const count = Number.isSafeInteger(v?.count) ? v.count : 0;
  return { total, count };
}

/**
 * GET /api/v1/me/summary, made safe to show: every total and count an
 * integer (missing ones 0), and net = received + refunded − sent, in fen.
 */
export function normaliseSummary(s, fallbackYear = new Date().getUTCFullYear()) {
  const year = Number.isSafeInteger(s?.year) ? s.year : fallbackYear;
  const sent = s ? pair(s.sent) : { ...ZERO };
  const received = s ? pair(s.received) : { ...ZERO };
  const refunded = s ? pair(s.refunded) : { ...ZERO };
  return { year, sent, received, refunded, net: received.total + refunded.total - sent.total };
}

/**
 * Paging through a list that answers with X-Next-Cursor: one request at a
 * time, rows deduplicated by key (a row may move to the next page while
 * paging), done when a page comes without a cursor.
 */
export class Pager {
  constructor(key = (row) => row?.id) {
    this.key = key;
    this.reset();
  }

  reset() {
    this.rows = [];
    this.keys = new Set();
    this.cursor = '';
    this.started = false;
    this.done = false;
    this.loading = false;
    this.error = null;
    this.generation = (this.generation ?? 0) + 1;
  }

  /** Whether a "load more" makes sense now. */
  get canLoad() { return !this.loading && !this.done; }

  /**
   * Start a page: returns {cursor, generation} to request with, or null
   * when a request is running or there is nothing more.
   */
  begin() {
    if (!this.canLoad) return null;
    this.loading = true;
    this.error = null;
    return { cursor: this.started ? this.cursor : '', generation: this.generation };
  }

  /** A page arrived; returns the rows it added (duplicates dropped). */
  receive(ticket, rows, nextCursor) {
    if (!ticket || ticket.generation !== this.generation) return [];
    this.loading = false;
    this.started = true;
    const added = [];
    for (const row of Array.isArray(rows) ? rows : []) {
      const k = this.key(row);
      if (this.keys.has(k)) continue;
      this.keys.add(k);
      this.rows.push(row);
      added.push(row);
    }
    this.cursor = nextCursor || '';
    this.done = !nextCursor;
    return added;
  }

  /** A page failed: the same cursor can be asked for again. */
  fail(ticket, err) {
    if (!ticket || ticket.generation !== this.generation) return;
    this.loading = false;
    this.error = err ?? new Error('failed');
  }
}

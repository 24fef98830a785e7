// Where this page stands in its room's event stream (docs/protocol.md,
// "Recovery"): the cursor it reconnects from with since=<epoch>:<seq>, what
// a welcome says about the events missed meanwhile, and which frames were
// already applied. No DOM: main.js acts on what these return.

/** Durable events carry seq and epoch; the rest are state a client reloads. */
export const DURABLE = new Set(['packet', 'rain', 'finished', 'chat', 'refunded']);

/** How a connection started, from its welcome. */
export const FRESH = 'fresh'; // no since sent: load the room over REST; recent chat follows as history
export const RECOVERED = 'recovered'; // every missed event follows, in order
export const RESYNC = 'resync'; // the history did not cover since: reload over REST
export const LEGACY = 'legacy'; // a server without seq: reload over REST on every connect

function hasPosition(f) {
  return Number.isSafeInteger(f?.seq) && f.seq >= 0 && typeof f.epoch === 'string' && f.epoch !== '';
}

/** The since query parameter for a position, or null without one. */
export function formatSince(epoch, seq) {
  if (typeof epoch !== 'string' || epoch === '' || !Number.isSafeInteger(seq) || seq < 0) return null;
  return `${epoch}:${seq}`;
}

/**
 * One room's cursor. Call connecting() for every connection attempt (it
 * gives the since to send), welcome() on its welcome and observe() on every
 * later frame.
 */
export class RoomCursor {
  constructor() { this.reset(); }

  /** Forget the position: the next connection is a fresh join. */
  reset() {
    this.epoch = null;
    this.seq = null;
    /** since sent by the current connection attempt (null: none). */
    this.sent = null;
    /** chat frames of this epoch up to this seq are history, not news. */
    this.historyUpTo = null;
    /** a resync frame right after a welcome that already said so is no news. */
    this.expectResync = false;
    /** after a resync the stream has no gap to find until the next durable frame. */
    this.loose = false;
    this.outcome = null;
  }

  /** The since parameter for the next connection, or null for a fresh join. */
  since() { return formatSince(this.epoch, this.seq); }

  /** A connection attempt starts: returns the since it sends. */
  connecting() {
    this.sent = this.since();
    return this.sent;
  }

  /**
   * The welcome of the current connection: returns FRESH, RECOVERED, RESYNC
   * or LEGACY.
   */
  welcome(w) {
    const sent = this.sent;
    this.expectResync = false;
    this.loose = false;
    this.historyUpTo = null;
    if (!hasPosition(w)) {
      this.epoch = this.seq = null;
      this.outcome = LEGACY;
      return LEGACY;
    }
    if (sent !== null && w.recovered === true && w.epoch === this.epoch && w.seq >= this.seq) {
      // The missed events follow with seq in (this.seq, w.seq]: the cursor
      // moves with them, not to w.seq at once, so a connection lost in the
      // middle of the replay asks again for the rest.
      this.outcome = RECOVERED;
      return RECOVERED;
    }
    this.epoch = w.epoch;
    this.seq = w.seq;
    // Recent chat (seq <= w.seq) follows a fresh join or a failed recovery.
    this.historyUpTo = w.seq;
    if (sent === null) {
      this.outcome = FRESH;
      return FRESH;
    }
    // recovered false (a resync frame follows) or absent (since ignored).
    this.expectResync = w.recovered === false;
    this.outcome = RESYNC;
    return RESYNC;
  }

  /**
   * Any frame after the welcome. Returns what the page must know:
   *  durable  the frame carries a position
   *  history  a chat message from before this connection joined (fresh join
   *           or resync): show it without the fanfare of a new one
   *  reload   state may be missing (a seq gap, a new epoch, a resync frame
   *           that nothing announced): reload the room over REST
   */
  observe(f) {
    const out = { durable: false, history: false, reload: false };
    if (f?.type === 'resync') {
      out.reload = !this.expectResync;
      this.expectResync = false;
      this.loose = true;
      return out;
    }
    this.expectResync = false;
    if (!DURABLE.has(f?.type) || !hasPosition(f)) return out;
    out.durable = true;
    if (f.epoch !== this.epoch) {
      // The room's history was lost: whatever fell in the old epoch after
      // our cursor can't be replayed.
      out.reload = this.epoch !== null && !this.loose;
      this.epoch = f.epoch;
      this.seq = f.seq;
      this.historyUpTo = null;
      this.loose = false;
      return out;
    }
    out.history = f.type === 'chat' && this.historyUpTo !== null && f.seq <= this.historyUpTo;
    if (f.seq > this.seq + 1 && !this.loose) out.reload = true;
    if (f.seq > this.seq) {
      this.seq = f.seq;
      this.loose = false;
    }
    return out;
  }

  /** For tests and the page's debug view. */
  snapshot() {
    return { epoch: this.epoch, seq: this.seq, outcome: this.outcome };
  }
}

/**
 * The identity of a durable event, to apply each once however often it
 * arrives (a replay after a REST reload, a duplicate after a re-subscribe):
 * packets by packet id, chat by chat id, rains by rain id, `finished` by
 * packet id; other durable frames by their position. null: not deduplicated.
 */
export function durableKey(f) {
  switch (f?.type) {
    case 'packet': return f.packet?.id ? `packet:${f.packet.id}` : null;
    case 'chat': return f.id ? `chat:${f.id}` : null;
    case 'rain': return f.rain?.id ? `rain:${f.rain.id}` : null;
    case 'finished': return f.packet_id ? `finished:${f.packet_id}` : null;
    default: return DURABLE.has(f?.type) && hasPosition(f) ? `${f.type}:${f.epoch}:${f.seq}` : null;
  }
}

/** A bounded set of keys: the oldest are forgotten first. */
export class SeenSet {
  constructor(max = 5000) { this.max = max; this.keys = new Set(); }

  /** true the first time a key is seen (and null keys, which are never kept). */
  first(key) {
    if (key === null || key === undefined) return true;
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.max) this.keys.delete(this.keys.values().next().value);
    return true;
  }

  clear() { this.keys.clear(); }
}

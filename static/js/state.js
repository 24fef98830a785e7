// The single source of truth of the page, exposed read-only as window.hongbao.state.

export const state = {
  lang: 'zh',
  room: 'lobby',
  /** @type {{id: string, name: string} | null} */
  user: null,
  /** Wallet balance in fen (null until known). */
  balance: null,
  received: null,
  sent: null,
  /** connecting | open | closed */
  conn: 'connecting',
  /** server_time − Date.now() measured at `welcome` (ms). */
  clockOffset: 0,
  /** id → packet view model (see packets.js). */
  packets: new Map(),
  /** id → rain view model (see rain.js). */
  rains: new Map(),
  /** packet id → rain id, for packets that belong to a rain. */
  rainOfPacket: new Map(),
  presence: { online: 0, users: [] },
  /** Rain currently on screen (id) or null. */
  activeRain: null,
  /**
   * The room's stream position (see sync.js): epoch, seq, how the current
   * connection started (outcome), and how many REST reloads this room took.
   */
  sync: { epoch: null, seq: null, outcome: null, reloads: 0 },
};

/** The server's clock, corrected for skew. */
export function serverNow() {
  return Date.now() + state.clockOffset;
}

/** Convert a server timestamp to a local Date.now()-based one. */
export function toLocal(serverMs) {
  return serverMs - state.clockOffset;
}

export function isMe(user) {
  return !!(user && state.user && user.id === state.user.id);
}

/** Room names: letters (any script), digits, - and _ (1..64). */
export function normaliseRoom(s) {
  const r = String(s ?? '').trim();
  return /^[\p{L}\p{N}_-]{1,64}$/u.test(r) ? r : null;
}

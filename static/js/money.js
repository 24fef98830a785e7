// Money helpers. Every amount in this app is an integer number of fen
// (1 yuan = 100 fen). Never parse money with parseFloat: "8.88" is split
// into its integer and fraction parts with string operations.

export const FEN_PER_YUAN = 100;
export const MIN_SHARE_FEN = 1; // ¥0.01
export const MAX_SHARE_FEN = 20000; // ¥200.00
export const MIN_COUNT = 1;
export const MAX_COUNT = 1000;
export const MAX_GREETING_CHARS = 64;
export const MAX_CHAT_CHARS = 500;
export const DEFAULT_GREETING = '恭喜发财，大吉大利';

// Largest integer part we accept before it could stop being a safe integer
// once multiplied by 100. 10 digits = ¥9,999,999,999.99, far above any limit.
const MAX_INT_DIGITS = 10;

const FULLWIDTH = /[\uFF10-\uFF19\uFF0E\u3002]/g;

/** Normalise full-width digits and dots (Chinese IMEs) to ASCII. */
function toAscii(s) {
  return s.replace(FULLWIDTH, (ch) => {
    const code = ch.charCodeAt(0);
    if (code >= 0xff10 && code <= 0xff19) return String.fromCharCode(code - 0xff10 + 48);
    return '.';
  });
}

/**
 * Parse a yuan amount typed by a person ("8.88", "8.8", "8", "¥ 0.01",
 * "８．８８") into integer fen.
 * Returns {ok: true, fen} or {ok: false, code} where code is an error code
 * of the wire contract (invalid_amount, total_too_large).
 */
export function parseYuan(input) {
  if (typeof input !== 'string' && typeof input !== 'number') return { ok: false, code: 'invalid_amount' };
  // A number is only accepted if it is an integer number of yuan; use strings otherwise.
  let s = typeof input === 'number'
    ? (Number.isSafeInteger(input) ? String(input) : '')
    : input;
  s = toAscii(s).trim().replace(/^[¥￥]\s*/, '');
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m) return { ok: false, code: 'invalid_amount' };
  const intPart = m[1];
  const frac = m[2] ?? '';
  if (intPart === '' && frac === '') return { ok: false, code: 'invalid_amount' };
  if (frac.length > 2) return { ok: false, code: 'invalid_amount' };
  const intDigits = intPart.replace(/^0+(?=\d)/, '');
  if (intDigits.length > MAX_INT_DIGITS) return { ok: false, code: 'total_too_large' };
  const fen = Number(intDigits || '0') * FEN_PER_YUAN + Number(frac.padEnd(2, '0') || '0');
  if (!Number.isSafeInteger(fen)) return { ok: false, code: 'total_too_large' };
  if (fen <= 0) return { ok: false, code: 'invalid_amount' };
  return { ok: true, fen };
}

/** Parse a share count ("10") into an integer in [1, 1000]. */
export function parseCount(input) {
  const s = toAscii(String(input ?? '')).trim();
  if (!/^\d{1,7}$/.test(s)) return { ok: false, code: 'invalid_count' };
  const count = Number(s);
  if (count < MIN_COUNT || count > MAX_COUNT) return { ok: false, code: 'invalid_count' };
  return { ok: true, count };
}

/** Parse a positive integer (rain packets, duration). */
export function parsePositiveInt(input, max = 1e6) {
  const s = toAscii(String(input ?? '')).trim();
  if (!/^\d{1,7}$/.test(s)) return { ok: false, code: 'invalid_request' };
  const n = Number(s);
  if (n < 1 || n > max) return { ok: false, code: 'invalid_request' };
  return { ok: true, value: n };
}

/** 1234 → "12.34", -5 → "-0.05". Integer fen only. */
export function fenToYuanString(fen) {
  if (!Number.isSafeInteger(fen)) return '—';
  const neg = fen < 0;
  const abs = Math.abs(fen);
  const yuan = Math.trunc(abs / FEN_PER_YUAN);
  const cents = String(abs % FEN_PER_YUAN).padStart(2, '0');
  return `${neg ? '-' : ''}${yuan}.${cents}`;
}

/** 1234 → "¥12.34", -1234 → "-¥12.34". */
export function formatFen(fen) {
  if (!Number.isSafeInteger(fen)) return '¥—';
  const s = fenToYuanString(fen);
  return s.startsWith('-') ? `-¥${s.slice(1)}` : `¥${s}`;
}

/** Number of Unicode code points (what the server counts as characters). */
export function charCount(s) {
  let n = 0;
  for (const _ of String(s ?? '')) n++;
  return n;
}

// Issue 11's kinds: exclusive (to), password, countdown (opens_at).
export const MAX_RECIPIENTS = 100;
export const MAX_PASSWORD_CHARS = 32;
/** A countdown packet opens at most this far ahead (docs: PROTOCOL11). */
export const MAX_COUNTDOWN_MS = 10 * 60 * 1000;
/** The phrase as the server compares it: NFC, nothing else. */
export function normalisePassword(s) {
  return String(s ?? '').normalize('NFC');
}

/**
 * Check the extras of a packet the way the server does. Returns null or a
 * code: invalid_to (1..100 distinct ids), invalid_password (1..32
 * characters), invalid_opens_at (in the future, at most 10 minutes ahead),
 * exclusive_password (both at once).
 */
export function validateExtras({ to, password, opens_at: opensAt } = {}, now = Date.now()) {
  if (to !== undefined) {
    if (!Array.isArray(to) || to.length < 1 || to.length > MAX_RECIPIENTS) return 'invalid_to';
    if (new Set(to).size !== to.length || to.some((id) => typeof id !== 'string' || id === '')) return 'invalid_to';
  }
  if (password !== undefined) {
    const n = charCount(normalisePassword(password));
    if (typeof password !== 'string' || n < 1 || n > MAX_PASSWORD_CHARS) return 'invalid_password';
  }
  if (to !== undefined && password !== undefined) return 'exclusive_password';
  if (opensAt !== undefined) {
    if (!Number.isSafeInteger(opensAt) || opensAt <= now || opensAt > now + MAX_COUNTDOWN_MS) return 'invalid_opens_at';
  }
  return null;
}

/**
 * Parse the countdown field: a whole number of seconds or minutes ("s" |
 * "m"), 1 s .. 10 min. Returns {ok, ms} or {ok: false, code}.
 */
export function parseCountdown(value, unit) {
  const s = String(value ?? '').trim().replace(/[\uFF10-\uFF19]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xff10 + 48));
  if (!/^\d{1,5}$/.test(s) || (unit !== 's' && unit !== 'm')) return { ok: false, code: 'invalid_opens_at' };
  const ms = Number(s) * (unit === 'm' ? 60000 : 1000);
  if (ms < 1000 || ms > MAX_COUNTDOWN_MS) return { ok: false, code: 'invalid_opens_at' };
  return { ok: true, ms };
}

/**
 * Validate a red packet the way the server does.
 * kind: "lucky" | "equal"; total: fen; count: shares; and the optional
 * extras to (user ids), password, opens_at (unix ms, checked against now).
 * Returns null when valid, else an error code of the wire contract (or of
 * the form: invalid_to, invalid_password, invalid_opens_at,
 * exclusive_password, which the server answers as invalid_request).
 */
export function validatePacket({ kind, total, count, greeting = '', ...extras }, now = Date.now()) {
  if (kind !== 'lucky' && kind !== 'equal') return 'invalid_request';
  if (!Number.isSafeInteger(total) || total <= 0) return 'invalid_amount';
  if (!Number.isSafeInteger(count) || count < MIN_COUNT || count > MAX_COUNT) return 'invalid_count';
  if (total < count * MIN_SHARE_FEN) return 'share_too_small';
  if (kind === 'equal') {
    if (total % count !== 0) return 'uneven_total';
    if (total / count > MAX_SHARE_FEN) return 'share_too_large';
  } else if (total > count * MAX_SHARE_FEN) {
    // A lucky packet whose average share is above ¥200 must have a share above ¥200.
    return 'total_too_large';
  }
  if (charCount(greeting) > MAX_GREETING_CHARS) return 'invalid_request';
  return validateExtras(extras, now);
}

const EXTRA_FIELD = { invalid_to: 'to', invalid_password: 'password', invalid_opens_at: 'countdown', exclusive_password: 'mode' };

/**
 * Parse and validate the send-packet form in one go. mode is "" (anyone),
 * "exclusive" (to: the chosen user ids) or "password"; countdown, when
 * given, is {value, unit: "s"|"m"}.
 * Returns {ok: true, packet: {kind, total, count, greeting, to?, password?,
 * opens_at?}} or {ok: false, code, field} where field names the input to
 * focus.
 */
export function validatePacketForm({ amount, count, kind, greeting, mode = '', to = [], password = '', countdown = null }, now = Date.now()) {
  const a = parseYuan(amount);
  if (!a.ok) return { ok: false, code: a.code, field: 'amount' };
  const c = parseCount(count);
  if (!c.ok) return { ok: false, code: c.code, field: 'count' };
  const g = String(greeting ?? '').trim() || DEFAULT_GREETING;
  const packet = { kind, total: a.fen, count: c.count, greeting: g };
  if (mode === 'exclusive') packet.to = [...to];
  else if (mode === 'password') packet.password = String(password ?? '').trim();
  else if (mode !== '') return { ok: false, code: 'invalid_request', field: 'mode' };
  if (countdown) {
    const d = parseCountdown(countdown.value, countdown.unit);
    if (!d.ok) return { ok: false, code: d.code, field: 'countdown' };
    packet.opens_at = now + d.ms;
  }
  const code = validatePacket(packet, now);
  if (code) {
    const field = EXTRA_FIELD[code] ?? (code === 'invalid_request' ? (kind === 'lucky' || kind === 'equal' ? 'greeting' : 'kind') : 'amount');
    return { ok: false, code, field };
  }
  return { ok: true, packet };
}

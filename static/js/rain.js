// Red-packet rain: packets fall at their scheduled visible_at (server time,
// corrected for clock skew). Drops are pooled <button>s animated with the
// Web Animations API on `transform` only (compositor thread); a single
// requestAnimationFrame loop releases drops on time and never reads layout.
// With prefers-reduced-motion the packets appear in a static grid instead.

import { h, toast, avatar, reducedMotion } from './dom.js';
import { t, errorMessage } from './i18n.js';
import { formatFen, parseYuan, parseCount, parsePositiveInt, validatePacket, charCount, MAX_GREETING_CHARS } from './money.js';
import { state, serverNow, toLocal, isMe } from './state.js';
import { insertItem } from './chat.js';
import { grabsOf } from './grabbed.js';
import { openDialog, closeDialog } from './dialog.js';

const FALL_MIN_MS = 3400;
const FALL_MAX_MS = 5200;
const END_GRACE_MS = 1200;
const MAX_ON_SCREEN = 400;
const DETAIL_FETCH_LIMIT = 200;
const DETAIL_CONCURRENCY = 4;
export const MAX_RAIN_PACKETS = 1000;
export const MAX_RAIN_SECONDS = 600;

const deps = { api: null, grab: null, onOwnMoneyEvent: () => {} };

let layer;
let grid;
let hud;
let hudTitle;
let hudTime;
let tally;
let countdownEl;
let summaryDlg;

/** Drops waiting for their time, sorted by local start (ms since epoch). */
let queue = [];
/** Drops on screen. */
const live = new Set();
const pool = [];
let rafId = 0;
let lastHudSecond = null;
let viewport = { w: 360, h: 640 };
let spread = Math.random();

export function initRain({ api, grab, onOwnMoneyEvent }) {
  Object.assign(deps, { api, grab, onOwnMoneyEvent });
  layer = document.getElementById('rain-layer');
  grid = document.getElementById('rain-grid');
  hud = document.getElementById('rain-hud');
  hudTitle = document.getElementById('rain-hud-title');
  hudTime = document.getElementById('rain-hud-time');
  tally = document.getElementById('rain-tally');
  countdownEl = document.getElementById('rain-countdown');
  summaryDlg = document.getElementById('rain-summary');
  layer.addEventListener('click', onLayerClick);
  const measure = () => { viewport = { w: window.innerWidth, h: window.innerHeight }; };
  measure();
  window.addEventListener('resize', measure, { passive: true });
  document.getElementById('messages').addEventListener('click', (e) => {
    const card = e.target.closest('.rain-card');
    if (card) showSummary(state.rains.get(card.dataset.rainId), card);
  });
}

/* ------------------------------------------------------------------ */
/* Rains                                                               */
/* ------------------------------------------------------------------ */

/** Handle a `rain` event or the POST response. Idempotent by rain id. */
export function startRain(r) {
  if (!r?.id || !Array.isArray(r.packets)) return null;
  let rain = state.rains.get(r.id);
  if (rain) {
    // The POST response may arrive after the broadcast: it tells us the host.
    if (!rain.sender && (r.sender ?? r.host)) {
      rain.sender = r.sender ?? r.host;
      renderRainCard(rain);
      if (state.activeRain === rain.id) hudTitle.textContent = t('rain.from', { name: rain.sender.name });
    }
    return rain;
  }
  rain = {
    id: r.id,
    starts_at: r.starts_at,
    ends_at: r.ends_at,
    total_per_packet: r.total_per_packet,
    count_per_packet: r.count_per_packet,
    greeting: r.greeting,
    sender: r.sender ?? r.host ?? null,
    packetIds: new Set(r.packets.map((p) => p.id)),
    /** packet id → my amount */
    caught: new Map(),
    /** "packet|user" keys already counted */
    claimKeys: new Set(),
    /** packet id → claims counted (to tell, at finished, whether any were missed) */
    claimsPer: new Map(),
    /** user id → {user, total, count} */
    board: new Map(),
    needsDetails: !!r.synthetic, // no grabbed events seen: ask the server
    ended: false,
    card: null,
    synthetic: !!r.synthetic,
    created_at: r.created_at,
  };
  state.rains.set(r.id, rain);
  for (const p of r.packets) state.rainOfPacket.set(p.id, r.id);
  // Packets we might already show as chat cards belong to the rain instead.
  for (const p of r.packets) {
    const vm = state.packets.get(p.id);
    if (vm?.card) { vm.card.row.remove(); vm.card = null; }
  }
  addRainCard(rain);
  const endLocal = toLocal(rain.ends_at ?? Math.max(0, ...r.packets.map((p) => p.visible_at)) + FALL_MAX_MS);
  if (endLocal + END_GRACE_MS < Date.now()) {
    // Learned about it too late (e.g. from history): nothing to catch.
    rain.ended = true;
    renderRainCard(rain);
    return rain;
  }
  rain.ends_at ??= Math.max(0, ...r.packets.map((p) => p.visible_at)) + FALL_MAX_MS;
  for (const p of r.packets) queueDrop(rain, p, endLocal);
  activate(rain);
  return rain;
}

/** Put a rain on screen: HUD, tally, layer, frame loop, end timer. */
function activate(rain) {
  const reduce = reducedMotion();
  rain.ended = false;
  state.activeRain = rain.id;
  scheduleEnd(rain);
  let sum = 0;
  for (const v of rain.caught.values()) sum += v;
  tally.dataset.fen = String(sum);
  tally.textContent = formatFen(sum);
  hudTitle.textContent = rain.sender?.name ? t('rain.from', { name: rain.sender.name }) : t('rain.live');
  const wasHidden = layer.hidden;
  layer.hidden = false;
  layer.classList.toggle('is-grid', reduce);
  grid.hidden = !reduce;
  if (reduce && wasHidden) grid.replaceChildren();
  lastHudSecond = null;
  toast(t('rain.started'), { kind: 'rain' });
  renderRainCard(rain);
  if (!rafId) rafId = requestAnimationFrame(frame);
}

function scheduleEnd(rain) {
  clearTimeout(rain.endTimer);
  const endLocal = toLocal(rain.ends_at);
  rain.endTimer = setTimeout(() => endRain(rain), Math.max(0, endLocal - Date.now()) + END_GRACE_MS);
}

function queueDrop(rain, p, endLocal) {
  const now = Date.now();
  const at = toLocal(p.visible_at ?? rain.starts_at ?? now);
  // Late drops fall faster so the sky is clear when the rain ends.
  const fall = Math.min(FALL_MIN_MS + Math.random() * (FALL_MAX_MS - FALL_MIN_MS),
    Math.max(1800, endLocal + END_GRACE_MS - at));
  if (!reducedMotion() && at + fall < now) return; // already fallen past the screen
  const d = { packetId: p.id, rainId: rain.id, at, fall, el: null, anim: null };
  let i = queue.length;
  while (i > 0 && queue[i - 1].at > at) i--;
  queue.splice(i, 0, d);
}

/**
 * Packets scheduled ahead of their creation belong to a rain, unless they
 * say when they open (opens_at): those are countdown packets, with a card.
 */
const SCHEDULED_MS = 1500;
export function isScheduled(p) {
  if (p?.opens_at != null) return false;
  return Number.isFinite(p?.visible_at) && Number.isFinite(p?.created_at) && p.visible_at - p.created_at > SCHEDULED_MS;
}

/**
 * A packet of a rain whose `rain` event this page never saw (it joined late
 * or was offline): group it with its siblings under one rain card, and let it
 * fall if it is still to come. Returns true when the packet belongs to a rain.
 */
export function adoptRainPacket(p) {
  if (!p?.id) return false;
  if (state.rainOfPacket.has(p.id)) return true;
  if (!isScheduled(p)) return false;
  // A rain's packets are all created by one request: same sender, same moment.
  let rain = [...state.rains.values()].find((r) => r.synthetic && r.sender?.id === p.sender?.id
    && Math.abs((r.created_at ?? 0) - p.created_at) < 2000
    && r.total_per_packet === p.total && r.count_per_packet === p.count);
  const endsAt = p.visible_at + FALL_MAX_MS + 1000;
  if (!rain) {
    rain = startRain({
      id: `h-${p.id}`, synthetic: true, created_at: p.created_at, sender: p.sender, greeting: p.greeting,
      total_per_packet: p.total, count_per_packet: p.count, starts_at: p.visible_at, ends_at: endsAt, packets: [],
    });
  }
  rain.packetIds.add(p.id);
  state.rainOfPacket.set(p.id, rain.id);
  rain.starts_at = Math.min(rain.starts_at, p.visible_at);
  const stillFalling = toLocal(p.visible_at) + FALL_MAX_MS > Date.now();
  if ((p.status ?? 'active') === 'active' && stillFalling) {
    if (endsAt > rain.ends_at) rain.ends_at = endsAt;
    if (rain.ended) activate(rain); else scheduleEnd(rain);
    queueDrop(rain, p, toLocal(rain.ends_at));
    if (!rafId) rafId = requestAnimationFrame(frame);
  }
  renderRainCard(rain);
  return true;
}

function currentRain() {
  return state.activeRain ? state.rains.get(state.activeRain) : null;
}

function frame() {
  rafId = 0;
  const now = Date.now();
  const reduce = layer.classList.contains('is-grid');
  // Release every drop whose time has come (queue is sorted).
  while (queue.length && queue[0].at <= now) {
    const d = queue.shift();
    const rain = state.rains.get(d.rainId);
    if (!rain || rain.ended) continue;
    if (live.size >= MAX_ON_SCREEN) continue;
    if (reduce) showTile(d);
    else if (d.at + d.fall > now + 200) launch(d, now); // skip drops that fell while the tab was hidden
  }
  updateHud(now);
  if (queue.length || live.size || currentRain()) rafId = requestAnimationFrame(frame);
}

function updateHud(now) {
  const rain = currentRain();
  if (!rain) return;
  const toStart = toLocal(rain.starts_at) - now;
  const left = toLocal(rain.ends_at) - now;
  const s = toStart > 0 ? -Math.ceil(toStart / 1000) : Math.max(0, Math.ceil(left / 1000));
  if (s === lastHudSecond) return; // write to the DOM at most once a second
  lastHudSecond = s;
  if (s < 0) {
    hudTime.textContent = t('rain.starting', { s: -s });
    countdownEl.hidden = -s > 5;
    countdownEl.textContent = String(-s);
    countdownEl.classList.remove('tick');
    void countdownEl.offsetWidth; // restart the tick animation; once per second only
    countdownEl.classList.add('tick');
  } else {
    countdownEl.hidden = true;
    hudTime.textContent = t('rain.timeLeft', { s });
  }
}

/* ------------------------------------------------------------------ */
/* Drops                                                               */
/* ------------------------------------------------------------------ */

function acquire() {
  let el = pool.pop();
  if (!el) {
    el = h('button.rain-drop', { type: 'button' },
      h('span.drop-body', { 'aria-hidden': 'true' }, h('span.drop-seal')),
      h('span.drop-label', { 'aria-hidden': 'true' }));
    layer.append(el);
  }
  el.setAttribute('aria-label', t('rain.dropLabel'));
  el.hidden = false;
  return el;
}

function release(d) {
  live.delete(d);
  const el = d.el;
  if (!el) return;
  d.anim?.cancel();
  d.pop?.cancel();
  d.el = null;
  d.anim = null;
  el._drop = null;
  el.hidden = true;
  el.disabled = false;
  el.className = 'rain-drop';
  el.removeAttribute('data-packet-id');
  el.removeAttribute('data-state');
  el.lastElementChild.textContent = '';
  if (el.parentNode === layer) pool.push(el); else el.remove();
}

function launch(d, now) {
  const el = acquire();
  d.el = el;
  el._drop = d;
  el.dataset.packetId = d.packetId;
  el.dataset.state = 'falling';
  live.add(d);
  const size = viewport.w < 600 ? 56 : 68;
  spread = (spread + 0.618034) % 1; // golden-ratio spacing: even spread, no clumps
  const x = Math.round(8 + spread * Math.max(0, viewport.w - size - 16));
  const drift = (Math.random() - 0.5) * 60;
  const r0 = (Math.random() - 0.5) * 30;
  const r1 = r0 + (Math.random() - 0.5) * 50;
  const endY = viewport.h + 40;
  d.anim = el.animate([
    { transform: `translate3d(${x}px, -${size * 1.5}px, 0) rotate(${r0}deg)` },
    { transform: `translate3d(${x + drift}px, ${endY}px, 0) rotate(${r1}deg)` },
  ], { duration: d.fall, easing: 'linear', fill: 'forwards' });
  const late = now - d.at;
  if (late > 0) d.anim.currentTime = Math.min(late, d.fall - 1);
  d.anim.onfinish = () => { if (d.el === el && el.dataset.state === 'falling') release(d); };
}

function showTile(d) {
  const el = acquire();
  d.el = el;
  el._drop = d;
  el.dataset.packetId = d.packetId;
  el.dataset.state = 'falling';
  el.classList.add('tile');
  grid.append(el); // tiles live in the grid, not in the pool
  live.add(d);
}

function onLayerClick(e) {
  const el = e.target.closest('.rain-drop');
  if (!el || !el._drop || el.dataset.state !== 'falling') return;
  tap(el._drop);
}

async function tap(d) {
  const el = d.el;
  const rain = state.rains.get(d.rainId);
  el.dataset.state = 'grabbing';
  d.anim?.pause();
  el.classList.add('tapped');
  let amount = null;
  let code = null;
  try {
    const res = await deps.grab(d.packetId);
    amount = res.amount;
  } catch (err) {
    code = err?.code || 'unavailable';
  }
  if (d.el !== el) return; // recycled meanwhile (rain ended)
  const label = el.lastElementChild;
  if (amount != null) {
    el.dataset.state = 'won';
    label.textContent = `+${formatFen(amount)}`;
    if (rain) {
      rain.caught.set(d.packetId, amount);
      recordClaim(rain, d.packetId, state.user, amount);
      if (state.activeRain === rain.id) renderTally(rain);
    }
    deps.onOwnMoneyEvent('grab');
  } else {
    el.dataset.state = 'missed';
    label.textContent = shortError(code);
  }
  el.disabled = true;
  const tile = el.classList.contains('tile');
  if (tile) return; // tiles stay, showing the outcome
  d.pop = el.firstElementChild.animate(
    amount != null
      ? [{ transform: 'scale(1)', opacity: 1 }, { transform: 'scale(1.35)', opacity: 0 }]
      : [{ transform: 'scale(1)', opacity: 1 }, { transform: 'scale(0.6)', opacity: 0 }],
    { duration: reducedMotion() ? 1 : 380, easing: 'ease-out', fill: 'forwards' });
  label.animate([
    { transform: 'translate3d(-50%, 0, 0)', opacity: 1 },
    { transform: 'translate3d(-50%, -48px, 0)', opacity: 0 },
  ], { duration: 1100, easing: 'ease-out', fill: 'forwards' });
  setTimeout(() => { if (d.el === el) release(d); }, 1100);
}

function shortError(code) {
  return {
    sold_out: t('rain.short.sold_out'), already_grabbed: t('rain.short.already_grabbed'),
    expired: t('rain.short.expired'), not_yet: t('rain.short.not_yet'),
  }[code] ?? t('rain.short.other');
}

function renderTally(rain) {
  let sum = 0;
  for (const v of rain.caught.values()) sum += v;
  tally.dataset.fen = String(sum);
  tally.textContent = formatFen(sum);
  tally.classList.remove('pulse');
  void tally.offsetWidth; // restart the pulse; discrete event, not in the frame loop
  tally.classList.add('pulse');
}

/* ------------------------------------------------------------------ */
/* Leaderboard bookkeeping                                             */
/* ------------------------------------------------------------------ */

function recordClaim(rain, packetId, user, amount) {
  if (!user?.id || !Number.isInteger(amount)) return;
  const key = `${packetId}|${user.id}`;
  if (rain.claimKeys.has(key)) return;
  rain.claimKeys.add(key);
  rain.claimsPer.set(packetId, (rain.claimsPer.get(packetId) ?? 0) + 1);
  const row = rain.board.get(user.id) ?? { user, total: 0, count: 0, best: 0 };
  row.total += amount;
  row.count += 1;
  row.best = Math.max(row.best, amount);
  rain.board.set(user.id, row);
  if (isMe(user) && !rain.caught.has(packetId)) {
    rain.caught.set(packetId, amount);
    if (state.activeRain === rain.id) renderTally(rain);
  }
}

/** A `grabbed` event (one grab batch). Returns true when it belonged to a rain. */
export function rainGrabbed(ev) {
  const rain = state.rains.get(state.rainOfPacket.get(ev.packet_id));
  if (!rain) return false;
  for (const g of grabsOf(ev)) recordClaim(rain, ev.packet_id, g.user, g.amount);
  return true;
}

/** A `progress` event: no names, so the summary will ask the server. */
export function rainProgress(ev) {
  const rain = state.rains.get(state.rainOfPacket.get(ev.packet_id));
  if (!rain) return false;
  rain.needsDetails = true;
  return true;
}

/**
 * A `finished` event. It carries the final count left, so it tells how
 * many shares were taken: if the page counted fewer claims of the packet
 * (its grabs came as `progress`, or a packet emptied within one progress
 * window sent none at all), the summary asks the server.
 */
export function rainFinished(ev) {
  const rain = state.rains.get(state.rainOfPacket.get(ev.packet_id));
  if (!rain) return false;
  const taken = Number.isInteger(ev.remaining) ? rain.count_per_packet - ev.remaining : Infinity;
  if ((rain.claimsPer.get(ev.packet_id) ?? 0) < taken) rain.needsDetails = true;
  return true;
}

/** After a reconnect, events may have been missed during a running rain. */
export function markRainsIncomplete() {
  for (const rain of state.rains.values()) if (!rain.ended) rain.needsDetails = true;
}

/* ------------------------------------------------------------------ */
/* End + summary                                                       */
/* ------------------------------------------------------------------ */

function endRain(rain) {
  if (rain.ended) return;
  rain.ended = true;
  clearTimeout(rain.endTimer);
  queue = queue.filter((d) => d.rainId !== rain.id);
  for (const d of [...live]) {
    if (d.rainId !== rain.id) continue;
    if (d.el?.dataset.state === 'grabbing') continue; // let it finish
    if (d.el?.classList.contains('tile')) { d.el.remove(); live.delete(d); d.el = null; continue; }
    // Fade out whatever is still falling, then recycle it.
    const el = d.el;
    if (!el) { release(d); continue; }
    el.dataset.state = 'ended';
    el.disabled = true;
    el.animate([{ opacity: 1 }, { opacity: 0 }], { duration: 300, fill: 'forwards' })
      .finished.then(() => { if (d.el === el) { release(d); } el.getAnimations().forEach((a) => a.cancel()); }, () => {});
  }
  if (state.activeRain === rain.id) {
    const next = [...state.rains.values()].find((r) => !r.ended);
    state.activeRain = next?.id ?? null;
    countdownEl.hidden = true;
    if (!next) {
      setTimeout(() => { // after the fade-out
        if (state.activeRain) return;
        layer.hidden = true;
        grid.replaceChildren();
      }, 320);
    } else renderTally(next);
  }
  renderRainCard(rain);
  showSummary(rain);
}

async function fillBoardFromServer(rain) {
  const ids = [...rain.packetIds].slice(0, DETAIL_FETCH_LIMIT);
  rain.partial = rain.packetIds.size > DETAIL_FETCH_LIMIT;
  let i = 0;
  const worker = async () => {
    while (i < ids.length) {
      const id = ids[i++];
      try {
        const d = await deps.api.packet(id);
        for (const c of d.claims ?? []) recordClaim(rain, id, c.user, c.amount);
      } catch { rain.partial = true; }
    }
  };
  await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, worker));
  rain.needsDetails = false;
}

export async function showSummary(rain, opener) {
  if (!rain) return;
  rain.summaryShown = true;
  renderSummary(rain);
  openDialog(summaryDlg, { opener: opener ?? document.activeElement });
  if (rain.needsDetails && rain.ended) {
    document.getElementById('rain-leaderboard-note').textContent = t('detail.loading');
    await fillBoardFromServer(rain);
    if (summaryDlg.open && summaryDlg.dataset.rainId === rain.id) renderSummary(rain);
  }
}

function renderSummary(rain) {
  summaryDlg.dataset.rainId = rain.id;
  let total = 0;
  let best = 0;
  for (const v of rain.caught.values()) { total += v; best = Math.max(best, v); }
  const totalEl = document.getElementById('rain-summary-total');
  totalEl.textContent = formatFen(total);
  totalEl.dataset.fen = String(total);
  summaryDlg.dataset.fen = String(total);
  document.getElementById('rain-summary-meta').textContent = rain.caught.size
    ? `${t('rain.summaryCount', { n: rain.caught.size })} · ${t('rain.summaryBest', { amount: formatFen(best) })}`
    : t('rain.summaryNone');
  const rows = [...rain.board.values()].sort((a, b) => b.total - a.total || b.count - a.count).slice(0, 10);
  const board = document.getElementById('rain-leaderboard');
  board.replaceChildren(...rows.map((r, i) => h(`li.board-row${isMe(r.user) ? '.me' : ''}`,
    { 'data-user-id': r.user.id, 'data-amount': String(r.total) },
    h('span.board-rank', { text: String(i + 1) }),
    avatar(r.user, 'sm', h('span')),
    h('span.board-name', { text: `${r.user.name ?? ''}${isMe(r.user) ? t('detail.me') : ''}` }),
    h('span.board-count', { text: `×${r.count}` }),
    h('span.board-amount', { text: formatFen(r.total) }))));
  if (!rows.length) board.append(h('li.claims-empty', { text: t('rain.leaderboardEmpty') }));
  document.getElementById('rain-leaderboard-note').textContent = rain.partial ? t('rain.leaderboardPartial') : '';
}

/* ------------------------------------------------------------------ */
/* Chat card                                                           */
/* ------------------------------------------------------------------ */

function addRainCard(rain) {
  const text = h('span.rc-text');
  const sub = h('span.rc-sub');
  const button = h('button.rain-card', { type: 'button', 'data-rain-id': rain.id },
    h('span.rc-icon', { 'aria-hidden': 'true' }), h('span.rc-body', {}, text, sub));
  const li = h('li.msg.msg-system.msg-rain', {}, button);
  rain.card = { li, button, text, sub };
  renderRainCard(rain);
  insertItem(li, Math.min(rain.starts_at ?? Infinity, serverNow()));
}

function renderRainCard(rain) {
  const c = rain.card;
  if (!c) return;
  const n = rain.packetIds.size;
  c.text.textContent = rain.sender?.name ? t('rain.card', { name: rain.sender.name, packets: n }) : t('rain.cardAnon', { packets: n });
  c.sub.textContent = rain.ended ? t('rain.cardEnded') : t('rain.cardUpcoming');
  c.button.dataset.state = rain.ended ? 'ended' : 'live';
  c.button.disabled = !rain.ended;
}

export function relabelRain() {
  for (const rain of state.rains.values()) renderRainCard(rain);
  lastHudSecond = null;
  const rain = currentRain();
  if (rain) hudTitle.textContent = rain.sender?.name ? t('rain.from', { name: rain.sender.name }) : t('rain.live');
  for (const el of layer.querySelectorAll('.rain-drop')) el.setAttribute('aria-label', t('rain.dropLabel'));
}

/** Leaving a room: stop everything. */
export function resetRain() {
  for (const rain of state.rains.values()) clearTimeout(rain.endTimer);
  queue = [];
  for (const d of [...live]) {
    if (d.el?.classList.contains('tile')) { d.el.remove(); live.delete(d); d.el = null; } else release(d);
  }
  state.rains.clear();
  state.rainOfPacket.clear();
  state.activeRain = null;
  layer.hidden = true;
  grid.replaceChildren();
  if (summaryDlg.open) summaryDlg.close();
}

/* ------------------------------------------------------------------ */
/* Start dialog                                                        */
/* ------------------------------------------------------------------ */

/** Empty fields fall back to their placeholder, so the dialog works in one tap. */
function valueOf(input) {
  return input.value.trim() === '' ? input.placeholder : input.value;
}

export function readRainForm(form) {
  const packets = parsePositiveInt(form.packets, MAX_RAIN_PACKETS);
  if (!packets.ok) return { ok: false, code: 'invalid_request', field: 'packets' };
  const count = parseCount(form.count);
  if (!count.ok) return { ok: false, code: count.code, field: 'count' };
  const amount = parseYuan(form.amount);
  if (!amount.ok) return { ok: false, code: amount.code, field: 'amount' };
  const code = validatePacket({ kind: 'lucky', total: amount.fen, count: count.count });
  if (code) return { ok: false, code, field: 'amount' };
  const duration = parsePositiveInt(form.duration, MAX_RAIN_SECONDS);
  if (!duration.ok) return { ok: false, code: 'invalid_request', field: 'duration' };
  const greeting = String(form.greeting ?? '').trim();
  if (charCount(greeting) > MAX_GREETING_CHARS) return { ok: false, code: 'invalid_request', field: 'greeting' };
  const body = {
    packets: packets.value,
    total_per_packet: amount.fen,
    count_per_packet: count.count,
    duration_seconds: duration.value,
  };
  if (greeting) body.greeting = greeting;
  return { ok: true, body, cost: packets.value * amount.fen };
}

export function initRainDialog() {
  const dlg = document.getElementById('rain-dialog');
  const form = document.getElementById('rain-form');
  const f = {
    packets: document.getElementById('rain-packets'),
    count: document.getElementById('rain-count'),
    amount: document.getElementById('rain-amount'),
    duration: document.getElementById('rain-duration'),
    greeting: document.getElementById('rain-greeting'),
  };
  const submit = document.getElementById('rain-submit');
  const error = document.getElementById('rain-error');
  const cost = document.getElementById('rain-cost');
  const read = () => readRainForm({
    packets: valueOf(f.packets), count: valueOf(f.count), amount: valueOf(f.amount),
    duration: valueOf(f.duration), greeting: f.greeting.value,
  });
  const showError = (err, field) => {
    for (const el of Object.values(f)) el.removeAttribute('aria-invalid');
    if (!err) { error.textContent = ''; delete error.dataset.code; return; }
    error.dataset.code = err.code;
    const friendly = field === 'packets' || field === 'duration' ? t(`rain.invalid.${field}`) : errorMessage(err);
    error.replaceChildren(friendly);
    if (err.message && err.message !== friendly) error.append(h('small.error-detail', { text: err.message }));
    if (f[field]) { f[field].setAttribute('aria-invalid', 'true'); f[field].focus(); }
  };
  const preview = () => {
    const r = read();
    cost.textContent = r.ok ? t('rain.cost', { total: formatFen(r.cost) }) : t('rain.cost', { total: '—' });
  };
  rainPreview = preview;
  for (const el of Object.values(f)) el.addEventListener('input', () => { preview(); showError(null); });
  document.getElementById('rain-button').addEventListener('click', (ev) => {
    showError(null);
    preview();
    openDialog(dlg, { opener: ev.currentTarget, focus: f.packets });
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    const r = read();
    if (!r.ok) { showError({ code: r.code }, r.field); return; }
    if (state.balance != null && r.cost > state.balance) { showError({ code: 'insufficient_funds' }, 'amount'); return; }
    showError(null);
    submit.disabled = true;
    try {
      const res = await deps.api.startRain(state.room, r.body);
      closeDialog(dlg);
      if (res?.rain) {
        startRain({
          total_per_packet: r.body.total_per_packet, count_per_packet: r.body.count_per_packet,
          greeting: r.body.greeting, sender: state.user, ...res.rain,
        });
      }
      deps.onOwnMoneyEvent('rain');
    } catch (err) {
      showError(err, err.code === 'invalid_count' ? 'count' : err.code === 'invalid_request' ? null : 'amount');
    } finally {
      submit.disabled = false;
    }
  });
}

let rainPreview = () => {};
export function relabelRainDialog() { rainPreview(); }

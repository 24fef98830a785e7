// Entry point: join, room lifecycle, WebSocket dispatch, balance, language.

import { Api, ApiError, rememberedName } from './api.js';
import { RoomSocket, wsURL, wsProtocols, SocketError, isLimitClose } from './ws.js';
import { RoomCursor, SeenSet, durableKey, RECOVERED } from './sync.js';
import { detectLang, setLang, getLang, onLangChange, t, errorMessage, applyTranslations } from './i18n.js';
import { formatFen } from './money.js';
import { state, serverNow, isMe, normaliseRoom } from './state.js';
import { $, toast, avatar } from './dom.js';
import { openDialog, closeDialog } from './dialog.js';
import { initTimeline, clearTimeline, addChat, addSystem, initComposer, relabelTimes } from './chat.js';
import {
  initPackets, upsertPacket, applyGrabbed, applyProgress, applyFinished, applyOwnGrab,
  clearPackets, relabelPackets, isRainPacket, renderRecipients,
} from './packets.js';
import { matchPassword } from './kinds.js';
import { amountOf } from './grabbed.js';
import { initMy, reloadMy, isMyOpen, relabelMy } from './my.js';
import {
  initRain, initRainDialog, startRain, adoptRainPacket, rainGrabbed, rainProgress, rainFinished, markRainsIncomplete,
  resetRain, relabelRain, relabelRainDialog,
} from './rain.js';
import { initPresence, renderPresence } from './presence.js';

const api = new Api();
let socket = null;
let welcomed = false;
let bannerTimer = 0;
/** The last "state" event of the socket, to redraw it (language switch). */
let connDetail = { state: 'connecting' };
// The room's stream position and the durable events already applied. One
// of each: entering a room starts from an empty timeline, so it is always a
// fresh join, and only reconnects within the room resume with since.
const cursor = new RoomCursor();
const seen = new SeenSet();

window.hongbao = Object.freeze({ state });

/* ------------------------------------------------------------------ */
/* Balance                                                             */
/* ------------------------------------------------------------------ */

let meTimer = 0;
let meInFlight = null;

/** Refresh GET /api/v1/me soon (coalesces bursts, e.g. during a rain). */
function refreshMe(delay = 150) {
  clearTimeout(meTimer);
  meTimer = setTimeout(loadMe, delay);
}

async function loadMe() {
  if (meInFlight) { refreshMe(250); return; }
  meInFlight = api.me();
  try {
    const me = await meInFlight;
    if (me.user) state.user = me.user;
    // Money won but not committed to the ledger yet is the user's all the
    // same: show it in the balance (it lands within a second).
    const pending = Number.isInteger(me.pending?.total) ? me.pending.total : 0;
    if (Number.isInteger(me.balance)) renderBalance(me.balance + pending);
    state.received = me.received ?? null;
    state.sent = me.sent ?? null;
    renderStats();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'unavailable') refreshMe(3000);
  } finally {
    meInFlight = null;
  }
}

function renderBalance(fen) {
  const el = $('#balance');
  const changed = state.balance !== null && state.balance !== fen;
  const up = state.balance !== null && fen > state.balance;
  state.balance = fen;
  el.textContent = formatFen(fen);
  el.dataset.fen = String(fen);
  if (changed) {
    const chip = el.parentElement;
    chip.classList.remove('flash-up', 'flash-down');
    void chip.offsetWidth; // restart the flash (discrete event)
    chip.classList.add(up ? 'flash-up' : 'flash-down');
  }
}

function renderStats() {
  $('#my-stats').hidden = !state.user;
  $('#stat-balance').textContent = state.balance == null ? '—' : formatFen(state.balance);
  $('#stat-received').textContent = state.received ? t('stats.count', { amount: formatFen(state.received.total), n: state.received.count }) : '—';
  $('#stat-sent').textContent = state.sent ? t('stats.count', { amount: formatFen(state.sent.total), n: state.sent.count }) : '—';
  if (state.user) avatar(state.user, 'sm', $('#me-avatar'));
}

/* ------------------------------------------------------------------ */
/* Grab: WebSocket first, REST if the socket is not there              */
/* ------------------------------------------------------------------ */

async function grab(packetId, password) {
  let res;
  if (socket?.isOpen) {
    try {
      res = await socket.grab(packetId, password);
    } catch (err) {
      if (!(err instanceof SocketError) || err.code !== 'unavailable') throw err;
      res = await api.grab(packetId, password); // connection dropped mid-grab: the server decides
    }
  } else {
    res = await api.grab(packetId, password);
  }
  const vm = applyOwnGrab(packetId, res.amount, res.remaining);
  if (vm && !isRainPacket(vm) && Number.isInteger(res.amount)) {
    const own = isMe(vm.sender);
    addSystem(own ? 'sys.youGrabbedOwn' : 'sys.youGrabbed', { name: vm.sender?.name ?? '', amount: formatFen(res.amount) }, serverNow(), { kind: 'you-grabbed' });
  }
  // Let the 開 animation reveal the amount before the balance does.
  refreshMe(900);
  return res;
}

/** Say text in the room; the server echoes it back (else we show it anyway). */
async function sendChat(text) {
  if (!socket) throw new SocketError('unavailable', 'not connected');
  const res = await socket.chat(text);
  setTimeout(() => addChat({ id: res.id, user: state.user, text, at: res.at ?? serverNow(), local: !res.id }), 1500);
  return res;
}

/**
 * A password packet, QQ style: the phrase goes to the room as the user's
 * chat line, and the grab carries it. The grab's answer is what counts; a
 * chat line that could not be sent (offline, rate limited) is only told.
 */
async function sayPassword(packetId, phrase) {
  sendChat(phrase).catch((err) => toast(errorMessage(err), { kind: 'error' }));
  return grab(packetId, phrase);
}

/** A chat line that is a password packet's phrase grabs that packet too. */
function grabByPassword(text) {
  // Only this room's packets: one opened from My red packets may be elsewhere.
  const here = [...state.packets.values()].filter((p) => !p.room || p.room === state.room);
  const vm = matchPassword(text, here, { userId: state.user?.id, offset: state.clockOffset });
  if (!vm) return;
  grab(vm.id, text.trim()).catch((err) => toast(errorMessage(err), { kind: 'error' }));
}

/* ------------------------------------------------------------------ */
/* Connection                                                          */
/* ------------------------------------------------------------------ */

/** The banner line while disconnected: why, and when the next try is. */
function bannerText(detail, left) {
  if (detail.why === 'limit' && isLimitClose(detail.code)) {
    const reason = t(`conn.limit${detail.code}`);
    return left > 0 ? t('conn.limitBanner', { reason, s: left }) : reason;
  }
  return left > 0 ? t('conn.banner', { s: left }) : t('conn.bannerNow');
}

function renderConn(detail = connDetail) {
  connDetail = detail;
  const s = detail.state;
  state.conn = s;
  const el = $('#conn-status');
  el.dataset.state = s;
  el.querySelector('.conn-text').textContent = t(`conn.${s}`);
  const banner = $('#conn-banner');
  clearInterval(bannerTimer);
  if (s === 'closed') {
    banner.hidden = false;
    const tick = () => {
      const left = Math.ceil(((socket?.retryAt ?? 0) - Date.now()) / 1000);
      $('#conn-banner-text').textContent = bannerText(detail, left);
    };
    tick();
    bannerTimer = setInterval(tick, 500);
  } else if (s === 'open') {
    banner.hidden = true;
  } else if (s === 'connecting' && !banner.hidden) {
    $('#conn-banner-text').textContent = t('conn.bannerNow');
  }
  document.body.dataset.conn = s;
}

async function onAuthProblem() {
  // The upgrade failed (a 401 looks like any other failure to a browser) or
  // the server closed with 1008: GET /me renews the session only if the
  // token really is the problem, so a wallet is never dropped lightly.
  await api.me();
}

let syncing = null;
let syncAgain = false;

/**
 * Reload the room's state over REST: on a fresh join, and when the server
 * could not replay what this page missed (resync, a gap, a new epoch). One
 * at a time; a request during one runs once more after it.
 */
async function syncRoom() {
  if (syncing) { syncAgain = true; return; }
  syncing = loadRoom();
  try { await syncing; } finally { syncing = null; }
  if (syncAgain) { syncAgain = false; syncRoom(); }
}

async function loadRoom() {
  const room = state.room;
  state.sync.reloads++;
  refreshMe(0);
  try {
    const { packets = [] } = await api.roomPackets(room, { status: 'all', limit: 50 });
    if (room !== state.room) return;
    // Newest first on the wire: merge oldest first so cards land in order.
    for (const p of [...packets].reverse()) {
      adoptRainPacket(p); // rain packets whose `rain` event we missed go under a rain card
      upsertPacket(p);
    }
  } catch (err) {
    toast(errorMessage(err), { kind: 'error' });
  }
}

function publishSync() {
  Object.assign(state.sync, cursor.snapshot());
}

function onWelcome(msg) {
  if (Number.isFinite(msg.server_time)) state.clockOffset = msg.server_time - Date.now();
  if (msg.user) state.user = msg.user;
  const outcome = cursor.welcome(msg);
  publishSync();
  const reconnect = welcomed;
  welcomed = true;
  // Grabs are not replayed: a rain running meanwhile asks for its claims.
  if (reconnect) { markRainsIncomplete(); toast(t('conn.restored')); }
  if (outcome === RECOVERED) {
    // The missed packets, rains and chat follow as frames. The balance may
    // have moved by grabs elsewhere, which are not replayed.
    refreshMe(0);
  } else {
    syncRoom();
  }
}

function onMessage(msg) {
  if (msg.type === 'welcome') { onWelcome(msg); return; }
  const pos = cursor.observe(msg);
  publishSync();
  if (pos.reload) { markRainsIncomplete(); syncRoom(); }
  // Each durable event is applied once, however often it arrives.
  if (!seen.first(durableKey(msg))) return;
  switch (msg.type) {
    case 'packet': {
      adoptRainPacket(msg.packet);
      const vm = upsertPacket(msg.packet);
      if (vm && isMe(vm.sender)) refreshMe();
      break;
    }
    case 'rain': {
      const r = startRain(msg.rain);
      if (r && isMe(r.sender)) refreshMe();
      break;
    }
    case 'grabbed':
      rainGrabbed(msg);
      applyGrabbed(msg);
      if (amountOf(msg, state.user?.id) !== null) refreshMe(900); // e.g. grabbed from another tab
      break;
    case 'progress':
      rainProgress(msg);
      applyProgress(msg);
      break;
    case 'finished': {
      rainFinished(msg);
      const vm = applyFinished(msg);
      // An expired packet refunds its sender (a rain's packets refund its host).
      const rain = state.rains.get(state.rainOfPacket.get(msg.packet_id));
      if (msg.reason === 'expired' && ((vm && isMe(vm.sender)) || (rain && isMe(rain.sender)))) refreshMe(600);
      break;
    }
    case 'chat':
      addChat(msg, { history: pos.history });
      break;
    case 'presence':
      renderPresence(msg);
      renderRecipients();
      break;
    case 'refunded':
      // Ephemeral, to the sender's connections only: an expired packet's
      // remainder is back in the wallet.
      if (Number.isSafeInteger(msg.amount)) toast(t('refund.toast', { amount: formatFen(msg.amount) }), { kind: 'refund' });
      refreshMe(0);
      if (isMyOpen()) reloadMy();
      break;
    case 'error':
      if (msg.error) toast(errorMessage(msg.error), { kind: 'error' });
      break;
    default:
      break; // `result` is matched inside RoomSocket; unknown types are ignored
  }
}

function connect() {
  const old = socket;
  socket = null;
  old?.stop(); // its last "closed" event is ignored below: we are switching, not dropping
  welcomed = false;
  cursor.reset();
  seen.clear();
  Object.assign(state.sync, cursor.snapshot(), { reloads: 0 });
  // The token goes in a subprotocol entry, never in the URL (proxies log URLs).
  const s = new RoomSocket({
    url: () => wsURL(state.room, { since: cursor.connecting() }),
    protocols: () => wsProtocols(api.token),
    onAuthProblem,
  });
  socket = s;
  s.addEventListener('state', (e) => { if (socket === s) renderConn(e.detail); });
  s.addEventListener('message', (e) => { if (socket === s) onMessage(e.detail); });
  s.start();
}

/* ------------------------------------------------------------------ */
/* Rooms                                                               */
/* ------------------------------------------------------------------ */

function roomFromURL() {
  return normaliseRoom(new URLSearchParams(location.search).get('room')) ?? 'lobby';
}

function showRoomName() {
  $('#room-name').textContent = state.room;
  $('#join-room-name').textContent = state.room;
  document.title = `#${state.room} · ${t('app.title')}`;
}

function enterRoom(room) {
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  $('#conn-banner').hidden = true;
  state.room = room;
  showRoomName();
  resetRain();
  clearPackets();
  clearTimeline();
  renderPresence({ online: 0, users: [] });
  connect();
}

function switchRoom(room) {
  if (room === state.room) return;
  const url = new URL(location.href);
  url.searchParams.set('room', room);
  history.pushState({ room }, '', url);
  enterRoom(room);
}

function initRoomDialog() {
  const dlg = $('#room-dialog');
  const input = $('#room-input');
  const error = $('#room-error');
  const suggestions = $('#room-suggestions');
  for (const name of ['lobby', 'live', 'family', 'team', 'stream-1']) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'chip';
    b.textContent = `#${name}`;
    b.addEventListener('click', () => { closeDialog(dlg); switchRoom(name); });
    suggestions.append(b);
  }
  $('#room-switch').addEventListener('click', (e) => {
    input.value = state.room;
    error.textContent = '';
    openDialog(dlg, { opener: e.currentTarget, focus: input });
    input.select();
  });
  $('#room-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = normaliseRoom(input.value);
    if (!room) { error.textContent = t('room.invalid'); input.setAttribute('aria-invalid', 'true'); input.focus(); return; }
    input.removeAttribute('aria-invalid');
    closeDialog(dlg);
    switchRoom(room);
  });
  window.addEventListener('popstate', () => {
    if (state.user && roomFromURL() !== state.room) enterRoom(roomFromURL());
  });
}

/* ------------------------------------------------------------------ */
/* Join                                                                */
/* ------------------------------------------------------------------ */

/** One #lang-toggle, moved to whichever screen is showing. */
function placeLangToggle(view) {
  const b = $('#lang-toggle');
  $(view === 'join' ? '#join-lang-slot' : '#header-lang-slot').append(b);
  b.className = view === 'join' ? 'lang-toggle link-button' : 'icon-button lang-toggle';
}

function showJoin() {
  const old = socket;
  socket = null;
  old?.stop();
  $('#room-screen').hidden = true;
  $('#join-screen').hidden = false;
  document.body.dataset.view = 'join';
  placeLangToggle('join');
  const input = $('#name-input');
  input.value = api.session?.name ?? (input.value || rememberedName());
  input.focus();
}

async function join(name) {
  const button = $('#join-button');
  const error = $('#join-error');
  const clean = String(name ?? '').trim();
  if (!clean || Array.from(clean).length > 32) {
    error.textContent = t('join.nameRequired');
    $('#name-input').setAttribute('aria-invalid', 'true');
    $('#name-input').focus();
    return;
  }
  $('#name-input').removeAttribute('aria-invalid');
  error.textContent = '';
  button.disabled = true;
  button.textContent = t('join.joining');
  try {
    const s = await api.ensureSession(clean);
    state.user = s.user ?? null;
    $('#join-screen').hidden = true;
    $('#room-screen').hidden = false;
    document.body.dataset.view = 'room';
    placeLangToggle('room');
    renderStats();
    enterRoom(roomFromURL());
    // On phones, focusing the input would pop the keyboard over the chat.
    if (matchMedia('(pointer: fine)').matches) $('#chat-input').focus({ preventScroll: true });
  } catch (err) {
    if ($('#join-screen').hidden) { $('#join-screen').hidden = false; placeLangToggle('join'); }
    error.textContent = errorMessage(err);
    if (err.message && err.message !== error.textContent) error.textContent += ` (${err.message})`;
  } finally {
    button.disabled = false;
    button.textContent = t('join.button');
  }
}

/* ------------------------------------------------------------------ */
/* Boot                                                                */
/* ------------------------------------------------------------------ */

function relabelAll() {
  state.lang = getLang();
  showRoomName();
  renderConn();
  renderPresence();
  relabelTimes();
  relabelPackets();
  relabelRain();
  relabelRainDialog();
  relabelMy();
  renderStats();
}

function boot() {
  setLang(detectLang({ search: location.search }), { persist: false });
  state.lang = getLang();
  state.room = roomFromURL();
  applyTranslations(document);
  showRoomName();

  initTimeline();
  initComposer(async (text) => {
    // The phrase of a password packet grabs it; the line is said either way.
    grabByPassword(text);
    await sendChat(text);
  });
  initPackets({ api, grab, sayPassword, onOwnMoneyEvent: () => refreshMe() });
  initMy({ api });
  initRain({ api, grab, onOwnMoneyEvent: () => refreshMe(400) });
  initRainDialog();
  initRoomDialog();
  initPresence();

  $('#lang-toggle').addEventListener('click', () => setLang(getLang() === 'zh' ? 'en' : 'zh'));
  onLangChange(relabelAll);
  $('#conn-retry').addEventListener('click', () => socket?.retryNow({ manual: true }));
  $('#me-button').addEventListener('click', showJoin);
  $('#join-form').addEventListener('submit', (e) => { e.preventDefault(); join($('#name-input').value); });
  api.onSessionChange((s) => {
    if (s?.user) { state.user = s.user; renderStats(); }
  });

  // This tab's own session (it survives a reload) joins at once; a new tab
  // asks for a name, prefilled with the one this browser used last.
  const current = api.session?.name;
  if (current) {
    $('#name-input').value = current;
    join(current);
  } else {
    showJoin();
  }
}

boot();

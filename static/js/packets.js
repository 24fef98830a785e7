// Red packets: chat cards, the send dialog, the open overlay (開) and the
// detail panel. All amounts are integer fen.

import { h, avatar, reducedMotion } from './dom.js';
import { t, errorMessage, formatTime, formatDuration, getLang } from './i18n.js';
import { formatFen, validatePacketForm, parseYuan, parseCount, charCount, MAX_GREETING_CHARS, DEFAULT_GREETING } from './money.js';
import { state, serverNow, isMe } from './state.js';
import { insertItem, messageRow, addSystem } from './chat.js';
import { openDialog, closeDialog } from './dialog.js';

const STATUSES = new Set(['active', 'empty', 'expired']);
const MIN_SPIN_MS = 700;

/** Injected by main.js. */
const deps = {
  api: null,
  grab: async () => { throw new Error('not wired'); },
  onOwnMoneyEvent: () => {},
};

export function initPackets({ api, grab, onOwnMoneyEvent }) {
  Object.assign(deps, { api, grab, onOwnMoneyEvent });
  initSendDialog();
  initOverlay();
  document.getElementById('messages').addEventListener('click', (e) => {
    const card = e.target.closest('.packet-card');
    if (card) openPacket(card.dataset.packetId, card);
  });
  setInterval(tickCountdowns, 1000);
}

function remainingOf(r) {
  // `remaining` is the number of shares left; accept {count, amount} too.
  if (r && typeof r === 'object') return { count: r.count ?? r.remaining_count, amount: r.amount ?? r.remaining_amount };
  return { count: r, amount: undefined };
}

/* ------------------------------------------------------------------ */
/* View model                                                          */
/* ------------------------------------------------------------------ */

/**
 * Merge a packet object (from a `packet` event, a list, a detail or a send
 * response) into state and the timeline. Returns the view model.
 */
export function upsertPacket(p, { own = false } = {}) {
  if (!p || !p.id) return null;
  let vm = state.packets.get(p.id);
  if (!vm) {
    vm = {
      id: p.id, status: 'active', remaining_count: p.count, remaining_amount: p.total,
      grabbed_by_me: null, card: null,
    };
    state.packets.set(p.id, vm);
  }
  for (const k of ['room', 'sender', 'kind', 'total', 'count', 'greeting', 'created_at', 'visible_at', 'expires_at', 'rain_id']) {
    if (p[k] !== undefined && p[k] !== null) vm[k] = p[k];
  }
  if (STATUSES.has(p.status)) vm.status = mergeStatus(vm.status, p.status);
  if (Number.isInteger(p.remaining_count)) vm.remaining_count = Math.min(vm.remaining_count ?? p.remaining_count, p.remaining_count);
  if (Number.isInteger(p.remaining_amount)) vm.remaining_amount = Math.min(vm.remaining_amount ?? p.remaining_amount, p.remaining_amount);
  if (Number.isInteger(p.grabbed_by_me)) vm.grabbed_by_me = p.grabbed_by_me;
  if (vm.remaining_count === 0 && vm.status === 'active') vm.status = 'empty';
  if (isRainPacket(vm)) return vm;
  if (!vm.card) {
    vm.card = buildCard(vm);
    insertItem(vm.card.row, vm.created_at ?? serverNow(), { own: own || isMe(vm.sender) });
  }
  renderCard(vm);
  return vm;
}

/** Statuses only move forward: active → empty|expired. */
function mergeStatus(a, b) {
  if (a === 'active') return b;
  return a;
}

export function isRainPacket(vm) {
  return !!(vm.rain_id || state.rainOfPacket.has(vm.id));
}

/** Remove the chat card of a packet that turned out to belong to a rain. */
export function dropCard(id) {
  const vm = state.packets.get(id);
  if (vm?.card) { vm.card.row.remove(); vm.card = null; }
}

export function clearPackets() {
  state.packets.clear();
}

/* ------------------------------------------------------------------ */
/* Cards                                                               */
/* ------------------------------------------------------------------ */

function buildCard(vm) {
  const greeting = h('span.pc-greeting');
  const stateLine = h('span.pc-state');
  const remaining = h('span.packet-remaining');
  const kindLabel = h('span.pc-kind');
  const bar = h('span.pc-bar', {}, h('span.pc-bar-fill'));
  const button = h('button.packet-card', { type: 'button', 'data-packet-id': vm.id },
    h('span.pc-top', {},
      h('span.pc-icon', { 'aria-hidden': 'true' }, h('span.pc-icon-seal')),
      h('span.pc-text', {}, greeting, stateLine)),
    bar,
    h('span.pc-bottom', {}, kindLabel, remaining));
  const row = messageRow('msg-packet', vm.sender, button, vm.created_at);
  row.dataset.packetId = vm.id;
  return { row, button, greeting, stateLine, remaining, kindLabel, fill: bar.firstChild };
}

function notYetSeconds(vm) {
  if (!vm.visible_at) return 0;
  const ms = vm.visible_at - serverNow();
  // The skew estimate is only good to network latency: ignore sub-second gaps.
  return ms > 750 ? Math.ceil(ms / 1000) : 0;
}

function cardStateText(vm) {
  if (vm.grabbed_by_me != null) return t('card.opened', { amount: formatFen(vm.grabbed_by_me) });
  if (vm.status === 'empty') return t('card.empty');
  if (vm.status === 'expired') return t('card.expired');
  const s = notYetSeconds(vm);
  if (s > 0) return t('card.notYet', { s });
  return t('card.open');
}

export function renderCard(vm, { bump = false } = {}) {
  const c = vm.card;
  if (!c) return;
  const b = c.button;
  b.dataset.status = vm.status;
  b.dataset.kind = vm.kind ?? 'lucky';
  b.dataset.remaining = String(vm.remaining_count ?? '');
  b.toggleAttribute('data-opened', vm.grabbed_by_me != null);
  b.toggleAttribute('data-mine', isMe(vm.sender));
  c.greeting.textContent = vm.greeting || DEFAULT_GREETING;
  const stateText = cardStateText(vm);
  c.stateLine.textContent = stateText;
  c.kindLabel.textContent = `${t('card.brand')} · ${vm.kind === 'equal' ? t('card.equal') : t('card.lucky')}`;
  const left = vm.remaining_count ?? vm.count ?? 0;
  c.remaining.textContent = t('card.remaining', { left, count: vm.count ?? 0 });
  const ratio = vm.count ? Math.max(0, Math.min(1, left / vm.count)) : 0;
  c.fill.style.transform = `scaleX(${ratio})`;
  b.setAttribute('aria-label', t('card.label', { name: vm.sender?.name ?? '', greeting: vm.greeting || DEFAULT_GREETING, status: `${stateText}, ${c.remaining.textContent}` }));
  if (bump && !reducedMotion()) {
    b.classList.remove('bump');
    void b.offsetWidth; // restart the animation (only on discrete events, never in a loop)
    b.classList.add('bump');
  }
}

export function rerenderCards() {
  for (const vm of state.packets.values()) renderCard(vm);
}

function tickCountdowns() {
  const now = serverNow();
  for (const vm of state.packets.values()) {
    if (vm.card && vm.status === 'active' && vm.visible_at && vm.visible_at > now - 1500) renderCard(vm);
  }
}

/* ------------------------------------------------------------------ */
/* Live events                                                         */
/* ------------------------------------------------------------------ */

function setRemaining(vm, remaining, amountTaken) {
  const r = remainingOf(remaining);
  if (Number.isInteger(r.count)) vm.remaining_count = Math.min(vm.remaining_count ?? r.count, r.count);
  if (Number.isInteger(r.amount)) vm.remaining_amount = Math.min(vm.remaining_amount ?? r.amount, r.amount);
  else if (Number.isInteger(amountTaken) && Number.isInteger(vm.remaining_amount) && r.amount === undefined) {
    // remaining_amount is derived locally; detail fetches correct it.
    vm.remaining_amount = Math.max(0, vm.remaining_amount - amountTaken);
  }
  if (vm.remaining_count === 0 && vm.status === 'active') vm.status = 'empty';
}

/** grabbed {packet_id, user, amount, remaining} */
export function applyGrabbed(ev) {
  const vm = state.packets.get(ev.packet_id);
  if (!vm) return null;
  const seen = (vm.seenClaims ??= new Set());
  const key = ev.user?.id ?? '';
  if (key && seen.has(key)) return vm;
  if (key) seen.add(key);
  setRemaining(vm, ev.remaining, ev.amount);
  if (isMe(ev.user) && Number.isInteger(ev.amount)) vm.grabbed_by_me = ev.amount;
  renderCard(vm, { bump: true });
  if (!isRainPacket(vm) && isMe(vm.sender) && !isMe(ev.user) && ev.user?.name && (vm.count ?? 0) <= 50) {
    addSystem('sys.grabbedYours', { name: ev.user.name }, serverNow(), { kind: 'grabbed' });
  }
  refreshOverlayIfShowing(vm.id);
  return vm;
}

/** progress {packet_id, remaining} */
export function applyProgress(ev) {
  const vm = state.packets.get(ev.packet_id);
  if (!vm) return null;
  setRemaining(vm, ev.remaining);
  renderCard(vm, { bump: true });
  refreshOverlayIfShowing(vm.id);
  return vm;
}

/** finished {packet_id, reason: empty|expired, duration_ms, luckiest} */
export function applyFinished(ev) {
  const vm = state.packets.get(ev.packet_id);
  if (!vm) return null;
  const was = vm.status;
  vm.status = ev.reason === 'expired' ? 'expired' : 'empty';
  if (vm.status === 'empty') vm.remaining_count = 0;
  vm.duration_ms = ev.duration_ms ?? vm.duration_ms;
  vm.luckiest = ev.luckiest ?? vm.luckiest;
  renderCard(vm);
  if (was === 'active' && isMe(vm.sender) && !isRainPacket(vm)) {
    if (vm.status === 'expired') addSystem('sys.yourExpired', {}, serverNow(), { kind: 'expired' });
    else if (Number.isFinite(ev.duration_ms)) addSystem('sys.yourEmpty', { d: ev.duration_ms }, serverNow(), { kind: 'empty' });
  }
  refreshOverlayIfShowing(vm.id);
  return vm;
}

/** Our own successful grab (from a WS result or REST). */
export function applyOwnGrab(packetId, amount, remaining) {
  const vm = state.packets.get(packetId);
  if (!vm) return null;
  vm.grabbed_by_me = amount;
  const seen = (vm.seenClaims ??= new Set());
  if (state.user && !seen.has(state.user.id)) {
    seen.add(state.user.id);
    setRemaining(vm, remaining, amount);
  }
  renderCard(vm, { bump: true });
  return vm;
}

/* ------------------------------------------------------------------ */
/* Send dialog                                                         */
/* ------------------------------------------------------------------ */

let sendEls;

function initSendDialog() {
  const dlg = document.getElementById('packet-dialog');
  sendEls = {
    dlg,
    form: document.getElementById('packet-form'),
    amount: document.getElementById('packet-amount'),
    count: document.getElementById('packet-count'),
    kind: document.getElementById('packet-kind'),
    greeting: document.getElementById('packet-greeting'),
    submit: document.getElementById('packet-submit'),
    error: document.getElementById('packet-error'),
    preview: document.getElementById('packet-total-preview'),
    kindHint: document.getElementById('packet-kind-hint'),
    greetingCount: document.getElementById('packet-greeting-count'),
    balanceHint: document.getElementById('packet-balance-hint'),
    badge: dlg.querySelector('.kind-badge'),
  };
  const e = sendEls;
  document.getElementById('send-packet-button').addEventListener('click', (ev) => {
    showError(null);
    e.greeting.placeholder = DEFAULT_GREETING;
    updateSendPreview();
    openDialog(dlg, { opener: ev.currentTarget, focus: e.amount });
  });
  for (const el of [e.amount, e.count, e.kind, e.greeting]) {
    el.addEventListener('input', () => { updateSendPreview(); if (e.error.textContent) showError(null); });
    el.addEventListener('change', updateSendPreview);
  }
  e.form.addEventListener('submit', onSendSubmit);
}

function showError(err, field) {
  const e = sendEls;
  for (const el of [e.amount, e.count, e.greeting, e.kind]) el.removeAttribute('aria-invalid');
  if (!err) {
    e.error.textContent = '';
    delete e.error.dataset.code;
    return;
  }
  e.error.dataset.code = err.code;
  const friendly = errorMessage(err);
  e.error.replaceChildren(friendly);
  // Show the server's own words too when they add something.
  if (err.message && err.message !== friendly && err.serverMessage !== false) {
    e.error.append(h('small.error-detail', { text: err.message }));
  }
  const el = field && e[field];
  if (el) { el.setAttribute('aria-invalid', 'true'); el.focus(); }
}

export function updateSendPreview() {
  const e = sendEls;
  if (!e) return;
  const a = parseYuan(e.amount.value);
  const c = parseCount(e.count.value);
  e.preview.textContent = formatFen(a.ok ? a.fen : 0);
  const kind = e.kind.value;
  e.badge.textContent = getLang() === 'zh' ? (kind === 'equal' ? '普' : '拼') : (kind === 'equal' ? '=' : '★');
  if (kind === 'equal') {
    const each = a.ok && c.ok && a.fen % c.count === 0 ? formatFen(a.fen / c.count) : '—';
    e.kindHint.textContent = t('packet.kindEqualHint', { each });
  } else {
    e.kindHint.textContent = t('packet.kindLuckyHint');
  }
  const n = charCount(e.greeting.value.trim());
  e.greetingCount.textContent = `${n}/${MAX_GREETING_CHARS}`;
  e.greetingCount.classList.toggle('over', n > MAX_GREETING_CHARS);
  e.balanceHint.textContent = state.balance == null ? '' : t('packet.balanceHint', { balance: formatFen(state.balance) });
}

async function onSendSubmit(ev) {
  ev.preventDefault();
  const e = sendEls;
  if (e.submit.disabled) return;
  const v = validatePacketForm({ amount: e.amount.value, count: e.count.value, kind: e.kind.value, greeting: e.greeting.value });
  if (!v.ok) { showError({ code: v.code }, v.field); return; }
  if (state.balance != null && v.packet.total > state.balance) { showError({ code: 'insufficient_funds' }, 'amount'); return; }
  showError(null);
  e.submit.disabled = true;
  e.submit.textContent = t('packet.sending');
  try {
    const res = await deps.api.sendPacket(state.room, v.packet);
    closeDialog(e.dlg);
    e.amount.value = '';
    e.count.value = '';
    e.greeting.value = '';
    if (res?.packet) upsertPacket(res.packet, { own: true });
    deps.onOwnMoneyEvent('sent');
  } catch (err) {
    showError(err, err.code === 'invalid_count' ? 'count' : 'amount');
  } finally {
    e.submit.disabled = false;
    e.submit.textContent = t('packet.submit');
  }
}

/* ------------------------------------------------------------------ */
/* Open overlay + detail                                               */
/* ------------------------------------------------------------------ */

let ov;
let overlaySeq = 0;

function initOverlay() {
  const dlg = document.getElementById('open-overlay');
  ov = {
    dlg,
    avatar: document.getElementById('open-avatar'),
    from: document.getElementById('open-from'),
    greeting: document.getElementById('open-greeting'),
    result: document.getElementById('open-result'),
    hint: document.getElementById('open-hint'),
    coin: document.getElementById('open-button'),
    link: document.getElementById('open-detail-link'),
    detail: document.getElementById('packet-detail'),
    summary: document.getElementById('detail-summary'),
    claims: document.getElementById('detail-claims'),
    note: document.getElementById('detail-note'),
    packetId: null,
  };
  ov.coin.addEventListener('click', onOpenClick);
  ov.link.addEventListener('click', () => { if (ov.packetId) showDetail(ov.packetId); });
  // The close event is queued, not synchronous: when the overlay is closed and
  // reopened at once it arrives after the reopen and must not reset it.
  dlg.addEventListener('close', () => { if (dlg.open) return; ov.packetId = null; overlaySeq++; });
}

function setStage(stage) {
  ov.dlg.dataset.stage = stage;
}

function clearResult() {
  ov.result.textContent = '';
  delete ov.result.dataset.amount;
  delete ov.result.dataset.error;
  ov.result.removeAttribute('data-amount');
}

function showAmount(amount) {
  ov.result.removeAttribute('data-error');
  ov.result.dataset.amount = String(amount);
  ov.result.replaceChildren(
    h('span.result-amount', { text: formatFen(amount) }),
    h('span.result-note', { text: t('open.savedToBalance') }));
}

function showResultError(code, message) {
  ov.hint.textContent = '';
  ov.result.removeAttribute('data-amount');
  ov.result.dataset.error = code;
  ov.result.replaceChildren(h('span.result-error', { text: errorMessage({ code, message }) }));
}

/** Tap on a card (or anything else that names a packet). */
export async function openPacket(id, opener) {
  let vm = state.packets.get(id);
  const seq = ++overlaySeq;
  ov.packetId = id;
  clearResult();
  ov.detail.hidden = true;
  ov.coin.classList.remove('spinning');
  ov.coin.disabled = false;
  fillHeader(vm);
  setStage(vm && vm.grabbed_by_me != null ? 'result' : 'envelope');
  openDialog(ov.dlg, { opener, focus: vm && vm.grabbed_by_me != null ? null : ov.coin });
  if (!vm) {
    // Unknown packet (deep link): fetch it first.
    try {
      const d = await deps.api.packet(id);
      if (seq !== overlaySeq) return;
      vm = upsertPacket(d.packet);
      fillHeader(vm);
    } catch (err) {
      if (seq !== overlaySeq) return;
      showResultError(err.code || 'not_found', err.message);
      setStage('result');
      return;
    }
  }
  if (vm.grabbed_by_me != null) {
    showAmount(vm.grabbed_by_me);
    showDetail(id);
  }
}

function fillHeader(vm) {
  const sender = vm?.sender ?? { name: '' };
  avatar(sender, 'md', ov.avatar);
  ov.from.textContent = t('open.from', { name: sender.name ?? '' });
  ov.greeting.textContent = vm?.greeting || DEFAULT_GREETING;
  ov.hint.textContent = vm?.status === 'empty' ? t('open.hintEmpty') : vm?.status === 'expired' ? t('open.hintExpired') : '';
  ov.dlg.dataset.kind = vm?.kind ?? 'lucky';
}

async function onOpenClick() {
  const id = ov.packetId;
  if (!id || ov.coin.disabled) return;
  const seq = overlaySeq;
  ov.coin.disabled = true;
  ov.coin.classList.add('spinning');
  setStage('opening');
  const started = performance.now();
  let outcome;
  try {
    outcome = { ok: true, res: await deps.grab(id) };
  } catch (err) {
    outcome = { ok: false, err };
  }
  const wait = (reducedMotion() ? 150 : MIN_SPIN_MS) - (performance.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (seq !== overlaySeq) return; // overlay closed or reused meanwhile
  ov.coin.classList.remove('spinning');
  if (outcome.ok) {
    showAmount(outcome.res.amount);
    setStage('result');
    setTimeout(() => { if (seq === overlaySeq) showDetail(id); }, reducedMotion() ? 0 : 650);
  } else {
    const code = outcome.err?.code || 'unavailable';
    showResultError(code, outcome.err?.message);
    setStage('result');
    ov.coin.disabled = false;
    if (code === 'already_grabbed') showDetail(id);
  }
}

/** Load GET /api/v1/packets/{id} into #packet-detail. */
export async function showDetail(id) {
  const seq = overlaySeq;
  ov.detail.hidden = false;
  ov.dlg.dataset.detail = 'loading';
  if (!ov.claims.childElementCount) ov.summary.textContent = t('detail.loading');
  try {
    const d = await deps.api.packet(id);
    if (seq !== overlaySeq) return;
    const vm = upsertPacket(d.packet) ?? state.packets.get(id);
    if (vm) {
      // Authoritative numbers from the server.
      if (Number.isInteger(d.packet?.remaining_count)) vm.remaining_count = d.packet.remaining_count;
      if (Number.isInteger(d.packet?.remaining_amount)) vm.remaining_amount = d.packet.remaining_amount;
      const mine = state.user && (d.claims ?? []).find((c) => c.user?.id === state.user.id);
      if (mine) vm.grabbed_by_me = mine.amount;
      renderCard(vm);
      if (mine && ov.result.dataset.error === 'already_grabbed') {
        ov.result.dataset.amount = String(mine.amount);
        ov.result.append(h('span.result-note', { text: formatFen(mine.amount) }));
      } else if (mine && !ov.result.dataset.amount && !ov.result.dataset.error) {
        showAmount(mine.amount);
      } else if (!mine && !ov.result.dataset.amount && !ov.result.dataset.error && vm.status !== 'active') {
        ov.hint.textContent = vm.status === 'empty' ? t('card.empty') : t('card.expired');
      }
    }
    renderDetail(d, vm);
    ov.dlg.dataset.detail = 'ready';
    if (ov.dlg.dataset.stage === 'envelope') setStage('peek');
  } catch (err) {
    if (seq !== overlaySeq) return;
    ov.summary.textContent = `${t('detail.error')}: ${errorMessage(err)}`;
    ov.dlg.dataset.detail = 'error';
  }
}

function renderDetail(d, vm) {
  const p = { ...(vm ?? {}), ...(d.packet ?? {}) };
  const count = p.count ?? 0;
  const left = p.remaining_count ?? count;
  const total = p.total ?? 0;
  const leftAmount = p.remaining_amount ?? total;
  ov.summary.textContent = t('detail.summary', {
    taken: count - left, count, takenAmount: formatFen(total - leftAmount), total: formatFen(total),
  });
  const claims = [...(d.claims ?? [])].sort((a, b) => (a.at ?? 0) - (b.at ?? 0));
  const lucky = d.luckiest;
  let luckyMarked = false;
  ov.claims.replaceChildren(...claims.map((c) => {
    const me = isMe(c.user);
    const isLucky = !luckyMarked && lucky && p.kind !== 'equal' && lucky.user?.id === c.user?.id && (lucky.amount == null || lucky.amount === c.amount);
    if (isLucky) luckyMarked = true;
    return h('li.claim-row', { 'data-user-id': c.user?.id ?? '', 'data-amount': String(c.amount), class: me ? 'me' : undefined },
      avatar(c.user, 'sm', h('span')),
      h('span.claim-who', {},
        h('span.claim-name', { text: `${c.user?.name ?? ''}${me ? t('detail.me') : ''}` }),
        h('time.claim-time', { text: formatTime(c.at, { seconds: true }) })),
      h('span.claim-right', {},
        h('span.claim-amount', { text: formatFen(c.amount) }),
        isLucky ? h('span.luckiest', { text: t('detail.luckiest') }) : null));
  }));
  if (!claims.length) ov.claims.append(h('li.claims-empty', { text: t('detail.noClaims') }));
  const status = STATUSES.has(d.packet?.status) ? d.packet.status : vm?.status;
  if (Number.isFinite(d.duration_ms) && status === 'empty') ov.note.textContent = t('detail.emptiedIn', { d: formatDuration(d.duration_ms) });
  else if (status === 'expired') ov.note.textContent = t('detail.expired');
  else ov.note.textContent = left > 0 ? t('detail.waiting') : '';
}

let refreshTimer = 0;
function refreshOverlayIfShowing(id) {
  if (!ov?.dlg.open || ov.packetId !== id || ov.detail.hidden) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { if (ov.packetId === id && !ov.detail.hidden) showDetail(id); }, 300);
}

/** Re-translate what is on screen after a language switch. */
export function relabelPackets() {
  rerenderCards();
  updateSendPreview();
  if (ov?.dlg.open && ov.packetId) {
    fillHeader(state.packets.get(ov.packetId));
    if (ov.result.dataset.amount && !ov.result.dataset.error) showAmount(Number(ov.result.dataset.amount));
    else if (ov.result.dataset.error) showResultError(ov.result.dataset.error);
    if (!ov.detail.hidden) showDetail(ov.packetId);
  }
}


// Red packets: chat cards, the send dialog, the open overlay (開) and the
// detail panel. All amounts are integer fen.

import { h, avatar, reducedMotion } from './dom.js';
import { t, errorMessage, formatTime, formatDuration, getLang } from './i18n.js';
import { formatFen, validatePacketForm, parseYuan, parseCount, charCount, MAX_GREETING_CHARS, DEFAULT_GREETING, MAX_PASSWORD_CHARS, MAX_RECIPIENTS } from './money.js';
import { msUntil, isOpenAt, formatCountdown, isForUser, recipientNames } from './kinds.js';
import { state, serverNow, isMe } from './state.js';
import { newGrabs, amountOf } from './grabbed.js';
import { insertItem, messageRow, addSystem } from './chat.js';
import { openDialog, closeDialog } from './dialog.js';

const STATUSES = new Set(['active', 'empty', 'expired']);
const MIN_SPIN_MS = 700;

/** Injected by main.js. */
const deps = {
  api: null,
  grab: async () => { throw new Error('not wired'); },
  /** Send the phrase to the room as a chat line and grab with it. */
  sayPassword: async () => { throw new Error('not wired'); },
  onOwnMoneyEvent: () => {},
};

export function initPackets({ api, grab, sayPassword, onOwnMoneyEvent }) {
  Object.assign(deps, { api, grab, sayPassword, onOwnMoneyEvent });
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
  for (const k of ['room', 'sender', 'kind', 'total', 'count', 'greeting', 'created_at', 'visible_at', 'expires_at', 'rain_id', 'to', 'password', 'opens_at']) {
    if (p[k] !== undefined && p[k] !== null) vm[k] = p[k];
  }
  if (STATUSES.has(p.status)) vm.status = mergeStatus(vm.status, p.status);
  if (Number.isInteger(p.remaining_count)) vm.remaining_count = Math.min(vm.remaining_count ?? p.remaining_count, p.remaining_count);
  if (Number.isInteger(p.remaining_amount)) vm.remaining_amount = Math.min(vm.remaining_amount ?? p.remaining_amount, p.remaining_amount);
  if (Number.isInteger(p.grabbed_by_me)) vm.grabbed_by_me = p.grabbed_by_me;
  if (vm.remaining_count === 0 && vm.status === 'active') vm.status = 'empty';
  if (isRainPacket(vm)) return vm;
  // A packet of another room (opened from My red packets) gets no card here.
  if (vm.room && state.room && vm.room !== state.room) return vm;
  if (!vm.card) {
    vm.card = buildCard(vm);
    insertItem(vm.card.row, vm.created_at ?? serverNow(), { own: own || isMe(vm.sender) });
  }
  renderCard(vm);
  scheduleOpening(vm);
  return vm;
}

/**
 * A countdown card opens by itself at opens_at (the per-second tick draws
 * the countdown; this lands the opening on time rather than up to a tick late).
 */
function scheduleOpening(vm) {
  if (!isWaiting(vm) || vm.openTimer) return;
  vm.openTimer = setTimeout(() => {
    vm.openTimer = 0;
    renderCard(vm);
    if (ov?.dlg.open && ov.packetId === vm.id) renderOverlayGate(vm);
    scheduleOpening(vm); // the clock offset moved meanwhile: not open yet
  }, msUntil(vm.opens_at, Date.now(), state.clockOffset) + 1);
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
  const extra = h('span.pc-extra');
  const remaining = h('span.packet-remaining');
  const kindLabel = h('span.pc-kind');
  const bar = h('span.pc-bar', {}, h('span.pc-bar-fill'));
  const button = h('button.packet-card', { type: 'button', 'data-packet-id': vm.id },
    h('span.pc-top', {},
      h('span.pc-icon', { 'aria-hidden': 'true' }, h('span.pc-icon-seal')),
      h('span.pc-text', {}, greeting, extra, stateLine)),
    bar,
    h('span.pc-bottom', {}, kindLabel, remaining));
  const row = messageRow('msg-packet', vm.sender, button, vm.created_at);
  row.dataset.packetId = vm.id;
  return { row, button, greeting, stateLine, extra, remaining, kindLabel, fill: bar.firstChild };
}

function notYetSeconds(vm) {
  if (!vm.visible_at) return 0;
  const ms = vm.visible_at - serverNow();
  // The skew estimate is only good to network latency: ignore sub-second gaps.
  return ms > 750 ? Math.ceil(ms / 1000) : 0;
}

/** A countdown packet (opens_at) that has not opened yet, on the server's clock. */
export function isWaiting(vm) {
  return !!vm?.opens_at && vm.status === 'active' && !isOpenAt(vm.opens_at, Date.now(), state.clockOffset);
}

function countdownText(vm) {
  return formatCountdown(msUntil(vm.opens_at, Date.now(), state.clockOffset));
}

export function isForMe(vm) {
  return !state.user || isForUser(vm, state.user.id);
}

function cardStateText(vm) {
  if (vm.grabbed_by_me != null) return t('card.opened', { amount: formatFen(vm.grabbed_by_me) });
  if (vm.status === 'empty') return t('card.empty');
  if (vm.status === 'expired') return t('card.expired');
  // The sender of an exclusive packet for others waits with them.
  if (!isForMe(vm)) return isMe(vm.sender) ? t('detail.waiting') : t('card.notForYou');
  if (vm.opens_at && isWaiting(vm)) return t('card.countdown', { t: countdownText(vm) });
  if (typeof vm.password === 'string') return t('card.sayPassword');
  if (vm.opens_at) return t('card.open');
  const s = notYetSeconds(vm);
  if (s > 0) return t('card.notYet', { s });
  return t('card.open');
}

/** The card's second line: whom an exclusive packet is for, a password's phrase. */
function cardExtraText(vm) {
  if (Array.isArray(vm.to) && vm.to.length) return t('card.exclusiveFor', { names: recipientNames(vm.to, getLang()) });
  if (typeof vm.password === 'string') return t('card.password', { phrase: vm.password });
  return '';
}

function kindText(vm) {
  const base = vm.kind === 'equal' ? t('card.equal') : t('card.lucky');
  const extra = Array.isArray(vm.to) && vm.to.length ? t('card.exclusive')
    : typeof vm.password === 'string' ? t('card.passwordKind')
      : vm.opens_at ? t('card.countdownKind') : '';
  return extra ? `${extra} · ${base}` : `${t('card.brand')} · ${base}`;
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
  b.toggleAttribute('data-exclusive', Array.isArray(vm.to) && vm.to.length > 0);
  b.toggleAttribute('data-not-for-me', !isForMe(vm) && !isMe(vm.sender));
  b.toggleAttribute('data-password', typeof vm.password === 'string');
  b.toggleAttribute('data-countdown', !!vm.opens_at);
  b.toggleAttribute('data-waiting', isWaiting(vm));
  c.greeting.textContent = vm.greeting || DEFAULT_GREETING;
  const stateText = cardStateText(vm);
  c.stateLine.textContent = stateText;
  const extraText = cardExtraText(vm);
  c.extra.textContent = extraText;
  c.extra.hidden = !extraText;
  c.kindLabel.textContent = kindText(vm);
  const left = vm.remaining_count ?? vm.count ?? 0;
  c.remaining.textContent = t('card.remaining', { left, count: vm.count ?? 0 });
  const ratio = vm.count ? Math.max(0, Math.min(1, left / vm.count)) : 0;
  c.fill.style.transform = `scaleX(${ratio})`;
  b.setAttribute('aria-label', t('card.label', { name: vm.sender?.name ?? '', greeting: vm.greeting || DEFAULT_GREETING, status: `${extraText ? `${extraText}, ` : ''}${stateText}, ${c.remaining.textContent}` }));
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
    const at = vm.opens_at ?? vm.visible_at;
    if (vm.status !== 'active' || !at || at <= now - 1500) continue;
    if (vm.card) renderCard(vm);
    if (ov?.dlg.open && ov.packetId === vm.id) renderOverlayGate(vm);
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

/** grabbed {packet_id, remaining, grabs: [{user, amount}]}: one grab batch (grabbed.js). */
export function applyGrabbed(ev) {
  const vm = state.packets.get(ev.packet_id);
  if (!vm) return null;
  const fresh = newGrabs(ev, (vm.seenClaims ??= new Set()));
  const mine = amountOf(ev, state.user?.id);
  if (mine !== null) vm.grabbed_by_me = mine; // e.g. grabbed from another tab
  if (fresh.length === 0 && mine === null) return vm;
  setRemaining(vm, ev.remaining, fresh.reduce((sum, g) => sum + g.amount, 0));
  renderCard(vm, { bump: true });
  if (!isRainPacket(vm) && isMe(vm.sender) && (vm.count ?? 0) <= 50) {
    for (const g of fresh) {
      if (!isMe(g.user) && g.user.name) addSystem('sys.grabbedYours', { name: g.user.name }, serverNow(), { kind: 'grabbed' });
    }
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

/**
 * finished {packet_id, reason: empty|expired, remaining, duration_ms, luckiest}.
 * It replaces the packet's last `progress` (the server drops one still
 * pending), so `remaining` is the final count: 0 when empty, the shares
 * nobody took when expired (absent if the server could not tell).
 */
export function applyFinished(ev) {
  const vm = state.packets.get(ev.packet_id);
  if (!vm) return null;
  const was = vm.status;
  vm.status = ev.reason === 'expired' ? 'expired' : 'empty';
  if (vm.status === 'empty') {
    vm.remaining_count = 0;
    vm.remaining_amount = 0;
  } else if (Number.isInteger(ev.remaining)) {
    vm.remaining_count = Math.min(vm.remaining_count ?? ev.remaining, ev.remaining);
  }
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
    modes: [...dlg.querySelectorAll('input[name="mode"]')],
    toWrap: document.getElementById('packet-to-wrap'),
    to: document.getElementById('packet-to'),
    toCount: document.getElementById('packet-to-count'),
    pwWrap: document.getElementById('packet-password-wrap'),
    password: document.getElementById('packet-password'),
    pwCount: document.getElementById('packet-password-count'),
    cdOn: document.getElementById('packet-countdown-on'),
    cdWrap: document.getElementById('packet-countdown-wrap'),
    countdown: document.getElementById('packet-countdown'),
    cdUnit: document.getElementById('packet-countdown-unit'),
    fieldErrors: Object.fromEntries([...dlg.querySelectorAll('[data-error-for]')].map((el) => [el.dataset.errorFor, el])),
  };
  const e = sendEls;
  e.mode = e.modes[0];
  document.getElementById('send-packet-button').addEventListener('click', (ev) => {
    showError(null);
    e.greeting.placeholder = DEFAULT_GREETING;
    renderRecipients({ force: true });
    updateSendPreview();
    openDialog(dlg, { opener: ev.currentTarget, focus: e.amount });
  });
  for (const el of [e.amount, e.count, e.kind, e.greeting, e.password, e.countdown, e.cdUnit, e.cdOn, ...e.modes]) {
    el.addEventListener('input', () => { updateSendPreview(); if (hasErrors()) showError(null); });
    el.addEventListener('change', updateSendPreview);
  }
  e.to.addEventListener('change', () => { updateSendPreview(); if (hasErrors()) showError(null); });
  e.form.addEventListener('submit', onSendSubmit);
}

function hasErrors() {
  const e = sendEls;
  return !!e.error.textContent || Object.values(e.fieldErrors).some((el) => el.textContent);
}

/** The mode radio: "" (anyone), "exclusive" or "password"; one at a time, so never both. */
function currentMode() {
  return sendEls.modes.find((r) => r.checked)?.value ?? '';
}

const chosenTo = new Set();

/**
 * The exclusive packet's recipients: the room's online members (from
 * presence), the sender excluded. Choices survive a presence update.
 */
export function renderRecipients({ force = false } = {}) {
  const e = sendEls;
  // Rebuilt on opening the dialog, and on presence only while it is open.
  if (!e || (!force && !e.dlg.open)) return;
  const users = (state.presence.users ?? []).filter((u) => u?.id && !isMe(u));
  const online = new Set(users.map((u) => u.id));
  for (const id of [...chosenTo]) if (!online.has(id)) chosenTo.delete(id);
  const sorted = [...users].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  e.to.replaceChildren(...sorted.slice(0, MAX_RECIPIENTS * 2).map((u) => h('li.to-row', {},
    h('label.check', {},
      h('input', { type: 'checkbox', value: u.id, checked: chosenTo.has(u.id), 'data-user-id': u.id,
        onchange: (ev) => { if (ev.target.checked) chosenTo.add(u.id); else chosenTo.delete(u.id); updateSendPreview(); } }),
      avatar(u, 'xs', h('span')),
      h('span.to-name', { text: u.name ?? u.id })))));
  if (!sorted.length) e.to.append(h('li.to-none', { text: t('packet.toNone') }));
  updateSendPreview();
}

const FIELD_INPUT = { to: 'to', password: 'password', countdown: 'countdown', mode: 'mode' };

function showError(err, field) {
  const e = sendEls;
  for (const el of [e.amount, e.count, e.greeting, e.kind, e.password, e.countdown, e.to]) el.removeAttribute('aria-invalid');
  for (const el of Object.values(e.fieldErrors)) { el.textContent = ''; delete el.dataset.code; }
  e.error.textContent = '';
  delete e.error.dataset.code;
  if (!err) return;
  const friendly = errorMessage(err);
  // The new kinds' checks show under their own field; the rest above the button.
  const target = e.fieldErrors[field === 'mode' ? 'password' : field] ?? e.error;
  target.dataset.code = err.code;
  target.replaceChildren(friendly);
  // Show the server's own words too when they add something.
  if (err.message && err.message !== friendly && err.serverMessage !== false) {
    target.append(h('small.error-detail', { text: err.message }));
  }
  const el = field && e[FIELD_INPUT[field] ?? field];
  if (el) {
    el.setAttribute('aria-invalid', 'true');
    (el === e.to ? e.to.querySelector('input') ?? e.modes[1] : el === e.mode ? e.modes.find((r) => r.checked) : el)?.focus();
  }
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
  const mode = currentMode();
  e.toWrap.hidden = mode !== 'exclusive';
  e.pwWrap.hidden = mode !== 'password';
  e.cdWrap.hidden = !e.cdOn.checked;
  e.toCount.textContent = chosenTo.size ? t('packet.toCount', { n: chosenTo.size }) : '';
  const pw = charCount(e.password.value.trim());
  e.pwCount.textContent = `${pw}/${MAX_PASSWORD_CHARS}`;
  e.pwCount.classList.toggle('over', pw > MAX_PASSWORD_CHARS);
}

async function onSendSubmit(ev) {
  ev.preventDefault();
  const e = sendEls;
  if (e.submit.disabled) return;
  const v = validatePacketForm({
    amount: e.amount.value, count: e.count.value, kind: e.kind.value, greeting: e.greeting.value,
    mode: currentMode(), to: [...chosenTo], password: e.password.value,
    countdown: e.cdOn.checked ? { value: e.countdown.value, unit: e.cdUnit.value } : null,
  }, serverNow());
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
    e.password.value = '';
    chosenTo.clear();
    e.modes[0].checked = true;
    e.cdOn.checked = false;
    if (res?.packet) upsertPacket(res.packet, { own: true });
    deps.onOwnMoneyEvent('sent');
  } catch (err) {
    showError(err, err.code === 'invalid_count' ? 'count' : err.code === 'not_for_you' ? 'to' : 'amount');
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
    pwForm: document.getElementById('open-password'),
    pwInput: document.getElementById('open-password-input'),
    pwSend: document.getElementById('open-password-send'),
    packetId: null,
  };
  ov.coin.addEventListener('click', () => onOpenClick());
  ov.pwForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const phrase = ov.pwInput.value.trim();
    if (!phrase) { ov.pwInput.setAttribute('aria-invalid', 'true'); ov.pwInput.focus(); return; }
    ov.pwInput.removeAttribute('aria-invalid');
    onOpenClick(phrase);
  });
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
export async function openPacket(id, opener, { detail = false } = {}) {
  let vm = state.packets.get(id);
  const seq = ++overlaySeq;
  ov.packetId = id;
  clearResult();
  ov.detail.hidden = true;
  ov.coin.classList.remove('spinning');
  ov.coin.disabled = false;
  ov.pwInput.value = '';
  ov.pwInput.removeAttribute('aria-invalid');
  fillHeader(vm);
  setStage(vm && vm.grabbed_by_me != null ? 'result' : 'envelope');
  const usePassword = vm && vm.grabbed_by_me == null && typeof vm.password === 'string' && vm.status === 'active';
  openDialog(ov.dlg, { opener, focus: vm && vm.grabbed_by_me != null ? null : usePassword ? ov.pwInput : ov.coin });
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
  } else if (detail) {
    showDetail(id);
  } else if (vm.status === 'active' && !isForMe(vm)) {
    // An exclusive packet for others: its sender sees who took it; anyone
    // else is told at once, no grab needed.
    if (isMe(vm.sender)) {
      showDetail(id);
    } else {
      showResultError('not_for_you');
      setStage('result');
    }
  }
}

/**
 * The parts of the envelope that depend on the kind: the countdown (the
 * coin waits, then opens by itself), the password form, the recipients.
 */
function renderOverlayGate(vm) {
  if (!vm || !ov) return;
  const active = vm.status === 'active' && vm.grabbed_by_me == null;
  const waiting = active && isWaiting(vm);
  const password = active && typeof vm.password === 'string' && isForMe(vm);
  ov.dlg.toggleAttribute('data-waiting', waiting);
  ov.dlg.toggleAttribute('data-password', password);
  ov.pwForm.hidden = !password;
  ov.pwInput.disabled = waiting;
  ov.pwSend.disabled = waiting;
  if (!ov.coin.classList.contains('spinning')) ov.coin.disabled = waiting || password;
  if (ov.result.dataset.error || ov.result.dataset.amount) return;
  if (waiting) ov.hint.textContent = t('open.countdown', { t: countdownText(vm) });
  else if (password) ov.hint.textContent = t('open.passwordHint', { phrase: vm.password });
  else if (active && Array.isArray(vm.to) && vm.to.length) ov.hint.textContent = t('open.forOthers', { names: recipientNames(vm.to, getLang()) });
  else if (active) ov.hint.textContent = '';
}

function fillHeader(vm) {
  const sender = vm?.sender ?? { name: '' };
  avatar(sender, 'md', ov.avatar);
  ov.from.textContent = t('open.from', { name: sender.name ?? '' });
  ov.greeting.textContent = vm?.greeting || DEFAULT_GREETING;
  ov.hint.textContent = vm?.status === 'empty' ? t('open.hintEmpty') : vm?.status === 'expired' ? t('open.hintExpired') : '';
  ov.dlg.dataset.kind = vm?.kind ?? 'lucky';
  if (vm) renderOverlayGate(vm);
  else { ov.pwForm.hidden = true; ov.dlg.removeAttribute('data-waiting'); }
}

// A countdown card opens on the page's estimate of the server's clock,
// which is only as good as one network trip: when the server still says
// not_yet, a tap on 開 tries again by itself a moment later, a few times,
// with the coin still spinning, rather than showing an error.
const NOT_YET_RETRIES = 5;
const NOT_YET_RETRY_MS = 300;
let notYet = { seq: -1, n: 0 };

/** Schedules another grab of the overlay's packet; false when out of tries. */
function retryNotYet(seq) {
  if (notYet.seq !== seq) notYet = { seq, n: 0 };
  if (notYet.n >= NOT_YET_RETRIES) return false;
  notYet.n++;
  setTimeout(() => {
    if (seq !== overlaySeq) return;
    ov.coin.disabled = false;
    onOpenClick();
  }, NOT_YET_RETRY_MS);
  return true;
}

async function onOpenClick(phrase) {
  const id = ov.packetId;
  if (!id) return;
  if (phrase === undefined && ov.coin.disabled) return;
  if (phrase !== undefined && ov.pwSend.disabled) return;
  const seq = overlaySeq;
  ov.coin.disabled = true;
  ov.pwSend.disabled = true;
  ov.coin.classList.add('spinning');
  clearResult();
  setStage('opening');
  const started = performance.now();
  let outcome;
  try {
    // A password packet: the phrase goes to the room as a chat line, as in QQ.
    outcome = { ok: true, res: await (phrase === undefined ? deps.grab(id) : deps.sayPassword(id, phrase)) };
  } catch (err) {
    outcome = { ok: false, err };
  }
  const wait = (reducedMotion() ? 150 : MIN_SPIN_MS) - (performance.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (seq !== overlaySeq) return; // overlay closed or reused meanwhile
  if (!outcome.ok && outcome.err?.code === 'not_yet' && phrase === undefined && retryNotYet(seq)) return;
  ov.coin.classList.remove('spinning');
  if (outcome.ok) {
    showAmount(outcome.res.amount);
    renderOverlayGate(state.packets.get(id));
    setStage('result');
    setTimeout(() => { if (seq === overlaySeq) showDetail(id); }, reducedMotion() ? 0 : 650);
  } else {
    const code = outcome.err?.code || 'unavailable';
    showResultError(code, outcome.err?.message);
    setStage('result');
    ov.coin.disabled = false;
    ov.pwSend.disabled = false;
    if (code === 'wrong_password') {
      // Keep the phrase in sight for the next try.
      const vm = state.packets.get(id);
      if (typeof vm?.password === 'string') ov.hint.textContent = t('open.passwordHint', { phrase: vm.password });
      ov.pwInput.select();
      ov.pwInput.focus();
    }
    // The page's clock estimate was early: wait on the envelope and retry.
    if (code === 'not_yet') { setStage('envelope'); renderOverlayGate(state.packets.get(id)); }
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


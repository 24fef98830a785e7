// The message timeline (#messages): chat bubbles, packet cards, rain cards
// and system lines, ordered by time, newest at the bottom.

import { h, avatar, toast } from './dom.js';
import { t, formatTime, formatDuration, errorMessage } from './i18n.js';
import { state, isMe } from './state.js';
import { MAX_CHAT_CHARS, charCount } from './money.js';

const MAX_ITEMS = 400;
const STICK_PX = 80;

let list;
let empty;
let pill;
let scroller;
const chatIds = new Set();

export function initTimeline() {
  list = document.getElementById('messages');
  empty = document.getElementById('messages-empty');
  pill = document.getElementById('new-messages');
  scroller = list;
  scroller.addEventListener('scroll', () => { if (nearBottom()) pill.hidden = true; }, { passive: true });
  pill.addEventListener('click', () => scrollToBottom(true));
}

export function clearTimeline() {
  list.replaceChildren();
  chatIds.clear();
  pill.hidden = true;
  updateEmpty();
}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_PX;
}

export function scrollToBottom(smooth = false) {
  scroller.scrollTo({ top: scroller.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
  pill.hidden = true;
}

function updateEmpty() {
  empty.hidden = list.childElementCount > 0;
}

/**
 * Insert a timeline item in time order. Live items normally go last; items
 * fetched after a reconnect slot in where they belong.
 * @param {HTMLElement} li
 * @param {number} at  server time (ms)
 * @param {{own?: boolean, quiet?: boolean}} [o]  own items always scroll
 *   into view; quiet ones (history) never show the "new messages" pill
 */
export function insertItem(li, at, { own = false, quiet = false } = {}) {
  const stick = own || nearBottom();
  li.dataset.at = String(at || 0);
  let before = null;
  for (let el = list.lastElementChild; el; el = el.previousElementSibling) {
    if (Number(el.dataset.at) <= (at || 0)) break;
    before = el;
  }
  list.insertBefore(li, before);
  while (list.childElementCount > MAX_ITEMS) list.firstElementChild.remove();
  updateEmpty();
  if (stick) {
    requestAnimationFrame(() => scrollToBottom(false));
  } else if (!before && !quiet) {
    pill.hidden = false;
  }
}

/** A message row: avatar + name + body, mirrored for the current user. */
export function messageRow(kind, user, body, at) {
  const mine = isMe(user);
  return h(`li.msg.${kind}${mine ? '.mine' : ''}`, { 'data-user-id': user?.id ?? '' },
    avatar(user, 'md', h('span')),
    h('div.msg-main', {},
      h('div.msg-meta', {},
        h('span.msg-name', { text: mine ? `${user?.name ?? ''}` : user?.name ?? '' }),
        h('time.msg-time', { datetime: new Date(at || Date.now()).toISOString(), text: formatTime(at) })),
      body));
}

const recentOwn = [];

/**
 * chat {id, user, text, at}; `local` marks our own fallback echo. History
 * (recent chat sent on joining) shows without the entrance of a new message.
 */
export function addChat(msg, { history = false } = {}) {
  if (!msg || typeof msg.text !== 'string') return;
  if (msg.id && chatIds.has(msg.id)) return;
  if (msg.local) {
    // Only when the server did not echo it back to us already.
    const i = recentOwn.findIndex((r) => r.text === msg.text);
    if (i >= 0) { recentOwn.splice(i, 1); return; }
  } else if (isMe(msg.user) && !history) {
    recentOwn.push({ text: msg.text });
    if (recentOwn.length > 20) recentOwn.shift();
  }
  if (msg.id) chatIds.add(msg.id);
  const at = Number(msg.at) || Date.now();
  const li = messageRow('msg-chat', msg.user, h('p.msg-text', { text: msg.text }), at);
  if (msg.id) li.dataset.msgId = msg.id;
  if (history) li.classList.add('msg-history');
  insertItem(li, at, { own: isMe(msg.user) && !history, quiet: history });
}

function systemText(key, vars) {
  const v = { ...vars };
  if (Number.isFinite(v.d)) v.d = formatDuration(v.d); // durations are stored in ms
  return t(key, v);
}

/**
 * A centred grey line (WeChat style), e.g. "你领取了Bob的红包". Stored as an
 * i18n key + variables so a language switch re-renders it.
 */
export function addSystem(key, vars = {}, at = Date.now(), { kind = '' } = {}) {
  const span = h('span', { text: systemText(key, vars) });
  span._i18n = { key, vars };
  const li = h('li.msg.msg-system', kind ? { 'data-kind': kind } : {}, span);
  insertItem(li, at);
}

/** Refresh times and system lines after a language change. */
export function relabelTimes() {
  for (const el of list.querySelectorAll('time.msg-time')) {
    el.textContent = formatTime(Date.parse(el.getAttribute('datetime')));
  }
  for (const el of list.querySelectorAll('.msg-system > span')) {
    if (el._i18n) el.textContent = systemText(el._i18n.key, el._i18n.vars);
  }
}

/** Wire the composer. send(text) returns a promise (WebSocket chat). */
export function initComposer(send) {
  const form = document.getElementById('chat-form');
  const input = document.getElementById('chat-input');
  // The send button stays enabled (a script may set the value without an
  // input event); CSS dims it while the field is empty.
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (charCount(text) > MAX_CHAT_CHARS) { toast(t('chat.tooLong'), { kind: 'error' }); return; }
    if (state.conn !== 'open') { toast(t('chat.offline'), { kind: 'error' }); return; }
    input.value = '';
    try {
      await send(text);
    } catch (err) {
      // Give the text back so nothing typed is lost.
      if (!input.value) input.value = text;
      toast(errorMessage(err), { kind: 'error' });
    }
  });
}

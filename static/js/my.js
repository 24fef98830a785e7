// 我的红包 / My red packets: the year's totals (GET /api/v1/me/summary),
// the packets this user sent (GET /api/v1/me/packets) and the shares they
// received (GET /api/v1/me/claims), newest first, a page at a time
// (X-Next-Cursor). Each row opens the packet's detail in the open overlay.

import { h } from './dom.js';
import { t, errorMessage, formatTime } from './i18n.js';
import { formatFen } from './money.js';
import { normaliseSummary, Pager } from './kinds.js';
import { openDialog } from './dialog.js';
import { openPacket } from './packets.js';

export const MY_PAGE_SIZE = 20;

const deps = { api: null };
let els = null;
let tab = 'sent';
let summary = null;
const pagers = {
  sent: new Pager((p) => p?.id),
  received: new Pager((c) => c?.packet_id),
};

export function initMy({ api }) {
  deps.api = api;
  const dlg = document.getElementById('my-dialog');
  els = {
    dlg,
    year: document.getElementById('my-year'),
    list: document.getElementById('my-list'),
    status: document.getElementById('my-status'),
    more: document.getElementById('my-more'),
    panel: document.getElementById('my-panel'),
    tabs: [...dlg.querySelectorAll('[role="tab"]')],
  };
  for (const b of [document.getElementById('my-button'), document.getElementById('my-side-button')]) {
    b?.addEventListener('click', (e) => openMy(e.currentTarget));
  }
  for (const b of els.tabs) b.addEventListener('click', () => selectTab(b.dataset.tab));
  els.more.addEventListener('click', () => loadPage(tab));
  els.list.addEventListener('click', (e) => {
    const row = e.target.closest('[data-packet-id]');
    if (row) openPacket(row.dataset.packetId, row, { detail: true });
  });
}

/** Open the view fresh: this year's totals and the first page of the tab. */
export function openMy(opener) {
  openDialog(els.dlg, { opener, focus: els.tabs.find((b) => b.dataset.tab === tab) });
  reloadMy();
}

/** Start over (e.g. a refund arrived while the view is open). */
export function reloadMy() {
  if (!els) return;
  for (const p of Object.values(pagers)) p.reset();
  loadSummary();
  selectTab(tab);
}

export function isMyOpen() {
  return !!els?.dlg.open;
}

function selectTab(name) {
  tab = name;
  for (const b of els.tabs) {
    const on = b.dataset.tab === name;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    if (on) els.panel.setAttribute('aria-labelledby', b.id);
  }
  els.dlg.dataset.tab = name;
  renderList();
  if (!pagers[name].started && !pagers[name].loading) loadPage(name);
}

async function loadSummary() {
  try {
    const s = await deps.api.mySummary();
    summary = normaliseSummary(s);
  } catch (err) {
    summary = null;
    els.year.textContent = `${t('my.error')}: ${errorMessage(err)}`;
    return;
  }
  renderSummary();
}

function renderSummary() {
  if (!summary) return;
  els.year.textContent = t('my.year', { year: summary.year });
  els.dlg.dataset.year = String(summary.year);
  for (const k of ['received', 'sent', 'refunded']) {
    const dd = document.getElementById(`my-total-${k}`);
    dd.textContent = formatFen(summary[k].total);
    dd.dataset.fen = String(summary[k].total);
    document.getElementById(`my-count-${k}`).textContent = t('my.count', { n: summary[k].count });
  }
}

async function loadPage(name) {
  const pager = pagers[name];
  const ticket = pager.begin();
  if (!ticket) return;
  if (name === tab) renderStatus();
  try {
    const page = await (name === 'sent' ? deps.api.myPackets : deps.api.myClaims).call(deps.api, { limit: MY_PAGE_SIZE, cursor: ticket.cursor });
    const added = pager.receive(ticket, page.rows, page.next);
    if (name === tab) els.list.append(...added.map((r) => rowFor(name, r)));
  } catch (err) {
    pager.fail(ticket, err);
  }
  if (name === tab) renderStatus();
}

function renderList() {
  const pager = pagers[tab];
  els.list.replaceChildren(...pager.rows.map((r) => rowFor(tab, r)));
  renderStatus();
}

function renderStatus() {
  const pager = pagers[tab];
  els.list.dataset.count = String(pager.rows.length);
  els.dlg.dataset.state = pager.loading ? 'loading' : pager.error ? 'error' : pager.done ? 'done' : 'more';
  els.more.hidden = pager.done || !pager.started && !pager.error;
  els.more.disabled = pager.loading;
  els.more.textContent = pager.loading ? t('my.loading') : pager.error ? t('my.retry') : t('my.loadMore');
  if (pager.error) els.status.textContent = `${t('my.error')}: ${errorMessage(pager.error)}`;
  else if (pager.loading && !pager.rows.length) els.status.textContent = t('my.loading');
  else if (pager.done) els.status.textContent = pager.rows.length ? t('my.end') : t('my.empty');
  else els.status.textContent = '';
}

function statusText(p) {
  if (p.status === 'empty') return t('my.statusEmpty');
  if (p.status === 'expired') {
    return Number.isSafeInteger(p.refunded) && p.refunded > 0
      ? `${t('my.statusExpired')} · ${t('my.refunded', { amount: formatFen(p.refunded) })}`
      : t('my.statusExpired');
  }
  return t('my.statusActive', { left: p.remaining_count ?? p.count ?? 0, count: p.count ?? 0 });
}

function rowFor(name, r) {
  if (name === 'sent') {
    const kind = r.kind === 'equal' ? t('card.equal') : t('card.lucky');
    return h('li.my-row', {},
      h('button.my-item', { type: 'button', 'data-packet-id': r.id, 'data-status': r.status ?? '' },
        h('span.my-main', {},
          h('span.my-what', { text: r.greeting || kind }),
          h('span.my-meta', { text: `${t('my.rowSent', { kind, count: r.count ?? 0 })} · ${formatTime(r.created_at)}` })),
        h('span.my-side', {},
          h('span.my-amount', { text: formatFen(r.total), 'data-fen': String(r.total) }),
          h('span.my-meta', { text: statusText(r) }))));
  }
  return h('li.my-row', {},
    h('button.my-item', { type: 'button', 'data-packet-id': r.packet_id },
      h('span.my-main', {},
        h('span.my-what', { text: t('my.rowReceived', { room: r.room ?? '' }) }),
        h('span.my-meta', { text: formatTime(r.at) })),
      h('span.my-side', {},
        h('span.my-amount', { text: formatFen(r.amount), 'data-fen': String(r.amount) }),
        r.pending ? h('span.my-meta', { text: t('my.pending') }) : null)));
}

/** Re-translate after a language switch. */
export function relabelMy() {
  if (!els?.dlg.open) return;
  renderSummary();
  renderList();
}

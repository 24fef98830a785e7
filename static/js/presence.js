// Who is online: header button (count + first avatars) and the side list.

import { h, avatar } from './dom.js';
import { t } from './i18n.js';
import { state, isMe } from './state.js';

export function initPresence() {
  const button = document.getElementById('presence');
  const sidebar = document.getElementById('sidebar');
  const setOpen = (open) => {
    sidebar.dataset.open = String(open);
    button.setAttribute('aria-expanded', String(open));
  };
  button.addEventListener('click', (e) => {
    e.stopPropagation();
    setOpen(sidebar.dataset.open !== 'true');
  });
  document.addEventListener('click', (e) => {
    if (sidebar.dataset.open === 'true' && !sidebar.contains(e.target)) setOpen(false);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && sidebar.dataset.open === 'true') { setOpen(false); button.focus(); }
  });
}

/** presence {online, users: [{id, name}]} */
export function renderPresence(p = state.presence) {
  const users = Array.isArray(p?.users) ? p.users : [];
  const online = Number.isInteger(p?.online) ? p.online : users.length;
  state.presence = { online, users };
  const button = document.getElementById('presence');
  button.dataset.online = String(online);
  button.querySelector('.presence-count').textContent = t('presence.online', { n: online });
  const avatars = button.querySelector('.presence-avatars');
  avatars.replaceChildren(...users.slice(0, 3).map((u) => avatar(u, 'xs', h('span'))));
  document.getElementById('presence-count-side').textContent = String(online);
  const list = document.getElementById('presence-list');
  const sorted = [...users].sort((a, b) => (isMe(b) - isMe(a)) || String(a.name).localeCompare(String(b.name)));
  list.replaceChildren(...sorted.slice(0, 200).map((u) => h(`li.presence-row${isMe(u) ? '.me' : ''}`, { 'data-user-id': u.id },
    avatar(u, 'sm', h('span')),
    h('span.presence-name', { text: `${u.name ?? ''}${isMe(u) ? t('detail.me') : ''}` }))));
  if (online > sorted.length && sorted.length) list.append(h('li.presence-more', { text: `+${online - sorted.length}` }));
}

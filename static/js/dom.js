// Tiny DOM helpers. User-provided text only ever goes through textContent.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** h('div.a.b', {attrs}, children...) */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Avatar colours: all pass WCAG AA (≥ 4.5:1) with white text.
const PALETTE = ['#B5362C', '#2F6B4F', '#1F5F8B', '#6B4C9A', '#8A5A00', '#A23E6B', '#3F5F6F', '#7A4B2A', '#2D6A7A', '#5B6B2A'];

export function hashString(s) {
  let x = 2166136261;
  for (let i = 0; i < s.length; i++) { x ^= s.charCodeAt(i); x = Math.imul(x, 16777619); }
  return x >>> 0;
}

export function avatarColor(id) { return PALETTE[hashString(String(id ?? '')) % PALETTE.length]; }

export function initial(name) {
  const first = Array.from(String(name ?? '').trim())[0] ?? '?';
  return first.toUpperCase();
}

/** Fill (or create) an avatar element for a user. */
export function avatar(user, size = 'md', el = h('span')) {
  el.className = `avatar avatar-${size}`;
  el.textContent = initial(user?.name);
  el.style.backgroundColor = avatarColor(user?.id ?? user?.name);
  el.setAttribute('aria-hidden', 'true');
  return el;
}

let toastSeq = 0;
/** A short, polite, non-blocking notice. */
export function toast(message, { kind = 'info', timeout = 3200 } = {}) {
  const region = document.getElementById('toasts');
  if (!region) return;
  const el = h('div.toast', { 'data-kind': kind, id: `toast-${++toastSeq}` }, message);
  region.append(el);
  while (region.children.length > 3) region.firstElementChild.remove();
  requestAnimationFrame(() => el.classList.add('in'));
  setTimeout(() => {
    el.classList.remove('in');
    setTimeout(() => el.remove(), 300);
  }, timeout);
}

export const reducedMotion = () => globalThis.matchMedia?.('(prefers-reduced-motion: reduce)').matches ?? false;

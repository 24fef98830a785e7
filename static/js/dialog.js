// <dialog> helpers: showModal (native inertness), a Tab focus trap, initial
// focus, backdrop click to close, and focus restored to the opener.

const FOCUSABLE = 'button:not([disabled]), [href], input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function visible(el) {
  return !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length) && getComputedStyle(el).visibility !== 'hidden';
}

export function focusables(root) {
  return Array.from(root.querySelectorAll(FOCUSABLE)).filter(visible);
}

const wired = new WeakSet();

function wire(dlg) {
  if (wired.has(dlg)) return;
  wired.add(dlg);
  dlg.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const items = focusables(dlg);
    if (!items.length) { e.preventDefault(); return; }
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
      e.preventDefault(); last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
      e.preventDefault(); first.focus();
    }
  });
  // A click on the backdrop lands on the <dialog> element itself.
  dlg.addEventListener('mousedown', (e) => { dlg._downOnBackdrop = e.target === dlg; });
  dlg.addEventListener('click', (e) => {
    if (e.target === dlg && dlg._downOnBackdrop) closeDialog(dlg);
  });
  dlg.addEventListener('click', (e) => {
    if (e.target.closest('[data-close]')) closeDialog(dlg);
  });
  dlg.addEventListener('close', () => {
    if (dlg.open) return; // a queued close event that arrived after a reopen
    const opener = dlg._opener;
    dlg._opener = null;
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus({ preventScroll: true });
  });
}

/**
 * @param {HTMLDialogElement} dlg
 * @param {{opener?: Element, focus?: Element|string}} [o]
 */
export function openDialog(dlg, { opener = document.activeElement, focus } = {}) {
  wire(dlg);
  dlg._opener = opener;
  if (!dlg.open) dlg.showModal();
  const target = typeof focus === 'string' ? dlg.querySelector(focus) : focus;
  const el = target && visible(target) ? target : focusables(dlg).find((x) => !x.matches('[data-close]')) ?? focusables(dlg)[0];
  el?.focus({ preventScroll: true });
}

export function closeDialog(dlg) {
  if (dlg.open) dlg.close();
}

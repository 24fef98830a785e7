// The `grabbed` event: one grab batch of a packet, for every member of its
// room. {type: 'grabbed', packet_id, remaining, grabs: [{user: {id, name},
// amount}, ...]}: every share the batch granted, in grab order, and the
// shares left after it. Pure functions, no DOM.

/** The grabs of ev, each with a user id; anything malformed is dropped. */
export function grabsOf(ev) {
  const grabs = Array.isArray(ev?.grabs) ? ev.grabs : [];
  return grabs.filter((g) => g && typeof g.user?.id === 'string' && g.user.id !== '' && Number.isInteger(g.amount));
}

/**
 * The grabs of ev not counted yet, which it marks counted in seen (a Set
 * of user ids per packet): a user's grab is counted once, whether it comes
 * from this page's own result or a grabbed event, however often.
 */
export function newGrabs(ev, seen) {
  const out = [];
  for (const g of grabsOf(ev)) {
    if (seen.has(g.user.id)) continue;
    seen.add(g.user.id);
    out.push(g);
  }
  return out;
}

/** The amount userId grabbed in ev's batch, or null. */
export function amountOf(ev, userId) {
  if (!userId) return null;
  const g = grabsOf(ev).find((x) => x.user.id === userId);
  return g ? g.amount : null;
}

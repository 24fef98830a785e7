import test from 'node:test';
import assert from 'node:assert/strict';
import {
  parseCountdown, msUntil, isOpenAt, formatCountdown, isForUser, matchPassword, recipientNames,
  normaliseSummary, Pager, OPEN_SLACK_MS,
} from './kinds.js';

test('parseCountdown: whole seconds or minutes, 1 s .. 10 min', () => {
  assert.deepEqual(parseCountdown('30', 's'), { ok: true, ms: 30_000 });
  assert.deepEqual(parseCountdown(' 10 ', 'm'), { ok: true, ms: 600_000 });
  assert.deepEqual(parseCountdown('600', 's'), { ok: true, ms: 600_000 });
  assert.deepEqual(parseCountdown('１５', 's'), { ok: true, ms: 15_000 });
  for (const [v, u] of [['601', 's'], ['11', 'm'], ['0', 's'], ['', 's'], ['1.5', 'm'], ['-1', 's'], ['5', 'h'], ['abc', 'm']]) {
    assert.deepEqual(parseCountdown(v, u), { ok: false, code: 'invalid_opens_at' }, `${v}${u}`);
  }
});

test('countdown math corrects for the clock offset', () => {
  const opensAt = 1_000_000;
  // The local clock is an hour behind the server's: offset = +3 600 000.
  const offset = 3_600_000;
  const local = opensAt - offset - 7_300; // 7.3 s to go, on the server's clock
  assert.equal(msUntil(opensAt, local, offset), 7_300);
  assert.equal(formatCountdown(msUntil(opensAt, local, offset)), '0:08');
  assert.equal(isOpenAt(opensAt, local, offset), false);
  // Ignoring the offset would be an hour off.
  assert.equal(msUntil(opensAt, local, 0), 3_607_300);
  assert.equal(isOpenAt(opensAt, opensAt - offset - OPEN_SLACK_MS, offset), true);
  assert.equal(isOpenAt(opensAt, opensAt - offset - OPEN_SLACK_MS - 1, offset), false);
  assert.equal(msUntil(opensAt, opensAt + 5, 0), 0);
  assert.equal(msUntil(undefined, 0, 0), 0);
});

test('formatCountdown rounds up to whole seconds', () => {
  assert.equal(formatCountdown(0), '0:00');
  assert.equal(formatCountdown(-50), '0:00');
  assert.equal(formatCountdown(1), '0:01');
  assert.equal(formatCountdown(59_001), '1:00');
  assert.equal(formatCountdown(65_400), '1:06');
  assert.equal(formatCountdown(600_000), '10:00');
});

test('isForUser: exclusive packets only for their recipients', () => {
  assert.equal(isForUser({}, 'bob'), true);
  assert.equal(isForUser({ to: [] }, 'bob'), true);
  assert.equal(isForUser({ to: [{ id: 'bob', name: 'Bob' }] }, 'bob'), true);
  assert.equal(isForUser({ to: [{ id: 'bob', name: 'Bob' }] }, 'carol'), false);
  assert.equal(isForUser({ to: ['bob'] }, 'bob'), true);
});

test('matchPassword finds the packet a chat line grabs', () => {
  const now = 10_000;
  const pk = (id, extra) => ({ id, status: 'active', grabbed_by_me: null, created_at: 1, password: '芝麻开门', ...extra });
  const packets = [
    pk('plain', { password: undefined }),
    pk('old', { created_at: 1 }),
    pk('new', { created_at: 5 }),
    pk('other', { password: '恭喜发财', created_at: 9 }),
  ];
  const opts = { userId: 'bob', localNow: now, offset: 0 };
  assert.equal(matchPassword('芝麻开门', packets, opts)?.id, 'new');
  assert.equal(matchPassword('  芝麻开门 ', packets, opts)?.id, 'new');
  assert.equal(matchPassword('芝麻开门!', packets, opts), null);
  assert.equal(matchPassword('恭喜发财', packets, opts)?.id, 'other');
  assert.equal(matchPassword('', packets, opts), null);
  // NFC: a decomposed é matches a composed one.
  assert.equal(matchPassword('caf\u0065\u0301', [pk('cafe', { password: 'caf\u00e9' })], opts)?.id, 'cafe');
  // Case matters: the comparison is exact.
  assert.equal(matchPassword('ABC', [pk('abc', { password: 'abc' })], opts), null);
  // Not grabbed twice, not when finished, not when for others, not before it opens.
  for (const extra of [{ grabbed_by_me: 5 }, { status: 'empty' }, { status: 'expired' }, { to: [{ id: 'carol' }] }, { opens_at: now + 5000 }]) {
    assert.equal(matchPassword('芝麻开门', [pk('x', extra)], opts), null, JSON.stringify(extra));
  }
  // A countdown that has opened, seen through the clock offset.
  assert.equal(matchPassword('芝麻开门', [pk('x', { opens_at: now + 5000 })], { ...opts, offset: 5000 })?.id, 'x');
});

test('recipientNames', () => {
  const to = [{ id: 'a', name: '小明' }, { id: 'b', name: '小红' }];
  assert.equal(recipientNames(to, 'zh'), '小明、小红');
  assert.equal(recipientNames([{ name: 'Alice' }, { name: 'Bob' }], 'en'), 'Alice, Bob');
  const five = ['A', 'B', 'C', 'D', 'E'].map((name) => ({ name }));
  assert.equal(recipientNames(five, 'zh'), 'A、B、C 等 5 人');
  assert.equal(recipientNames(five, 'en'), 'A, B, C and 2 more');
  assert.equal(recipientNames(undefined, 'en'), '');
});

test('normaliseSummary: integers only, and the net in fen', () => {
  const s = normaliseSummary({ year: 2026, sent: { total: 1000, count: 2 }, received: { total: 350, count: 3 }, refunded: { total: 120, count: 1 } });
  assert.deepEqual(s, { year: 2026, sent: { total: 1000, count: 2 }, received: { total: 350, count: 3 }, refunded: { total: 120, count: 1 }, net: -530 });
  const partial = normaliseSummary({ received: { total: 5, count: '1' }, sent: { total: 1.5 } }, 2030);
  assert.deepEqual(partial, { year: 2030, sent: { total: 0, count: 0 }, received: { total: 5, count: 0 }, refunded: { total: 0, count: 0 }, net: 5 });
  assert.equal(normaliseSummary(null, 2027).net, 0);
});

test('Pager: one page at a time, deduplicated, done without a cursor', () => {
  const p = new Pager((r) => r.id);
  const t1 = p.begin();
  assert.deepEqual(t1, { cursor: '', generation: 1 });
  assert.equal(p.begin(), null, 'a second request while one runs');
  assert.deepEqual(p.receive(t1, [{ id: 1 }, { id: 2 }], 'c2').map((r) => r.id), [1, 2]);
  assert.equal(p.done, false);
  const t2 = p.begin();
  assert.equal(t2.cursor, 'c2');
  p.fail(t2, new Error('offline'));
  assert.ok(p.error);
  const t3 = p.begin();
  assert.equal(t3.cursor, 'c2', 'a failed page is asked for again');
  assert.deepEqual(p.receive(t3, [{ id: 2 }, { id: 3 }], '').map((r) => r.id), [3]);
  assert.equal(p.done, true);
  assert.equal(p.begin(), null);
  assert.deepEqual(p.rows.map((r) => r.id), [1, 2, 3]);
  // A page that arrives after a reset is dropped.
  const stale = { cursor: 'x', generation: p.generation };
  p.reset();
  assert.deepEqual(p.receive(stale, [{ id: 9 }], 'c'), []);
  assert.equal(p.rows.length, 0);
  assert.equal(p.loading, false);
  assert.deepEqual(p.begin(), { cursor: '', generation: p.generation });
});

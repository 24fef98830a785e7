import test from 'node:test';
import assert from 'node:assert/strict';
import { RoomCursor, SeenSet, durableKey, formatSince, FRESH, RECOVERED, RESYNC, LEGACY } from './sync.js';

const welcome = (seq, epoch, extra = {}) => ({ type: 'welcome', seq, epoch, ...extra });
const packet = (seq, epoch, id) => ({ seq, epoch, type: 'packet', packet: { id } });
const chat = (seq, epoch, id) => ({ seq, epoch, type: 'chat', id, text: 'hi' });

test('formatSince', () => {
  assert.equal(formatSince('k3f9a1', 12), 'k3f9a1:12');
  assert.equal(formatSince('e', 0), 'e:0');
  for (const [e, s] of [[null, 1], ['', 1], ['e', -1], ['e', 1.5], ['e', null], ['e', '3']]) assert.equal(formatSince(e, s), null, `${e} ${s}`);
});

test('a fresh join sends no since, then follows welcome and every durable frame', () => {
  const c = new RoomCursor();
  assert.equal(c.connecting(), null);
  assert.equal(c.welcome(welcome(10, 'A')), FRESH);
  assert.equal(c.since(), 'A:10');
  // The recent chat that follows a fresh join is history, and no gap.
  for (const seq of [4, 7, 10]) assert.deepEqual(c.observe(chat(seq, 'A', `c${seq}`)), { durable: true, history: true, reload: false });
  assert.equal(c.since(), 'A:10');
  // Live frames move it; ephemeral ones don't.
  assert.deepEqual(c.observe(packet(11, 'A', 'p1')), { durable: true, history: false, reload: false });
  assert.deepEqual(c.observe(chat(12, 'A', 'c12')), { durable: true, history: false, reload: false });
  c.observe({ type: 'grabbed', packet_id: 'p1', remaining: 2 });
  c.observe({ type: 'presence', online: 3 });
  c.observe({ type: 'finished', packet_id: 'p1' }); // no position: a server without seq
  assert.equal(c.since(), 'A:12');
  assert.equal(c.connecting(), 'A:12', 'the next connection resumes');
});

test('a recovered reconnect moves with the replayed frames, not to the welcome at once', () => {
  const c = new RoomCursor();
  c.connecting();
  c.welcome(welcome(5, 'A'));
  c.observe(packet(6, 'A', 'p6'));
  assert.equal(c.connecting(), 'A:6');
  assert.equal(c.welcome(welcome(9, 'A', { recovered: true })), RECOVERED);
  assert.equal(c.since(), 'A:6', 'the replay has not arrived yet');
  const got = [7, 8].map((seq) => c.observe(packet(seq, 'A', `p${seq}`)));
  for (const o of got) assert.deepEqual(o, { durable: true, history: false, reload: false }, 'replayed frames are news, not history');
  // Lost in the middle of the replay: the next connection asks from 8.
  assert.equal(c.connecting(), 'A:8');
  assert.equal(c.welcome(welcome(9, 'A', { recovered: true })), RECOVERED);
  assert.deepEqual(c.observe(chat(9, 'A', 'c9')), { durable: true, history: false, reload: false });
  assert.deepEqual(c.observe(packet(10, 'A', 'p10')), { durable: true, history: false, reload: false });
  assert.equal(c.since(), 'A:10');
});

test('a failed recovery takes the welcome position; its resync frame is no second reload', () => {
  const c = new RoomCursor();
  c.connecting();
  c.welcome(welcome(5, 'A'));
  assert.equal(c.connecting(), 'A:5');
  assert.equal(c.welcome(welcome(40, 'B', { recovered: false })), RESYNC);
  assert.equal(c.since(), 'B:40');
  assert.equal(c.observe({ type: 'resync' }).reload, false, 'the welcome already said so');
  assert.equal(c.observe(chat(39, 'B', 'c39')).history, true, 'recent chat follows a failed recovery too');
  assert.deepEqual(c.observe(packet(41, 'B', 'p41')), { durable: true, history: false, reload: false });
  // A server that ignored since (recovered absent) is a resync too.
  c.connecting();
  assert.equal(c.welcome(welcome(50, 'B')), RESYNC);
  assert.equal(c.since(), 'B:50');
});

test('a resync while connected reloads, and the frames after it are no gap', () => {
  const c = new RoomCursor();
  c.connecting();
  c.welcome(welcome(5, 'A'));
  assert.equal(c.observe({ type: 'resync' }).reload, true);
  assert.equal(c.observe(packet(9, 'A', 'p9')).reload, false, 'the reload covers 6..8');
  assert.equal(c.since(), 'A:9');
  assert.equal(c.observe(packet(11, 'A', 'p11')).reload, true, 'a gap after that is one');
});

test('a gap or a new epoch in live frames asks for a reload; the cursor restarts in the new epoch', () => {
  const c = new RoomCursor();
  c.connecting();
  c.welcome(welcome(5, 'A'));
  assert.equal(c.observe(packet(6, 'A', 'p6')).reload, false);
  assert.equal(c.observe(packet(6, 'A', 'p6')).reload, false, 'a duplicate is no gap');
  assert.equal(c.observe(packet(8, 'A', 'p8')).reload, true, '7 is missing');
  assert.equal(c.since(), 'A:8');
  const o = c.observe(packet(1, 'Z', 'z1'));
  assert.equal(o.reload, true);
  assert.equal(c.since(), 'Z:1');
  assert.equal(c.observe(chat(1, 'Z', 'old')).history, false);
});

test('a server without seq: no since, ever', () => {
  const c = new RoomCursor();
  c.connecting();
  assert.equal(c.welcome({ type: 'welcome', user: { id: 'u' } }), LEGACY);
  assert.equal(c.since(), null);
  c.observe({ type: 'packet', packet: { id: 'p' } });
  assert.equal(c.connecting(), null);
  assert.equal(c.welcome({ type: 'welcome' }), LEGACY);
  // A recovered welcome for a since never sent is not trusted.
  c.reset();
  c.connecting();
  assert.equal(c.welcome(welcome(3, 'A', { recovered: true })), FRESH);
  // Nor one in another epoch than the since.
  c.connecting();
  assert.equal(c.welcome(welcome(7, 'B', { recovered: true })), RESYNC);
  assert.equal(c.since(), 'B:7');
});

test('reset makes the next connection a fresh join', () => {
  const c = new RoomCursor();
  c.connecting();
  c.welcome(welcome(5, 'A'));
  c.reset();
  assert.equal(c.connecting(), null);
  assert.deepEqual(c.snapshot(), { epoch: null, seq: null, outcome: null });
});

test('durable events are keyed by their id', () => {
  assert.equal(durableKey(packet(1, 'A', 'p1')), 'packet:p1');
  assert.equal(durableKey({ type: 'packet', packet: { id: 'p1' } }), 'packet:p1', 'with or without seq');
  assert.equal(durableKey(chat(2, 'A', 'c2')), 'chat:c2');
  assert.equal(durableKey({ type: 'rain', rain: { id: 'r1' } }), 'rain:r1');
  assert.equal(durableKey({ type: 'finished', packet_id: 'p1' }), 'finished:p1');
  assert.equal(durableKey({ seq: 4, epoch: 'A', type: 'refunded', packet_id: 'p1' }), 'refunded:A:4');
  for (const f of [{ type: 'grabbed', packet_id: 'p1' }, { type: 'presence' }, { type: 'chat' }, { type: 'packet' }, null, { type: 'refunded' }]) {
    assert.equal(durableKey(f), null, JSON.stringify(f));
  }
});

test('dedup: a replay of what a live frame or an earlier replay applied is dropped', () => {
  const seen = new SeenSet();
  const frames = [packet(6, 'A', 'p1'), chat(7, 'A', 'c1'), packet(6, 'A', 'p1'), { type: 'grabbed', packet_id: 'p1' },
    { type: 'grabbed', packet_id: 'p1' }, chat(7, 'A', 'c1'), { type: 'packet', packet: { id: 'p1' } }];
  const applied = frames.filter((f) => seen.first(durableKey(f))).map((f) => f.type);
  assert.deepEqual(applied, ['packet', 'chat', 'grabbed', 'grabbed']);
});

test('SeenSet forgets the oldest keys first', () => {
  const seen = new SeenSet(3);
  for (const k of ['a', 'b', 'c', 'd']) assert.ok(seen.first(k));
  assert.ok(!seen.first('d'));
  assert.ok(!seen.first('b'));
  assert.ok(seen.first('a'), 'a was forgotten');
  seen.clear();
  assert.ok(seen.first('d'));
});

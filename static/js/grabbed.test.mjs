import test from 'node:test';
import assert from 'node:assert/strict';
import { grabsOf, newGrabs, amountOf } from './grabbed.js';

const ev = (...grabs) => ({ type: 'grabbed', packet_id: 'p1', remaining: 3, grabs });
const g = (id, amount, name = id.toUpperCase()) => ({ user: { id, name }, amount });

test('grabsOf keeps well-formed grabs only, in order', () => {
  assert.deepEqual(grabsOf(ev(g('a', 5), g('b', 7))), [g('a', 5), g('b', 7)]);
  assert.deepEqual(grabsOf(ev(null, { user: {}, amount: 1 }, { user: { id: 'c' }, amount: 1.5 }, g('d', 2))), [g('d', 2)]);
  for (const bad of [null, {}, { grabs: 'x' }, { user: { id: 'a' }, amount: 5 }]) assert.deepEqual(grabsOf(bad), []);
});

test('newGrabs counts each user once across events and the own result', () => {
  const seen = new Set(['me']); // the page's own result came first
  assert.deepEqual(newGrabs(ev(g('a', 5), g('me', 9), g('b', 7)), seen), [g('a', 5), g('b', 7)]);
  assert.deepEqual(newGrabs(ev(g('b', 7), g('c', 1)), seen), [g('c', 1)]);
  assert.deepEqual(newGrabs(ev(g('a', 5)), seen), []);
  assert.deepEqual([...seen].sort(), ['a', 'b', 'c', 'me']);
});

test('amountOf finds a user in the batch', () => {
  const e = ev(g('a', 5), g('me', 9));
  assert.equal(amountOf(e, 'me'), 9);
  assert.equal(amountOf(e, 'zed'), null);
  assert.equal(amountOf(e, ''), null);
  assert.equal(amountOf({ type: 'grabbed' }, 'me'), null);
});

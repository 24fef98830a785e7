import test from 'node:test';
import assert from 'node:assert/strict';
import { applyProgress, applyFinished, applyOwnGrab } from './packets.js';
import { state } from './state.js';

// A packet of 10 shares as the `packet` event leaves it (no card: these
// tests look at the view model only).
function packet(id) {
  const vm = { id, status: 'active', count: 10, total: 1000, remaining_count: 10, remaining_amount: 1000, grabbed_by_me: null, card: null, sender: { id: 'someone-else' } };
  state.packets.set(id, vm);
  return vm;
}

test('finished replaces the last progress: its remaining is the final count', () => {
  const vm = packet('p-empty');
  applyProgress({ type: 'progress', packet_id: 'p-empty', remaining: 7 });
  assert.equal(vm.remaining_count, 7);
  // The server dropped the pending progress (say, 2 left): finished says 0.
  applyFinished({ type: 'finished', packet_id: 'p-empty', reason: 'empty', remaining: 0, duration_ms: 840, luckiest: null });
  assert.equal(vm.status, 'empty');
  assert.equal(vm.remaining_count, 0);
  assert.equal(vm.remaining_amount, 0);
  assert.equal(vm.duration_ms, 840);
});

test('an expired packet keeps the shares nobody took', () => {
  const vm = packet('p-expired');
  applyProgress({ type: 'progress', packet_id: 'p-expired', remaining: 7 });
  applyFinished({ type: 'finished', packet_id: 'p-expired', reason: 'expired', remaining: 4, duration_ms: null, luckiest: null });
  assert.equal(vm.status, 'expired');
  assert.equal(vm.remaining_count, 4);

  // Without remaining (the server could not read the claims): the last count seen stays.
  const vm2 = packet('p-expired-unknown');
  applyProgress({ type: 'progress', packet_id: 'p-expired-unknown', remaining: 6 });
  applyFinished({ type: 'finished', packet_id: 'p-expired-unknown', reason: 'expired', duration_ms: null, luckiest: null });
  assert.equal(vm2.status, 'expired');
  assert.equal(vm2.remaining_count, 6);
});

test("the grabber's own card takes remaining from its result", () => {
  state.user = { id: 'me', name: 'Me' };
  const vm = packet('p-own');
  applyOwnGrab('p-own', 150, 3);
  assert.equal(vm.grabbed_by_me, 150);
  assert.equal(vm.remaining_count, 3);
  assert.equal(vm.remaining_amount, 850);
  // A late progress with an older count does not undo it.
  applyProgress({ type: 'progress', packet_id: 'p-own', remaining: 5 });
  assert.equal(vm.remaining_count, 3);
  state.user = null;
});

test('finished for an unknown packet is ignored', () => {
  assert.equal(applyFinished({ type: 'finished', packet_id: 'nope', reason: 'empty', remaining: 0 }), null);
});

import test from 'node:test';
import assert from 'node:assert/strict';
import { applyProgress, applyFinished, applyOwnGrab } from './packets.js';
import { rainGrabbed, rainFinished } from './rain.js';
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

// A rain as startRain leaves it, without its card (the fields the claim
// bookkeeping uses).
function rain(id, packetIds, countPerPacket) {
  const r = {
    id, count_per_packet: countPerPacket, packetIds: new Set(packetIds), caught: new Map(),
    claimKeys: new Set(), claimsPer: new Map(), board: new Map(), needsDetails: false, ended: false,
  };
  state.rains.set(id, r);
  for (const p of packetIds) state.rainOfPacket.set(p, id);
  return r;
}

test('a rain packet finished with claims the page never saw makes the summary ask the server', () => {
  // Every grab seen as grabbed: nothing to ask.
  const seen = rain('rain-seen', ['rs1'], 2);
  rainGrabbed({ type: 'grabbed', packet_id: 'rs1', remaining: 1, grabs: [{ user: { id: 'a', name: 'A' }, amount: 10 }] });
  rainGrabbed({ type: 'grabbed', packet_id: 'rs1', remaining: 0, grabs: [{ user: { id: 'b', name: 'B' }, amount: 20 }] });
  rainGrabbed({ type: 'grabbed', packet_id: 'rs1', remaining: 0, grabs: [{ user: { id: 'b', name: 'B' }, amount: 20 }] }); // a repeat counts once
  rainFinished({ type: 'finished', packet_id: 'rs1', reason: 'empty', remaining: 0 });
  assert.equal(seen.needsDetails, false);

  // A big room: the packet emptied within one progress window, so the page
  // got no grabbed and no progress, only finished.
  const unseen = rain('rain-unseen', ['ru1'], 3);
  rainGrabbed({ type: 'grabbed', packet_id: 'ru1', remaining: 2, grabs: [{ user: { id: 'a', name: 'A' }, amount: 10 }] });
  rainFinished({ type: 'finished', packet_id: 'ru1', reason: 'empty', remaining: 0 });
  assert.equal(unseen.needsDetails, true);

  // Expired with one share left: two taken, two seen.
  const expired = rain('rain-expired', ['re1'], 3);
  rainGrabbed({ type: 'grabbed', packet_id: 're1', remaining: 2, grabs: [{ user: { id: 'a', name: 'A' }, amount: 10 }] });
  rainGrabbed({ type: 'grabbed', packet_id: 're1', remaining: 1, grabs: [{ user: { id: 'b', name: 'B' }, amount: 10 }] });
  rainFinished({ type: 'finished', packet_id: 're1', reason: 'expired', remaining: 1 });
  assert.equal(expired.needsDetails, false);
  // Without remaining the page cannot tell: it asks.
  rainFinished({ type: 'finished', packet_id: 're1', reason: 'expired' });
  assert.equal(expired.needsDetails, true);

  assert.equal(rainFinished({ type: 'finished', packet_id: 'not-a-rain-packet', reason: 'empty', remaining: 0 }), false);
});

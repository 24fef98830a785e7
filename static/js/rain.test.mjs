import test from 'node:test';
import assert from 'node:assert/strict';
import { readRainForm, isScheduled } from './rain.js';

test('rain form: fen, counts and cost', () => {
  assert.deepEqual(readRainForm({ packets: '30', count: '3', amount: '0.30', duration: '20', greeting: '' }), {
    ok: true, cost: 900,
    body: { packets: 30, total_per_packet: 30, count_per_packet: 3, duration_seconds: 20 },
  });
  const r = readRainForm({ packets: '10', count: '2', amount: '1', duration: '5', greeting: ' 好运 ' });
  assert.equal(r.body.greeting, '好运');
  assert.equal(r.cost, 1000);
});

test('rain form: validation', () => {
  assert.equal(readRainForm({ packets: '0', count: '3', amount: '1', duration: '5' }).field, 'packets');
  assert.equal(readRainForm({ packets: '5', count: '0', amount: '1', duration: '5' }).code, 'invalid_count');
  assert.equal(readRainForm({ packets: '5', count: '3', amount: '0.02', duration: '5' }).code, 'share_too_small');
  assert.equal(readRainForm({ packets: '5', count: '1', amount: '200.01', duration: '5' }).code, 'total_too_large');
  assert.equal(readRainForm({ packets: '5', count: '3', amount: '1.001', duration: '5' }).code, 'invalid_amount');
  assert.equal(readRainForm({ packets: '5', count: '3', amount: '1', duration: '0' }).field, 'duration');
});

test('a countdown packet (opens_at) is not a rain packet', () => {
  assert.equal(isScheduled({ created_at: 1000, visible_at: 9000 }), true);
  assert.equal(isScheduled({ created_at: 1000, visible_at: 9000, opens_at: 9000 }), false);
  assert.equal(isScheduled({ created_at: 1000, visible_at: 1000 }), false);
});

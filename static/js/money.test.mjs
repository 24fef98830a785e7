// Run with: node --test static/js/
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  parseYuan, parseCount, formatFen, fenToYuanString, validatePacket,
  validatePacketForm, charCount, DEFAULT_GREETING,
} from './money.js';

test('parseYuan accepts up to two decimals as integer fen', () => {
  const cases = {
    '8.88': 888, '8.8': 880, '8': 800, '8.': 800, '.5': 50, '0.01': 1,
    ' 12.34 ': 1234, '¥3.5': 350, '￥ 3.50': 350, '００８．８８': 888,
    '0.10': 10, '100': 10000, '200.00': 20000, '007': 700,
    '0.29': 29, '1.15': 115, '4.35': 435, '1.00': 100,
  };
  for (const [input, fen] of Object.entries(cases)) {
    assert.deepEqual(parseYuan(input), { ok: true, fen }, input);
  }
});

test('parseYuan never goes through floats', () => {
  // 0.29 * 100 = 28.999999999999996 and 1.15 * 100 = 114.99999999999999 in floats.
  assert.equal(parseYuan('0.29').fen, 29);
  assert.equal(parseYuan('1.15').fen, 115);
  assert.equal(parseYuan('9999999.99').fen, 999999999);
});

test('parseYuan rejects bad input', () => {
  for (const input of ['', ' ', '.', '0', '0.00', '-1', '+1', '1.234', '1e3', 'abc', '1,000',
    '1.2.3', '¥', 'NaN', 'Infinity', '0x10', '1 000', null, undefined, {}, 1.5]) {
    const r = parseYuan(input);
    assert.equal(r.ok, false, String(input));
    assert.equal(r.code, 'invalid_amount', String(input));
  }
  assert.deepEqual(parseYuan('123456789012'), { ok: false, code: 'total_too_large' });
  assert.deepEqual(parseYuan(8), { ok: true, fen: 800 });
});

test('formatFen', () => {
  assert.equal(formatFen(1234), '¥12.34');
  assert.equal(formatFen(10000), '¥100.00');
  assert.equal(formatFen(1), '¥0.01');
  assert.equal(formatFen(0), '¥0.00');
  assert.equal(formatFen(-1234), '-¥12.34');
  assert.equal(formatFen(-5), '-¥0.05');
  assert.equal(formatFen(1.5), '¥—');
  assert.equal(fenToYuanString(888), '8.88');
  assert.equal(fenToYuanString(20000000), '200000.00');
});

test('round trip', () => {
  for (let fen = 1; fen < 5000; fen += 7) {
    assert.equal(parseYuan(fenToYuanString(fen)).fen, fen);
  }
});

test('parseCount', () => {
  assert.deepEqual(parseCount('1'), { ok: true, count: 1 });
  assert.deepEqual(parseCount('1000'), { ok: true, count: 1000 });
  assert.deepEqual(parseCount(' 10 '), { ok: true, count: 10 });
  for (const bad of ['0', '1001', '', '1.5', '-1', 'x', '1e2']) {
    assert.deepEqual(parseCount(bad), { ok: false, code: 'invalid_count' }, bad);
  }
});

test('validatePacket follows the server rules', () => {
  assert.equal(validatePacket({ kind: 'lucky', total: 888, count: 8 }), null);
  assert.equal(validatePacket({ kind: 'lucky', total: 1, count: 1 }), null);
  assert.equal(validatePacket({ kind: 'lucky', total: 7, count: 8 }), 'share_too_small');
  assert.equal(validatePacket({ kind: 'lucky', total: 20000, count: 1 }), null);
  assert.equal(validatePacket({ kind: 'lucky', total: 20001, count: 1 }), 'total_too_large');
  assert.equal(validatePacket({ kind: 'lucky', total: 40000, count: 2 }), null);
  assert.equal(validatePacket({ kind: 'equal', total: 800, count: 8 }), null);
  assert.equal(validatePacket({ kind: 'equal', total: 889, count: 8 }), 'uneven_total');
  assert.equal(validatePacket({ kind: 'equal', total: 7, count: 8 }), 'share_too_small');
  assert.equal(validatePacket({ kind: 'equal', total: 40002, count: 2 }), 'share_too_large');
  assert.equal(validatePacket({ kind: 'equal', total: 40000, count: 2 }), null);
  assert.equal(validatePacket({ kind: 'lucky', total: 0, count: 1 }), 'invalid_amount');
  assert.equal(validatePacket({ kind: 'lucky', total: 100, count: 0 }), 'invalid_count');
  assert.equal(validatePacket({ kind: 'lucky', total: 100000, count: 1001 }), 'invalid_count');
  assert.equal(validatePacket({ kind: 'other', total: 100, count: 1 }), 'invalid_request');
  assert.equal(validatePacket({ kind: 'lucky', total: 100, count: 1, greeting: '福'.repeat(64) }), null);
  assert.equal(validatePacket({ kind: 'lucky', total: 100, count: 1, greeting: '福'.repeat(65) }), 'invalid_request');
});

test('validatePacketForm', () => {
  assert.deepEqual(validatePacketForm({ amount: '8.88', count: '8', kind: 'lucky', greeting: '' }),
    { ok: true, packet: { kind: 'lucky', total: 888, count: 8, greeting: DEFAULT_GREETING } });
  assert.deepEqual(validatePacketForm({ amount: '8.888', count: '8', kind: 'lucky' }),
    { ok: false, code: 'invalid_amount', field: 'amount' });
  assert.deepEqual(validatePacketForm({ amount: '8', count: '0', kind: 'lucky' }),
    { ok: false, code: 'invalid_count', field: 'count' });
  assert.deepEqual(validatePacketForm({ amount: '8.89', count: '8', kind: 'equal' }),
    { ok: false, code: 'uneven_total', field: 'amount' });
});

test('charCount counts code points', () => {
  assert.equal(charCount('恭喜发财'), 4);
  assert.equal(charCount('🧧🧧'), 2);
  assert.equal(charCount(''), 0);
});

test('validatePacket checks the issue 11 extras the way the server does', () => {
  const now = 1_800_000_000_000;
  const base = { kind: 'lucky', total: 300, count: 3, greeting: 'hi' };
  const ids = (n) => Array.from({ length: n }, (_, i) => `u${i}`);
  const cases = [
    [{ to: ['bob'] }, null],
    [{ to: ids(100) }, null],
    [{ to: ids(101) }, 'invalid_to'],
    [{ to: [] }, 'invalid_to'],
    [{ to: ['bob', 'bob'] }, 'invalid_to'],
    [{ to: [''] }, 'invalid_to'],
    [{ to: 'bob' }, 'invalid_to'],
    [{ password: '芝麻开门' }, null],
    [{ password: 'x'.repeat(32) }, null],
    [{ password: '口'.repeat(32) }, null],
    [{ password: '口'.repeat(33) }, 'invalid_password'],
    [{ password: '' }, 'invalid_password'],
    [{ password: 7 }, 'invalid_password'],
    // "é" as e + combining accent is one character after NFC.
    [{ password: 'e\u0301'.repeat(32) }, null],
    [{ to: ['bob'], password: 'pw' }, 'exclusive_password'],
    [{ opens_at: now + 1000 }, null],
    [{ opens_at: now + 600_000 }, null],
    [{ opens_at: now + 600_001 }, 'invalid_opens_at'],
    [{ opens_at: now }, 'invalid_opens_at'],
    [{ opens_at: now + 1.5 }, 'invalid_opens_at'],
    [{ to: ['bob'], opens_at: now + 5000 }, null],
    [{ password: 'pw', opens_at: now + 5000 }, null],
  ];
  for (const [extra, want] of cases) {
    assert.equal(validatePacket({ ...base, ...extra }, now), want, JSON.stringify(extra));
  }
  // The classic checks still come first.
  assert.equal(validatePacket({ ...base, count: 0, to: [] }, now), 'invalid_count');
});

test('validatePacketForm builds the extras and names the field to fix', () => {
  const now = 1_800_000_000_000;
  const form = { amount: '3', count: '3', kind: 'equal', greeting: '' };
  assert.deepEqual(validatePacketForm({ ...form, mode: 'exclusive', to: ['bob', 'carol'] }, now),
    { ok: true, packet: { kind: 'equal', total: 300, count: 3, greeting: DEFAULT_GREETING, to: ['bob', 'carol'] } });
  assert.deepEqual(validatePacketForm({ ...form, mode: 'password', password: ' 芝麻开门 ' }, now).packet.password, '芝麻开门');
  assert.equal(validatePacketForm({ ...form, mode: 'password', password: 'no', countdown: { value: '2', unit: 'm' } }, now).packet.opens_at, now + 120_000);
  assert.equal(validatePacketForm({ ...form, countdown: { value: '30', unit: 's' } }, now).packet.opens_at, now + 30_000);
  // The password field is ignored unless the mode asks for it.
  assert.equal(validatePacketForm({ ...form, password: 'x' }, now).packet.password, undefined);
  const bad = [
    [{ mode: 'exclusive', to: [] }, 'invalid_to', 'to'],
    [{ mode: 'password', password: '   ' }, 'invalid_password', 'password'],
    [{ mode: 'password', password: 'x'.repeat(33) }, 'invalid_password', 'password'],
    [{ countdown: { value: '11', unit: 'm' } }, 'invalid_opens_at', 'countdown'],
    [{ countdown: { value: '0', unit: 's' } }, 'invalid_opens_at', 'countdown'],
    [{ countdown: { value: '', unit: 's' } }, 'invalid_opens_at', 'countdown'],
    [{ mode: 'both' }, 'invalid_request', 'mode'],
    [{ amount: '', mode: 'exclusive', to: [] }, 'invalid_amount', 'amount'],
  ];
  for (const [extra, code, field] of bad) {
    const r = validatePacketForm({ ...form, ...extra }, now);
    assert.deepEqual({ ok: r.ok, code: r.code, field: r.field }, { ok: false, code, field }, JSON.stringify(extra));
  }
});

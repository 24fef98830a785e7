import test from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_MESSAGES, errorMessage, t, formatDuration, detectLang, __test } from './i18n.js';

const CODES = ['invalid_request', 'invalid_amount', 'invalid_count', 'uneven_total', 'share_too_small',
  'share_too_large', 'total_too_large', 'unauthorized', 'forbidden', 'not_found', 'already_grabbed',
  'sold_out', 'expired', 'not_yet', 'insufficient_funds', 'rate_limited', 'unavailable', 'daily_limit',
  'room_rate_limited'];

test('every wire error code has a zh and an en message', () => {
  for (const lang of ['zh', 'en']) {
    for (const code of CODES) assert.ok(ERROR_MESSAGES[lang][code], `${lang} ${code}`);
  }
  assert.equal(errorMessage({ code: 'sold_out' }, 'zh'), '手慢了，红包派完了');
  assert.equal(errorMessage({ code: 'brand_new', message: 'from server' }, 'en'), 'from server');
});

test('zh and en have the same keys', () => {
  const { zh, en } = __test.DICTS;
  assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
});

test('placeholders', () => {
  assert.equal(t('card.remaining', { left: 3, count: 8 }, 'zh'), '剩 3/8 个');
  assert.equal(t('card.remaining', { left: 3, count: 8 }, 'en'), '3/8 left');
  assert.equal(t('no.such.key', {}, 'en'), 'no.such.key');
});

test('durations', () => {
  assert.equal(formatDuration(850, 'en'), '0.9 s');
  assert.equal(formatDuration(15000, 'zh'), '15 秒');
  assert.equal(formatDuration(75000, 'en'), '1 min 15 s');
});

test('language detection', () => {
  assert.equal(detectLang({ search: '?lang=en', saved: 'zh', languages: ['zh-CN'] }), 'en');
  assert.equal(detectLang({ search: '', saved: 'en', languages: ['zh-CN'] }), 'en');
  assert.equal(detectLang({ search: '', saved: null, languages: ['fr-FR', 'zh-TW'] }), 'zh');
  assert.equal(detectLang({ search: '', saved: null, languages: ['en-US'] }), 'en');
  assert.equal(detectLang({ search: '', saved: null, languages: [] }), 'zh');
});

import test from 'node:test';
import assert from 'node:assert/strict';
import { Api } from './api.js';

// A fetch that records requests and answers from a queue.
function fakeFetch(answers) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, method: init.method, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    const a = answers.shift() ?? { status: 200, body: {} };
    return new Response(JSON.stringify(a.body), { status: a.status ?? 200, headers: a.headers ?? {} });
  };
  return { calls, impl };
}

test('the My red packets lists page with X-Next-Cursor', async () => {
  const f = fakeFetch([
    { body: [{ id: 'p2' }, { id: 'p1' }], headers: { 'X-Next-Cursor': 'abc' } },
    { body: [{ id: 'p0' }] },
  ]);
  const api = new Api({ fetchImpl: f.impl });
  assert.deepEqual(await api.myPackets({ limit: 2 }), { rows: [{ id: 'p2' }, { id: 'p1' }], next: 'abc' });
  assert.deepEqual(await api.myClaims({ limit: 2, cursor: 'abc' }), { rows: [{ id: 'p0' }], next: '' });
  assert.deepEqual(f.calls.map((c) => c.url), ['/api/v1/me/packets?limit=2', '/api/v1/me/claims?limit=2&cursor=abc']);
});

test('a password grab and the new kinds send only what is set', async () => {
  const f = fakeFetch([{}, {}, {}]);
  const api = new Api({ fetchImpl: f.impl });
  await api.grab('p1');
  await api.grab('p1', '芝麻开门');
  await api.sendPacket('lobby', { kind: 'lucky', total: 100, count: 1, greeting: 'g', to: ['bob'], opens_at: 5 });
  assert.equal(f.calls[0].body, undefined);
  assert.deepEqual(f.calls[1].body, { password: '芝麻开门' });
  assert.deepEqual(f.calls[2].body, { kind: 'lucky', total: 100, count: 1, greeting: 'g', to: ['bob'], opens_at: 5 });
});

test('the refusals of issue 11 keep their codes', async () => {
  const f = fakeFetch([{ status: 403, body: { error: { code: 'not_for_you', message: 'exclusive' } } }]);
  const api = new Api({ fetchImpl: f.impl });
  await assert.rejects(api.grab('p1'), (e) => e.code === 'not_for_you' && e.status === 403);
});

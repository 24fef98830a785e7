import test from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffDelay, wsURL, wsProtocols, closePlan, isLimitClose, RoomSocket,
  LIMIT_BACKOFF_MS, LIMIT_JITTER_MS, DRAIN_JITTER_MS,
} from './ws.js';

test('full jitter stays within [0, min(cap, base*2^n))', () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 0);
  assert.equal(backoffDelay(0, { random: () => 0.999999 }), 499);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000);
  assert.equal(backoffDelay(10, { random: () => 0.999999 }), 9999);
  assert.equal(backoffDelay(1000, { random: () => 0.5 }), 5000);
  for (let n = 0; n < 50; n++) {
    const d = backoffDelay(n);
    assert.ok(d >= 0 && d < 10000 && Number.isInteger(d));
  }
});

test('wsURL follows the page protocol, carries since and never a token', () => {
  const http = { protocol: 'http:', host: 'x:8080' };
  assert.equal(wsURL('lobby', {}, http), 'ws://x:8080/ws?room=lobby');
  assert.equal(wsURL('a b', { since: null }, { protocol: 'https:', host: 'x' }), 'wss://x/ws?room=a+b');
  assert.equal(wsURL('lobby', { since: 'k3f9a1:12' }, http), 'ws://x:8080/ws?room=lobby&since=k3f9a1%3A12');
  assert.equal(new URL(wsURL('lobby', { since: 'e:0' }, http)).searchParams.get('since'), 'e:0');
  assert.doesNotMatch(wsURL('lobby', { since: 'e:1' }, http), /token/);
});

test('the token travels as a subprotocol entry', () => {
  assert.deepEqual(wsProtocols('h.p.s'), ['hongbao.v1', 'bearer.h.p.s']);
  assert.deepEqual(wsProtocols(null), ['hongbao.v1']);
  assert.deepEqual(wsProtocols(''), ['hongbao.v1']);
});

test('close codes: caps back off 30 s or more, a drain reconnects at once, the rest back off', () => {
  for (const code of [4001, 4002, 4003, 4004]) {
    assert.ok(isLimitClose(code));
    const lo = closePlan(code, true, 0, () => 0);
    const hi = closePlan(code, true, 0, () => 0.999999);
    assert.equal(lo.why, 'limit');
    assert.equal(lo.delay, LIMIT_BACKOFF_MS);
    assert.ok(hi.delay >= 30000 && hi.delay < LIMIT_BACKOFF_MS + LIMIT_JITTER_MS && hi.delay > lo.delay, 'jittered');
    assert.equal(lo.hold, true);
    assert.equal(lo.checkAuth, false, 'a cap is not a session problem: renewing would dodge the per-user cap');
  }
  for (const code of [4000, 4005, 1000, 1006]) assert.ok(!isLimitClose(code));

  const drain = closePlan(1001, true, 7, () => 0.999999);
  assert.equal(drain.why, 'draining');
  assert.ok(drain.delay < DRAIN_JITTER_MS, `1001 waits ${drain.delay} ms`);
  assert.equal(drain.backoff, false);
  assert.notEqual(closePlan(1001, true, 0, () => 0.2).delay, closePlan(1001, true, 0, () => 0.7).delay, 'jittered');

  const internal = closePlan(1011, true, 3, () => 0.5);
  assert.deepEqual(internal, { why: 'closed', delay: 2000, checkAuth: false, hold: false, backoff: true });
  assert.equal(closePlan(1008, true, 0, () => 0).why, 'policy');
  assert.equal(closePlan(1008, true, 0, () => 0).checkAuth, true);
  assert.deepEqual(closePlan(1006, false, 0, () => 0), { why: 'failed', delay: 0, checkAuth: true, hold: false, backoff: true });
  assert.equal(closePlan(1006, true, 0, () => 0).checkAuth, false);
});

class FakeWS {
  static last = null;
  static all = [];
  constructor(url, protocols) {
    this.url = url; this.protocols = protocols; this.sent = []; this.readyState = 0;
    FakeWS.last = this; FakeWS.all.push(this);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen?.(); }
  recv(o) { this.onmessage?.({ data: JSON.stringify(o) }); }
  drop(code = 1006, reason = '') { this.readyState = 3; this.onclose?.({ code, reason }); }
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

test('results are matched by ref; the token is offered as a subprotocol', async () => {
  let token = 't1';
  const states = [];
  const s = new RoomSocket({
    url: () => 'ws://h/ws?room=r',
    protocols: () => wsProtocols(token),
    onAuthProblem: async () => { token = 't2'; },
    WebSocketImpl: FakeWS,
    random: () => 0,
  });
  s.addEventListener('state', (e) => states.push(e.detail.state));
  s.start();
  const ws1 = FakeWS.last;
  assert.deepEqual(ws1.protocols, ['hongbao.v1', 'bearer.t1']);
  assert.doesNotMatch(ws1.url, /t1/);
  ws1.open();
  const p = s.grab('p1');
  assert.deepEqual(ws1.sent[0], { type: 'grab', packet_id: 'p1', ref: 'c1' });
  ws1.recv({ type: 'result', ref: 'c1', ok: true, packet_id: 'p1', amount: 123, remaining: 2 });
  assert.equal((await p).amount, 123);
  const p2 = s.chat('hi');
  ws1.recv({ type: 'result', ref: 'c2', ok: false, error: { code: 'rate_limited', message: 'slow' } });
  await assert.rejects(p2, (e) => e.code === 'rate_limited');
  const pw = s.grab('p9', '芝麻开门');
  assert.deepEqual(ws1.sent[2], { type: 'grab', packet_id: 'p9', password: '芝麻开门', ref: 'c3' });
  ws1.recv({ type: 'result', ref: 'c3', ok: false, error: { code: 'wrong_password', message: 'no' } });
  await assert.rejects(pw, (e) => e.code === 'wrong_password');
  const p3 = s.grab('p2');
  ws1.drop(1008);
  await assert.rejects(p3, (e) => e.code === 'unavailable');
  await tick(10);
  assert.notEqual(FakeWS.last, ws1);
  assert.deepEqual(FakeWS.last.protocols, ['hongbao.v1', 'bearer.t2'], 'a fresh token for the next attempt');
  s.stop();
  assert.deepEqual(states.slice(0, 4), ['connecting', 'open', 'closed', 'connecting']);
});

test('1008 and a failed upgrade ask the app to check the session; a plain drop does not', async () => {
  const whys = [];
  const s = new RoomSocket({ url: () => 'ws://h/ws', onAuthProblem: async (why) => { whys.push(why); }, WebSocketImpl: FakeWS });
  s.start();
  FakeWS.last.open();
  FakeWS.last.drop(1008);
  await tick();
  assert.deepEqual(whys, ['policy']);
  s.retryNow();
  FakeWS.last.open();
  FakeWS.last.drop(1006);
  await tick();
  assert.deepEqual(whys, ['policy']);
  s.retryNow();
  FakeWS.last.drop(1006); // failed before opening: maybe a 401 at upgrade
  await tick();
  assert.deepEqual(whys, ['policy', 'failed']);
  s.stop();
});

test('a cap refusal shows why, holds automatic retries for 30 s or more, and never renews the session', async () => {
  const whys = [];
  const closed = [];
  const s = new RoomSocket({ url: () => 'ws://h/ws', onAuthProblem: async (why) => { whys.push(why); }, WebSocketImpl: FakeWS, random: () => 0.5 });
  s.addEventListener('state', (e) => { if (e.detail.state === 'closed') closed.push(e.detail); });
  s.start();
  const ws1 = FakeWS.last;
  ws1.open();
  const before = Date.now();
  ws1.drop(4001, 'too many connections for this user');
  await tick();
  assert.equal(closed.at(-1).why, 'limit');
  assert.equal(closed.at(-1).code, 4001);
  assert.equal(closed.at(-1).reason, 'too many connections for this user');
  assert.ok(s.retryAt - before >= LIMIT_BACKOFF_MS, `retry in ${s.retryAt - before} ms`);
  s.retryNow(); // the 'online' and 'visibilitychange' handlers
  s.onOnline();
  assert.equal(FakeWS.last, ws1, 'no automatic retry during the hold');
  assert.deepEqual(whys, []);
  s.retryNow({ manual: true }); // the user's retry button
  assert.notEqual(FakeWS.last, ws1);
  s.stop();
});

test('1001 reconnects within the drain jitter without growing the backoff', async () => {
  const s = new RoomSocket({ url: () => 'ws://h/ws', WebSocketImpl: FakeWS, random: () => 0 });
  s.start();
  const ws1 = FakeWS.last;
  ws1.open();
  ws1.recv({ type: 'welcome' });
  ws1.drop(1001);
  assert.equal(s.attempt, 0);
  await tick(20);
  assert.notEqual(FakeWS.last, ws1, 'reconnected at once');
  s.stop();
});

test('1011 reconnects with the normal backoff', async () => {
  const s = new RoomSocket({ url: () => 'ws://h/ws', WebSocketImpl: FakeWS, random: () => 0 });
  s.start();
  const ws1 = FakeWS.last;
  ws1.open();
  ws1.drop(1011);
  assert.equal(s.attempt, 1);
  await tick(20);
  assert.notEqual(FakeWS.last, ws1);
  s.stop();
});

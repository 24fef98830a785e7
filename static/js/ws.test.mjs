import test from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, wsURL, RoomSocket } from './ws.js';

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

test('wsURL follows the page protocol', () => {
  assert.equal(wsURL('lobby', 'a.b', { protocol: 'http:', host: 'x:8080' }), 'ws://x:8080/ws?room=lobby&token=a.b');
  assert.equal(wsURL('a b', 't', { protocol: 'https:', host: 'x' }), 'wss://x/ws?room=a+b&token=t');
});

class FakeWS {
  static last = null;
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; FakeWS.last = this; }
  send(s) { this.sent.push(JSON.parse(s)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen?.(); }
  recv(o) { this.onmessage?.({ data: JSON.stringify(o) }); }
  drop(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
}

test('results are matched by ref and auth closes renew the session', async () => {
  let token = 't1';
  let renewals = 0;
  const states = [];
  const s = new RoomSocket({
    url: () => `ws://h/ws?token=${token}`,
    onAuthProblem: async (why) => { if (why === 'auth') { renewals++; token = 't2'; } },
    WebSocketImpl: FakeWS,
  });
  s.addEventListener('state', (e) => states.push(e.detail.state));
  s.start();
  const ws1 = FakeWS.last;
  ws1.open();
  const p = s.grab('p1');
  assert.deepEqual(ws1.sent[0], { type: 'grab', packet_id: 'p1', ref: 'c1' });
  ws1.recv({ type: 'result', ref: 'c1', ok: true, packet_id: 'p1', amount: 123, remaining: 2 });
  assert.equal((await p).amount, 123);
  const p2 = s.chat('hi');
  ws1.recv({ type: 'result', ref: 'c2', ok: false, error: { code: 'rate_limited', message: 'slow' } });
  await assert.rejects(p2, (e) => e.code === 'rate_limited');
  const p3 = s.grab('p2');
  ws1.drop(4001);
  await assert.rejects(p3, (e) => e.code === 'unavailable');
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(renewals, 1);
  assert.notEqual(FakeWS.last, ws1);
  assert.match(FakeWS.last.url, /token=t2/);
  s.stop();
  assert.deepEqual(states.slice(0, 4), ['connecting', 'open', 'closed', 'connecting']);
});

test('1008 asks the app to check the session; a plain drop does not', async () => {
  const whys = [];
  const s = new RoomSocket({ url: () => 'ws://h/ws', onAuthProblem: async (why) => { whys.push(why); }, WebSocketImpl: FakeWS });
  s.start();
  FakeWS.last.open();
  FakeWS.last.drop(1008);
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(whys, ['policy']);
  s.retryNow();
  FakeWS.last.open();
  FakeWS.last.drop(1006);
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(whys, ['policy']);
  s.retryNow();
  FakeWS.last.drop(1006); // failed before opening: maybe a 401 at upgrade
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(whys, ['policy', 'failed']);
  s.stop();
});

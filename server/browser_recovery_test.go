package main

// Browser tests of the page's side of the real-time edge: the token stays out
// of URLs, and a page whose network drops gets back everything that happened
// while it was away, by since=<epoch>:<seq> (docs/protocol.md, "Recovery").

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// The page authenticates its WebSocket with the subprotocol entry
// "bearer.<jwt>": no URL that crosses the network carries the token, so no
// proxy log does. (The page connecting at all shows the server answered
// with a subprotocol it offered: a browser fails the handshake otherwise.)
func TestBrowserTokenNotInURL(t *testing.T) {
	chromiumPath(t)
	db, _ := redistest.New(t)
	srv := startServer(t, testConfig(t, db.URL()))
	px := newNetProxy(t, srv.URL)
	br := newBrowser(t)
	alice := br.newPage("alice", px.URL, desktop)
	alice.join("no-token", "阿明")
	_, token := alice.session()

	ws, err := px.lastUpgrade()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ws.Header.Get("Sec-WebSocket-Protocol"), "hongbao.v1, bearer."+token; got != want {
		t.Errorf("the upgrade offers subprotocols %q, want %q", got, want)
	}
	if ws.URL.Query().Get("room") != "no-token" {
		t.Errorf("the upgrade asks for %s", ws.URL)
	}
	for _, r := range px.all() {
		if u := r.URL.String(); strings.Contains(u, token) || r.URL.Query().Has("token") {
			t.Errorf("%s %s carries the token in its URL", r.Method, u)
		}
	}
	alice.noExceptions()
}

// syncState is the page's window.hongbao.state.sync (static/js/sync.js).
type syncState struct {
	Epoch   *string `json:"epoch"`
	Seq     *int64  `json:"seq"`
	Outcome string  `json:"outcome"`
	Reloads int     `json:"reloads"`
}

func (s syncState) String() string {
	epoch, seq := "null", "null"
	if s.Epoch != nil {
		epoch = *s.Epoch
	}
	if s.Seq != nil {
		seq = fmt.Sprint(*s.Seq)
	}
	return fmt.Sprintf("{epoch %s, seq %s, %s, %d REST reloads}", epoch, seq, s.Outcome, s.Reloads)
}

// at reports whether the page is at outcome, epoch:seq after reloads reloads.
func (s syncState) at(outcome, epoch string, seq int64, reloads int) bool {
	return s.Outcome == outcome && s.Epoch != nil && *s.Epoch == epoch && s.Seq != nil && *s.Seq == seq && s.Reloads == reloads
}

func (p *page) sync() syncState {
	p.t.Helper()
	return eval[syncState](p, `window.hongbao.state.sync`)
}

// Alice's network drops; meanwhile Bob sends 3 packets over REST and says
// something. When the network is back her page reconnects with since and
// shows each packet once, and his message, without reloading the room over
// REST. Before all that, joining shows the chat from before she came as
// history.
func TestBrowserRecoversAfterDroppedNetwork(t *testing.T) {
	chromiumPath(t)
	db, _ := redistest.New(t)
	srv := startServer(t, testConfig(t, db.URL()))
	px := newNetProxy(t, srv.URL)
	br := newBrowser(t)
	const room = "dropped"
	bob, bobTok := session(t, srv, "小红")
	bobWS := mustDial(t, srv, room, bobTok)
	if r := bobWS.request(map[string]any{"type": "chat", "text": "早上好"}, 5*time.Second); !r.OK {
		t.Fatalf("Bob's chat: %s", r.Raw)
	}

	alice := br.newPage("alice", px.URL, desktop)
	alice.join(room, "阿明")
	if s := alice.sync(); s.Outcome != "fresh" || s.Seq == nil {
		alice.fail("the page did not follow the server's welcome: %s", s)
	}
	alice.waitFor("the chat from before she joined", seesChat(bob.ID, "早上好"))
	if !eval[bool](alice, `document.querySelector('#messages .msg-chat .msg-text').closest('.msg').classList.contains('msg-history')`) {
		alice.fail("the chat from before she joined is not shown as history")
	}
	before := alice.sync()
	const roomFetches = `performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/rooms/dropped/packets')).length`
	fetchesBefore := eval[int](alice, roomFetches)

	px.drop()
	alice.waitFor("the page to notice", connState("closed"))
	var ids []string
	for i := range 3 {
		p := newPacket(t, srv, bobTok, room, map[string]any{"kind": "equal", "total": 300, "count": 3, "greeting": fmt.Sprintf("第%d个", i+1)})
		ids = append(ids, p.ID)
	}
	if r := bobWS.request(map[string]any{"type": "chat", "text": "你还在吗？"}, 5*time.Second); !r.OK {
		t.Fatalf("Bob's chat: %s", r.Raw)
	}
	if n := eval[int](alice, `document.querySelectorAll('.packet-card').length`); n != 0 {
		alice.fail("%d cards while the network is down", n)
	}

	px.restore()
	// Browsers say so when the network is back; the page retries at once.
	eval[bool](alice, `window.dispatchEvent(new Event('online'))`)
	alice.waitFor("the reconnect", connState("open"))
	for _, id := range ids {
		alice.waitFor("packet "+id, fmt.Sprintf(`document.querySelectorAll(%q).length === 1`, card(id)))
	}
	alice.waitFor("the chat sent while away", seesChat(bob.ID, "你还在吗？"))
	if n := eval[int](alice, `document.querySelectorAll('.packet-card').length`); n != 3 {
		alice.fail("%d cards, want 3", n)
	}
	if n := eval[int](alice, `[...document.querySelectorAll('#messages .msg-chat .msg-text')].filter((e) => e.textContent === '你还在吗？').length`); n != 1 {
		alice.fail("the chat sent while away shows %d times", n)
	}
	if eval[bool](alice, `[...document.querySelectorAll('#messages .msg-chat')].some((e) => e.querySelector('.msg-text').textContent === '你还在吗？' && e.classList.contains('msg-history'))`) {
		alice.fail("a missed chat message is shown as history, not as news")
	}

	after := alice.sync()
	if after.Outcome != "recovered" {
		t.Errorf("the reconnect was %s, want recovered", after)
	}
	if after.Reloads != before.Reloads {
		t.Errorf("the page reloaded the room over REST %d times after the reconnect", after.Reloads-before.Reloads)
	}
	if n := eval[int](alice, roomFetches); n != fetchesBefore {
		t.Errorf("the page fetched the room's packets %d times after the reconnect", n-fetchesBefore)
	}
	if *after.Seq < *before.Seq+4 {
		t.Errorf("the cursor moved from %d to %d over 3 packets and a chat", *before.Seq, *after.Seq)
	}
	ws, err := px.lastUpgrade()
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"room": {room}, "since": {fmt.Sprintf("%s:%d", *before.Epoch, *before.Seq)}}
	if got := ws.URL.Query(); got.Encode() != want.Encode() {
		t.Errorf("reconnected with %s, want ?%s", ws.URL, want.Encode())
	}
	alice.noExceptions()
	auditClean(t, srv)
}

// countOf is a predicate's count of elements matching a selector.
func countOf(selector string) string {
	return fmt.Sprintf(`document.querySelectorAll(%q).length`, selector)
}

// chatCount counts the timeline's chat messages with text.
func chatCount(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages .msg-chat .msg-text')].filter((e) => e.textContent === %q).length`, text)
}

// isHistory tells whether the chat message with text is shown as history.
func isHistory(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages .msg-chat')].some((e) => e.querySelector('.msg-text').textContent === %q && e.classList.contains('msg-history'))`, text)
}

// The page against a stand-in server (fakeEdge) that takes it through every
// case of the recovery protocol on demand: a fresh join with recent chat as
// history, a dropped network and a recovery with since, duplicates, lost
// history (resync), and a cap's close code.
func TestBrowserPageRecoveryProtocol(t *testing.T) {
	chromiumPath(t)
	f := newFakeEdge(t)
	br := newBrowser(t)
	f.chat("c1", "bob", "早上好")
	f.chat("c2", "bob", "有人吗？")

	// A fresh join: no since; the token only in the subprotocols; one REST
	// load of the room; recent chat shown as history.
	alice := br.newPage("alice", f.URL, desktop)
	alice.join("fake", "alice")
	q, protocols := f.lastUpgrade()
	if q.Has("since") || q.Has("token") || q.Get("room") != "fake" {
		t.Errorf("a fresh join asked for /ws?%s", q.Encode())
	}
	if want := []string{"hongbao.v1", "bearer.tok-1"}; strings.Join(protocols, ",") != strings.Join(want, ",") {
		t.Errorf("the page offered subprotocols %q, want %q", protocols, want)
	}
	alice.waitFor("the recent chat", chatCount("早上好")+" === 1 && "+chatCount("有人吗？")+" === 1")
	if !eval[bool](alice, isHistory("早上好")+" && "+isHistory("有人吗？")) {
		alice.fail("the recent chat is not shown as history")
	}
	alice.waitFor("the room's packets over REST", `performance.getEntriesByType('resource').some((e) => e.name.includes('/api/v1/rooms/fake/packets'))`)
	if n := f.fetches(); n != 1 {
		t.Errorf("a fresh join loaded the room %d times, want 1", n)
	}
	if s := alice.sync(); !s.at("fresh", "e1", 2, 1) {
		t.Errorf("after the fresh join the page is at %s", s)
	}

	// Live events are news, and move the cursor.
	f.packet("p1", "bob")
	f.chat("c3", "bob", "发红包了")
	alice.waitFor("the live packet and chat", countOf(card("p1"))+" === 1 && "+chatCount("发红包了")+" === 1")
	if eval[bool](alice, isHistory("发红包了")) {
		alice.fail("a live chat message is shown as history")
	}

	// The network drops; what falls meanwhile arrives on reconnect, once.
	f.setRefuse(true)
	f.dropAll()
	alice.waitFor("the page to notice", connState("closed"))
	f.packet("p2", "bob")
	f.packet("p3", "bob")
	f.chat("c4", "bob", "你还在吗？")
	f.packet("p4", "bob")
	f.setRefuse(false)
	eval[bool](alice, `window.dispatchEvent(new Event('online'))`)
	alice.waitFor("the reconnect", connState("open"))
	if q, _ := f.lastUpgrade(); q.Get("since") != "e1:4" {
		t.Errorf("reconnected with /ws?%s, want since=e1:4", q.Encode())
	}
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		alice.waitFor("packet "+id+" once", countOf(card(id))+" === 1")
	}
	alice.waitFor("the missed chat once", chatCount("你还在吗？")+" === 1")
	if eval[bool](alice, isHistory("你还在吗？")) {
		alice.fail("a missed chat message is shown as history, not as news")
	}
	if s := alice.sync(); !s.at("recovered", "e1", 8, 1) {
		t.Errorf("after the recovery the page is at %s", s)
	}
	if n := f.fetches(); n != 1 {
		t.Errorf("the page reloaded the room over REST after a recovery (%d loads)", n)
	}

	// Duplicates change nothing.
	f.mu.Lock()
	dupPacket, dupChat := f.events[7], f.events[6] // p4, c4
	f.mu.Unlock()
	f.resend(dupPacket)
	f.resend(dupChat)
	f.chat("c5", "bob", "好的")
	alice.waitFor("the chat after the duplicates", chatCount("好的")+" === 1")
	if n := eval[int](alice, countOf(".packet-card")); n != 4 {
		alice.fail("%d cards after duplicates, want 4", n)
	}
	if n := eval[int](alice, chatCount("你还在吗？")); n != 1 {
		alice.fail("a duplicate chat shows %d times", n)
	}

	// The room's history is lost while the page is away: it is told so
	// (resync) and reloads the room over REST, once.
	f.setRefuse(true)
	f.dropAll()
	alice.waitFor("the page to notice", connState("closed"))
	f.loseHistory()
	f.chat("c6", "bob", "重新开始")
	f.packet("p5", "bob") // only in the REST list and the new epoch
	f.setRefuse(false)
	eval[bool](alice, `window.dispatchEvent(new Event('online'))`)
	alice.waitFor("the reconnect", connState("open"))
	alice.waitFor("the packet from the REST reload", countOf(card("p5"))+" === 1")
	alice.waitFor("the new epoch's chat", chatCount("重新开始")+" === 1")
	f.mu.Lock()
	epoch := f.epoch
	f.mu.Unlock()
	if s := alice.sync(); !s.at("resync", epoch, 2, 2) || epoch == "e1" {
		t.Errorf("after the lost history the page is at %s", s)
	}
	if n := f.fetches(); n != 2 {
		t.Errorf("the room was loaded %d times, want 2 (one reload for resync)", n)
	}

	// A cap refuses the connection: the page says why, and waits 30 s or
	// more before it tries again, unless the user asks.
	conns := f.connections()
	f.closeAll(4001, "too many connections for this user")
	alice.waitFor("the reason", `(() => { const b = document.querySelector('#conn-banner');
		return !b.hidden && document.querySelector('#conn-banner-text').textContent.includes('你打开的连接太多了'); })()`)
	if secs := eval[int](alice, `Number(/(\d+) 秒/.exec(document.querySelector('#conn-banner-text').textContent)?.[1] ?? 0)`); secs < 29 {
		alice.fail("the page retries in %d s after a 4001", secs)
	}
	// Coming back online is no shortcut: the page would start connecting
	// within the event's dispatch.
	if st := eval[string](alice, `window.dispatchEvent(new Event('online')), document.querySelector('#conn-status').dataset.state`); st != "closed" {
		alice.fail("the page is %s right after a 4001 and an online event", st)
	}
	if n := f.connections(); n != conns {
		t.Errorf("the page reconnected at once after a 4001")
	}
	alice.do(chromedp.Click(css("#conn-retry")))
	alice.waitFor("the user's retry", connState("open"))
	alice.noExceptions()
}

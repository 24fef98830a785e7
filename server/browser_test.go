package main

// Tests in a real browser: the demo page in static/, in headless Chromium,
// against in-process servers on real Redis. They need Chromium (Debian:
// apt-get install -y chromium) and fail without it. With HONGBAO_SCREENSHOTS=1
// they also write docs/screenshot-chat.png and docs/screenshot-rain.png.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hongbao-dev/hongbao/internal/redistest"
)

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// yuan formats fen the way the page does: ¥12.34.
func yuan(fen int64) string { return fmt.Sprintf("¥%d.%02d", fen/100, fen%100) }

// storeBalance is the wallet balance straight from the store.
func storeBalance(t *testing.T, s *server, userID string) int64 {
	t.Helper()
	w, err := s.store.Wallet(context.Background(), userID)
	if err != nil {
		t.Fatalf("wallet %s: %v", userID, err)
	}
	return w.Balance
}

// chat types text into the composer and sends it with the send button.
func (p *page) chat(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(css("#chat-input"), text), chromedp.Click(css("#chat-send")))
}

// seesChat is a predicate: the timeline shows text from user.
func seesChat(userID, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages .msg-chat[data-user-id=%q] .msg-text')].some((e) => e.textContent === %q)`, userID, text)
}

// card is the selector of a packet's chat card.
func card(id string) string { return fmt.Sprintf(`.packet-card[data-packet-id=%q]`, id) }

// sendPacket fills in the send dialog and submits it; it returns the id of
// the new card.
func (p *page) sendPacket(amount, count, greeting string) string {
	p.t.Helper()
	before := eval[[]string](p, `[...document.querySelectorAll('.packet-card')].map((c) => c.dataset.packetId)`)
	p.openDialog("#send-packet-button", "#packet-dialog")
	p.do(
		chromedp.SendKeys(css("#packet-amount"), amount),
		chromedp.SendKeys(css("#packet-count"), count),
		chromedp.SendKeys(css("#packet-greeting"), greeting),
	)
	p.waitFor("the total preview", fmt.Sprintf(`document.querySelector('#packet-total-preview').textContent === %q`, "¥"+amount))
	p.do(chromedp.Click(css("#packet-submit")))
	p.waitFor("the send dialog to close", `!document.querySelector('#packet-dialog').open`)
	p.waitFor("the new card", fmt.Sprintf(`document.querySelectorAll('.packet-card').length === %d`, len(before)+1))
	ids := eval[[]string](p, `[...document.querySelectorAll('.packet-card')].map((c) => c.dataset.packetId)`)
	for _, id := range ids {
		if !contains(before, id) {
			return id
		}
	}
	p.fail("no new card among %v", ids)
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// openCard taps a packet's card and waits for the envelope to settle.
func (p *page) openCard(id string) {
	p.t.Helper()
	p.waitFor("card "+id, fmt.Sprintf(`!!document.querySelector(%q)`, card(id)))
	p.do(chromedp.ScrollIntoView(css(card(id))))
	p.openDialog(card(id), "#open-overlay")
}

// grabOpen taps 開 in the open overlay and returns the amount it shows.
func (p *page) grabOpen() int64 {
	p.t.Helper()
	p.waitFor("the 開 button", `(() => { const b = document.querySelector('#open-button');
		return !b.disabled && getComputedStyle(b).visibility === 'visible'; })()`)
	// A tap that lands while the overlay is still settling can be lost (the
	// page ignores taps once the coin spins, so tapping again is safe).
	started := `(() => { const b = document.querySelector('#open-button'), r = document.querySelector('#open-result');
		return b.disabled || Number(r.dataset.amount) > 0 || !!r.dataset.error; })()`
	for try := 0; ; try++ {
		p.do(chromedp.Click(css("#open-button")))
		if p.tryWait(started, 3*time.Second) {
			break
		}
		if try == 2 {
			p.fail("three taps on 開 did nothing")
		}
	}
	p.waitFor("the amount", `(() => { const r = document.querySelector('#open-result');
		return Number(r.dataset.amount) > 0 || !!r.dataset.error; })()`)
	if code := eval[string](p, `document.querySelector('#open-result').dataset.error ?? ''`); code != "" {
		p.fail("opening the packet failed: %s", code)
	}
	amount := p.intAttr("#open-result", "data-amount")
	if got := eval[string](p, `document.querySelector('#open-result .result-amount').textContent`); got != yuan(amount) {
		p.fail("result shows %q, its data-amount is %d", got, amount)
	}
	return amount
}

// seesClaim is a predicate: the detail panel lists user's claim of amount.
func seesClaim(userID string, amount int64) string {
	return fmt.Sprintf(`!document.querySelector('#packet-detail').hidden &&
		!!document.querySelector('#packet-detail .claim-row[data-user-id=%q][data-amount="%d"]')`, userID, amount)
}

func claimRows(n int) string {
	return fmt.Sprintf(`document.querySelectorAll('#packet-detail .claim-row').length === %d`, n)
}

func (p *page) closeOverlay() {
	p.t.Helper()
	p.do(chromedp.Click(css("#open-overlay .env-close")))
	p.waitFor("the overlay to close", `!document.querySelector('#open-overlay').open`)
}

// waitBalance waits until the header shows fen, in data-fen and in text.
func (p *page) waitBalance(fen int64) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("balance %d", fen), fmt.Sprintf(`(() => { const b = document.querySelector('#balance');
		return b.dataset.fen === "%d" && b.textContent === %q; })()`, fen, yuan(fen)))
}

func connState(state string) string {
	return fmt.Sprintf(`document.querySelector('#conn-status').dataset.state === %q`, state)
}

// Two people in one room, each on their own instance: chat both ways, a
// lucky packet sent through the dialog and opened by the other, the detail
// and the wallets agreeing with the server; then Bob's instance restarts,
// a packet sent meanwhile reaches him after the page reconnects.
func TestBrowserPacketChatReconnect(t *testing.T) {
	chromiumPath(t)
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	srvA := startServer(t, cfg)
	srvB := startServer(t, cfg)
	br := newBrowser(t)
	alice := br.newPage("alice", srvA.URL, phone)
	bob := br.newPage("bob", srvB.URL, laptop)
	const room = "browser"
	alice.join(room, "阿明")
	bob.join(room, "小红")
	aliceID, _ := alice.session()
	bobID, bobTok := bob.session()
	if aliceID == bobID {
		t.Fatalf("both pages share the session of %s", aliceID)
	}
	for _, p := range []*page{alice, bob} {
		p.waitFor("two people online", `document.querySelector('#presence').dataset.online === "2"`)
		// The header shows a short room name in full (it used to lose 4px
		// to the title's negative margin and end in an ellipsis).
		if !eval[bool](p, `(() => { const e = document.querySelector('#room-name');
			return e.textContent === 'browser' && e.scrollWidth <= Math.ceil(e.getBoundingClientRect().width); })()`) {
			p.fail("the room name is cut short")
		}
	}

	// Chat, both ways.
	alice.chat("大家新年好！")
	bob.waitFor("Alice's message", seesChat(aliceID, "大家新年好！"))
	bob.chat("新年好，老板发红包吗？")
	alice.waitFor("Bob's message", seesChat(bobID, "新年好，老板发红包吗？"))

	// Alice sends ¥10.00 in 3 lucky shares.
	p1 := alice.sendPacket("10.00", "3", "恭喜发财，大吉大利")
	alice.waitBalance(9000)
	var detail struct {
		Packet struct {
			Kind   string `json:"kind"`
			Total  int64  `json:"total"`
			Count  int    `json:"count"`
			Sender struct {
				ID string `json:"id"`
			} `json:"sender"`
		} `json:"packet"`
	}
	call(t, srvB, "GET", "/api/v1/packets/"+p1, bobTok, nil, &detail)
	if d := detail.Packet; d.Kind != "lucky" || d.Total != 1000 || d.Count != 3 || d.Sender.ID != aliceID {
		t.Fatalf("the server has the packet as %+v", d)
	}

	// Bob sees the card, taps it, taps 開.
	bob.waitFor("Alice's card", fmt.Sprintf(`document.querySelector(%q)?.dataset.status === 'active'`, card(p1)))
	bob.openCard(p1)
	got := bob.grabOpen()
	if got < 1 || got > 998 {
		t.Fatalf("Bob got %d fen of a 1000 fen packet in 3 shares", got)
	}
	bob.waitFor("his claim in the detail", seesClaim(bobID, got))
	bob.waitBalance(10000 + got)
	if b := meBalance(t, srvB, bobTok); b != 10000+got {
		t.Fatalf("GET /api/v1/me says Bob has %d, the page %d", b, 10000+got)
	}
	if b := storeBalance(t, srvA, bobID); b != 10000+got {
		t.Fatalf("the store says Bob has %d, the page %d", b, 10000+got)
	}
	alice.waitFor("the card to count 2 left", fmt.Sprintf(`document.querySelector(%q).dataset.remaining === "2"`, card(p1)))

	// Alice peeks at the detail without opening, sees Bob's claim, then
	// opens her own packet; Bob's open detail updates live.
	alice.openCard(p1)
	alice.do(chromedp.Click(css("#open-detail-link")))
	alice.waitFor("Bob's claim in the detail", seesClaim(bobID, got)+" && "+claimRows(1))
	alice.closeOverlay()
	alice.openCard(p1)
	mine := alice.grabOpen()
	alice.waitFor("both claims", seesClaim(bobID, got)+" && "+seesClaim(aliceID, mine)+" && "+claimRows(2))
	bob.waitFor("Alice's claim, live", seesClaim(aliceID, mine)+" && "+claimRows(2))
	alice.waitBalance(9000 + mine)
	bob.settle()
	bob.screenshot("screenshot-chat.png")
	bob.closeOverlay()
	alice.closeOverlay()

	// Bob's instance goes away (graceful: the hub closes every socket).
	const roomFetches = `performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/rooms/browser/packets')).length`
	fetchesBefore := eval[int](bob, roomFetches)
	addrB := strings.TrimPrefix(srvB.URL, "http://")
	if err := srvB.stop(t); err != nil {
		t.Fatal(err)
	}
	bob.waitFor("the page to notice", connState("closed")+` && !document.querySelector('#conn-banner').hidden`)

	// Alice sends another packet while Bob is away: he gets no event for it.
	p2 := alice.sendPacket("6.66", "2", "错过了吗？")
	alice.waitBalance(9000 + mine - 666)
	if n := eval[int](bob, `document.querySelectorAll('.packet-card').length`); n != 1 {
		bob.fail("%d cards while disconnected, want 1", n)
	}

	// A new instance on the same address: the page reconnects by itself and
	// catches up, from the room's history (since) or, from a server that
	// keeps none, from GET /api/v1/rooms/{room}/packets.
	cfgB := cfg
	cfgB.Addr = addrB
	srvB2 := startServer(t, cfgB)
	bob.waitFor("the reconnect", connState("open")+` && document.querySelector('#conn-banner').hidden`)
	bob.waitFor("the packet sent while away", fmt.Sprintf(`document.querySelector(%q)?.dataset.status === 'active'`, card(p2)))
	if n := eval[int](bob, `document.querySelectorAll('.packet-card').length`); n != 2 {
		bob.fail("%d cards after the catch-up, want 2", n)
	}
	switch n, s := eval[int](bob, roomFetches), bob.sync(); {
	case s.Outcome == "recovered" && n != fetchesBefore:
		bob.fail("the page recovered the missed events and fetched the room's packets all the same (%d fetches, %d before)", n, fetchesBefore)
	case s.Outcome != "recovered" && n <= fetchesBefore:
		bob.fail("the page neither recovered (%s) nor fetched the room's packets after reconnecting (%d fetches, %d before)", s, n, fetchesBefore)
	}
	// The new connection is live: chat and a grab over it work.
	alice.chat("欢迎回来")
	bob.waitFor("chat after the reconnect", seesChat(aliceID, "欢迎回来"))
	bob.openCard(p2)
	got2 := bob.grabOpen()
	bob.waitFor("his second claim", seesClaim(bobID, got2))
	bob.waitBalance(10000 + got + got2)
	bob.closeOverlay()
	if b := meBalance(t, srvB2, bobTok); b != 10000+got+got2 {
		t.Fatalf("GET /api/v1/me says Bob has %d, the page %d", b, 10000+got+got2)
	}
	if b := storeBalance(t, srvA, bobID); b != 10000+got+got2 {
		t.Fatalf("the store says Bob has %d, the page %d", b, 10000+got+got2)
	}
	alice.waitFor("Bob's second claim", fmt.Sprintf(`document.querySelector(%q).dataset.remaining === "1"`, card(p2)))

	alice.noExceptions()
	bob.noExceptions()
	auditClean(t, srvA)
}

// A rain of 5 packets falls on Bob's phone; he catches one with a real
// click, and his tally, his balance and the server agree.
func TestBrowserRain(t *testing.T) {
	chromiumPath(t)
	db, _ := redistest.New(t)
	srv := startServer(t, testConfig(t, db.URL()))
	br := newBrowser(t)
	host := br.newPage("host", srv.URL, desktop)
	bob := br.newPage("bob", srv.URL, phone)
	const room = "rain"
	host.join(room, "主播")
	bob.join(room, "小红")
	bobID, bobTok := bob.session()

	host.openDialog("#rain-button", "#rain-dialog")
	host.do(
		chromedp.SendKeys(css("#rain-packets"), "5"),
		chromedp.SendKeys(css("#rain-count"), "2"),
		chromedp.SendKeys(css("#rain-amount"), "2.00"),
		chromedp.SendKeys(css("#rain-duration"), "5"),
	)
	host.waitFor("the cost", `document.querySelector('#rain-cost').textContent.includes('¥10.00')`)
	host.do(chromedp.Click(css("#rain-submit")))
	host.waitFor("the rain dialog to close", `!document.querySelector('#rain-dialog').open`)
	host.waitBalance(10000 - 5*200)

	bob.waitFor("the rain card", `!!document.querySelector('#messages .rain-card[data-state="live"]')`)
	bob.waitFor("the rain layer", `!document.querySelector('#rain-layer').hidden`)
	bob.waitFor("falling drops", `!!document.querySelector('.rain-drop[data-packet-id][data-state="falling"]:not([hidden])')`)
	if os.Getenv(screenshotsEnv) != "" {
		// Let a few drops into view for the picture (best effort).
		bob.tryWait(`[...document.querySelectorAll('.rain-drop[data-state="falling"]:not([hidden])')]
			.filter((d) => { const r = d.getBoundingClientRect(); return r.top > 80 && r.bottom < innerHeight - 80; }).length >= 3`, 4*time.Second)
	}
	bob.catchDrop()
	caught := bob.intAttr("#rain-tally", "data-fen")
	if caught <= 0 {
		bob.fail("tally %d after a catch", caught)
	}
	if os.Getenv(screenshotsEnv) != "" {
		bob.tryWait(`document.querySelector('#rain-tally').getAnimations().length === 0`, time.Second)
		bob.screenshot("screenshot-rain.png")
	}

	// The rain ends: the summary shows what Bob caught, the server agrees.
	bob.waitFor("the summary", `document.querySelector('#rain-summary').open`)
	total := bob.intAttr("#rain-summary-total", "data-fen")
	if tally := bob.intAttr("#rain-tally", "data-fen"); total < caught || total != tally {
		bob.fail("summary %d, tally %d, first catch %d", total, tally, caught)
	}
	bob.waitFor("Bob on the leaderboard", fmt.Sprintf(`!!document.querySelector('#rain-leaderboard .board-row[data-user-id=%q][data-amount="%d"]')`, bobID, total))
	bob.waitBalance(10000 + total)
	if b := meBalance(t, srv, bobTok); b != 10000+total {
		t.Fatalf("GET /api/v1/me says Bob has %d, the page %d", b, 10000+total)
	}
	w, err := srv.store.Wallet(context.Background(), bobID)
	if err != nil {
		t.Fatal(err)
	}
	if w.Balance != 10000+total || w.ReceivedTotal != total {
		t.Fatalf("the store has Bob's wallet as %+v, the page caught %d", w, total)
	}
	host.waitFor("the host's summary", fmt.Sprintf(`document.querySelector('#rain-summary').open &&
		!!document.querySelector('#rain-leaderboard .board-row[data-user-id=%q][data-amount="%d"]')`, bobID, total))

	host.noExceptions()
	bob.noExceptions()
	auditClean(t, srv)
}

// catchDrop clicks falling drops, with real mouse events at their position,
// until one is caught.
func (p *page) catchDrop() {
	p.t.Helper()
	const caught = `Number(document.querySelector('#rain-tally').dataset.fen) > 0`
	deadline := time.Now().Add(browserWait)
	clicks := 0
	for time.Now().Before(deadline) {
		// A drop in the clear: below the HUD, on screen, not under anything.
		pt := eval[[]float64](p, `(() => {
			const hud = document.querySelector('#rain-hud').getBoundingClientRect().bottom;
			for (const d of document.querySelectorAll('.rain-drop[data-state="falling"]:not([hidden])')) {
				const r = d.getBoundingClientRect();
				const x = r.left + r.width / 2, y = r.top + r.height / 2;
				if (r.top < hud + 8 || r.bottom > innerHeight - 8 || r.left < 0 || r.right > innerWidth) continue;
				if (document.elementFromPoint(x, y)?.closest('.rain-drop') === d) return [x, y];
			}
			return [];
		})()`)
		if len(pt) != 2 {
			p.tryWait(caught, 200*time.Millisecond)
			continue
		}
		p.do(chromedp.MouseClickXY(pt[0], pt[1]))
		clicks++
		// A hit turns the drop to "grabbing" until the server answers; a
		// miss (it fell on meanwhile) changes nothing: aim again.
		if p.tryWait(caught+` || !!document.querySelector('.rain-drop[data-state="grabbing"]')`, 500*time.Millisecond) &&
			p.tryWait(caught, browserWait/2) {
			p.t.Logf("%s caught a drop with click %d", p.name, clicks)
			return
		}
	}
	p.fail("caught nothing in %v (%d clicks)", browserWait, clicks)
}

// A newcomer trying it alone opens two tabs of one browser: each tab is its
// own guest, the second tab offers the name used last, and a reload keeps
// the tab's guest.
func TestBrowserTwoTabsTwoGuests(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	b := newBrowser(t)
	first := b.newPage("first", s.URL, desktop)
	first.join("tabs", "阿明")
	firstID, _ := first.session()

	second := first.newTab("second", desktop)
	second.do(chromedp.Navigate(s.URL+"/?room=tabs"), chromedp.WaitVisible(css("#name-input")))
	second.waitFor("the remembered name", `document.querySelector('#name-input').value === "阿明"`)
	second.do(chromedp.SetValue(css("#name-input"), "小红"), chromedp.Click(css("#join-button")))
	second.waitFor("the room", `!document.querySelector('#room-screen').hidden`)
	second.waitFor("the connection", `document.querySelector('#conn-status').dataset.state === "open"`)
	secondID, _ := second.session()
	if secondID == firstID {
		t.Fatalf("both tabs are guest %s", firstID)
	}
	first.waitFor("two people online", `document.querySelector('#presence').dataset.online === "2"`)

	first.do(chromedp.Reload())
	first.waitFor("the room after a reload", `!document.querySelector('#room-screen').hidden`)
	if id, _ := first.session(); id != firstID {
		t.Fatalf("a reload made a new guest: %s, was %s", id, firstID)
	}
	first.noExceptions()
	second.noExceptions()
}

package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// The three new kinds of packet, end to end on the real server (the
// StandIn tests check the page's every detail against a stand-in): Alice
// sends; an exclusive packet for Bob is refused to Carol and pays Bob; a
// password packet refuses Bob's wrong phrase, pays his right one, and pays
// Carol for typing it in the chat box; a countdown packet opens by itself
// and pays. The books balance at the end.
func TestBrowserKindsOnTheServer(t *testing.T) {
	chromiumPath(t)
	db, _ := redistest.New(t)
	srv := startServer(t, testConfig(t, db.URL()))
	alice, bob, carol := threeInRoom(t, srv.URL, "kinds", [3]viewport{desktop, laptop, phone})
	bobID, _ := bob.session()
	carolID, _ := carol.session()

	ex := alice.sendKind("2.00", "1", "给小红的", func() {
		alice.do(chromedp.Click(css("#packet-mode-exclusive")))
		pick := fmt.Sprintf(`#packet-to input[data-user-id=%q]`, bobID)
		alice.waitFor("Bob among the online members", fmt.Sprintf(`!!document.querySelector(%q)`, pick))
		alice.do(chromedp.Click(css(pick)))
	})
	carol.waitFor("not for Carol", fmt.Sprintf(`document.querySelector(%q).hasAttribute('data-not-for-me')`, card(ex)))
	bob.waitFor("whom it is for", fmt.Sprintf(`%s.includes('专属红包 · 给 小红')`, cardText(ex)))
	bob.openCard(ex)
	if got := bob.grabOpen(); got != 200 {
		t.Fatalf("Bob got %d of the exclusive packet, want 200", got)
	}
	bob.waitBalance(10200)
	bob.closeOverlay()

	pw := alice.sendKind("3.00", "2", "口令红包", func() {
		alice.do(chromedp.Click(css("#packet-mode-password")))
		alice.setValue("#packet-password", "芝麻开门")
	})
	bob.openCard(pw)
	bob.waitFor("the password form", `!document.querySelector('#open-password').hidden`)
	bob.do(chromedp.SendKeys(css("#open-password-input"), "芝麻关门"), chromedp.Click(css("#open-password-send")))
	bob.waitFor("wrong_password", `document.querySelector('#open-result').dataset.error === 'wrong_password'`)
	bob.waitFor("the form to take another try", `!document.querySelector('#open-password-send').disabled`)
	bob.setValue("#open-password-input", "芝麻开门")
	bob.do(chromedp.Click(css("#open-password-send")))
	bob.waitFor("his share", `Number(document.querySelector('#open-result').dataset.amount) > 0 && !document.querySelector('#open-result').dataset.error`)
	bobShare := int64(eval[float64](bob, `Number(document.querySelector('#open-result').dataset.amount)`))
	bob.waitBalance(10200 + bobShare)
	bob.closeOverlay()
	carol.chat("芝麻开门")
	alice.waitFor("Carol's phrase said in the room", seesChat(carolID, "芝麻开门"))
	carol.waitBalance(10000 + 300 - bobShare)

	cd := alice.sendKind("1.00", "1", "三秒后开抢", func() {
		alice.do(chromedp.Click(css("#packet-countdown-on")))
		alice.setValue("#packet-countdown", "3")
		alice.setValue("#packet-countdown-unit", "s")
	})
	carol.openCard(cd)
	carol.waitForWithin("開 to open by itself", `!document.querySelector('#open-button').disabled &&
		!document.querySelector('#open-overlay').hasAttribute('data-waiting')`, 20*time.Second)
	if got := carol.grabOpen(); got != 100 {
		t.Fatalf("Carol got %d of the countdown packet, want 100", got)
	}
	carol.waitBalance(10000 + 300 - bobShare + 100)
	carol.closeOverlay()
	alice.waitBalance(10000 - 200 - 300 - 100)

	// My red packets: Alice's three, newest first, and the year's totals;
	// Carol's two shares on her received tab.
	alice.openDialog("#my-button", "#my-dialog")
	alice.waitFor("the year's totals", `document.querySelector('#my-total-sent').dataset.fen === "600" &&
		document.querySelector('#my-count-sent').textContent === '3 个'`)
	rows := `[...document.querySelectorAll('#my-list [data-packet-id]')].map((e) => e.dataset.packetId)`
	if got := eval[[]string](alice, rows); len(got) != 3 || got[0] != cd || got[1] != pw || got[2] != ex {
		alice.fail("sent packets %v, want %v", got, []string{cd, pw, ex})
	}
	carol.openDialog("#my-button", "#my-dialog")
	carol.do(chromedp.Click(css("#my-tab-received")))
	carol.waitFor("her two shares", rows+`.length === 2 && document.querySelector('#my-total-received').dataset.fen === "`+
		fmt.Sprint(300-bobShare+100)+`"`)
	auditClean(t, srv)
	for _, p := range []*page{alice, bob, carol} {
		p.noExceptions()
	}
}

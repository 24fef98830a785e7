package main

// The abuse suite: caps on connections and rooms, limits per user rather
// than per connection, a budget for every frame, security headers, and
// admin credit only to users that exist.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// dialOutcome dials room as token and waits for the first thing that
// happens: a welcome (admitted: it returns 0 and the client) or a close
// (it returns the close code).
func dialOutcome(t *testing.T, s *server, room, token string, header http.Header) (int, *wsClient) {
	t.Helper()
	c, resp, err := dialWS(t, s, room, token, header)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	deadline := time.After(10 * time.Second)
	for {
		if len(c.all("welcome")) > 0 {
			return 0, c
		}
		select {
		case <-c.notify:
		case <-c.closed:
			if len(c.all("welcome")) > 0 {
				return 0, c
			}
			var ce *websocket.CloseError
			if !errors.As(c.closeErr, &ce) {
				t.Fatalf("closed without a close code: %v", c.closeErr)
			}
			return ce.Code, c
		case <-deadline:
			t.Fatal("neither a welcome nor a close within 10s")
		}
	}
}

// admittedAgain redials until the server admits the connection: a cap's
// place comes back once a connection has ended.
func admittedAgain(t *testing.T, s *server, room, token string, refusedWith int) *wsClient {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, c := dialOutcome(t, s, room, token, nil)
		if code == 0 {
			return c
		}
		if code != refusedWith || time.Now().After(deadline) {
			t.Fatalf("redial: closed with %d; want admitted once a place is free", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A 6th connection of one user is refused with 4001, at the default cap;
// when one of the five ends, a new one gets its place.
func TestConnsPerUserCap(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	if cfg.MaxConnsPerUser != 5 {
		t.Fatalf("default per-user cap %d, want 5", cfg.MaxConnsPerUser)
	}
	s := startServer(t, cfg)
	_, tok := session(t, s, "Many")
	var five []*wsClient
	for range 5 {
		five = append(five, mustDial(t, s, "r", tok))
	}
	code, sixth := dialOutcome(t, s, "r", tok, nil)
	if code != 4001 {
		t.Fatalf("6th connection: %d, want 4001", code)
	}
	var ce *websocket.CloseError
	if errors.As(sixth.closeErr, &ce) && !strings.Contains(ce.Text, "too many connections") {
		t.Errorf("close reason %q", ce.Text)
	}
	// Another user is not affected.
	_, other := session(t, s, "Other")
	mustDial(t, s, "r", other)

	five[0].conn.Close()
	admittedAgain(t, s, "r", tok, 4001)
	if n := metricValue(t, s, `hongbao_ws_refused_total{reason="user_conns"}`); n < 1 {
		t.Fatalf("refusals not counted: %v", n)
	}
}

// Connections racing for the last places: exactly the cap get in.
func TestConnsPerUserCapConcurrent(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Racer")
	const n = 15
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i], _ = dialOutcome(t, s, "r", tok, nil) })
	}
	wg.Wait()
	admitted, refused := 0, 0
	for _, c := range codes {
		switch c {
		case 0:
			admitted++
		case 4001:
			refused++
		}
	}
	if admitted != 5 || refused != n-5 {
		t.Fatalf("%d admitted, %d refused with 4001 (codes %v); want 5 and %d", admitted, refused, codes, n-5)
	}
}

// Connections per address: the address is the peer's, or with a trusted
// proxy the forwarded one; a spoofed X-Forwarded-For changes nothing.
func TestConnsPerIPCap(t *testing.T) {
	db, _ := redistest.New(t)
	for _, tc := range []struct {
		name    string
		trusted string
		// wantOther is what a connection forwarded for another address gets
		// once the first address is full.
		wantOther int
	}{
		{"no trusted proxy", "", 4002},
		{"loopback is the trusted proxy", "127.0.0.0/8", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, db.URL())
			cfg.MaxConnsPerIP = 3
			cfg.TrustedProxies = tc.trusted
			s := startServer(t, cfg)
			from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
			var first *wsClient
			for i := range 3 {
				_, tok := session(t, s, fmt.Sprint("u", i))
				code, c := dialOutcome(t, s, "r", tok, from("203.0.113.1"))
				if code != 0 {
					t.Fatalf("connection %d: %d", i, code)
				}
				if first == nil {
					first = c
				}
			}
			_, tok := session(t, s, "fourth")
			if code, _ := dialOutcome(t, s, "r", tok, from("203.0.113.1")); code != 4002 {
				t.Fatalf("4th connection from one address: %d, want 4002", code)
			}
			if code, _ := dialOutcome(t, s, "r", tok, from("203.0.113.2")); code != tc.wantOther {
				t.Fatalf("forwarded for another address: %d, want %d", code, tc.wantOther)
			}
			if tc.wantOther == 0 {
				return
			}
			first.conn.Close()
			admittedAgain(t, s, "r", tok, 4002)
		})
	}
}

// Rooms per instance: a connection that would open one more room is
// refused with 4003; joining a room with members is always allowed; a room
// whose members all left frees its place.
func TestRoomsCap(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.MaxRooms = 2
	s := startServer(t, cfg)
	_, tok := session(t, s, "Roamer")
	mustDial(t, s, "a", tok)
	b := mustDial(t, s, "b", tok)
	if code, _ := dialOutcome(t, s, "c", tok, nil); code != 4003 {
		t.Fatalf("a 3rd room: %d, want 4003", code)
	}
	_, other := session(t, s, "Joiner")
	if code, _ := dialOutcome(t, s, "a", other, nil); code != 0 {
		t.Fatalf("joining an existing room: %d", code)
	}
	b.conn.Close()
	admittedAgain(t, s, "c", tok, 4003)
	if n := metricValue(t, s, `hongbao_ws_refused_total{reason="rooms"}`); n < 1 {
		t.Fatalf("refusals not counted: %v", n)
	}
}

// New rooms per address per minute: the 4th new room is refused with 4004,
// while joining a room that exists still works.
func TestNewRoomsPerIPLimit(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.NewRoomsPerIP = 3
	s := startServer(t, cfg)
	_, tok := session(t, s, "Opener")
	for i := range 3 {
		mustDial(t, s, fmt.Sprint("n", i), tok)
	}
	_, tok2 := session(t, s, "Opener2")
	if code, _ := dialOutcome(t, s, "n3", tok2, nil); code != 4004 {
		t.Fatalf("a 4th new room within a minute: %d, want 4004", code)
	}
	if code, _ := dialOutcome(t, s, "n0", tok2, nil); code != 0 {
		t.Fatalf("joining an existing room: %d", code)
	}
}

// The grab limit is per user: three sockets and REST together get one
// user's burst, not three.
func TestGrabLimitSharedByUserConnections(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.GrabRate, cfg.GrabBurst = 0.001, 6
	cfg.ChatRate, cfg.ChatBurst = 0.001, 3
	s := startServer(t, cfg)
	_, tok := session(t, s, "Greedy")
	socks := []*wsClient{mustDial(t, s, "r", tok), mustDial(t, s, "r", tok), mustDial(t, s, "r", tok)}
	const missing = "0190b4f6-0000-7000-8000-000000000000"
	limited := func(typ string, extra map[string]any, per int) int {
		n := 0
		for _, c := range socks {
			for range per {
				msg := map[string]any{"type": typ}
				for k, v := range extra {
					msg[k] = v
				}
				if r := c.request(msg, 5*time.Second); r.code() == "rate_limited" {
					n++
				}
			}
		}
		return n
	}
	if n := limited("grab", map[string]any{"packet_id": missing}, 4); n != 12-6 {
		t.Fatalf("%d of 12 grabs over 3 sockets rate limited; want 6 (one user's burst is 6)", n)
	}
	var e apiError
	if st := call(t, s, "POST", "/api/v1/packets/"+missing+"/grab", tok, nil, &e); st != http.StatusTooManyRequests || e.Error.Code != "rate_limited" {
		t.Fatalf("REST grab after the sockets spent the user's burst: %d %s", st, e.Error.Code)
	}
	if n := limited("chat", map[string]any{"text": "hi"}, 2); n != 6-3 {
		t.Fatalf("%d of 6 chats over 3 sockets rate limited; want 3", n)
	}
	// Another user has a bucket of its own.
	_, tok2 := session(t, s, "Modest")
	if st := call(t, s, "POST", "/api/v1/packets/"+missing+"/grab", tok2, nil, &e); st != http.StatusNotFound {
		t.Fatalf("another user's grab: %d %s", st, e.Error.Code)
	}
}

// Frames that are no grab or chat spend from the frame budget too, and a
// flood of any of them is closed with 1008, WebSocket pings included.
func TestFrameFloodsClosed(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	for _, tc := range []struct {
		name  string
		frame string // "" sends ping control frames
	}{
		{"ping messages", `{"type":"ping"}`},
		{"unknown type", `{"type":"dance"}`},
		{"not JSON", `hello`},
		{"invalid UTF-8", "\xff\xfe"},
		{"control pings", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, tok := session(t, s, "Flood")
			var pongs atomic.Int64
			c := dialCounting(t, s, "r", tok, &pongs)
			sent := 0
			for ; sent < 2000; sent++ {
				var err error
				if tc.frame == "" {
					err = c.conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second))
				} else {
					err = c.trySend(tc.frame)
				}
				if err != nil {
					break // closed
				}
				select {
				case <-c.closed:
				default:
					continue
				}
				break
			}
			select {
			case <-c.closed:
			case <-time.After(10 * time.Second):
				t.Fatalf("not closed after %d frames", sent)
			}
			var ce *websocket.CloseError
			if !errors.As(c.closeErr, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("closed with %v after %d frames, want 1008", c.closeErr, sent)
			}
			if tc.frame == "" {
				// The budget's burst (40) and what refilled meanwhile, not
				// one pong per ping.
				if n := pongs.Load(); n > 200 {
					t.Fatalf("%d pongs for %d pings", n, sent)
				}
				t.Logf("%d pings sent, %d answered", sent, pongs.Load())
			}
		})
	}
	if n := metricValue(t, s, `hongbao_ws_flood_closed_total`); n < 5 {
		t.Fatalf("flood closes counted: %v, want 5", n)
	}
	if n := metricValue(t, s, `hongbao_rate_limited_total{limit="frame"}`); n < 5 {
		t.Fatalf("frames refused counted: %v", n)
	}
}

// A client that goes over its frame budget now and then is refused the
// excess but not closed: frames served take strikes away again.
func TestFrameBudgetForgivesBursts(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL())) // 20 frames/s, burst 40, 50 strikes
	_, tok := session(t, s, "Bursty")
	c := mustDial(t, s, "r", tok)
	for round := range 3 {
		// Sent back to back, then counted, so a slow machine's round trips
		// do not let the bucket refill in between.
		for i := range 70 {
			c.send(map[string]any{"type": "ping", "ref": fmt.Sprint("b", round, "-", i)})
		}
		limited := 0
		for i := range 70 {
			ref := fmt.Sprint("b", round, "-", i)
			if r := c.waitFor("result", func(f frame) bool { return f.Ref == ref }, 10*time.Second); r.code() == "rate_limited" {
				limited++
			}
		}
		if limited < 20 {
			t.Fatalf("round %d: %d of 70 frames limited, want about 30", round, limited)
		}
		// The budget refills at its rate: 40 frames take 2 s.
		time.Sleep(2100 * time.Millisecond)
	}
	select {
	case <-c.closed:
		t.Fatalf("closed: %v", c.closeErr)
	default:
	}
}

// Every response carries the security headers: the page, the API, errors.
func TestSecurityHeaders(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "H")
	for _, tc := range []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/", "", 200},
		{"GET", "/js/main.js", "", 200},
		{"GET", "/healthz", "", 200},
		{"GET", "/api/v1/me", tok, 200},
		{"GET", "/api/v1/me", "", 401},
		{"GET", "/api/v1/packets/0190b4f6-0000-7000-8000-000000000000", tok, 404},
		{"POST", "/api/v1/sessions", "", 400},
		{"GET", "/ws?room=bad%20room", "", 400},
		{"GET", "/no/such/file", "", 404},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader("{"))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
			"connect-src 'self' ws://" + strings.TrimPrefix(s.URL, "http://")} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s %s: CSP %q lacks %q", tc.method, tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s %s: CSP %q allows unsafe sources", tc.method, tc.path, csp)
		}
		for name, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
			"X-Xss-Protection":       "0",
		} {
			if got := h.Get(name); got != want {
				t.Errorf("%s %s: %s %q, want %q", tc.method, tc.path, name, got, want)
			}
		}
		// Plain HTTP: no HSTS, which only means something over TLS.
		if got := h.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s %s: HSTS over plain HTTP: %q", tc.method, tc.path, got)
		}
	}
	// Behind a TLS-terminating proxy: HSTS, for this host only.
	req, _ := http.NewRequest("GET", s.URL+"/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("HSTS behind TLS: %q", got)
	}
}

// Admin credit to a user id nobody has used is refused with not_found,
// unless the request says create; a user with a wallet (or, in ledger mode,
// only a claim not committed yet) is known.
func TestAdminCreditUnknownUser(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			cfg := mode.config(t, db.URL())
			cfg.StartingBalance = -1 // guests start with no wallet
			s := startServer(t, cfg)
			credit := func(body map[string]any) (int, apiError, map[string]any) {
				var out struct {
					apiError
					Credited bool  `json:"credited"`
					Balance  int64 `json:"balance"`
				}
				st := call(t, s, "POST", "/api/v1/admin/credit", testAdmin, body, &out)
				return st, out.apiError, map[string]any{"credited": out.Credited, "balance": out.Balance}
			}
			if st, e, _ := credit(map[string]any{"user_id": "typo-user", "amount": 500}); st != 404 || e.Error.Code != "not_found" {
				t.Fatalf("credit to an unknown user: %d %+v", st, e)
			}
			if st, e, _ := credit(map[string]any{"user_id": "typo-user", "amount": -5}); st != 400 || e.Error.Code != "invalid_amount" {
				t.Fatalf("a bad amount to an unknown user: %d %+v", st, e)
			}
			if st, e, _ := credit(map[string]any{"user_id": "typo-user", "amount": 500, "create": "yes"}); st != 400 || e.Error.Code != "invalid_request" {
				t.Fatalf("create of the wrong type: %d %+v", st, e)
			}
			if rep := auditClean(t, s); rep.Funded != 0 {
				t.Fatalf("refused credits funded %d", rep.Funded)
			}
			st, e, out := credit(map[string]any{"user_id": "new-user", "amount": 500, "create": true, "ref": "c1"})
			if st != 200 || out["credited"] != true || out["balance"] != int64(500) {
				t.Fatalf("credit with create: %d %+v %v", st, e, out)
			}
			// Now known: no create needed, and the ref still holds.
			if st, _, out := credit(map[string]any{"user_id": "new-user", "amount": 500, "ref": "c1"}); st != 200 || out["credited"] != false {
				t.Fatalf("the same credit again: %d %v", st, out)
			}
			if st, _, out := credit(map[string]any{"user_id": "new-user", "amount": 100}); st != 200 || out["balance"] != int64(600) {
				t.Fatalf("credit to a known user: %d %v", st, out)
			}

			// A guest with no wallet becomes known by grabbing a share.
			sender, senderTok := session(t, s, "Sender")
			if st, _, _ := credit(map[string]any{"user_id": sender.ID, "amount": 1000}); st != 404 {
				t.Fatalf("a guest that never held money: %d, want 404", st)
			}
			if st, _, _ := credit(map[string]any{"user_id": sender.ID, "amount": 1000, "create": true}); st != 200 {
				t.Fatalf("fund the sender: %d", st)
			}
			grabber, grabberTok := session(t, s, "Grabber")
			p := newPacket(t, s, senderTok, "r", map[string]any{"kind": "lucky", "total": 100, "count": 1})
			var g map[string]any
			if st := call(t, s, "POST", "/api/v1/packets/"+p.ID+"/grab", grabberTok, nil, &g); st != 200 {
				t.Fatalf("grab: %d %v", st, g)
			}
			if st, e, _ := credit(map[string]any{"user_id": grabber.ID, "amount": 1}); st != 200 {
				t.Fatalf("credit to a user who grabbed: %d %+v", st, e)
			}
			auditClean(t, s)
		})
	}
}

// The demo page works under its CSP: it joins, connects and chats, and the
// browser reports no violation (noExceptions fails on any; every browser
// test checks that).
func TestBrowserPageUnderCSP(t *testing.T) {
	chromiumPath(t)
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	br := newBrowser(t)
	p := br.newPage("csp", s.URL, desktop)
	p.join("csp", "小明")
	id, _ := p.session()
	p.chat("你好")
	p.waitFor("the chat message", seesChat(id, "你好"))
	if csp := eval[string](p, `fetch('/').then((r) => r.headers.get('content-security-policy') ?? '')`); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("the page is served with CSP %q", csp)
	}
	p.noExceptions()
}

// dialCounting is mustDial with a pong handler that counts pongs, set before
// the client starts reading.
func dialCounting(t *testing.T, s *server, room, token string, pongs *atomic.Int64) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?room=" + room + "&token=" + token
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	c := &wsClient{t: t, conn: conn, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.readLoop()
	c.waitFor("welcome", nil, 5*time.Second)
	return c
}

// metricValue reads one series from /metrics (0 when absent).
func metricValue(t *testing.T, s *server, series string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return 0
}

// The cap settings reach the server, and a bad value stops startup.
func TestCapSettings(t *testing.T) {
	for _, tc := range []struct {
		env, value string
		got        func(Config) float64
		want       float64
	}{
		{"HONGBAO_MAX_CONNS_PER_USER", "2", func(c Config) float64 { return float64(c.MaxConnsPerUser) }, 2},
		{"HONGBAO_MAX_CONNS_PER_IP", "-1", func(c Config) float64 { return float64(c.MaxConnsPerIP) }, -1},
		{"HONGBAO_MAX_ROOMS", "7", func(c Config) float64 { return float64(c.MaxRooms) }, 7},
		{"HONGBAO_NEW_ROOMS_PER_IP", "9", func(c Config) float64 { return float64(c.NewRoomsPerIP) }, 9},
		{"HONGBAO_FRAME_RATE", "2.5", func(c Config) float64 { return c.FrameRate }, 2.5},
		{"HONGBAO_FRAME_BURST", "11", func(c Config) float64 { return float64(c.FrameBurst) }, 11},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			c, err := parseConfig(nil, io.Discard)
			if err != nil || tc.got(c) != tc.want {
				t.Fatalf("%s=%s: %v, %v", tc.env, tc.value, tc.got(c), err)
			}
			t.Setenv(tc.env, "many")
			if _, err := parseConfig(nil, io.Discard); exitCode(err) != 2 || !strings.Contains(err.Error(), tc.env) {
				t.Fatalf("%s=many: %v", tc.env, err)
			}
		})
	}
}

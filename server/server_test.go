package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// Two instances on one Redis behave as one server, with wallets in Redis
// or in the ledger.
func TestTwoInstancesOneRedis(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			cfg := mode.config(t, db.URL())
			raceTwoInstances(t, startServer(t, cfg), startServer(t, cfg))
		})
	}
}

// member is one racing client.
type member struct {
	c   *wsClient
	tok string
	id  string
}

// raceOutcome is what raceTwoInstances leaves: the packet, its sender's
// token, the racers and what each won.
type raceOutcome struct {
	packetID, senderTok string
	members             []member
	won                 map[string]int64
}

// raceTwoInstances has 200 clients, half on each instance, race for a
// 50-share packet, and checks that everyone sees every event once and is
// paid exactly what they were told.
func raceTwoInstances(t *testing.T, a, b *server) raceOutcome {
	_, senderTok := session(t, a, "Sender")
	const room = "race"
	const clients = 200
	members := make([]member, clients)
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			u, tok := session(t, s, fmt.Sprintf("c%d", i))
			members[i] = member{c: mustDial(t, s, room, tok), tok: tok, id: u.ID}
		}(i)
	}
	wg.Wait()

	p := newPacket(t, a, senderTok, room, map[string]any{"kind": "lucky", "total": 5000, "count": 50})
	for i, m := range members {
		m.c.waitFor("packet", func(f frame) bool { return strings.Contains(string(f.Packet), p.ID) }, 5*time.Second)
		if n := len(m.c.all("packet")); n != 1 {
			t.Fatalf("client %d got the packet event %d times", i, n)
		}
	}

	results := make([]frame, clients)
	for i := range members {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = members[i].c.request(map[string]any{"type": "grab", "packet_id": p.ID}, 10*time.Second)
		}(i)
	}
	wg.Wait()
	won := map[string]int64{}
	var sum int64
	for i, r := range results {
		switch {
		case r.OK:
			won[members[i].id] = r.Amount
			sum += r.Amount
		case r.code() != "sold_out":
			t.Errorf("client %d: %s", i, r.Raw)
		}
	}
	if len(won) != 50 || sum != 5000 {
		t.Fatalf("%d winners sharing %d fen, want 50 sharing 5000", len(won), sum)
	}
	// Every client sees every grab exactly once (in the grabbed event of
	// its batch), and the finish.
	grabs := func(c *wsClient) []grab {
		var out []grab
		for _, f := range c.all("grabbed") {
			out = append(out, f.Grabs...)
		}
		return out
	}
	for i, m := range members {
		m.c.waitFor("finished", func(f frame) bool { return f.PacketID == p.ID }, 5*time.Second)
		// Grabs settled on the other instance may publish after the finish.
		deadline := time.Now().Add(5 * time.Second)
		for len(grabs(m.c)) < 50 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		seen := map[string]int{}
		for _, g := range grabs(m.c) {
			seen[g.User.ID]++
			if g.Amount != won[g.User.ID] {
				t.Fatalf("client %d: grabbed event says %s got %d, result said %d", i, g.User.ID, g.Amount, won[g.User.ID])
			}
		}
		if len(seen) != 50 {
			t.Fatalf("client %d saw %d distinct grabs, want 50", i, len(seen))
		}
		for u, n := range seen {
			if n != 1 {
				t.Fatalf("client %d saw %s's grab %d times", i, u, n)
			}
		}
		fs := m.c.all("finished")
		if len(fs) != 1 {
			t.Fatalf("client %d saw finished %d times", i, len(fs))
		}
		if !strings.Contains(string(fs[0].Raw), `"remaining":0`) {
			t.Fatalf("client %d: finished %s, want remaining 0", i, fs[0].Raw)
		}
	}
	// Wallets match claims.
	var detail struct {
		Claims []struct {
			User   struct{ ID string } `json:"user"`
			Amount int64               `json:"amount"`
		} `json:"claims"`
		Packet struct {
			Status string `json:"status"`
		} `json:"packet"`
	}
	call(t, b, "GET", "/api/v1/packets/"+p.ID, senderTok, nil, &detail)
	if len(detail.Claims) != 50 || detail.Packet.Status != "empty" {
		t.Fatalf("detail: %d claims, status %s", len(detail.Claims), detail.Packet.Status)
	}
	for i, m := range members {
		if b := meMoneyReaches(t, a, m.tok, 10000+won[m.id]); b != 10000+won[m.id] {
			t.Fatalf("client %d owns %d, won %d", i, b, won[m.id])
		}
	}
	rep := auditClean(t, a)
	if rep.Claims != 50 && !a.store.HasLedger() { // a ledger's audit counts live packets only
		t.Fatalf("audit counted %d claims", rep.Claims)
	}
	return raceOutcome{packetID: p.ID, senderTok: senderTok, members: members, won: won}
}

// A rain reaches clients on both instances with its schedule; grabs before
// a packet's visible_at are refused with not_yet; each packet is announced
// as it drops.
func TestRainAcrossInstances(t *testing.T) {
	db, _ := redistest.New(t)
	a := startServer(t, testConfig(t, db.URL()))
	b := startServer(t, testConfig(t, db.URL()))
	_, hostTok := session(t, a, "Host")
	_, tokA := session(t, a, "OnA")
	_, tokB := session(t, b, "OnB")
	ca := mustDial(t, a, "live", tokA)
	cb := mustDial(t, b, "live", tokB)

	var out struct {
		Rain struct {
			ID       string `json:"id"`
			StartsAt int64  `json:"starts_at"`
			EndsAt   int64  `json:"ends_at"`
			Packets  []struct {
				ID        string `json:"id"`
				VisibleAt int64  `json:"visible_at"`
			} `json:"packets"`
		} `json:"rain"`
	}
	status := call(t, a, "POST", "/api/v1/rooms/live/rains", hostTok, map[string]any{
		"packets": 10, "total_per_packet": 100, "count_per_packet": 5, "duration_seconds": 2,
	}, &out)
	if status != http.StatusCreated || len(out.Rain.Packets) != 10 {
		t.Fatalf("rain: %d %+v", status, out)
	}
	if d := out.Rain.EndsAt - out.Rain.StartsAt; d != 2000 {
		t.Fatalf("rain lasts %d ms", d)
	}
	for i, p := range out.Rain.Packets {
		if p.VisibleAt < out.Rain.StartsAt || p.VisibleAt >= out.Rain.EndsAt {
			t.Fatalf("packet %d drops at %d outside [%d, %d)", i, p.VisibleAt, out.Rain.StartsAt, out.Rain.EndsAt)
		}
	}
	for _, c := range []*wsClient{ca, cb} {
		f := c.waitFor("rain", nil, 5*time.Second)
		if !strings.Contains(string(f.Rain), out.Rain.ID) || !strings.Contains(string(f.Rain), out.Rain.Packets[9].ID) {
			t.Fatalf("rain event lacks the schedule: %s", f.Raw)
		}
	}
	last := out.Rain.Packets[9]
	r := cb.request(map[string]any{"type": "grab", "packet_id": last.ID}, 5*time.Second)
	if r.OK || r.code() != "not_yet" {
		t.Fatalf("early grab: %s", r.Raw)
	}
	// Each packet is announced when it drops; grab them from both sides.
	for _, p := range out.Rain.Packets {
		for _, c := range []*wsClient{ca, cb} {
			c.waitFor("packet", func(f frame) bool { return strings.Contains(string(f.Packet), p.ID) }, 8*time.Second)
			if r := c.request(map[string]any{"type": "grab", "packet_id": p.ID}, 5*time.Second); !r.OK {
				t.Fatalf("grab of dropped packet: %s", r.Raw)
			}
		}
	}
	auditClean(t, a)
}

// Bad input over REST gets the documented code and status.
func TestRESTBadInput(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Alice")
	expired := mintToken(t, "someone", -time.Hour)
	foreign := mintTokenWith(t, "another-secret-0123456789abcdef0", "someone", time.Hour)
	tests := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "GET", "/api/v1/me", "", nil, 401, "unauthorized"},
		{"garbage token", "GET", "/api/v1/me", "nope", nil, 401, "unauthorized"},
		{"expired token", "GET", "/api/v1/me", expired, nil, 401, "unauthorized"},
		{"foreign secret", "GET", "/api/v1/me", foreign, nil, 401, "unauthorized"},
		{"bad json", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":`, 400, "invalid_request"},
		{"empty body", "POST", "/api/v1/rooms/r/packets", tok, ``, 400, "invalid_request"},
		{"array body", "POST", "/api/v1/rooms/r/packets", tok, `[1]`, 400, "invalid_request"},
		{"string total", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":"100","count":1}`, 400, "invalid_request"},
		{"fractional total", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":10.5,"count":1}`, 400, "invalid_amount"},
		{"exponent total", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":1e3,"count":1}`, 400, "invalid_amount"},
		{"zero total", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":0,"count":1}`, 400, "invalid_amount"},
		{"negative total", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":-100,"count":1}`, 400, "invalid_amount"},
		{"huge total", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":99999999999999999999999,"count":1}`, 400, "invalid_amount"},
		{"missing count", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":100}`, 400, "invalid_count"},
		{"zero count", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":100,"count":0}`, 400, "invalid_count"},
		{"too many shares", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":100000,"count":1001}`, 400, "invalid_count"},
		{"share too small", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":2,"count":3}`, 400, "share_too_small"},
		{"uneven", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"equal","total":100,"count":3}`, 400, "uneven_total"},
		{"equal share too large", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"equal","total":40002,"count":2}`, 400, "share_too_large"},
		{"total too large", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":40001,"count":2}`, 400, "total_too_large"},
		{"insufficient", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":20000,"count":1}`, 409, "insufficient_funds"},
		{"bad kind", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"fair","total":100,"count":1}`, 400, "invalid_request"},
		{"greeting control", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":100,"count":1,"greeting":"a\u0007"}`, 400, "invalid_request"},
		{"greeting long", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":100,"count":1,"greeting":"` + strings.Repeat("红", 65) + `"}`, 400, "invalid_request"},
		{"ttl too long", "POST", "/api/v1/rooms/r/packets", tok, `{"kind":"lucky","total":100,"count":1,"ttl_seconds":300000}`, 400, "invalid_request"},
		{"bad room", "POST", "/api/v1/rooms/a%20b/packets", tok, `{"kind":"lucky","total":100,"count":1}`, 400, "invalid_request"},
		{"unknown packet", "GET", "/api/v1/packets/0190b4f6-0000-7000-8000-000000000000", tok, nil, 404, "not_found"},
		{"grab unknown", "POST", "/api/v1/packets/nope/grab", tok, nil, 404, "not_found"},
		{"bad limit", "GET", "/api/v1/rooms/r/packets?limit=0", tok, nil, 400, "invalid_request"},
		{"bad status", "GET", "/api/v1/rooms/r/packets?status=weird", tok, nil, 400, "invalid_request"},
		{"empty name", "POST", "/api/v1/sessions", "", `{"name":"  "}`, 400, "invalid_request"},
		{"name wrong type", "POST", "/api/v1/sessions", "", `{"name":5}`, 400, "invalid_request"},
		{"name bad utf8", "POST", "/api/v1/sessions", "", "{\"name\":\"a\xff\"}", 400, "invalid_request"},
		{"admin without token", "POST", "/api/v1/admin/credit", tok, `{"user_id":"x","amount":100}`, 401, "unauthorized"},
		{"admin negative", "POST", "/api/v1/admin/credit", testAdmin, `{"user_id":"x","amount":-100}`, 400, "invalid_amount"},
		{"admin fraction", "POST", "/api/v1/admin/credit", testAdmin, `{"user_id":"x","amount":0.5}`, 400, "invalid_amount"},
		{"unknown route", "GET", "/api/v1/nothing", tok, nil, 404, "not_found"},
		{"rain too big", "POST", "/api/v1/rooms/r/rains", tok, `{"packets":1000,"total_per_packet":100,"count_per_packet":1,"duration_seconds":5}`, 400, "invalid_count"},
		{"rain too long", "POST", "/api/v1/rooms/r/rains", tok, `{"packets":2,"total_per_packet":100,"count_per_packet":1,"duration_seconds":100000}`, 400, "invalid_request"},
		{"rain unaffordable", "POST", "/api/v1/rooms/r/rains", tok, `{"packets":100,"total_per_packet":1000,"count_per_packet":1,"duration_seconds":5}`, 409, "insufficient_funds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e apiError
			status := call(t, s, tt.method, tt.path, tt.token, tt.body, &e)
			if status != tt.status || e.Error.Code != tt.code || e.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", status, e.Error, tt.status, tt.code)
			}
		})
	}
	if b := meBalance(t, s, tok); b != 10000 {
		t.Fatalf("refused requests moved money: balance %d", b)
	}
	auditClean(t, s)
}

// Bad input over WebSocket gets the documented error, result or close code.
func TestWebSocketBadInput(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.GrabRate, cfg.GrabBurst = 5, 5
	s := startServer(t, cfg)
	_, tok := session(t, s, "Alice")

	// Refused upgrades.
	for _, tt := range []struct {
		name, room, token string
		origin            string
		status            int
	}{
		{"bad token", "r", "nope", "", 401},
		{"expired token", "r", mintToken(t, "x", -time.Hour), "", 401},
		{"foreign origin", "r", tok, "http://evil.example", 403},
		{"bad room", "a%20b", tok, "", 400},
		{"no room", "", tok, "", 400},
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		_, resp, err := dialWS(t, s, tt.room, tt.token, h)
		if err == nil || resp == nil || resp.StatusCode != tt.status {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Errorf("%s: upgrade gave %d (%v), want %d", tt.name, code, err, tt.status)
		}
	}
	// Same origin is accepted.
	h := http.Header{"Origin": []string{s.URL}}
	if _, _, err := dialWS(t, s, "r", tok, h); err != nil {
		t.Fatalf("same-origin dial: %v", err)
	}

	c := mustDial(t, s, "r", tok)
	c.send("not json")
	if f := c.waitFor("error", nil, 2*time.Second); f.code() != "invalid_request" {
		t.Fatalf("bad json: %s", f.Raw)
	}
	for _, tt := range []struct {
		msg  map[string]any
		code string
	}{
		{map[string]any{"type": "dance"}, "invalid_request"},
		{map[string]any{"type": "grab"}, "invalid_request"},
		{map[string]any{"type": "grab", "packet_id": "nope"}, "not_found"},
		{map[string]any{"type": "grab", "packet_id": 5}, "invalid_request"},
		{map[string]any{"type": "chat", "text": ""}, "invalid_request"},
		{map[string]any{"type": "chat", "text": strings.Repeat("话", 501)}, "invalid_request"},
		{map[string]any{"type": "chat", "text": "bell\a"}, "invalid_request"},
	} {
		r := c.request(tt.msg, 2*time.Second)
		if r.OK || r.code() != tt.code {
			t.Errorf("%v: %s, want %s", tt.msg, r.Raw, tt.code)
		}
	}
	if r := c.request(map[string]any{"type": "chat", "text": "你好"}, 2*time.Second); !r.OK {
		t.Fatalf("chat: %s", r.Raw)
	}
	c.waitFor("chat", func(f frame) bool { return f.Text == "你好" }, 2*time.Second)

	// A flood is rate limited, then closed.
	limited := 0
	for i := 0; i < 30; i++ {
		if r := c.request(map[string]any{"type": "grab", "packet_id": "0190b4f6-0000-7000-8000-000000000000"}, 2*time.Second); r.code() == "rate_limited" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("no grab was rate limited")
	}

	// An oversize frame closes the connection with 1009.
	big := mustDial(t, s, "r", tok)
	big.send(`{"type":"chat","text":"` + strings.Repeat("x", 10000) + `"}`)
	<-big.closed
	var ce *websocket.CloseError
	if !errors.As(big.closeErr, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversize frame: closed with %v, want 1009", big.closeErr)
	}
	auditClean(t, s)
}

// A client that floods past FloodStrikes is closed with 1008.
func TestWebSocketFloodCloses(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Flooder")
	c := mustDial(t, s, "r", tok)
	for i := 0; i < 200; i++ {
		c.send(map[string]any{"type": "chat", "text": "spam"})
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("flooder not closed")
	}
	var ce *websocket.CloseError
	if !errors.As(c.closeErr, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("flood closed with %v, want 1008", c.closeErr)
	}
}

// A client that never reads is evicted; the others keep receiving.
func TestSlowClientEvicted(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.SendQueue = 8
	cfg.ChatRate, cfg.ChatBurst = 100000, 100000
	cfg.FrameRate, cfg.FrameBurst = 100000, 100000
	s := startServer(t, cfg)
	_, tok := session(t, s, "Fast")
	_, slowTok := session(t, s, "Slow")
	fast := mustDial(t, s, "r", tok)

	// The slow client completes the handshake and then never reads.
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?room=r&token=" + slowTok
	d := websocket.Dialer{ReadBufferSize: 256}
	slow, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// Shrink the slow client's socket buffer so the server's writes back up.
	if tc, ok := slow.UnderlyingConn().(interface{ SetReadBuffer(int) error }); ok {
		_ = tc.SetReadBuffer(1024)
	}

	text := strings.Repeat("话", 490)
	for i := 0; i < 20000; i++ {
		r := fast.request(map[string]any{"type": "chat", "text": fmt.Sprint(i, text)}, 5*time.Second)
		if !r.OK && r.code() != "rate_limited" {
			t.Fatalf("chat %d: %s", i, r.Raw)
		}
		if r.code() == "rate_limited" {
			time.Sleep(100 * time.Millisecond)
		}
		if s.hubConnections() == 1 {
			break
		}
	}
	if n := s.hubConnections(); n != 1 {
		t.Fatalf("%d connections, want the slow one evicted", n)
	}
	// The fast client still gets everything that follows.
	r := fast.request(map[string]any{"type": "chat", "text": "after"}, 5*time.Second)
	if !r.OK {
		time.Sleep(time.Second)
		r = fast.request(map[string]any{"type": "chat", "text": "after"}, 5*time.Second)
	}
	fast.waitFor("chat", func(f frame) bool { return f.Text == "after" }, 5*time.Second)
}

func (s *server) hubConnections() int {
	n, _ := s.hub.Stats()
	return n
}

// Shutdown closes every WebSocket with 1001 and returns promptly.
func TestGracefulShutdown(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Alice")
	c := mustDial(t, s, "r", tok)
	start := time.Now()
	if err := s.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	<-c.closed
	var ce *websocket.CloseError
	if !errors.As(c.closeErr, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("closed with %v, want 1001", c.closeErr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// The expiry sweeper's finished event reaches the room, and the sender is refunded.
func TestExpiryFinishedEvent(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Alice")
	c := mustDial(t, s, "r", tok)
	p := newPacket(t, s, tok, "r", map[string]any{"kind": "equal", "total": 300, "count": 3, "ttl_seconds": 1})
	f := c.waitFor("finished", func(f frame) bool { return f.PacketID == p.ID }, 5*time.Second)
	if f.Reason != "expired" || !strings.Contains(string(f.Raw), `"remaining":3`) {
		t.Fatalf("finished: %s, want expired with the 3 shares nobody took", f.Raw)
	}
	if b := meBalance(t, s, tok); b != 10000 {
		t.Fatalf("balance after refund %d", b)
	}
	auditClean(t, s)
}

// Health, readiness and metrics.
func TestOperationalEndpoints(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Alice")
	c := mustDial(t, s, "r", tok)
	p := newPacket(t, s, tok, "r", map[string]any{"kind": "lucky", "total": 100, "count": 2})
	c.request(map[string]any{"type": "grab", "packet_id": p.ID}, 2*time.Second)
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		resp, err := http.Get(s.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics with the admin token: %v %v", resp, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	text := string(raw)
	for _, series := range []string{
		"hongbao_hub_connections", "hongbao_hub_rooms", "hongbao_hub_messages_in_total", "hongbao_hub_messages_out_total",
		`hongbao_grabs_total{result="ok"}`, "hongbao_grab_duration_seconds_bucket", "hongbao_hub_broadcast_fanout_seconds",
		"hongbao_hub_broker_published_total", "hongbao_hub_broker_received_total", "hongbao_hub_slow_client_evictions_total",
	} {
		if !strings.Contains(text, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

// The embedded demo mode runs the same flow on miniredis.
func TestEmbeddedModeSmoke(t *testing.T) {
	cfg := testConfig(t, "")
	s := startServer(t, cfg)
	if s.mini == nil {
		t.Fatal("not in embedded mode")
	}
	_, tokA := session(t, s, "Alice")
	_, tokB := session(t, s, "Bob")
	ca := mustDial(t, s, "lobby", tokA)
	cb := mustDial(t, s, "lobby", tokB)
	p := newPacket(t, s, tokA, "lobby", map[string]any{"kind": "lucky", "total": 1000, "count": 2})
	cb.waitFor("packet", nil, 2*time.Second)
	r := cb.request(map[string]any{"type": "grab", "packet_id": p.ID}, 2*time.Second)
	if !r.OK || r.Amount < 1 {
		t.Fatalf("grab: %s", r.Raw)
	}
	ca.waitFor("grabbed", func(f frame) bool { return f.PacketID == p.ID }, 2*time.Second)
	if r := ca.request(map[string]any{"type": "grab", "packet_id": p.ID}, 2*time.Second); !r.OK {
		t.Fatalf("second grab: %s", r.Raw)
	}
	cb.waitFor("finished", func(f frame) bool { return f.PacketID == p.ID && f.Reason == "empty" }, 2*time.Second)
	ca.request(map[string]any{"type": "chat", "text": "谢谢老板"}, 2*time.Second)
	cb.waitFor("chat", nil, 2*time.Second)
	ca.waitFor("presence", func(f frame) bool { return f.Online == 2 }, 5*time.Second)
	if mine := rawGet(t, s, "/api/v1/me/packets", tokA); !strings.Contains(mine, p.ID) {
		t.Fatalf("/me/packets: %s", mine)
	}
	if sum := rawGet(t, s, "/api/v1/me/summary", tokA); !strings.Contains(sum, `"sent":{"total":1000,"count":1}`) {
		t.Fatalf("/me/summary: %s", sum)
	}
	auditClean(t, s)
}

// The container HEALTHCHECK command asks a running server.
func TestHealthcheckCommand(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	addr := strings.TrimPrefix(s.URL, "http://")
	if err := healthcheck([]string{"-addr", addr}); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	_ = s.stop(t)
	if err := healthcheck([]string{"-addr", addr}); err == nil {
		t.Fatal("stopped server reported healthy")
	}
}

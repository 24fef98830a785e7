package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/hongbao-dev/hongbao/web"
)

// grabAs grabs packet id over REST with body (nil: none) and returns the
// status and the error code ("" on success) with the amount.
func grabAs(t *testing.T, s *server, tok, id string, body any) (int, string, int64) {
	t.Helper()
	var out struct {
		Amount int64 `json:"amount"`
		apiError
	}
	st := call(t, s, "POST", "/api/v1/packets/"+id+"/grab", tok, body, &out)
	return st, out.Error.Code, out.Amount
}

func wantGrab(t *testing.T, s *server, what, tok, id string, body any, status int, code string) int64 {
	t.Helper()
	st, c, amount := grabAs(t, s, tok, id, body)
	if st != status || c != code {
		t.Fatalf("%s: %d %q, want %d %q", what, st, c, status, code)
	}
	auditClean(t, s)
	return amount
}

func wsGrab(t *testing.T, c *wsClient, id, password string) frame {
	t.Helper()
	msg := map[string]any{"type": "grab", "packet_id": id}
	if password != "" {
		msg["password"] = password
	}
	return c.request(msg, 5*time.Second)
}

// packetOf decodes the packet of a packet event.
func packetOf(t *testing.T, f frame) packet.State {
	t.Helper()
	var p packet.State
	if err := json.Unmarshal(f.Packet, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// An exclusive packet for Bob refuses Carol with not_for_you and pays Bob,
// over REST and WebSocket; the room sees whom it is for, by name.
func TestExclusivePacket(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			s := startServer(t, mode.config(t, db.URL()))
			_, alice := session(t, s, "Alice")
			bob, bobTok := session(t, s, "Bob")
			_, carolTok := session(t, s, "Carol")
			// Dave comes from the app's own users: his name is learnt from
			// his token when he connects.
			daveTok, err := web.NewTokens([]byte(testSecret), time.Hour).Issue(packet.User{ID: "app:dave", Name: "Dave"}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if st := call(t, s, "POST", "/api/v1/admin/credit", testAdmin, map[string]any{"user_id": "app:dave", "amount": 100, "create": true}, nil); st != 200 {
				t.Fatalf("credit dave: %d", st)
			}
			carolWS, bobWS := mustDial(t, s, "r", carolTok), mustDial(t, s, "r", bobTok)
			mustDial(t, s, "r", daveTok)

			p := newPacket(t, s, alice, "r", map[string]any{"kind": "equal", "total": 300, "count": 3, "to": []string{bob.ID, "app:dave"}})
			want := []packet.User{{ID: bob.ID, Name: "Bob"}, {ID: "app:dave", Name: "Dave"}}
			if fmt.Sprint(p.To) != fmt.Sprint(want) {
				t.Fatalf("to: %+v, want %+v", p.To, want)
			}
			ev := packetOf(t, carolWS.waitFor("packet", func(f frame) bool { return packetOf(t, f).ID == p.ID }, 5*time.Second))
			if fmt.Sprint(ev.To) != fmt.Sprint(want) {
				t.Fatalf("packet event to: %+v", ev.To)
			}
			auditClean(t, s)
			wantGrab(t, s, "carol over REST", carolTok, p.ID, nil, 403, "not_for_you")
			if r := wsGrab(t, carolWS, p.ID, ""); r.OK || r.code() != "not_for_you" {
				t.Fatalf("carol over WebSocket: %s", r.Raw)
			}
			auditClean(t, s)
			if a := wantGrab(t, s, "bob over REST", bobTok, p.ID, nil, 200, ""); a != 100 {
				t.Fatalf("bob got %d", a)
			}
			if r := wsGrab(t, bobWS, p.ID, ""); r.OK || r.code() != "already_grabbed" {
				t.Fatalf("bob again over WebSocket: %s", r.Raw)
			}
			p2 := newPacket(t, s, alice, "r", map[string]any{"kind": "lucky", "total": 100, "count": 1, "to": []string{bob.ID}})
			if r := wsGrab(t, bobWS, p2.ID, ""); !r.OK || r.Amount != 100 {
				t.Fatalf("bob over WebSocket: %s", r.Raw)
			}
			auditClean(t, s)
			var d struct {
				Packet packet.State `json:"packet"`
			}
			if st := call(t, s, "GET", "/api/v1/packets/"+p.ID, carolTok, nil, &d); st != 200 || fmt.Sprint(d.Packet.To) != fmt.Sprint(want) {
				t.Fatalf("detail: %d %+v", st, d.Packet)
			}

			refused := []struct {
				name   string
				body   map[string]any
				status int
				code   string
			}{
				{"unknown user", map[string]any{"kind": "lucky", "total": 100, "count": 1, "to": []string{bob.ID, "g-nobody"}}, 404, "not_found"},
				{"with password", map[string]any{"kind": "lucky", "total": 100, "count": 1, "to": []string{bob.ID}, "password": "x"}, 400, "invalid_request"},
			}
			for _, r := range refused {
				var e apiError
				if st := call(t, s, "POST", "/api/v1/rooms/r/packets", alice, r.body, &e); st != r.status || e.Error.Code != r.code {
					t.Fatalf("%s: %d %+v", r.name, st, e.Error)
				}
				if r.code == "not_found" && !strings.Contains(e.Error.Message, "g-nobody") {
					t.Fatalf("not_found does not name the user: %q", e.Error.Message)
				}
			}
			if b := meBalance(t, s, alice); b != 10000-400 {
				t.Fatalf("alice's balance %d", b)
			}
			auditClean(t, s)
		})
	}
}

// A password packet refuses a wrong or missing phrase with wrong_password,
// which is no grab: the same user then grabs with the right one. The phrase
// is compared after NFC normalisation.
func TestPasswordPacket(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			s := startServer(t, mode.config(t, db.URL()))
			_, alice := session(t, s, "Alice")
			_, bobTok := session(t, s, "Bob")
			_, carolTok := session(t, s, "Carol")
			carolWS := mustDial(t, s, "r", carolTok)
			p := newPacket(t, s, alice, "r", map[string]any{"kind": "equal", "total": 200, "count": 2, "password": "café"})
			if p.Password != "café" {
				t.Fatalf("password shown as %q", p.Password)
			}
			auditClean(t, s)
			wantGrab(t, s, "wrong phrase", bobTok, p.ID, map[string]string{"password": "cafe"}, 403, "wrong_password")
			wantGrab(t, s, "no phrase", bobTok, p.ID, nil, 403, "wrong_password")
			wantGrab(t, s, "bad body", bobTok, p.ID, `{"password": 5}`, 400, "invalid_request")
			if a := wantGrab(t, s, "decomposed phrase", bobTok, p.ID, map[string]string{"password": "cafe\u0301"}, 200, ""); a != 100 {
				t.Fatalf("bob got %d", a)
			}
			if r := wsGrab(t, carolWS, p.ID, "CAFÉ"); r.OK || r.code() != "wrong_password" {
				t.Fatalf("carol, wrong phrase over WebSocket: %s", r.Raw)
			}
			if r := wsGrab(t, carolWS, p.ID, "café"); !r.OK || r.Amount != 100 {
				t.Fatalf("carol over WebSocket: %s", r.Raw)
			}
			auditClean(t, s)
			if b := meMoney(t, s, bobTok); b != 10100 {
				t.Fatalf("bob owns %d", b)
			}
		})
	}
}

// A countdown packet is announced at creation, refuses grabs with not_yet
// until opens_at and pays after it.
func TestCountdownPacket(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			s := startServer(t, mode.config(t, db.URL()))
			_, alice := session(t, s, "Alice")
			_, bobTok := session(t, s, "Bob")
			bobWS := mustDial(t, s, "r", bobTok)
			opens := time.Now().Add(2 * time.Second).UnixMilli()
			p := newPacket(t, s, alice, "r", map[string]any{"kind": "lucky", "total": 100, "count": 2, "opens_at": opens, "ttl_seconds": 60})
			if p.OpensAt != opens || p.VisibleAt != opens || p.ExpiresAt != opens+60000 {
				t.Fatalf("countdown packet: %+v", p)
			}
			f := bobWS.waitFor("packet", func(f frame) bool { return packetOf(t, f).ID == p.ID }, 5*time.Second)
			if got := packetOf(t, f); got.OpensAt != opens {
				t.Fatalf("packet event: %s", f.Raw)
			}
			if f.at.UnixMilli() >= opens {
				t.Fatalf("the packet event came at %d, not before opens_at %d", f.at.UnixMilli(), opens)
			}
			wantGrab(t, s, "before opens_at", bobTok, p.ID, nil, 425, "not_yet")
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, code, amount := grabAs(t, s, bobTok, p.ID, nil)
				if st == 200 {
					if time.Now().UnixMilli() < opens || amount <= 0 {
						t.Fatalf("paid %d before opens_at", amount)
					}
					break
				}
				if code != "not_yet" || time.Now().After(deadline) {
					t.Fatalf("grab after opens_at: %d %s", st, code)
				}
				time.Sleep(100 * time.Millisecond)
			}
			auditClean(t, s)
		})
	}
}

// Bad kinds are refused with invalid_request and move no money.
func TestKindsBadInput(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, tok := session(t, s, "Alice")
	bob, _ := session(t, s, "Bob")
	ids := make([]string, packet.MaxRecipients+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%d", i)
	}
	many, _ := json.Marshal(ids)
	now := time.Now().UnixMilli()
	base := `{"kind":"lucky","total":100,"count":1,`
	bodies := map[string]string{
		"empty to":          `"to":[]}`,
		"to over 100":       `"to":` + string(many) + `}`,
		"duplicates":        `"to":["` + bob.ID + `","` + bob.ID + `"]}`,
		"non-string to":     `"to":[1,2]}`,
		"to not a list":     `"to":"` + bob.ID + `"}`,
		"bad id":            `"to":["a b"]}`,
		"empty password":    `"password":""}`,
		"33 chars":          `"password":"` + strings.Repeat("码", 33) + `"}`,
		"control password":  `"password":"a\u0007b"}`,
		"format password":   `"password":"a\u202eb"}`,
		"password a number": `"password":123}`,
		"past":              fmt.Sprintf(`"opens_at":%d}`, now-1000),
		"11 minutes":        fmt.Sprintf(`"opens_at":%d}`, now+11*60*1000),
		"opens_at a string": `"opens_at":"soon"}`,
		"opens_at fraction": fmt.Sprintf(`"opens_at":%d.5}`, now+5000),
		"both":              `"to":["` + bob.ID + `"],"password":"x"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			var e apiError
			if st := call(t, s, "POST", "/api/v1/rooms/r/packets", tok, base+body, &e); st != 400 || e.Error.Code != "invalid_request" {
				t.Fatalf("%s: %d %+v", body, st, e.Error)
			}
		})
	}
	if b := meBalance(t, s, tok); b != 10000 {
		t.Fatalf("refused creates moved money: %d", b)
	}
	auditClean(t, s)
}

// An Idempotency-Key replays a create with the new fields, and a body that
// differs only in them is another request.
func TestIdempotentKinds(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			s := startServer(t, mode.config(t, db.URL()))
			_, tok := session(t, s, "Alice")
			bob, _ := session(t, s, "Bob")
			body := `{"kind":"equal","total":200,"count":2,"to":["` + bob.ID + `"]}`
			first := postWithKey(t, s, "/api/v1/rooms/r/packets", tok, "k", body)
			again := postWithKey(t, s, "/api/v1/rooms/r/packets", tok, "k", body)
			if first.status != 201 || again.body != first.body || again.replayed != "true" || !strings.Contains(first.body, `"name":"Bob"`) {
				t.Fatalf("first %+v, again %+v", first, again)
			}
			other := postWithKey(t, s, "/api/v1/rooms/r/packets", tok, "k", `{"kind":"equal","total":200,"count":2,"password":"x"}`)
			if other.status != http.StatusConflict {
				t.Fatalf("same key, other kind: %+v", other)
			}
			if b := meBalance(t, s, tok); b != 10000-200 {
				t.Fatalf("balance %d", b)
			}
			auditClean(t, s)
		})
	}
}

// With a ledger, a packet Redis lost is rebuilt with whom it is for, its
// password and its opening time, and refuses and pays as before.
func TestLedgerKeepsKinds(t *testing.T) {
	db, rdb := redistest.New(t)
	cfg := testLedgerConfig(t, db.URL())
	s := startServer(t, cfg)
	_, alice := session(t, s, "Alice")
	bob, bobTok := session(t, s, "Bob")
	_, carolTok := session(t, s, "Carol")
	opens := time.Now().Add(packet.MaxCountdown).UnixMilli()
	ex := newPacket(t, s, alice, "r", map[string]any{"kind": "equal", "total": 200, "count": 2, "to": []string{bob.ID}})
	pw := newPacket(t, s, alice, "r", map[string]any{"kind": "equal", "total": 200, "count": 2, "password": "芝麻开门"})
	cd := newPacket(t, s, alice, "r", map[string]any{"kind": "lucky", "total": 200, "count": 2, "opens_at": opens})
	wantGrab(t, s, "bob before", bobTok, ex.ID, nil, 200, "")
	awaitSettled(t, s, 10*time.Second)
	details := map[string]string{}
	for _, p := range []packet.State{ex, pw, cd} {
		details[p.ID] = rawGet(t, s, "/api/v1/packets/"+p.ID, carolTok)
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, cfg)
	for id, before := range details {
		if after := rawGet(t, s2, "/api/v1/packets/"+id, carolTok); after != before {
			t.Fatalf("detail from the ledger:\n%s\nbefore:\n%s", after, before)
		}
		if err := s2.led.Schedule(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The sweeper rebuilds each packet in Redis; until then a grab finds none.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rdb.Exists(ctx, cfg.KeyPrefix+":{p:"+cd.ID+"}:meta", cfg.KeyPrefix+":{p:"+ex.ID+"}:meta", cfg.KeyPrefix+":{p:"+pw.ID+"}:meta").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 packets rebuilt within 10s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for id, before := range details {
		if after := rawGet(t, s2, "/api/v1/packets/"+id, carolTok); after != before {
			t.Fatalf("detail after the rebuild:\n%s\nbefore:\n%s", after, before)
		}
	}
	wantGrab(t, s2, "carol, exclusive", carolTok, ex.ID, nil, 403, "not_for_you")
	wantGrab(t, s2, "bob again", bobTok, ex.ID, nil, 409, "already_grabbed")
	wantGrab(t, s2, "carol, wrong phrase", carolTok, pw.ID, map[string]string{"password": "芝麻"}, 403, "wrong_password")
	wantGrab(t, s2, "carol, right phrase", carolTok, pw.ID, map[string]string{"password": "芝麻开门"}, 200, "")
	wantGrab(t, s2, "carol, countdown", carolTok, cd.ID, nil, 425, "not_yet")
}

// The embedded demo Redis runs the kinds' scripts too (cjson, SMISMEMBER).
func TestKindsEmbeddedMode(t *testing.T) {
	s := startServer(t, testConfig(t, ""))
	if s.mini == nil {
		t.Fatal("not in embedded mode")
	}
	_, alice := session(t, s, "Alice")
	bob, bobTok := session(t, s, "Bob")
	_, carolTok := session(t, s, "Carol")
	ex := newPacket(t, s, alice, "r", map[string]any{"kind": "lucky", "total": 100, "count": 2, "to": []string{bob.ID}})
	if len(ex.To) != 1 || ex.To[0].Name != "Bob" {
		t.Fatalf("to: %+v", ex.To)
	}
	wantGrab(t, s, "carol", carolTok, ex.ID, nil, 403, "not_for_you")
	wantGrab(t, s, "bob", bobTok, ex.ID, nil, 200, "")
	pw := newPacket(t, s, alice, "r", map[string]any{"kind": "equal", "total": 100, "count": 1, "password": "é"})
	wantGrab(t, s, "carol, wrong", carolTok, pw.ID, map[string]string{"password": "e"}, 403, "wrong_password")
	wantGrab(t, s, "carol, right", carolTok, pw.ID, map[string]string{"password": "e\u0301"}, 200, "")
}

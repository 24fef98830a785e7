package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// waitUsersChannel polls until n instances listen on the user channel (a
// publish to a user nobody is reports how many subscribers got it).
func waitUsersChannel(t *testing.T, s *server, n int64) {
	t.Helper()
	ch := s.cfg.KeyPrefix + ":{users}:events"
	publish := s.rdb.Publish
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
		publish = s.rdb.SPublish
	}
	deadline := time.Now().Add(10 * time.Second)
	for publish(context.Background(), ch, "nobody\n{}").Val() < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d instances subscribed to %s", n, ch)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type meTotals struct {
	Sent struct {
		Total int64 `json:"total"`
		Count int64 `json:"count"`
	} `json:"sent"`
	Received struct {
		Total int64 `json:"total"`
		Count int64 `json:"count"`
	} `json:"received"`
	Refunded int64 `json:"refunded"`
	Pending  struct {
		Count int64 `json:"count"`
	} `json:"pending"`
}

// A packet that expires with money left: its sender hears "refunded" on
// each of their connections, in two rooms on two instances, with the
// amount /me shows as refunded; another member of the room does not. Both
// modes, and Redis-only on a Redis Cluster (sharded pub/sub, every script
// on its own slot).
func TestRefundedReachesTheSenderEverywhere(t *testing.T) {
	onCluster := func(t testing.TB, _ string) Config {
		return testConfig(t, strings.Join(redistest.NewCluster(t).Options().Addrs, ","))
	}
	for _, mode := range append(modes[:len(modes):len(modes)], struct {
		name   string
		config func(t testing.TB, redisURL string) Config
	}{"redis-cluster", onCluster}) {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			cfg := mode.config(t, db.URL())
			// With a ledger a packet is first due PendingGrace after its
			// create, unless a grab makes it due SettleGrace after: each
			// packet here is grabbed, so that it expires on time.
			cfg.SettleGrace = 200 * time.Millisecond
			a, b := startServer(t, cfg), startServer(t, cfg)
			waitUsersChannel(t, a, 2)
			_, alice := session(t, a, "Alice")
			_, bob := session(t, b, "Bob")
			conns := []*wsClient{mustDial(t, a, "r1", alice), mustDial(t, b, "r2", alice)}
			other := mustDial(t, b, "r1", bob)

			p := newPacket(t, a, alice, "r1", map[string]any{"kind": "equal", "total": 300, "count": 3, "ttl_seconds": 1})
			if r := other.request(map[string]any{"type": "grab", "packet_id": p.ID}, 5*time.Second); !r.OK || r.Amount != 100 {
				t.Fatalf("grab: %s", r.Raw)
			}
			q := newPacket(t, b, bob, "r1", map[string]any{"kind": "equal", "total": 60, "count": 2, "ttl_seconds": 2})
			if r := conns[1].request(map[string]any{"type": "grab", "packet_id": q.ID}, 5*time.Second); !r.OK || r.Amount != 30 {
				t.Fatalf("grab: %s", r.Raw)
			}
			for i, c := range conns {
				f := c.waitFor("refunded", nil, 10*time.Second)
				var ev struct {
					PacketID string `json:"packet_id"`
					Room     string `json:"room"`
					Amount   int64  `json:"amount"`
					At       int64  `json:"at"`
				}
				if err := json.Unmarshal(f.Raw, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.PacketID != p.ID || ev.Room != "r1" || ev.Amount != 200 || ev.At < p.ExpiresAt {
					t.Fatalf("connection %d: %s", i, f.Raw)
				}
			}
			// Bob hears of his own refund, and of nobody else's.
			other.waitFor("refunded", func(f frame) bool { return f.PacketID == q.ID }, 10*time.Second)
			for _, f := range other.all("refunded") {
				if f.PacketID != q.ID || f.Amount != 30 {
					t.Fatalf("Bob got %s", f.Raw)
				}
			}
			for _, s := range []*server{a, b} {
				var me meTotals
				if st := call(t, s, "GET", "/api/v1/me", alice, nil, &me); st != 200 || me.Refunded != 200 {
					t.Fatalf("/me: %d %+v", st, me)
				}
			}
			for i, c := range conns {
				if n := len(c.all("refunded")); n != 1 {
					t.Fatalf("connection %d got %d refunded events", i, n)
				}
			}
			auditClean(t, a)
		})
	}
}

// getPage is one GET of a list: its items and X-Next-Cursor.
func getPage(t *testing.T, s *server, path, token string, out any) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %s: %v", path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("X-Next-Cursor")
}

type sentJSON struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Total           int64  `json:"total"`
	RemainingCount  int    `json:"remaining_count"`
	RemainingAmount int64  `json:"remaining_amount"`
	Refunded        *int64 `json:"refunded"`
}

type summaryJSON struct {
	Year     int `json:"year"`
	Sent     struct{ Total, Count int64 }
	Received struct{ Total, Count int64 }
	Refunded struct{ Total, Count int64 }
}

// /me/packets pages through everything a user sent, newest first, each as
// it stands; /me/summary adds up the year; bad parameters are refused.
func TestMyPacketsAndSummary(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			cfg := mode.config(t, db.URL())
			cfg.SettleGrace = 200 * time.Millisecond // see TestRefundedReachesTheSenderEverywhere
			s := startServer(t, cfg)
			waitUsersChannel(t, s, 1)
			_, alice := session(t, s, "Alice")
			_, bob := session(t, s, "Bob")
			ca := mustDial(t, s, "r", alice)
			cb := mustDial(t, s, "r", bob)

			var sent []string // oldest first
			for i := range 45 {
				body := map[string]any{"kind": "equal", "total": 20, "count": 2}
				if i == 0 {
					body["ttl_seconds"] = 1
				}
				sent = append(sent, newPacket(t, s, alice, "r", body).ID)
			}
			expiring, emptied, active := sent[0], sent[1], sent[44]
			for range 2 {
				_, tok := session(t, s, "grabber")
				g := mustDial(t, s, "r", tok)
				if r := g.request(map[string]any{"type": "grab", "packet_id": emptied}, 5*time.Second); !r.OK {
					t.Fatalf("grab: %s", r.Raw)
				}
			}
			if r := cb.request(map[string]any{"type": "grab", "packet_id": expiring}, 5*time.Second); !r.OK {
				t.Fatalf("grab: %s", r.Raw)
			}
			bobs := newPacket(t, s, bob, "r", map[string]any{"kind": "equal", "total": 30, "count": 1})
			if r := ca.request(map[string]any{"type": "grab", "packet_id": bobs.ID}, 5*time.Second); !r.OK {
				t.Fatalf("grab: %s", r.Raw)
			}
			ca.waitFor("refunded", func(f frame) bool { return f.PacketID == expiring && f.Amount == 10 }, 10*time.Second)

			var got []sentJSON
			cursor := ""
			for i, want := range []int{20, 20, 5} {
				var page []sentJSON
				path := "/api/v1/me/packets?limit=20"
				if cursor != "" {
					path += "&cursor=" + cursor
				}
				st, next := getPage(t, s, path, alice, &page)
				if st != 200 || len(page) != want || (next == "") != (i == 2) {
					t.Fatalf("page %d: status %d, %d packets, next %q", i, st, len(page), next)
				}
				got, cursor = append(got, page...), next
			}
			byID := map[string]sentJSON{}
			for i, p := range got {
				if p.ID != sent[44-i] {
					t.Fatalf("packet %d is %s, want %s (newest first)", i, p.ID, sent[44-i])
				}
				byID[p.ID] = p
			}
			check := func(id, status string, remaining int, refunded *int64) {
				t.Helper()
				p := byID[id]
				if p.Status != status || p.RemainingCount != remaining || !reflect.DeepEqual(p.Refunded, refunded) {
					t.Fatalf("packet %s: %+v, want %s with %d left and refunded %v", id, p, status, remaining, refunded)
				}
			}
			ten, zero := int64(10), int64(0)
			check(expiring, "expired", 0, &ten)
			check(emptied, "empty", 0, &zero)
			check(active, "active", 2, nil)

			// The year's totals match /me, once every claim is committed.
			year := time.Now().UTC().Year()
			for _, u := range []struct {
				tok  string
				want [6]int64
			}{
				{alice, [6]int64{45 * 20, 45, 30, 1, 10, 1}},
				{bob, [6]int64{30, 1, 10, 1, 0, 0}},
			} {
				deadline := time.Now().Add(10 * time.Second)
				for {
					var sum summaryJSON
					if st, _ := getPage(t, s, "/api/v1/me/summary", u.tok, &sum); st != 200 {
						t.Fatalf("summary: %d", st)
					}
					have := [6]int64{sum.Sent.Total, sum.Sent.Count, sum.Received.Total, sum.Received.Count,
						sum.Refunded.Total, sum.Refunded.Count}
					if have == u.want && sum.Year == year {
						var me meTotals
						call(t, s, "GET", "/api/v1/me", u.tok, nil, &me)
						if me.Sent.Total != have[0] || me.Received.Total != have[2] || me.Refunded != have[4] {
							t.Fatalf("summary %+v disagrees with /me %+v", sum, me)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("summary %+v, want %v", sum, u.want)
					}
					time.Sleep(50 * time.Millisecond)
				}
				var old summaryJSON
				if st, _ := getPage(t, s, "/api/v1/me/summary?year=1999", u.tok, &old); st != 200 ||
					old != (summaryJSON{Year: 1999}) {
					t.Fatalf("1999: %d %+v", st, old)
				}
				var this summaryJSON
				getPage(t, s, fmt.Sprintf("/api/v1/me/summary?year=%d", year), u.tok, &this)
				if this.Year != year || this.Sent.Count != u.want[1] {
					t.Fatalf("year=%d: %+v", year, this)
				}
			}

			for _, path := range []string{
				"/api/v1/me/packets?limit=0", "/api/v1/me/packets?limit=101", "/api/v1/me/packets?limit=x",
				"/api/v1/me/packets?cursor=nonsense", "/api/v1/me/packets?cursor=MTox",
				"/api/v1/me/summary?year=abc", "/api/v1/me/summary?year=20260", "/api/v1/me/summary?year=1800",
				"/api/v1/me/summary?year=-200",
			} {
				var e apiError
				if st := call(t, s, "GET", path, alice, nil, &e); st != 400 || e.Error.Code != "invalid_request" {
					t.Fatalf("%s: %d %+v", path, st, e)
				}
			}
			var none []sentJSON
			if st, next := getPage(t, s, "/api/v1/me/packets", mustSession(t, s), &none); st != 200 || len(none) != 0 || next != "" {
				t.Fatalf("a user who sent nothing: %d %v %q", st, none, next)
			}
			auditClean(t, s)
		})
	}
}

func mustSession(t *testing.T, s *server) string {
	t.Helper()
	_, tok := session(t, s, "Carol")
	return tok
}

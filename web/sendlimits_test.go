package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testClock is a settable clock for the sending limits' day and minute.
type testClock struct{ ms atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ms.Store(t.UnixMilli())
	return c
}
func (c *testClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *testClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// limitsStack is a served stack whose sending limits count in its Redis,
// with lim's limits and clock.
func limitsStack(t *testing.T, lim Config, clock *testClock) *stack {
	wc := stackConfig()
	wc.DailySendTotal, wc.DailySendCount = lim.DailySendTotal, lim.DailySendCount
	wc.RoomPacketsPerMinute, wc.MaxPacketTotal = lim.RoomPacketsPerMinute, lim.MaxPacketTotal
	wc.Now = clock.now
	return newStack(t, stackOptions{web: wc, serve: true, counters: true})
}

// post POSTs body to path with token (and an Idempotency-Key when key is
// set), and returns the status and the error code ("" on success).
func (s *stack) post(t *testing.T, path, token, key string, body any) (int, string, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

func packetBody(total, count int) map[string]any {
	return map[string]any{"kind": "lucky", "total": total, "count": count}
}

func rainBody(packets, total int) map[string]any {
	return map[string]any{"packets": packets, "total_per_packet": total, "count_per_packet": 1, "duration_seconds": 1}
}

// sendLimited is hongbao_send_limited_total{limit}.
func sendLimited(reg *prometheus.Registry, limit string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "hongbao_send_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// step is one create and what it must answer.
type step struct {
	name       string
	path, key  string
	body       map[string]any
	status     int
	code, says string // says: a phrase the error message must hold
	advance    time.Duration
}

func runSteps(t *testing.T, s *stack, clock *testClock, token string, steps []step) {
	t.Helper()
	for _, st := range steps {
		clock.advance(st.advance)
		status, code, msg := s.post(t, st.path, token, st.key, st.body)
		if status != st.status || code != st.code || !strings.Contains(msg, st.says) {
			t.Fatalf("%s: %d %q %q, want %d %q saying %q", st.name, status, code, msg, st.status, st.code, st.says)
		}
		s.auditClean(t)
	}
}

// A sender at the daily limit gets daily_limit, by total and by count; a
// rain counts as its packets; the limit resets at 00:00 UTC; a retried
// Idempotency-Key counts once; a create refused later (no money) gives its
// reservation back.
func TestDailyLimit(t *testing.T) {
	const room = "/api/v1/rooms/daily/packets"
	const rains = "/api/v1/rooms/daily/rains"
	t.Run("total", func(t *testing.T) {
		clock := newTestClock(time.Date(2026, 2, 16, 23, 0, 0, 0, time.UTC))
		s := limitsStack(t, Config{DailySendTotal: 1000, DailySendCount: -1, RoomPacketsPerMinute: -1}, clock)
		_, tok := s.user(t, "alice", 100000)
		runSteps(t, s, clock, tok, []step{
			{name: "first", path: room, body: packetBody(600, 3), status: 201},
			{name: "over the total", path: room, body: packetBody(500, 1), status: 429, code: "daily_limit", says: "daily total limit of ¥10.00"},
			{name: "says when it resets", path: room, body: packetBody(401, 1), status: 429, code: "daily_limit", says: "resets at 00:00 UTC (in 1h0m0s)"},
			{name: "up to the limit", path: room, body: packetBody(400, 1), status: 201},
			{name: "one fen more", path: room, body: packetBody(1, 1), status: 429, code: "daily_limit"},
			{name: "a rain that would cross it", path: rains, body: rainBody(2, 1), status: 429, code: "daily_limit"},
			{name: "the next UTC day", path: room, body: packetBody(1000, 1), status: 201, advance: time.Hour},
			{name: "a rain that would cross it, next day", path: rains, body: rainBody(2, 1), status: 429, code: "daily_limit"},
		})
		if got := sendLimited(s.reg, "daily_total"); got != 5 {
			t.Errorf("hongbao_send_limited_total{limit=daily_total} = %v, want 5", got)
		}
	})
	t.Run("count", func(t *testing.T) {
		clock := newTestClock(time.Date(2026, 2, 16, 12, 0, 0, 0, time.UTC))
		s := limitsStack(t, Config{DailySendTotal: -1, DailySendCount: 5, RoomPacketsPerMinute: -1}, clock)
		_, tok := s.user(t, "bob", 100000)
		_, poor := s.user(t, "carol", 10)
		runSteps(t, s, clock, tok, []step{
			{name: "one packet", path: room, key: "k1", body: packetBody(100, 2), status: 201},
			{name: "its retry counts once", path: room, key: "k1", body: packetBody(100, 2), status: 201},
			{name: "a rain of 5 crosses the count", path: rains, body: rainBody(5, 10), status: 429, code: "daily_limit", says: "daily count limit of 5 packets"},
			{name: "a rain of 4 fills it", path: rains, body: rainBody(4, 10), status: 201},
			{name: "one more packet", path: room, body: packetBody(100, 1), status: 429, code: "daily_limit", says: "5 sent today"},
			{name: "the retry still answers", path: room, key: "k1", body: packetBody(100, 2), status: 201},
			{name: "a reused key for another body", path: room, key: "k1", body: packetBody(200, 2), status: 409, code: "idempotency_conflict"},
			{name: "still at the limit", path: room, body: packetBody(100, 1), status: 429, code: "daily_limit"},
		})
		// Refused for want of money: the count is given back.
		for i := range 3 {
			if status, code, _ := s.post(t, room, poor, "", packetBody(1000, 1)); code != "insufficient_funds" {
				t.Fatalf("poor %d: %d %s", i, status, code)
			}
		}
		for i := range 5 {
			if status, code, msg := s.post(t, room, poor, "", packetBody(1, 1)); status != 201 {
				t.Fatalf("poor %d after refusals: %d %s %s", i, status, code, msg)
			}
		}
		s.auditClean(t)
	})
}

// Concurrent creates cannot together pass the daily limit.
func TestDailyLimitConcurrent(t *testing.T) {
	clock := newTestClock(time.Now())
	s := limitsStack(t, Config{DailySendTotal: -1, DailySendCount: 7, RoomPacketsPerMinute: -1}, clock)
	_, tok := s.user(t, "dave", 100000)
	var wg sync.WaitGroup
	var ok, limited atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			status, code, _ := s.post(t, fmt.Sprintf("/api/v1/rooms/c%d/packets", i%4), tok, "", packetBody(10, 1))
			switch {
			case status == 201:
				ok.Add(1)
			case code == "daily_limit":
				limited.Add(1)
			default:
				t.Errorf("create: %d %s", status, code)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 7 || limited.Load() != 33 {
		t.Errorf("%d created, %d limited; want 7 and 33", ok.Load(), limited.Load())
	}
	w, err := s.store.Wallet(t.Context(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	if w.SentCount != 7 || w.Balance != 100000-70 {
		t.Errorf("wallet: sent %d, balance %d; want 7 and %d", w.SentCount, w.Balance, 100000-70)
	}
	s.auditClean(t)
}

// A room takes at most RoomPacketsPerMinute creates a minute, whoever
// sends them; other rooms are not affected; the next minute it takes
// more. A create above MaxPacketTotal is total_too_large.
func TestRoomRateAndMaxTotal(t *testing.T) {
	clock := newTestClock(time.Date(2026, 2, 16, 12, 0, 5, 0, time.UTC))
	s := limitsStack(t, Config{DailySendTotal: -1, DailySendCount: -1, RoomPacketsPerMinute: 3, MaxPacketTotal: 5000}, clock)
	_, alice := s.user(t, "alice", 100000)
	_, bob := s.user(t, "bob", 100000)
	const busy = "/api/v1/rooms/busy/packets"
	runSteps(t, s, clock, alice, []step{
		{name: "1", path: busy, body: packetBody(100, 1), status: 201},
		{name: "2", path: busy, body: packetBody(100, 1), status: 201},
		{name: "a rain counts as one", path: "/api/v1/rooms/busy/rains", body: rainBody(3, 10), status: 201},
		{name: "4", path: busy, body: packetBody(100, 1), status: 429, code: "room_rate_limited", says: "try again in 55s"},
		{name: "another room", path: "/api/v1/rooms/quiet/packets", body: packetBody(100, 1), status: 201},
		{name: "above the max total", path: "/api/v1/rooms/quiet/packets", body: packetBody(5001, 1), status: 400, code: "total_too_large", says: "at most ¥50.00"},
		{name: "a rain's packet above it", path: "/api/v1/rooms/quiet/rains", body: rainBody(2, 5001), status: 400, code: "total_too_large"},
		{name: "at the max total", path: "/api/v1/rooms/quiet/packets", body: packetBody(5000, 1), status: 201},
	})
	if status, code, _ := s.post(t, busy, bob, "", packetBody(100, 1)); code != "room_rate_limited" {
		t.Errorf("another sender in the busy room: %d %s", status, code)
	}
	clock.advance(time.Minute)
	if status, code, _ := s.post(t, busy, bob, "", packetBody(100, 1)); status != 201 {
		t.Errorf("the next minute: %d %s", status, code)
	}
	s.auditClean(t)
	for limit, want := range map[string]float64{"room_rate": 2, "max_total": 2} {
		if got := sendLimited(s.reg, limit); got != want {
			t.Errorf("hongbao_send_limited_total{limit=%s} = %v, want %v", limit, got, want)
		}
	}
}

package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// Over REST, in both modes, each sending limit refuses with its own code
// and moves no money: the audit is clean after every step.
func TestSendingLimits(t *testing.T) {
	db, _ := redistest.New(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cfg := m.config(t, db.URL())
			cfg.DailySendTotal, cfg.DailySendCount = 3000, 4
			cfg.RoomPacketsPerMinute, cfg.MaxPacketTotal = 3, 2500
			s := startServer(t, cfg)
			_, alice := session(t, s, "alice")
			_, bob := session(t, s, "bob")
			for _, st := range []struct {
				name, token, path string
				body              map[string]any
				status            int
				code, says        string
			}{
				{"above the max total", alice, "/api/v1/rooms/a/packets", map[string]any{"kind": "lucky", "total": 2501, "count": 1}, 400, "total_too_large", "at most ¥25.00"},
				{"first", alice, "/api/v1/rooms/a/packets", map[string]any{"kind": "lucky", "total": 2000, "count": 2}, 201, "", ""},
				{"past the daily total", alice, "/api/v1/rooms/b/packets", map[string]any{"kind": "equal", "total": 1002, "count": 2}, 429, "daily_limit", "daily total limit of ¥30.00"},
				{"a rain past the daily total", alice, "/api/v1/rooms/b/rains", map[string]any{"packets": 2, "total_per_packet": 600, "count_per_packet": 1, "duration_seconds": 1}, 429, "daily_limit", "resets at 00:00 UTC"},
				{"a rain within it", alice, "/api/v1/rooms/b/rains", map[string]any{"packets": 2, "total_per_packet": 100, "count_per_packet": 1, "duration_seconds": 1}, 201, "", ""},
				{"a rain past the daily count", alice, "/api/v1/rooms/b/rains", map[string]any{"packets": 2, "total_per_packet": 100, "count_per_packet": 1, "duration_seconds": 1}, 429, "daily_limit", "daily count limit of 4 packets"},
				{"the 4th packet", alice, "/api/v1/rooms/b/packets", map[string]any{"kind": "lucky", "total": 100, "count": 1}, 201, "", ""},
				{"the 5th packet", alice, "/api/v1/rooms/b/packets", map[string]any{"kind": "lucky", "total": 1, "count": 1}, 429, "daily_limit", "4 sent today"},
				{"another sender, room a: 2nd this minute", bob, "/api/v1/rooms/a/packets", map[string]any{"kind": "lucky", "total": 100, "count": 1}, 201, "", ""},
				{"room a: 3rd this minute", bob, "/api/v1/rooms/a/packets", map[string]any{"kind": "lucky", "total": 100, "count": 1}, 201, "", ""},
				{"room a: 4th this minute", bob, "/api/v1/rooms/a/packets", map[string]any{"kind": "lucky", "total": 100, "count": 1}, 429, "room_rate_limited", "room \"a\""},
			} {
				var out apiError
				status := call(t, s, "POST", st.path, st.token, st.body, &out)
				if status != st.status || out.Error.Code != st.code || !strings.Contains(out.Error.Message, st.says) {
					t.Fatalf("%s: %d %s %q; want %d %s saying %q", st.name, status, out.Error.Code, out.Error.Message, st.status, st.code, st.says)
				}
				auditClean(t, s)
			}
			var me struct {
				Sent struct{ Total, Count int64 } `json:"sent"`
			}
			call(t, s, "GET", "/api/v1/me", alice, nil, &me)
			if me.Sent.Count != 4 || me.Sent.Total != 2300 {
				t.Errorf("alice sent %d packets, %d fen; want 4 and 2300", me.Sent.Count, me.Sent.Total)
			}
			for limit, want := range map[string]float64{"daily_total": 2, "daily_count": 2, "room_rate": 1, "max_total": 1} {
				series := `hongbao_send_limited_total{limit="` + limit + `"}`
				if got := metricValue(t, s, series); got != want {
					t.Errorf("%s = %v, want %v", series, got, want)
				}
			}
			if status := call(t, s, "GET", "/healthz", "", nil, nil); status != http.StatusOK {
				t.Fatalf("healthz %d", status)
			}
		})
	}
}

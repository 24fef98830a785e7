package packet

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis-only mode: the sender's list pages newest first (ties within one
// millisecond by id), and the yearly totals put each movement in the year
// it happened: sends and refunds by the store's clock, claims by Redis's.
// The refund is paid by a clock already in the next year.
func TestSentPacketsAndSummaryRedis(t *testing.T) {
	var clock atomic.Int64
	cfg := Config{Now: func() time.Time { return time.UnixMilli(clock.Load()) }, SweepLease: time.Millisecond}
	eachBackend(t, cfg, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		start := time.Now()
		year := start.UTC().Year()
		clock.Store(start.UnixMilli())
		fund(t, s, alice.ID, 10000)
		bob := User{ID: "bob", Name: "Bob"}
		var ids []string // oldest first; all created in the same millisecond
		for i := range 4 {
			ttl := time.Hour
			if i == 0 {
				ttl = time.Second
			}
			ids = append(ids, mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: 100, Count: 2, TTL: ttl}).ID)
		}
		g, err := s.Grab(ctx, ids[0], bob)
		if err != nil {
			t.Fatal(err)
		}
		// Expiry is checked against Redis's clock too: sweep until it has
		// passed, each time a second later by the store's (past the lease).
		clock.Store(time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
		deadline := time.Now().Add(10 * time.Second)
		for {
			clock.Add(1000)
			rep, err := s.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Expired) == 1 {
				if rep.Expired[0].Refunded != 50 {
					t.Fatalf("sweep: %+v", rep)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the packet did not expire")
			}
			time.Sleep(50 * time.Millisecond)
		}

		cursor := ""
		for i := range 4 {
			page, next, err := s.SentPackets(ctx, alice.ID, cursor, 1)
			if err != nil || len(page) != 1 || page[0].ID != ids[3-i] || (next == "") != (i == 3) {
				t.Fatalf("page %d: %+v %q %v", i, page, next, err)
			}
			if i == 3 && (page[0].Status != StatusExpired || page[0].Refunded != 50 || page[0].RemainingCount != 0) {
				t.Fatalf("expired packet: %+v", page[0])
			}
			cursor = next
		}
		if _, _, err := s.SentPackets(ctx, alice.ID, "bm9uc2Vuc2U", 1); err == nil {
			t.Fatal("a made-up cursor was accepted")
		}

		claimYear := time.UnixMilli(g.At).UTC().Year()
		for _, tc := range []struct {
			user string
			year int
			want Summary
		}{
			{alice.ID, year, Summary{Sent: Totals{400, 4}}},
			{alice.ID, year + 1, Summary{Refunded: Totals{50, 1}}},
			{alice.ID, 1999, Summary{}},
			{bob.ID, claimYear, Summary{Received: Totals{50, 1}}},
			{bob.ID, 1999, Summary{}},
		} {
			got, err := s.Summary(ctx, tc.user, tc.year)
			tc.want.Year = tc.year
			if err != nil || got != tc.want {
				t.Fatalf("%s in %d: %+v %v, want %+v", tc.user, tc.year, got, err, tc.want)
			}
		}
		auditClean(t, s)
	})
}

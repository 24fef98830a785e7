package packet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Redis is killed (SIGKILL) and restarted from its append-only file while
// grabs race on a hot packet. Every grab that was answered ok is in the
// claims, nothing is paid twice, the sweeper pays what the outage left
// uncredited, and the audit is clean.
//
// With the client's default retries the outage is mostly hidden (and a
// retried grab may find its own claim); without command retries a grab in
// flight at the kill fails and its outcome is unknown to the caller (the
// pool's dial retries still hide most of the downtime).
func TestRedisKilledMidRace(t *testing.T) {
	for _, retries := range []int{0, -1} {
		t.Run(fmt.Sprintf("max-retries=%d", retries), func(t *testing.T) { redisKilledMidRace(t, retries) })
	}
}

func redisKilledMidRace(t *testing.T, retries int) {
	srv, _ := redistest.Durable(t)
	opt := srv.Options(0)
	opt.MaxRetries = retries
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	s := mustStore(t, rdb, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 1000000)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100000, Count: 1000})

	var mu sync.Mutex
	var refused atomic.Int64
	won := map[string]int64{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				time.Sleep(5 * time.Millisecond) // paced, so the outage lands mid-race
				u := User{ID: fmt.Sprintf("w%d-%d", w, i), Name: "u"}
				g, err := s.Grab(ctx, p.ID, u)
				switch {
				case err == nil:
					mu.Lock()
					won[u.ID] = g.Amount
					mu.Unlock()
				case errors.Is(err, ErrSoldOut):
					return
				case errors.Is(err, ErrUnavailable):
					refused.Add(1)
					time.Sleep(10 * time.Millisecond) // Redis is down; the outcome of this grab is unknown
				case errors.Is(err, ErrAlreadyGrabbed):
					// The client library retried a grab whose reply was lost
					// in the crash: the first attempt won, and is paid now.
				default:
					t.Errorf("grab: %v", err)
					return
				}
			}
		}(w)
	}
	time.Sleep(50 * time.Millisecond)
	if err := srv.RestartAfter(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()

	d, err := s.Detail(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	claimed := map[string]int64{}
	for _, c := range d.Claims {
		claimed[c.User.ID] = c.Amount
	}
	for u, amount := range won {
		if claimed[u] != amount {
			t.Fatalf("%s was told it grabbed %d; after the restart its claim is %d", u, amount, claimed[u])
		}
	}
	if len(won) == 0 || len(won) == p.Count || len(claimed) < len(won) {
		t.Fatalf("%d grabs answered ok, %d claims survive", len(won), len(claimed))
	}
	// The sweeper pays what the outage left uncredited.
	rdb.ZAdd(ctx, s.k.due(p.ID), redis.Z{Score: 0, Member: p.ID})
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	rep := auditClean(t, s)
	if rep.Uncredited != 0 {
		t.Fatalf("after the sweep: %s", rep)
	}
	t.Logf("%d grabs answered ok, %d refused as unavailable, %d claims, %s", len(won), refused.Load(), len(claimed), rep)
}

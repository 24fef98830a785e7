package packet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// lpopCalls reads how many LPOP commands Redis has run: the grab script pops
// once per batch, so this counts grab batches.
func lpopCalls(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_lpop:calls=") {
			n, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(line, ",", 2)[0], "cmdstat_lpop:calls="))
			return n
		}
	}
	return 0
}

// Same outcome with and without coalescing; with it, far fewer script calls.
func TestCoalescingBatchesHotGrabs(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) {
			s, rdb := newStore(t, Config{DisableCoalescing: !coalesce})
			ctx := context.Background()
			fund(t, s, alice.ID, 1000000)
			p := mustCreate(t, s, CreateRequest{Room: "hot", Sender: alice, Kind: Lucky, Total: 50000, Count: 500})
			before := lpopCalls(t, rdb)
			var wg sync.WaitGroup
			var won, sold atomic.Int64
			for i := 0; i < 800; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					_, err := s.Grab(ctx, p.ID, User{ID: fmt.Sprint("u", i), Name: "u"})
					switch {
					case err == nil:
						won.Add(1)
					case errors.Is(err, ErrSoldOut):
						sold.Add(1)
					default:
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			if won.Load() != 500 || sold.Load() != 300 {
				t.Fatalf("won %d, sold out %d", won.Load(), sold.Load())
			}
			batches := lpopCalls(t, rdb) - before
			t.Logf("800 grabs in %d script calls", batches)
			if coalesce && batches >= 400 {
				t.Fatalf("800 concurrent grabs took %d script calls: not coalesced", batches)
			}
			auditClean(t, s)
		})
	}
}

// A user who grabs many times at once gets one share, even when the grabs
// land in one batch.
func TestCoalescedDuplicateUser(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 1000, Count: 10})
	var wg sync.WaitGroup
	var won, dup atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Grab(ctx, p.ID, User{ID: "greedy", Name: "G"})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, ErrAlreadyGrabbed):
				dup.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || dup.Load() != 99 {
		t.Fatalf("won %d, already grabbed %d", won.Load(), dup.Load())
	}
	if w := wallet(t, s, "greedy"); w.ReceivedCount != 1 {
		t.Fatalf("greedy: %+v", w)
	}
}

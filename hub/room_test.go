package hub

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedBroker is a MemoryBroker whose Subscribe counts its calls, waits
// for a gate and fails while down is set, standing in for Redis during an
// outage.
type gatedBroker struct {
	*MemoryBroker
	calls atomic.Int32
	down  atomic.Bool
	gate  chan struct{}
}

var errDown = errors.New("redis is down")

func (b *gatedBroker) Subscribe(ctx context.Context, room string) error {
	b.calls.Add(1)
	select {
	case <-b.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.down.Load() {
		return errDown
	}
	return b.MemoryBroker.Subscribe(ctx, room)
}

func roomRefs(h *Hub, name string) int {
	sh := h.shardFor(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if r := sh.rooms[name]; r != nil {
		return r.refs
	}
	return 0
}

// Joiners of one room while Redis is down share one subscribe attempt and
// all get its error; until the backoff ends newcomers are refused without
// an attempt; after it, one attempt succeeds once Redis is back.
func TestJoinersShareOneSubscribeAttempt(t *testing.T) {
	br := &gatedBroker{MemoryBroker: NewMemoryBroker(), gate: make(chan struct{})}
	br.down.Store(true)
	h := New(Config{PresenceInterval: time.Hour}, br, testLogger(), nil)
	ctx := context.Background()
	const joiners = 20
	errs := make(chan error, joiners)
	var wg sync.WaitGroup
	for i := range joiners {
		wg.Go(func() {
			errs <- h.join(ctx, newClient(ctx, h, nil, "room", User{ID: strconv.Itoa(i)}))
		})
	}
	waitFor(t, 5*time.Second, "every joiner to wait on the attempt", func() bool {
		return roomRefs(h, "room") == joiners
	})
	close(br.gate) // from now on Subscribe answers at once
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errDown) {
			t.Fatalf("joiner got %v, want the attempt's error", err)
		}
	}
	if n := br.calls.Load(); n != 1 {
		t.Fatalf("%d subscribe attempts for %d concurrent joiners, want 1", n, joiners)
	}

	// Within the backoff a joiner is refused at once.
	if err := h.join(ctx, newClient(ctx, h, nil, "room", User{ID: "late"})); !errors.Is(err, errRoomBackoff) {
		t.Fatalf("joiner during the backoff: %v, want errRoomBackoff", err)
	}
	if n := br.calls.Load(); n != 1 {
		t.Fatalf("%d attempts after a refused joiner, want 1", n)
	}

	// Redis is back; joiners are refused until the backoff ends, then one
	// attempt lets them in.
	br.down.Store(false)
	var joinErr error
	waitFor(t, 5*time.Second, "a joiner to get in after the backoff", func() bool {
		joinErr = h.join(ctx, newClient(ctx, h, nil, "room", User{ID: "back"}))
		return joinErr == nil || !errors.Is(joinErr, errRoomBackoff)
	})
	if joinErr != nil {
		t.Fatalf("join after the backoff: %v", joinErr)
	}
	if n := br.calls.Load(); n != 2 {
		t.Fatalf("%d attempts in all, want 2 (one failed, one after the backoff)", n)
	}
	if !br.Subscribed("room") {
		t.Fatal("room not subscribed")
	}
	// Once subscribed, joiners take the fast path.
	if err := h.join(ctx, newClient(ctx, h, nil, "room", User{ID: "more"})); err != nil {
		t.Fatal(err)
	}
	if n := br.calls.Load(); n != 2 {
		t.Fatalf("%d attempts, want still 2", n)
	}
}

// A room whose subscribe failed and that nobody joins again is forgotten
// after its backoff, so failed rooms do not pile up.
func TestFailedRoomIsForgotten(t *testing.T) {
	br := &gatedBroker{MemoryBroker: NewMemoryBroker(), gate: make(chan struct{})}
	close(br.gate)
	br.down.Store(true)
	h := New(Config{PresenceInterval: time.Hour}, br, testLogger(), nil)
	ctx := context.Background()
	if err := h.join(ctx, newClient(ctx, h, nil, "gone", User{ID: "u"})); !errors.Is(err, errDown) {
		t.Fatalf("join: %v", err)
	}
	if _, rooms := h.Stats(); rooms != 1 {
		t.Fatalf("%d rooms right after the failure, want 1 (kept for its backoff)", rooms)
	}
	waitFor(t, 10*time.Second, "the failed room to be forgotten", func() bool {
		_, rooms := h.Stats()
		return rooms == 0
	})
}

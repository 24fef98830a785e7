package hub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingBroker counts broker messages on top of a MemoryBroker, and slows
// each publish down so that publishes pile up behind one another.
type countingBroker struct {
	*MemoryBroker
	messages atomic.Int64
}

func (b *countingBroker) Publish(ctx context.Context, room string, msg []byte) error {
	b.messages.Add(1)
	time.Sleep(time.Millisecond)
	return b.MemoryBroker.Publish(ctx, room, msg)
}

// Concurrent publishes to one room go out in fewer broker messages, and
// every frame still reaches every member exactly once, each publisher's
// frames in the order it published them.
func TestPublishCoalescesBursts(t *testing.T) {
	broker := &countingBroker{MemoryBroker: NewMemoryBroker()}
	ts := startHub(t, Config{SendQueue: 100000}, broker)
	c := ts.dial(t, "burst", "u1")
	waitConns(t, ts.hub, 1)

	const publishers, each = 20, 50
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				frame := fmt.Appendf(nil, `{"type":"event","seq":%d}`, p*1000+i)
				if err := ts.hub.Publish(context.Background(), "burst", frame); err != nil {
					t.Error(err)
				}
			}
		}(p)
	}
	wg.Wait()
	last := map[int]int{}
	seen := map[int]bool{}
	for n := 0; n < publishers*each; n++ {
		f := c.next(t, 5*time.Second, "presence")
		if seen[f.Seq] {
			t.Fatalf("frame %d delivered twice", f.Seq)
		}
		seen[f.Seq] = true
		p, i := f.Seq/1000, f.Seq%1000
		if prev, ok := last[p]; ok && i <= prev {
			t.Fatalf("publisher %d: frame %d after %d", p, i, prev)
		}
		last[p] = i
	}
	if extra, ok := c.tryNext(200*time.Millisecond, "presence"); ok {
		t.Fatalf("unexpected frame %s", extra.Raw)
	}
	msgs := broker.messages.Load()
	t.Logf("%d frames in %d broker messages", publishers*each, msgs)
	if msgs >= publishers*each/2 {
		t.Fatalf("%d frames took %d broker messages: not coalesced", publishers*each, msgs)
	}
}

func TestPublishRefusesNewlines(t *testing.T) {
	ts := startHub(t, Config{}, NewMemoryBroker())
	if err := ts.hub.Publish(context.Background(), "r", []byte("{\"a\":1}\n{\"b\":2}")); err == nil {
		t.Fatal("a frame with a newline was accepted")
	}
}

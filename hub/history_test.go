package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// histConfig is the history settings a broker test asks for.
type histConfig struct {
	size, recent int
	ttl, metaTTL time.Duration
}

// brokerKind makes a broker with history settings; the same tests run on
// each, so MemoryBroker keeps Redis's semantics.
type brokerKind struct {
	name string
	// expires says whether keys expire on their own (miniredis's TTLs only
	// move when told to).
	expires bool
	make    func(t *testing.T, hc histConfig) Broker
}

var brokerKinds = []brokerKind{
	{"memory", true, func(t *testing.T, hc histConfig) Broker {
		b := NewMemoryBrokerWith(MemoryBrokerConfig{HistorySize: hc.size, RecentSize: hc.recent, HistoryTTL: hc.ttl, HistoryMetaTTL: hc.metaTTL})
		t.Cleanup(func() { _ = b.Close() })
		return b
	}},
	{"redis", true, func(t *testing.T, hc histConfig) Broker {
		_, rdb := redistest.New(t)
		return historyRedisBroker(t, rdb, hc, false)
	}},
	// The embedded demo Redis of `go run ./server` must run the scripts too.
	{"miniredis", false, func(t *testing.T, hc histConfig) Broker {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		return historyRedisBroker(t, rdb, hc, true)
	}},
}

func historyRedisBroker(t *testing.T, rdb redis.UniversalClient, hc histConfig, noShebang bool) *RedisBroker {
	b := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t), HistorySize: hc.size, RecentSize: hc.recent,
		HistoryTTL: hc.ttl, HistoryMetaTTL: hc.metaTTL, NoShebang: noShebang})
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func forBrokerKinds(t *testing.T, fn func(t *testing.T, k brokerKind)) {
	for _, k := range brokerKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k) })
	}
}

// durable publishes n durable frames {"n":i} one at a time and returns the
// position of the last.
func publishN(t *testing.T, b Broker, room string, from, n int, keep bool) Position {
	t.Helper()
	var pos Position
	for i := from; i < from+n; i++ {
		var err error
		pos, err = b.PublishFrames(context.Background(), room, []Frame{{Data: fmt.Appendf(nil, `{"n":%d}`, i), Durable: true, Keep: keep}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return pos
}

// numbered checks that frames are durable frames of epoch with seqs from
// first on, each {"seq":..,"epoch":..,"n":seq}, and returns their seqs.
func numbered(t *testing.T, frames [][]byte, epoch string, first uint64) {
	t.Helper()
	for i, f := range frames {
		var v struct {
			Seq   uint64 `json:"seq"`
			Epoch string `json:"epoch"`
			N     uint64 `json:"n"`
		}
		if err := json.Unmarshal(f, &v); err != nil {
			t.Fatalf("frame %d %q is not JSON: %v", i, f, err)
		}
		p, ok := framePosition(f)
		if want := first + uint64(i); !ok || p.Seq != want || p.Epoch != epoch || v.Seq != want || v.Epoch != epoch || v.N != want {
			t.Fatalf("frame %d is %s, want seq %d of epoch %s", i, f, want, epoch)
		}
	}
}

func TestBrokerHistoryRecover(t *testing.T) {
	forBrokerKinds(t, func(t *testing.T, k brokerKind) {
		b := k.make(t, histConfig{})
		ctx := context.Background()
		start, err := b.Position(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if start.Seq != 0 || checkEpoch(start.Epoch) != nil {
			t.Fatalf("a new room is at %v, want seq 0 and an epoch", start)
		}
		if again, _ := b.Position(ctx, "r"); again != start {
			t.Fatalf("position moved from %v to %v without a publish", start, again)
		}
		top := publishN(t, b, "r", 1, 5, false)
		if top != (Position{Seq: 5, Epoch: start.Epoch}) {
			t.Fatalf("after 5 frames: %v, want 5 in epoch %s", top, start.Epoch)
		}
		for _, tc := range []struct {
			since Position
			limit int
			want  int // frames, or -1 for ErrHistoryGone
		}{
			{Position{0, start.Epoch}, 100, 5},
			{Position{3, start.Epoch}, 100, 2},
			{Position{5, start.Epoch}, 100, 0},
			{Position{3, start.Epoch}, 2, 2},
			{Position{2, start.Epoch}, 2, -1},   // more than limit missed
			{Position{6, start.Epoch}, 100, -1}, // ahead of the room
			{Position{3, "other"}, 100, -1},     // another epoch
			{Position{}, 100, -1},               // no position at all
		} {
			frames, pos, err := b.Recover(ctx, "r", tc.since, tc.limit)
			if pos != top {
				t.Errorf("Recover(%v): position %v, want %v", tc.since, pos, top)
			}
			if tc.want < 0 {
				if !errors.Is(err, ErrHistoryGone) || len(frames) != 0 {
					t.Errorf("Recover(%v, %d): %d frames, %v; want ErrHistoryGone", tc.since, tc.limit, len(frames), err)
				}
				continue
			}
			if err != nil || len(frames) != tc.want {
				t.Fatalf("Recover(%v, %d): %d frames, %v; want %d", tc.since, tc.limit, len(frames), err, tc.want)
			}
			numbered(t, frames, start.Epoch, tc.since.Seq+1)
		}
	})
}

func TestBrokerHistoryTrimmedByLength(t *testing.T) {
	forBrokerKinds(t, func(t *testing.T, k brokerKind) {
		b := k.make(t, histConfig{size: 5})
		top := publishN(t, b, "r", 1, 8, false)
		if _, _, err := b.Recover(context.Background(), "r", Position{2, top.Epoch}, 100); !errors.Is(err, ErrHistoryGone) {
			t.Fatalf("recover 3..8 from a history of 5: %v, want ErrHistoryGone", err)
		}
		frames, _, err := b.Recover(context.Background(), "r", Position{3, top.Epoch}, 100)
		if err != nil || len(frames) != 5 {
			t.Fatalf("recover 4..8: %d frames, %v", len(frames), err)
		}
		numbered(t, frames, top.Epoch, 4)
	})
}

func TestBrokerHistoryTrimmedByAge(t *testing.T) {
	forBrokerKinds(t, func(t *testing.T, k brokerKind) {
		const ttl = 300 * time.Millisecond
		b := k.make(t, histConfig{ttl: ttl})
		ctx := context.Background()
		old := publishN(t, b, "r", 1, 2, false)
		since := Position{0, old.Epoch}
		if frames, _, err := b.Recover(ctx, "r", since, 100); err != nil || len(frames) != 2 {
			t.Fatalf("fresh history: %d frames, %v", len(frames), err)
		}
		// Past the age cap, with no publish since: gone.
		waitFor(t, 10*time.Second, "old frames to age out", func() bool {
			_, _, err := b.Recover(ctx, "r", since, 100)
			return errors.Is(err, ErrHistoryGone)
		})
		// A new frame is recoverable; the old ones stay gone, and the
		// epoch is the same (the position outlives the history).
		top := publishN(t, b, "r", 3, 1, false)
		if top != (Position{3, old.Epoch}) {
			t.Fatalf("after the history aged out: %v, want 3 in epoch %s", top, old.Epoch)
		}
		if _, _, err := b.Recover(ctx, "r", since, 100); !errors.Is(err, ErrHistoryGone) {
			t.Fatalf("recover aged frames: %v, want ErrHistoryGone", err)
		}
		frames, _, err := b.Recover(ctx, "r", old, 100)
		if err != nil || len(frames) != 1 {
			t.Fatalf("recover the new frame: %d frames, %v", len(frames), err)
		}
		numbered(t, frames, old.Epoch, 3)
	})
}

func TestBrokerHistoryEpochExpires(t *testing.T) {
	forBrokerKinds(t, func(t *testing.T, k brokerKind) {
		if !k.expires {
			t.Skip("keys of this Redis do not expire by themselves")
		}
		const metaTTL = 300 * time.Millisecond
		b := k.make(t, histConfig{ttl: 100 * time.Millisecond, metaTTL: metaTTL})
		old := publishN(t, b, "r", 1, 3, true)
		ctx := context.Background()
		// Time passing is what is tested; polling would read the position
		// and so keep it alive.
		time.Sleep(2 * metaTTL)
		now, err := b.Position(ctx, "r")
		if err != nil || now.Epoch == old.Epoch || now.Seq != 0 {
			t.Fatalf("idle past the meta TTL, the room is at %v (%v), want seq 0 of a new epoch (old %v)", now, err, old)
		}
		if _, _, err := b.Recover(ctx, "r", old, 100); !errors.Is(err, ErrHistoryGone) {
			t.Fatalf("recover from the old epoch: %v, want ErrHistoryGone", err)
		}
		if recent, _, err := b.Recent(ctx, "r"); err != nil || len(recent) != 0 {
			t.Fatalf("recent frames of the old epoch survived: %q, %v", recent, err)
		}
	})
}

func TestBrokerRecentFrames(t *testing.T) {
	forBrokerKinds(t, func(t *testing.T, k brokerKind) {
		b := k.make(t, histConfig{recent: 3})
		ctx := context.Background()
		for i := 1; i <= 6; i++ {
			// Odd frames are kept, even ones only numbered.
			if _, err := b.PublishFrames(ctx, "r", []Frame{{Data: fmt.Appendf(nil, `{"n":%d}`, i), Durable: true, Keep: i%2 == 1}}); err != nil {
				t.Fatal(err)
			}
		}
		publishN(t, b, "r", 7, 1, true)
		recent, pos, err := b.Recent(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if pos.Seq != 7 || len(recent) != 3 {
			t.Fatalf("recent %q at %v, want 3 frames at seq 7", recent, pos)
		}
		for i, want := range []uint64{3, 5, 7} {
			numbered(t, recent[i:i+1], pos.Epoch, want)
		}
	})
}

// A batch is one message: ephemeral frames as they are, durable ones
// numbered in order, an empty object still valid JSON; a frame that is not
// an object is refused before anything is published.
func TestBrokerPublishFramesBatch(t *testing.T) {
	forBrokerKinds(t, func(t *testing.T, k brokerKind) {
		b := k.make(t, histConfig{})
		got := make(chan []byte, 10)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = b.Run(ctx, ReceiverFunc(func(room string, msg []byte) { got <- append([]byte(nil), msg...) }))
		})
		defer func() { cancel(); wg.Wait() }()
		if err := b.Subscribe(context.Background(), "r"); err != nil {
			t.Fatal(err)
		}
		pos, err := b.PublishFrames(context.Background(), "r", []Frame{
			{Data: []byte(`{"type":"a"}`)},
			{Data: []byte(`{"type":"b"}`), Durable: true},
			{Data: []byte(`{ }`), Durable: true},
			{Data: []byte(`{"type":"c"}`)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if pos.Seq != 2 {
			t.Fatalf("last durable frame at %v, want seq 2", pos)
		}
		want := fmt.Sprintf(`{"type":"a"}`+"\n"+`{"seq":1,"epoch":"%s","type":"b"}`+"\n"+`{"seq":2,"epoch":"%s"}`+"\n"+`{"type":"c"}`, pos.Epoch, pos.Epoch)
		select {
		case msg := <-got:
			if string(msg) != want {
				t.Fatalf("message\n%s\nwant\n%s", msg, want)
			}
			for _, f := range strings.Split(string(msg), "\n") {
				if !json.Valid([]byte(f)) {
					t.Fatalf("frame %q is not JSON", f)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
		if _, err := b.PublishFrames(context.Background(), "r", []Frame{{Data: []byte(`[1]`), Durable: true}}); err == nil {
			t.Fatal("a durable array was published")
		}
		if now, _ := b.Position(context.Background(), "r"); now != pos {
			t.Fatalf("a refused publish moved the room to %v", now)
		}
	})
}

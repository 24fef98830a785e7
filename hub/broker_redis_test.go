package hub

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// numSub is how many Redis connections subscribe to ch, sharded or not.
func numSub(t testing.TB, rdb *redis.Client, sharded bool, ch string) int64 {
	t.Helper()
	ctx := context.Background()
	var m map[string]int64
	var err error
	if sharded {
		m, err = rdb.PubSubShardNumSub(ctx, ch).Result()
	} else {
		m, err = rdb.PubSubNumSub(ctx, ch).Result()
	}
	if err != nil {
		t.Fatal(err)
	}
	return m[ch]
}

func forBothModes(t *testing.T, fn func(t *testing.T, sharded bool)) {
	for _, sharded := range []bool{false, true} {
		t.Run("sharded="+strconv.FormatBool(sharded), func(t *testing.T) { fn(t, sharded) })
	}
}

func TestRedisSubscribesOnlyWhileMembersExist(t *testing.T) {
	forBothModes(t, func(t *testing.T, sharded bool) {
		db, rdbA := redistest.New(t)
		rdbB := db.Client()
		t.Cleanup(func() { _ = rdbB.Close() })
		prefix := testPrefix(t)
		ba := NewRedisBroker(rdbA, RedisBrokerConfig{Prefix: prefix, Sharded: sharded})
		bb := NewRedisBroker(rdbB, RedisBrokerConfig{Prefix: prefix, Sharded: sharded})
		a := startHub(t, quiet(), ba)
		b := startHub(t, quiet(), bb)
		ch := ba.Channel("room")
		if want := prefix + ":{r:room}:events"; ch != want {
			t.Fatalf("channel %q, want %q", ch, want)
		}
		sub := func() int64 { return numSub(t, rdbA, sharded, ch) }
		if n := sub(); n != 0 {
			t.Fatalf("subscribed before any member: %d", n)
		}

		a1 := a.dial(t, "room", "a1")
		waitConns(t, a.hub, 1)
		// Serve joins only after Redis acknowledged the subscription.
		if n := sub(); n != 1 {
			t.Fatalf("after first member on A: %d subscribers, want 1", n)
		}
		a2 := a.dial(t, "room", "a2")
		b1 := b.dial(t, "room", "b1")
		waitConns(t, a.hub, 2)
		waitConns(t, b.hub, 1)
		if n := sub(); n != 2 {
			t.Fatalf("two instances with members: %d subscribers, want 2 (one per instance)", n)
		}
		if err := a.hub.Publish(context.Background(), "room", seqFrame(1)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*wsClient{a1, a2, b1} {
			if f := c.next(t, 5*time.Second); f.Seq != 1 {
				t.Fatalf("got %s", f.Raw)
			}
		}

		_ = a1.conn.Close()
		waitConns(t, a.hub, 1)
		if n := sub(); n != 2 {
			t.Fatalf("A still has a member: %d subscribers, want 2", n)
		}
		_ = a2.conn.Close()
		waitConns(t, a.hub, 0)
		waitFor(t, 5*time.Second, "A to unsubscribe", func() bool { return sub() == 1 })
		// The room goes once the Unsubscribe call returns, which may be
		// just after Redis applied it.
		waitFor(t, 5*time.Second, "A to forget the room", func() bool {
			_, rooms := a.hub.Stats()
			return rooms == 0
		})
		_ = b1.conn.Close()
		waitFor(t, 5*time.Second, "B to unsubscribe", func() bool { return sub() == 0 })

		// And back: a newcomer resubscribes.
		a3 := a.dial(t, "room", "a3")
		waitConns(t, a.hub, 1)
		if n := sub(); n != 1 {
			t.Fatalf("after rejoin: %d subscribers, want 1", n)
		}
		if err := b.hub.Publish(context.Background(), "room", seqFrame(2)); err != nil {
			t.Fatal(err)
		}
		if f := a3.next(t, 5*time.Second); f.Seq != 2 {
			t.Fatalf("got %s", f.Raw)
		}
	})
}

func TestRedisResubscribesAfterConnectionKill(t *testing.T) {
	forBothModes(t, func(t *testing.T, sharded bool) {
		_, rdb := redistest.New(t)
		br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t), Sharded: sharded})
		ts := startHub(t, quiet(), br)
		c := ts.dial(t, "room", "u1")
		other := ts.dial(t, "other", "u2")
		waitConns(t, ts.hub, 2)
		ctx := context.Background()
		if err := ts.hub.Publish(ctx, "room", seqFrame(0)); err != nil {
			t.Fatal(err)
		}
		if f := c.next(t, 5*time.Second); f.Seq != 0 {
			t.Fatalf("got %s", f.Raw)
		}

		killed, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
		if err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatal("CLIENT KILL TYPE pubsub killed nothing")
		}
		// Frames published while the subscription is down are lost (that is
		// pub/sub); keep publishing until one gets through.
		for _, tc := range []struct {
			room string
			c    *wsClient
		}{{"room", c}, {"other", other}} {
			deadline := time.Now().Add(15 * time.Second)
			for i := 1; ; i++ {
				if time.Now().After(deadline) {
					t.Fatalf("room %s: no frame after the kill", tc.room)
				}
				if err := ts.hub.Publish(ctx, tc.room, seqFrame(i)); err != nil {
					t.Fatal(err)
				}
				// Any probe will do: one may arrive after the next was sent.
				if f, ok := tc.c.tryNext(100 * time.Millisecond); ok && f.Seq >= 1 {
					break
				}
			}
		}
		if n := numSub(t, rdb, sharded, br.Channel("room")); n != 1 {
			t.Fatalf("after resubscribe: %d subscribers, want 1", n)
		}
		if err := c.readErr(); err != nil {
			t.Fatalf("websocket client affected by Redis reconnect: %v", err)
		}
	})
}

func TestRedisBrokerRoomNamesRoundTrip(t *testing.T) {
	_, rdb := redistest.New(t)
	br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t)})
	t.Cleanup(func() { _ = br.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	go func() {
		_ = br.Run(ctx, ReceiverFunc(func(room string, frame []byte) { got <- room + "=" + string(frame) }))
	}()
	rooms := []string{"plain", "with:colon", "brace}inside", "空间", ""}
	for _, r := range rooms {
		if err := br.Subscribe(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rooms {
		if err := br.Publish(ctx, r, []byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != r+"=x" {
				t.Fatalf("delivered %q, want %q", s, r+"=x")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("room %q: nothing delivered", r)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if err := br.Subscribe(ctx, "late"); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
}

// BenchmarkPublishRedis measures Hub.Publish through Redis, end to end: the
// clock stops when the broker has delivered every published frame back.
func BenchmarkPublishRedis(b *testing.B) {
	for _, sharded := range []bool{false, true} {
		b.Run("sharded="+strconv.FormatBool(sharded), func(b *testing.B) {
			_, rdb := redistest.New(b)
			br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(b), Sharded: sharded})
			defer br.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := br.Subscribe(ctx, "room"); err != nil {
				b.Fatal(err)
			}
			var received atomic.Int64
			go func() { _ = br.Run(ctx, ReceiverFunc(func(string, []byte) { received.Add(1) })) }()
			h := New(Config{PresenceInterval: time.Hour}, br, testLogger(), nil)
			frame := []byte(`{"type":"grabbed","packet_id":"p1","user":"someone","amount":188,"remaining":12}`)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			n := int64(0)
			for b.Loop() {
				if err := h.Publish(ctx, "room", frame); err != nil {
					b.Fatal(err)
				}
				n++
			}
			for received.Load() < n {
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
}

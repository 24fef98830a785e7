package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// waitUserChannel polls until n brokers are subscribed to the user channel:
// a publish to it returns how many subscribers got it (one to a user with no
// connections, which every hub drops).
func waitUserChannel(t *testing.T, rdb redis.UniversalClient, b *RedisBroker, sharded bool, n int64) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, 20*time.Second, "every hub to subscribe the user channel", func() bool {
		var got int64
		if sharded {
			got = rdb.SPublish(ctx, b.UsersChannel(), "nobody\n{}").Val()
		} else {
			got = rdb.Publish(ctx, b.UsersChannel(), "nobody\n{}").Val()
		}
		return got >= n
	})
}

// A frame published to a user reaches each of that user's connections, in
// any room, on every instance, once; nobody else gets it.
func TestPublishUserReachesEveryConnectionOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sharded bool
		client  func(t *testing.T) redis.UniversalClient
	}{
		{"standalone", false, func(t *testing.T) redis.UniversalClient { _, rdb := redistest.New(t); return rdb }},
		{"cluster", true, func(t *testing.T) redis.UniversalClient { return redistest.NewCluster(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.client(t)
			prefix := testPrefix(t)
			ba := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: tc.sharded})
			bb := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: tc.sharded})
			a := startHub(t, quiet(), ba)
			b := startHub(t, quiet(), bb)
			mine := []*wsClient{a.dial(t, "r1", "u1"), a.dial(t, "r2", "u1"), b.dial(t, "r3", "u1")}
			others := []*wsClient{a.dial(t, "r1", "u2"), b.dial(t, "r3", "u2")}
			waitConns(t, a.hub, 3)
			waitConns(t, b.hub, 2)
			waitUserChannel(t, rdb, ba, tc.sharded, 2)

			ctx := context.Background()
			for i := range 3 {
				if err := b.hub.PublishUser(ctx, "u1", fmt.Appendf(nil, `{"type":"mine","seq":%d}`, i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.hub.PublishUser(ctx, "u2", []byte(`{"type":"theirs"}`)); err != nil {
				t.Fatal(err)
			}
			// Each of u1's connections gets the three frames in order, each
			// once; u2's first frame is its own (so u1's never reached it).
			for ci, c := range mine {
				for i := range 3 {
					if f := c.next(t, 10*time.Second, "presence"); f.Type != "mine" || f.Seq != i {
						t.Fatalf("u1 connection %d: frame %d = %s", ci, i, f.Raw)
					}
				}
			}
			for ci, c := range others {
				if f := c.next(t, 10*time.Second, "presence"); f.Type != "theirs" {
					t.Fatalf("u2 connection %d got %s first", ci, f.Raw)
				}
			}
			// A connection that left is no longer indexed.
			_ = mine[2].conn.Close()
			waitConns(t, b.hub, 1)
			us := b.hub.userShardFor("u1")
			us.mu.RLock()
			n := len(us.conns["u1"])
			us.mu.RUnlock()
			if n != 0 {
				t.Fatalf("hub B still indexes %d connections of u1", n)
			}
		})
	}
}

// Bad input is refused, not sent.
func TestPublishUserRefusesBadInput(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	ctx := context.Background()
	for _, tc := range []struct{ user, frame string }{
		{"", `{}`}, {"a\nb", `{}`}, {"u", "{\n}"},
	} {
		if err := ts.hub.PublishUser(ctx, tc.user, []byte(tc.frame)); err == nil {
			t.Errorf("PublishUser(%q, %q) succeeded", tc.user, tc.frame)
		}
	}
	c := ts.dial(t, "r", "u")
	waitConns(t, ts.hub, 1)
	if err := ts.hub.PublishUser(ctx, "u", []byte(`{"type":"mine"}`)); err != nil {
		t.Fatal(err)
	}
	if f := c.next(t, 5*time.Second, "presence"); f.Type != "mine" {
		t.Fatalf("memory broker: got %s", f.Raw)
	}
}

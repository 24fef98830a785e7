package hub

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

func TestClusterSharded(t *testing.T) {
	rdb := redistest.NewCluster(t)
	prefix := testPrefix(t)
	ba := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true})
	bb := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true})
	cfgA := quiet()
	cfgA.PresenceInterval = 100 * time.Millisecond
	cfgA.InstanceID = "A"
	cfgA.Presence = NewRedisPresence(rdb, RedisPresenceConfig{Prefix: prefix})
	cfgB := cfgA
	cfgB.InstanceID = "B"
	a := startHub(t, cfgA, ba)
	b := startHub(t, cfgB, bb)
	rooms := []string{"r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"}
	var cs []*wsClient
	for _, r := range rooms {
		cs = append(cs, a.dial(t, r, "a-"+r), b.dial(t, r, "b-"+r))
	}
	waitConns(t, a.hub, len(rooms))
	waitConns(t, b.hub, len(rooms))
	for i, r := range rooms {
		if err := a.hub.Publish(context.Background(), r, seqFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Presence frames are sent on change only, so the online=2 one may
	// already have arrived (dialling can outlast a presence interval): note
	// it while looking for the event rather than wait for another.
	sawBoth := make([]bool, len(cs))
	for i, c := range cs {
		f := c.next(t, 5*time.Second)
		for ; f.Type == "presence"; f = c.next(t, 5*time.Second) {
			sawBoth[i] = sawBoth[i] || f.Online == 2
		}
		if f.Seq != i/2 {
			t.Fatalf("client %d got %s", i, f.Raw)
		}
	}
	for i, c := range cs {
		if !sawBoth[i] {
			waitPresence(t, c, 2)
		}
	}
	// Kill pubsub on every master; they must resubscribe on the right node.
	var killed int64
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		k, err := n.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
		atomic.AddInt64(&killed, k)
		return err
	})
	if err != nil || killed == 0 {
		t.Fatalf("kill: %v %d", err, killed)
	}
	for ri, r := range rooms {
		for _, c := range cs[2*ri : 2*ri+2] {
			deadline := time.Now().Add(15 * time.Second)
			for i := 1000; ; i++ {
				if time.Now().After(deadline) {
					for _, rr := range rooms {
						ch := ba.Channel(rr)
						var tot int64
						_ = rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
							m, _ := n.PubSubShardNumSub(ctx, ch).Result()
							atomic.AddInt64(&tot, m[ch])
							return nil
						})
						t.Logf("room %s shardnumsub %d", rr, tot)
					}
					t.Logf("recv A=%v B=%v", counterValue(t, a.metrics.brokerRecv), counterValue(t, b.metrics.brokerRecv))
					for _, rr := range rooms {
						n, _ := rdb.SPublish(context.Background(), ba.Channel(rr), "{}").Result()
						t.Logf("spublish %s -> %d receivers", rr, n)
					}
					time.Sleep(500 * time.Millisecond)
					t.Logf("recv A=%v B=%v", counterValue(t, a.metrics.brokerRecv), counterValue(t, b.metrics.brokerRecv))
					t.Fatalf("room %s: nothing after kill", r)
				}
				if err := b.hub.Publish(context.Background(), r, seqFrame(i)); err != nil && i < 1003 {
					t.Logf("publish: %v", err)
				}
				if f, ok := c.tryNext(100*time.Millisecond, "presence"); ok && f.Seq >= 1000 {
					break
				}
			}
		}
	}
	t.Logf("killed %d", killed)

}

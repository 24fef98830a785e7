package hub

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/goroutinetest"
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

// resubCounter wraps a Broker to count the Resubscribed calls its hub gets.
type resubCounter struct {
	Broker
	resubs atomic.Int32
}

func (b *resubCounter) Run(ctx context.Context, r Receiver) error {
	return b.Broker.Run(ctx, countingReceiver{r, &b.resubs})
}

type countingReceiver struct {
	Receiver
	n *atomic.Int32
}

func (r countingReceiver) Resubscribed(room string) {
	r.n.Add(1)
	r.Receiver.Resubscribed(room)
}

// A room's slot is migrated on a 3-master cluster while durable frames are
// being published to it: both instances notice (their hubs get
// Resubscribed), repair the room from its history, and every client gets
// every frame, in order, each once (or a resync where history cannot fill
// the gap, which it always can here).
func TestClusterSlotMigrationKeepsDelivering(t *testing.T) {
	goroutinetest.Baseline(t)
	rdb := redistest.NewCluster(t)
	prefix := testPrefix(t)
	ba := &resubCounter{Broker: NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true})}
	bb := &resubCounter{Broker: NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true})}
	a := startHub(t, quiet(), ba)
	b := startHub(t, quiet(), bb)
	clients := []*wsClient{a.dial(t, "moving", "a1"), b.dial(t, "moving", "b1")}
	waitConns(t, a.hub, 1)
	waitConns(t, b.hub, 1)
	ctx := context.Background()
	event := func(i int) []byte { return fmt.Appendf(nil, `{"type":"event","n":%d}`, i) }

	stop := make(chan struct{})
	published := make(chan int)
	go func() {
		i := 0
		for {
			select {
			case <-stop:
				published <- i
				return
			default:
			}
			if _, err := a.hub.PublishDurable(ctx, "moving", event(i), DurableOptions{}); err == nil {
				i++
			}
			time.Sleep(time.Millisecond) // pacing the publisher, not synchronisation
		}
	}()
	ch := ba.Broker.(*RedisBroker).Channel("moving")
	slot := int(rdb.ClusterKeySlot(ctx, ch).Val())
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, _, err := redistest.MoveSlot(mctx, rdb, slot)
	cancel()
	if err != nil {
		close(stop)
		<-published
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both hubs to be told of the lost subscription", func() bool {
		return ba.resubs.Load() >= 1 && bb.resubs.Load() >= 1
	})
	close(stop)
	n := <-published
	end, err := a.hub.PublishDurable(ctx, "moving", []byte(`{"type":"end"}`), DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Every durable frame arrives, in seq order, each once, up to the end.
	for i, c := range clients {
		last, resyncs, got := 0, 0, 0
		for {
			f := c.next(t, 10*time.Second, "presence")
			if f.Type == "resync" {
				resyncs++
				continue
			}
			if f.Seq != last+1 && resyncs == 0 {
				t.Fatalf("client %d: seq %d after %d with no resync: %s", i, f.Seq, last, f.Raw)
			}
			last = f.Seq
			got++
			if uint64(f.Seq) == end.Seq {
				break
			}
		}
		t.Logf("client %d: %d of the %d frames published around the move arrived, in order; %d resyncs", i, got, n+1, resyncs)
	}
}

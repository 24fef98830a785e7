package packet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// The tests in this file run the store unchanged on a real Redis Cluster (a
// private one of three masters, or REDIS_CLUSTER_URL), where a packet's keys,
// its sender's wallet, its grabbers' wallets, its room and the sweeper's
// index live in different slots on different masters. They share one
// keyspace, flushed by redistest.NewCluster: none of them may call
// t.Parallel.

// newClusterStore gives the test a store on the flushed shared cluster and
// checks the audit when the test ends.
func newClusterStore(t *testing.T, cfg Config) (*Store, *redis.ClusterClient) {
	t.Helper()
	rdb := redistest.NewCluster(t)
	s := mustStore(t, rdb, cfg)
	t.Cleanup(func() {
		if !t.Failed() {
			auditClean(t, s)
		}
	})
	return s, rdb
}

// masterKeys returns how many keys each master holds, by address.
func masterKeys(t *testing.T, rdb *redis.ClusterClient) map[string]int64 {
	t.Helper()
	var mu sync.Mutex
	sizes := map[string]int64{}
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, node *redis.Client) error {
		n, err := node.DBSize(ctx).Result()
		mu.Lock()
		sizes[node.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes
}

func masterOf(t *testing.T, rdb *redis.ClusterClient, key string) string {
	t.Helper()
	node, err := rdb.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return node.Options().Addr
}

func TestClusterCreateGrabDetail(t *testing.T) {
	s, _ := newClusterStore(t, Config{})
	ctx := context.Background()
	if _, _, err := s.Fund(ctx, alice.ID, 10000, "welcome"); err != nil {
		t.Fatal(err)
	}
	if added, _, err := s.Fund(ctx, alice.ID, 10000, "welcome"); err != nil || added {
		t.Fatalf("repeated fund: %v %v", added, err)
	}
	lucky := mustCreate(t, s, CreateRequest{Room: "lobby", Sender: alice, Kind: Lucky, Total: 1000, Count: 3, Greeting: "恭喜发财"})
	equal := mustCreate(t, s, CreateRequest{Room: "lobby", Sender: alice, Kind: Equal, Total: 600, Count: 3})
	if w := wallet(t, s, alice.ID); w.Balance != 8400 || w.SentTotal != 1600 || w.SentCount != 2 {
		t.Fatalf("sender wallet after create: %+v", w)
	}
	users := []User{{"bob", "Bob"}, {"carol", "Carol"}, {"dave", "Dave"}}
	for _, p := range []*Packet{lucky, equal} {
		var got int64
		for i, u := range users {
			g, err := s.Grab(ctx, p.ID, u)
			if err != nil {
				t.Fatalf("grab %s of %s: %v", u.ID, p.Kind, err)
			}
			if g.Remaining != 2-i || g.Seq != i+1 || g.Room != "lobby" || g.Emptied != (i == 2) {
				t.Fatalf("grab %d of %s: %+v", i, p.Kind, g)
			}
			if p.Kind == Equal && g.Amount != 200 {
				t.Fatalf("equal share of %d", g.Amount)
			}
			got += g.Amount
		}
		if got != p.Total {
			t.Fatalf("grabbed %d of %d", got, p.Total)
		}
		if _, err := s.Grab(ctx, p.ID, users[0]); !errors.Is(err, ErrAlreadyGrabbed) {
			t.Fatalf("second grab: %v", err)
		}
		if _, err := s.Grab(ctx, p.ID, User{"erin", "Erin"}); !errors.Is(err, ErrSoldOut) {
			t.Fatalf("grab of empty packet: %v", err)
		}
		d, err := s.Detail(ctx, p.ID)
		if err != nil || d.Status != StatusEmpty || len(d.Claims) != 3 || d.Luckiest == nil {
			t.Fatalf("detail: %+v %v", d, err)
		}
	}
	var received int64
	for _, u := range users {
		w := wallet(t, s, u.ID)
		if w.ReceivedCount != 2 || w.Balance != w.ReceivedTotal {
			t.Fatalf("wallet of %s: %+v", u.ID, w)
		}
		received += w.Balance
		if hist, _, err := s.Claims(ctx, u.ID, "", 10); err != nil || len(hist) != 2 {
			t.Fatalf("claims of %s: %+v %v", u.ID, hist, err)
		}
	}
	if received != 1600 {
		t.Fatalf("grabbers received %d of 1600", received)
	}
	// A room listing reads many packets' slots in one pipeline, with the
	// viewer's claim where there is one (a nil reply where there is none).
	untouched := mustCreate(t, s, CreateRequest{Room: "lobby", Sender: alice, Kind: Equal, Total: 100, Count: 1})
	list, _, err := s.RoomPackets(ctx, "lobby", "bob", false, "", 10)
	if err != nil || len(list) != 3 {
		t.Fatalf("room list: %+v %v", list, err)
	}
	for _, l := range list {
		if (l.ID == untouched.ID) != (l.Mine == nil) {
			t.Fatalf("bob's claim on %s listed as %v", l.ID, l.Mine)
		}
	}
	if active, _, err := s.RoomPackets(ctx, "lobby", "", true, "", 10); err != nil || len(active) != 1 || active[0].ID != untouched.ID {
		t.Fatalf("active room list: %+v %v", active, err)
	}
	if rep := auditClean(t, s); rep.Funded != 10000 || rep.Packets != 3 || rep.Claims != 6 || rep.SharesLeft != 100 {
		t.Fatalf("audit: %s", rep)
	}
}

// 5000 grabs by 100 users over 50 packets, whose keys spread over every
// master; money moves between slots on different masters.
func TestClusterConcurrentGrabsManyPackets(t *testing.T) {
	s, rdb := newClusterStore(t, Config{})
	ctx := context.Background()
	const packets, count, users = 50, 50, 100
	fund(t, s, alice.ID, packets*5000)
	ids := make([]string, packets)
	for i := range ids {
		ids[i] = mustCreate(t, s, CreateRequest{Room: fmt.Sprintf("room%d", i%10), Sender: alice, Kind: Lucky, Total: 5000, Count: count}).ID
	}
	var wg sync.WaitGroup
	var won, sum atomic.Int64
	sem := make(chan struct{}, 64)
	for i := 0; i < packets*users; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			u := User{ID: fmt.Sprintf("u%d", i%users), Name: "u"}
			g, err := s.Grab(ctx, ids[(i/users+i)%packets], u)
			if err == nil {
				won.Add(1)
				sum.Add(g.Amount)
			} else if !errors.Is(err, ErrSoldOut) && !errors.Is(err, ErrAlreadyGrabbed) {
				t.Errorf("grab: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if won.Load() != packets*count || sum.Load() != packets*5000 {
		t.Fatalf("won %d grabs worth %d, want %d worth %d", won.Load(), sum.Load(), packets*count, packets*5000)
	}
	var received int64
	for i := 0; i < users; i++ {
		received += wallet(t, s, fmt.Sprintf("u%d", i)).Balance
	}
	if received != packets*5000 {
		t.Fatalf("users hold %d, grabbed %d", received, packets*5000)
	}
	rep := auditClean(t, s)
	if rep.Claims != int(won.Load()) || rep.Packets != packets || rep.Wallets != users+1 {
		t.Fatalf("audit: %s", rep)
	}

	// The keys really are spread: every master holds some, and some packets
	// live on another master than their sender's wallet and the sweep index.
	sizes := masterKeys(t, rdb)
	if len(sizes) < 3 {
		t.Fatalf("%d masters: the test needs at least 3 to prove anything", len(sizes))
	}
	for addr, n := range sizes {
		if n == 0 {
			t.Fatalf("master %s holds no keys: %v", addr, sizes)
		}
	}
	walletAt, dueAt := masterOf(t, rdb, s.k.wallet(alice.ID)), masterOf(t, rdb, s.k.dueBucket(0))
	apart := 0
	for _, id := range ids {
		if at := masterOf(t, rdb, s.k.meta(id)); at != walletAt && at != dueAt {
			apart++
		}
	}
	if apart == 0 {
		t.Fatalf("no packet lives apart from its sender's wallet (%s) and the sweep index (%s)", walletAt, dueAt)
	}
	t.Logf("keys per master %v; %d of %d packets on a third master", sizes, apart, packets)
}

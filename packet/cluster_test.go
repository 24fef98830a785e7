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
	s := NewStore(rdb, cfg)
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
		if hist, err := s.Claims(ctx, u.ID, 10); err != nil || len(hist) != 2 {
			t.Fatalf("claims of %s: %+v %v", u.ID, hist, err)
		}
	}
	if received != 1600 {
		t.Fatalf("grabbers received %d of 1600", received)
	}
	// A room listing reads many packets' slots in one pipeline, with the
	// viewer's claim where there is one (a nil reply where there is none).
	untouched := mustCreate(t, s, CreateRequest{Room: "lobby", Sender: alice, Kind: Equal, Total: 100, Count: 1})
	list, err := s.RoomPackets(ctx, "lobby", "bob", false, 10)
	if err != nil || len(list) != 3 {
		t.Fatalf("room list: %+v %v", list, err)
	}
	for _, l := range list {
		if (l.ID == untouched.ID) != (l.Mine == nil) {
			t.Fatalf("bob's claim on %s listed as %v", l.ID, l.Mine)
		}
	}
	if active, err := s.RoomPackets(ctx, "lobby", "", true, 10); err != nil || len(active) != 1 || active[0].ID != untouched.ID {
		t.Fatalf("active room list: %+v %v", active, err)
	}
	if rep := auditClean(t, s); rep.Funded != 10000 || rep.Packets != 3 || rep.Claims != 6 || rep.SharesLeft != 100 {
		t.Fatalf("audit: %s", rep)
	}
}

// 300 goroutines race for one packet of 100 shares.
func TestClusterConcurrentGrabsOneHotPacket(t *testing.T) {
	s, _ := newClusterStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 1000000)
	p := mustCreate(t, s, CreateRequest{Room: "hot", Sender: alice, Kind: Lucky, Total: 100000, Count: 100})
	var (
		wg               sync.WaitGroup
		won, sold, sum   atomic.Int64
		winners          sync.Map
		start            = make(chan struct{})
		racers           = 300
		shares, totalFen = 100, int64(100000)
	)
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			u := User{ID: fmt.Sprintf("u%d", i), Name: "racer"}
			g, err := s.Grab(ctx, p.ID, u)
			switch {
			case err == nil:
				won.Add(1)
				sum.Add(g.Amount)
				if _, dup := winners.LoadOrStore(u.ID, g.Amount); dup {
					t.Errorf("%s won twice", u.ID)
				}
			case errors.Is(err, ErrSoldOut):
				sold.Add(1)
			default:
				t.Errorf("grab: %v", err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if won.Load() != int64(shares) || sold.Load() != int64(racers-shares) || sum.Load() != totalFen {
		t.Fatalf("won %d, sold out %d, sum %d", won.Load(), sold.Load(), sum.Load())
	}
	// Every winner was paid on its own wallet's master.
	winners.Range(func(k, v any) bool {
		if w := wallet(t, s, k.(string)); w.Balance != v.(int64) {
			t.Errorf("%s won %d, holds %d", k, v, w.Balance)
		}
		return true
	})
	if rep := auditClean(t, s); rep.Claims != shares || rep.Uncredited != 0 {
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
	walletAt, dueAt := masterOf(t, rdb, s.k.wallet(alice.ID)), masterOf(t, rdb, s.k.due())
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

// Expiry with three sweepers racing on the cluster: the remainder is refunded
// exactly once and exactly one sweeper reports the close.
func TestClusterExpiryRefundOnceWithRacingSweepers(t *testing.T) {
	s, rdb := newClusterStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 100000)
	short := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 1000, Count: 10, TTL: time.Second})
	long := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 2000, Count: 10, TTL: time.Hour})
	g, err := s.Grab(ctx, short.ID, User{"bob", "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)

	// Each sweeper is a separate Store with its own cluster client, as on
	// separate instances; everything is due now so all three race.
	sweepers := make([]*Store, 3)
	for i := range sweepers {
		c := redis.NewClusterClient(rdb.Options())
		t.Cleanup(func() { _ = c.Close() })
		sweepers[i] = NewStore(c, Config{SweepLease: time.Millisecond})
	}
	rdb.ZAdd(ctx, s.k.due(), redis.Z{Score: 0, Member: short.ID}, redis.Z{Score: 0, Member: long.ID})
	var wg sync.WaitGroup
	var closes, refunded atomic.Int64
	for _, sw := range sweepers {
		wg.Add(1)
		go func(sw *Store) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				rep, err := sw.Sweep(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				for _, f := range rep.Expired {
					closes.Add(1)
					refunded.Add(f.Refunded)
				}
				// Direct, unleased settles too: idempotence is what guarantees once.
				var r SweepReport
				if err := sw.settle(ctx, short.ID, &r); err != nil {
					t.Error(err)
				}
				for _, f := range r.Expired {
					closes.Add(1)
					refunded.Add(f.Refunded)
				}
			}
		}(sw)
	}
	wg.Wait()
	if closes.Load() != 1 || refunded.Load() != 1000-g.Amount {
		t.Fatalf("closed %d times, refunded %d, want once and %d", closes.Load(), refunded.Load(), 1000-g.Amount)
	}
	if w := wallet(t, s, alice.ID); w.Balance != 100000-1000-2000+refunded.Load() || w.Refunded != refunded.Load() {
		t.Fatalf("alice after refund: %+v", w)
	}
	if d, err := s.Detail(ctx, short.ID); err != nil || d.Status != StatusExpired || d.Refunded != 1000-g.Amount {
		t.Fatalf("expired detail: %+v %v", d, err)
	}
	if d, err := s.Detail(ctx, long.ID); err != nil || d.Status != StatusActive || d.RemainingAmount != 2000 {
		t.Fatalf("unexpired packet touched: %+v %v", d, err)
	}
	if due, err := rdb.ZRange(ctx, s.k.due(), 0, -1).Result(); err != nil || len(due) != 1 || due[0] != long.ID {
		t.Fatalf("due index: %v %v, want only the open packet", due, err)
	}
	if rep := auditClean(t, s); rep.UnpaidRefunds != 0 || rep.SharesLeft != 2000 {
		t.Fatalf("audit: %s", rep)
	}
}

// A create that crashes after storing the pending packet, before the debit:
// the sweeper cancels it and a late debit is refused.
func TestClusterCrashAfterCreateBeforeDebit(t *testing.T) {
	s, rdb := newClusterStore(t, Config{PendingGrace: time.Millisecond})
	ctx := context.Background()
	fund(t, s, alice.ID, 1000)
	p, shares, err := s.prepare(CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 500, Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.createPending(ctx, p, shares); err != nil {
		t.Fatal(err)
	}
	auditClean(t, s)
	time.Sleep(5 * time.Millisecond)
	if rep, err := s.Sweep(ctx); err != nil || rep.Cancelled != 1 {
		t.Fatalf("sweep: %+v %v", rep, err)
	}
	if err := s.debit(ctx, p); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("late debit: %v", err)
	}
	if w := wallet(t, s, alice.ID); w.Balance != 1000 {
		t.Fatalf("alice charged for a cancelled packet: %+v", w)
	}
	if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("grab of cancelled packet: %v", err)
	}
	if n, _ := rdb.ZCard(ctx, s.k.due()).Result(); n != 0 {
		t.Fatalf("due index still holds %d", n)
	}
	auditClean(t, s)
}

// A create that crashes after the debit, before activation: the sweeper
// opens the packet.
func TestClusterCrashAfterDebitBeforeActivate(t *testing.T) {
	s, _ := newClusterStore(t, Config{PendingGrace: time.Millisecond})
	ctx := context.Background()
	fund(t, s, alice.ID, 1000)
	p, shares, err := s.prepare(CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 500, Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.createPending(ctx, p, shares); err != nil {
		t.Fatal(err)
	}
	if err := s.debit(ctx, p); err != nil {
		t.Fatal(err)
	}
	if rep := auditClean(t, s); rep.PendingDebits != 500 {
		t.Fatalf("pending debits %d, want 500", rep.PendingDebits)
	}
	time.Sleep(5 * time.Millisecond)
	if rep, err := s.Sweep(ctx); err != nil || rep.Activated != 1 {
		t.Fatalf("sweep: %+v %v", rep, err)
	}
	if w := wallet(t, s, alice.ID); w.Balance != 500 || w.SentCount != 1 {
		t.Fatalf("alice: %+v", w)
	}
	if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
		t.Fatalf("grab after repair: %v", err)
	}
	if list, _ := s.RoomPackets(ctx, "r", "", true, 10); len(list) != 1 {
		t.Fatalf("repaired packet not listed in its room: %+v", list)
	}
	if rep := auditClean(t, s); rep.PendingDebits != 0 || rep.SharesLeft == 0 {
		t.Fatalf("after repair: %s", rep)
	}
}

// A grab whose credit never ran: the sweeper pays it once.
func TestClusterCrashAfterGrabBeforeCredit(t *testing.T) {
	s, rdb := newClusterStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 1000)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 300, Count: 3})
	bob := User{"bob", "Bob"}
	g, err := s.grabOnly(ctx, p.ID, bob)
	if err != nil {
		t.Fatal(err)
	}
	if rep := auditClean(t, s); rep.Uncredited != g.Amount {
		t.Fatalf("uncredited %d, want %d", rep.Uncredited, g.Amount)
	}
	rdb.ZAdd(ctx, s.k.due(), redis.Z{Score: 0, Member: p.ID})
	if rep, err := s.Sweep(ctx); err != nil || rep.Credited != 1 {
		t.Fatalf("sweep: %+v %v", rep, err)
	}
	if err := s.credit(ctx, bob.ID, g); err != nil { // the crashed request's late credit
		t.Fatal(err)
	}
	rdb.ZAdd(ctx, s.k.due(), redis.Z{Score: 0, Member: p.ID})
	if rep, err := s.Sweep(ctx); err != nil || rep.Credited != 0 {
		t.Fatalf("second sweep: %+v %v", rep, err)
	}
	if w := wallet(t, s, bob.ID); w.Balance != g.Amount || w.ReceivedCount != 1 {
		t.Fatalf("bob: %+v, grabbed %d", w, g.Amount)
	}
	if rep := auditClean(t, s); rep.Uncredited != 0 {
		t.Fatalf("after repair: %s", rep)
	}
}

// Every master forgets its scripts (as after a restart or failover): the
// pipelined steps load them again on every master by themselves.
func TestClusterScriptCacheFlushed(t *testing.T) {
	s, rdb := newClusterStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 2})
	for i := 0; i < 5; i++ {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		p := mustCreate(t, s, CreateRequest{Room: fmt.Sprintf("r%d", i), Sender: alice, Kind: Lucky, Total: 100, Count: 2})
		if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
			t.Fatal(err)
		}
	}
}

package packet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/pgtest"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	redistest.Stop()
	os.Exit(code)
}

// mustStore is NewStore for a configuration the test knows to be valid.
func mustStore(t testing.TB, rdb redis.UniversalClient, cfg Config) *Store {
	t.Helper()
	s, err := NewStore(rdb, cfg)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return s
}

// newStore gives the test a store on a clean real-Redis database and checks
// the audit when the test ends.
func newStore(t testing.TB, cfg Config) (*Store, *redis.Client) {
	t.Helper()
	_, rdb := redistest.New(t)
	s := mustStore(t, rdb, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		rep, err := s.Audit(context.Background())
		if err != nil {
			t.Errorf("audit: %v", err)
		} else if !rep.OK() {
			t.Errorf("audit: %s", rep)
		}
	})
	return s, rdb
}

// eachBackend runs a scenario on standalone Redis and on a 3-master Redis
// Cluster, where a packet, its sender, its grabbers, its room and the sweep
// index live in different slots on different masters.
func eachBackend(t *testing.T, cfg Config, fn func(t *testing.T, s *Store, rdb redis.UniversalClient)) {
	t.Run("standalone", func(t *testing.T) {
		s, rdb := newStore(t, cfg)
		fn(t, s, rdb)
	})
	t.Run("cluster", func(t *testing.T) {
		s, rdb := newClusterStore(t, cfg)
		fn(t, s, rdb)
	})
}

func fund(t testing.TB, s *Store, user string, amount int64) {
	t.Helper()
	if _, _, err := s.Fund(context.Background(), user, amount, ""); err != nil {
		t.Fatalf("fund %s: %v", user, err)
	}
}

func mustCreate(t testing.TB, s *Store, req CreateRequest) *Packet {
	t.Helper()
	p, err := s.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("create %+v: %v", req, err)
	}
	return p
}

func wallet(t testing.TB, s *Store, user string) Wallet {
	t.Helper()
	w, err := s.Wallet(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func auditClean(t testing.TB, s *Store) AuditReport {
	t.Helper()
	rep, err := s.Audit(context.Background())
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("audit: %s", rep)
	}
	return rep
}

var alice = User{ID: "alice", Name: "Alice"}

func TestFundIdempotentByRef(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	added, bal, err := s.Fund(ctx, "u1", 10000, "welcome")
	if err != nil || !added || bal != 10000 {
		t.Fatalf("first fund: %v %d %v", added, bal, err)
	}
	added, bal, err = s.Fund(ctx, "u1", 10000, "welcome")
	if err != nil || added || bal != 10000 {
		t.Fatalf("repeat fund: %v %d %v", added, bal, err)
	}
	if _, _, err := s.Fund(ctx, "u1", 0, ""); !errors.Is(err, ErrInvalidAmount) {
		t.Fatalf("zero fund: %v", err)
	}
	if _, _, err := s.Fund(ctx, "u1", -5, ""); !errors.Is(err, ErrInvalidAmount) {
		t.Fatalf("negative fund: %v", err)
	}
	if rep := auditClean(t, s); rep.Funded != 10000 {
		t.Fatalf("funded %d", rep.Funded)
	}
}

func TestCreateGrabDetail(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	p := mustCreate(t, s, CreateRequest{Room: "lobby", Sender: alice, Kind: Lucky, Total: 1000, Count: 3, Greeting: "恭喜发财"})
	if w := wallet(t, s, alice.ID); w.Balance != 9000 || w.SentTotal != 1000 || w.SentCount != 1 {
		t.Fatalf("sender wallet after create: %+v", w)
	}
	var got int64
	users := []User{{"bob", "Bob"}, {"carol", "Carol"}, {"dave", "Dave"}}
	for i, u := range users {
		g, err := s.Grab(ctx, p.ID, u)
		if err != nil {
			t.Fatalf("grab %s: %v", u.ID, err)
		}
		if g.Remaining != 2-i || g.Seq != i+1 || g.Room != "lobby" {
			t.Fatalf("grab %d: %+v", i, g)
		}
		if w := wallet(t, s, u.ID); w.Balance != g.Amount || w.ReceivedCount != 1 || w.ReceivedTotal != g.Amount {
			t.Fatalf("wallet of %s: %+v after grabbing %d", u.ID, w, g.Amount)
		}
		if i == 2 && !g.Emptied {
			t.Fatalf("last grab did not empty: %+v", g)
		}
		got += g.Amount
	}
	if got != 1000 {
		t.Fatalf("grabbed %d of 1000", got)
	}
	if _, err := s.Grab(ctx, p.ID, users[0]); !errors.Is(err, ErrAlreadyGrabbed) {
		t.Fatalf("second grab: %v", err)
	}
	if _, err := s.Grab(ctx, p.ID, User{"erin", "Erin"}); !errors.Is(err, ErrSoldOut) {
		t.Fatalf("grab of empty packet: %v", err)
	}
	d, err := s.Detail(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != StatusEmpty || d.RemainingCount != 0 || d.RemainingAmount != 0 || len(d.Claims) != 3 || d.DurationMs == nil {
		t.Fatalf("detail: %+v", d)
	}
	for i, c := range d.Claims {
		if c.User != users[i] {
			t.Fatalf("claim %d by %+v, want %+v in grab order", i, c.User, users[i])
		}
	}
	if d.Luckiest == nil {
		t.Fatal("no luckiest")
	}
	for _, c := range d.Claims {
		if c.Amount > d.Luckiest.Amount || (c.Amount == d.Luckiest.Amount && c.Seq < d.Luckiest.Seq) {
			t.Fatalf("luckiest %+v but %+v", d.Luckiest, c)
		}
	}
	hist, _, err := s.Claims(ctx, "bob", "", 10)
	if err != nil || len(hist) != 1 || hist[0].PacketID != p.ID || hist[0].Room != "lobby" {
		t.Fatalf("bob's claims: %+v %v", hist, err)
	}
}

func TestLuckiestTieGoesToEarlierGrab(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: 300, Count: 3})
	for _, u := range []string{"x", "y", "z"} {
		if _, err := s.Grab(ctx, p.ID, User{ID: u, Name: u}); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := s.Detail(ctx, p.ID)
	if d.Luckiest == nil || d.Luckiest.User.ID != "x" {
		t.Fatalf("luckiest %+v, want the first grab", d.Luckiest)
	}
}

func TestCreateRefusals(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 500)
	tests := []struct {
		name string
		req  CreateRequest
		want error
	}{
		{"insufficient", CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 501, Count: 1}, ErrInsufficientFunds},
		{"bad count", CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 0}, ErrInvalidCount},
		{"uneven", CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: 100, Count: 3}, ErrUnevenTotal},
		{"greeting too long", CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 1, Greeting: string(make([]rune, 65))}, ErrInvalidRequest},
		{"control char", CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 1, Greeting: "a\x07"}, ErrInvalidRequest},
		{"ttl too long", CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 1, TTL: 73 * time.Hour}, ErrInvalidRequest},
		{"no room", CreateRequest{Sender: alice, Kind: Lucky, Total: 100, Count: 1}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		if _, err := s.Create(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if w := wallet(t, s, alice.ID); w.Balance != 500 {
		t.Fatalf("refused creates moved money: %+v", w)
	}
	list, _, _ := s.RoomPackets(ctx, "r", "", false, "", 10)
	if len(list) != 0 {
		t.Fatalf("refused packets are listed: %+v", list)
	}
}

func TestGrabRefusals(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	later := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 2, VisibleAt: time.Now().Add(time.Hour)})
	if _, err := s.Grab(ctx, later.ID, User{"bob", "Bob"}); !errors.Is(err, ErrNotYet) {
		t.Fatalf("early grab: %v", err)
	}
	for _, id := range []string{"", "nope", "0190b4f6-0000-7000-8000-000000000000"} {
		if _, err := s.Grab(ctx, id, User{"bob", "Bob"}); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("grab %q: %v", id, err)
		}
	}
	short := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 2, TTL: time.Second})
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Grab(ctx, short.ID, User{"bob", "Bob"}); !errors.Is(err, ErrExpired) {
		t.Fatalf("late grab: %v", err)
	}
}

// 1000 goroutines race for one packet of 100 shares.
func TestConcurrentGrabsOneHotPacket(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx := context.Background()
		fund(t, s, alice.ID, 1000000)
		p := mustCreate(t, s, CreateRequest{Room: "hot", Sender: alice, Kind: Lucky, Total: 100000, Count: 100})
		var (
			wg              sync.WaitGroup
			won, sold, rest atomic.Int64
			sum             atomic.Int64
			winners         sync.Map
		)
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
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
					rest.Add(1)
					t.Errorf("grab: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if won.Load() != 100 || sold.Load() != 900 || sum.Load() != 100000 {
			t.Fatalf("won %d, sold out %d, other %d, sum %d", won.Load(), sold.Load(), rest.Load(), sum.Load())
		}
		// Every winner was paid, on whichever master holds its wallet.
		winners.Range(func(k, v any) bool {
			if w := wallet(t, s, k.(string)); w.Balance != v.(int64) {
				t.Errorf("%s won %d, holds %d", k, v, w.Balance)
			}
			return true
		})
		auditClean(t, s)
	})
}

// 10 000 grabs spread over 100 packets by 200 users.
func TestConcurrentGrabsManyPackets(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 100*5000)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = mustCreate(t, s, CreateRequest{Room: fmt.Sprintf("room%d", i%10), Sender: alice, Kind: Lucky, Total: 5000, Count: 50}).ID
	}
	var wg sync.WaitGroup
	var won atomic.Int64
	sem := make(chan struct{}, 64)
	for i := 0; i < 10000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			u := User{ID: fmt.Sprintf("u%d", i%200), Name: "u"}
			_, err := s.Grab(ctx, ids[(i/200+i)%100], u)
			if err == nil {
				won.Add(1)
			} else if !errors.Is(err, ErrSoldOut) && !errors.Is(err, ErrAlreadyGrabbed) {
				t.Errorf("grab: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if won.Load() > 100*50 || won.Load() == 0 {
		t.Fatalf("won %d", won.Load())
	}
	rep := auditClean(t, s)
	if rep.Claims != int(won.Load()) {
		t.Fatalf("audit counts %d claims, %d grabs won", rep.Claims, won.Load())
	}
}

func TestRoomPacketsAndWallet(t *testing.T) {
	s, _ := newStore(t, Config{RoomHistory: 3})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, mustCreate(t, s, CreateRequest{Room: "lobby", Sender: alice, Kind: Equal, Total: 100, Count: 1}).ID)
		time.Sleep(2 * time.Millisecond) // distinct created_at for a stable order
	}
	if _, err := s.Grab(ctx, ids[4], User{"bob", "Bob"}); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.RoomPackets(ctx, "lobby", "bob", false, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].ID != ids[4] || all[2].ID != ids[2] {
		t.Fatalf("room list (newest 3 expected): %+v", all)
	}
	if all[0].Mine == nil || *all[0].Mine != 100 || all[1].Mine != nil {
		t.Fatalf("bob's claims in the listing: %v, %v", all[0].Mine, all[1].Mine)
	}
	active, _, _ := s.RoomPackets(ctx, "lobby", "", true, "", 50)
	if len(active) != 2 {
		t.Fatalf("active list: %+v", active)
	}
	if w := wallet(t, s, alice.ID); w.Balance != 9500 || w.SentCount != 5 {
		t.Fatalf("alice: %+v", w)
	}
}

func TestHistoryIsCapped(t *testing.T) {
	s, _ := newStore(t, Config{HistoryLen: 5})
	ctx := context.Background()
	fund(t, s, alice.ID, 10000)
	for i := 0; i < 8; i++ {
		p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: 10, Count: 1})
		if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
			t.Fatal(err)
		}
	}
	hist, _, _ := s.Claims(ctx, "bob", "", 100)
	if len(hist) != 5 {
		t.Fatalf("history has %d entries, want 5", len(hist))
	}
	if w := wallet(t, s, "bob"); w.ReceivedCount != 8 || w.Balance != 80 {
		t.Fatalf("bob: %+v", w)
	}
}

// Expiry with three sweepers racing: the remainder is refunded exactly once
// and exactly one sweeper reports the close. Packets on the other side of the
// boundary are left alone.
func TestExpiryRefundOnceWithRacingSweepers(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		fund(t, s, alice.ID, 100000)
		short := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 1000, Count: 10, TTL: time.Second})
		long := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 2000, Count: 10, TTL: time.Hour})
		g, err := s.Grab(ctx, short.ID, User{"bob", "Bob"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)

		// Each sweeper is a separate Store (as on separate instances); make
		// everything due now so all three go for the same packets.
		sweepers := make([]*Store, 3)
		for i := range sweepers {
			sweepers[i] = mustStore(t, rdb, Config{SweepLease: time.Millisecond})
		}
		rdb.ZAdd(ctx, s.k.due(short.ID), redis.Z{Score: 0, Member: short.ID})
		rdb.ZAdd(ctx, s.k.due(long.ID), redis.Z{Score: 0, Member: long.ID})
		var wg sync.WaitGroup
		var closes atomic.Int64
		var refunded atomic.Int64
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
					// Direct, unleased settles too: idempotence, not the lease, is what guarantees once.
					var r SweepReport
					_ = sw.visit(ctx, short.ID, &r)
					for _, f := range r.Expired {
						closes.Add(1)
						refunded.Add(f.Refunded)
					}
				}
			}(sw)
		}
		wg.Wait()
		if closes.Load() != 1 {
			t.Fatalf("packet reported closed %d times", closes.Load())
		}
		if refunded.Load() != 1000-g.Amount {
			t.Fatalf("refunded %d, want %d", refunded.Load(), 1000-g.Amount)
		}
		if w := wallet(t, s, alice.ID); w.Balance != 100000-1000-2000+refunded.Load() || w.Refunded != refunded.Load() {
			t.Fatalf("alice after refund: %+v", w)
		}
		d, _ := s.Detail(ctx, short.ID)
		if d.Status != StatusExpired || d.Refunded != 1000-g.Amount || d.RemainingCount != 0 {
			t.Fatalf("expired detail: %+v", d)
		}
		dl, _ := s.Detail(ctx, long.ID)
		if dl.Status != StatusActive || dl.RemainingAmount != 2000 {
			t.Fatalf("unexpired packet touched: %+v", dl)
		}
		auditClean(t, s)
	})
}

// A create that crashes after storing the pending packet, before the debit:
// the sweeper cancels it and a late debit is refused.
func TestCrashAfterCreateBeforeDebit(t *testing.T) {
	eachBackend(t, Config{PendingGrace: time.Millisecond}, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		fund(t, s, alice.ID, 1000)
		d, err := s.Draft(CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 500, Count: 5})
		p := &d.Packet
		if err != nil {
			t.Fatal(err)
		}
		if err := s.createPending(ctx, d); err != nil {
			t.Fatal(err)
		}
		auditClean(t, s)
		time.Sleep(5 * time.Millisecond)
		rep, err := s.Sweep(ctx)
		if err != nil || rep.Cancelled != 1 {
			t.Fatalf("sweep: %+v %v", rep, err)
		}
		// The crashed request comes back to life and tries to debit: refused.
		if err := s.debit(ctx, p); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("late debit: %v", err)
		}
		if w := wallet(t, s, alice.ID); w.Balance != 1000 {
			t.Fatalf("alice charged for a cancelled packet: %+v", w)
		}
		if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("grab of cancelled packet: %v", err)
		}
		if n, _ := rdb.ZCard(ctx, s.k.due(p.ID)).Result(); n != 0 {
			t.Fatalf("due index still holds %d", n)
		}
		auditClean(t, s)
	})
}

// A create that crashes after the debit, before activation: the money is a
// pending debit (the audit balances), and the sweeper opens the packet.
func TestCrashAfterDebitBeforeActivate(t *testing.T) {
	eachBackend(t, Config{PendingGrace: time.Millisecond}, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx := context.Background()
		fund(t, s, alice.ID, 1000)
		d, _ := s.Draft(CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 500, Count: 5})
		p := &d.Packet
		if err := s.createPending(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := s.debit(ctx, p); err != nil {
			t.Fatal(err)
		}
		if rep := auditClean(t, s); rep.PendingDebits != 500 {
			t.Fatalf("pending debits %d, want 500", rep.PendingDebits)
		}
		if err := s.debit(ctx, p); err != nil { // a retried debit is not charged twice
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		rep, err := s.Sweep(ctx)
		if err != nil || len(rep.Opened) != 1 {
			t.Fatalf("sweep: %+v %v", rep, err)
		}
		if w := wallet(t, s, alice.ID); w.Balance != 500 || w.SentCount != 1 {
			t.Fatalf("alice: %+v", w)
		}
		if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
			t.Fatalf("grab after repair: %v", err)
		}
		list, _, _ := s.RoomPackets(ctx, "r", "", true, "", 10)
		if len(list) != 1 {
			t.Fatalf("repaired packet not listed in its room: %+v", list)
		}
		if rep := auditClean(t, s); rep.PendingDebits != 0 || rep.SharesLeft == 0 {
			t.Fatalf("after repair: %s", rep)
		}
	})
}

// A grab whose credit never ran: the claim stands, the audit counts it in
// transit, the sweeper pays it once, and a repeated credit pays nothing.
func TestCrashAfterGrabBeforeCredit(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
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
		rdb.ZAdd(ctx, s.k.due(p.ID), redis.Z{Score: 0, Member: p.ID})
		rep, err := s.Sweep(ctx)
		if err != nil || rep.Credited != 1 {
			t.Fatalf("sweep: %+v %v", rep, err)
		}
		if err := s.credit(ctx, bob.ID, g); err != nil { // the crashed request's late credit
			t.Fatal(err)
		}
		rdb.ZAdd(ctx, s.k.due(p.ID), redis.Z{Score: 0, Member: p.ID})
		if rep, _ := s.Sweep(ctx); rep.Credited != 0 {
			t.Fatalf("second sweep credited again: %+v", rep)
		}
		if w := wallet(t, s, bob.ID); w.Balance != g.Amount || w.ReceivedCount != 1 {
			t.Fatalf("bob: %+v, grabbed %d", w, g.Amount)
		}
		if rep := auditClean(t, s); rep.Uncredited != 0 {
			t.Fatalf("after repair: %s", rep)
		}
	})
}

// The audit must be able to fail: tamper with money and it says so.
func TestAuditDetectsTampering(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, alice.ID, 1000)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 300, Count: 3})
	if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
		t.Fatal(err)
	}
	tamper := []struct {
		name string
		do   func()
		undo func()
	}{
		{"minted balance", func() { rdb.HIncrBy(ctx, s.k.wallet("bob"), "balance", 1) }, func() { rdb.HIncrBy(ctx, s.k.wallet("bob"), "balance", -1) }},
		{"lost share", func() { rdb.RPop(ctx, s.k.shares(p.ID)) }, nil},
	}
	for _, tt := range tamper {
		tt.do()
		rep, err := s.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Fatalf("%s: audit stayed clean: %s", tt.name, rep)
		}
		if tt.undo != nil {
			tt.undo()
		}
	}
	// Leave the keyspace clean for the cleanup audit.
	rdb.FlushDB(ctx)
}

func TestRedisDownIsUnavailable(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer rdb.Close()
	s := mustStore(t, rdb, Config{})
	ctx := context.Background()
	if _, err := s.Grab(ctx, "0190b4f6-0000-7000-8000-000000000000", alice); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("grab: %v", err)
	}
	if _, err := s.Create(ctx, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("create: %v", err)
	}
}

// Redis forgets its script cache on restart or failover; pipelined steps
// must load the scripts again by themselves.
func TestScriptCacheFlushed(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		fund(t, s, alice.ID, 1000)
		mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 2})
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Lucky, Total: 100, Count: 2})
		if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
			t.Fatal(err)
		}
	})
}

// The scripts take packets of any allowed size: a packet of MaxCountLimit
// shares is stored in chunks, grabbed, expired and refunded whole, in both
// modes. A larger MaxCount is refused when the store is made.
func TestLargestPacket(t *testing.T) {
	if _, err := NewStore(nil, Config{Limits: Limits{MaxCount: MaxCountLimit + 1}}); err == nil {
		t.Fatalf("MaxCount %d accepted", MaxCountLimit+1)
	}
	ctx := context.Background()
	check := func(t *testing.T, s *Store, makeDue func(id string)) {
		total := int64(MaxCountLimit) * 2
		fund(t, s, alice.ID, total)
		p := mustCreate(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: total, Count: MaxCountLimit, TTL: time.Second})
		g, err := s.Grab(ctx, p.ID, User{"bob", "Bob"})
		if err != nil || g.Amount != 2 || g.Remaining != MaxCountLimit-1 {
			t.Fatalf("grab: %+v %v", g, err)
		}
		time.Sleep(time.Until(time.UnixMilli(p.ExpiresAt)) + 20*time.Millisecond)
		makeDue(p.ID)
		rep, err := s.Sweep(ctx)
		if err != nil || len(rep.Expired) != 1 || rep.Expired[0].Refunded != total-2 {
			t.Fatalf("sweep: %+v %v", rep, err)
		}
	}
	t.Run("redis", func(t *testing.T) {
		s, rdb := newStore(t, Config{Limits: Limits{MaxCount: MaxCountLimit}})
		check(t, s, func(id string) { rdb.ZAdd(ctx, s.k.due(id), redis.Z{Score: 0, Member: id}) })
	})
	t.Run("ledger", func(t *testing.T) {
		ls := newLedgerStore(t, Config{Limits: Limits{MaxCount: MaxCountLimit}})
		check(t, ls.Store, func(id string) {
			if err := ls.led.Schedule(ctx, id, 0); err != nil {
				t.Fatal(err)
			}
		})
	})
}

package packet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/pgtest"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// ledgerStore is a store in ledger mode on a clean Redis database and a
// fresh PostgreSQL database, with its settler running. The audit is checked
// when the test ends.
type ledgerStore struct {
	*Store
	rdb *redis.Client
	led *ledger.Ledger
	url string
	// tampered skips the final audit, for tests that break the books.
	tampered bool
}

// newLedger gives t a migrated ledger on a fresh PostgreSQL database.
func newLedger(t *testing.T) (*ledger.Ledger, string) {
	t.Helper()
	url := pgtest.New(t)
	led, err := ledger.Open(context.Background(), url, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(led.Close)
	if _, err := led.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return led, url
}

func newLedgerStore(t *testing.T, cfg Config) *ledgerStore {
	t.Helper()
	_, rdb := redistest.New(t)
	ctx := context.Background()
	led, url := newLedger(t)
	cfg.Ledger = led
	ls := &ledgerStore{Store: mustStore(t, rdb, cfg), rdb: rdb, led: led, url: url}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ls.RunSettler(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
		if !t.Failed() && !ls.tampered {
			if rep, err := ls.Audit(ctx); err != nil || !rep.OK() {
				t.Errorf("audit: %v %s", err, rep)
			}
		}
	})
	return ls
}

// settled waits until the ledger holds every claim Redis has for the
// packets and nothing is pending, sweeping as an instance would.
func (ls *ledgerStore) settled(t *testing.T, users ...string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending := int64(0)
		for _, u := range users {
			w, err := ls.Wallet(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			pending += w.PendingCount
		}
		rep, err := ls.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("audit while settling: %s", rep)
		}
		if pending == 0 && rep.Uncredited == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %d pending, %s", pending, rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLedgerRaceAndSettlement(t *testing.T) {
	ls := newLedgerStore(t, Config{})
	ctx := context.Background()
	fund(t, ls.Store, "alice", 5000)
	p := mustCreate(t, ls.Store, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Lucky, Total: 5000, Count: 50})
	var wg sync.WaitGroup
	won := make([]int64, 200)
	users := make([]string, 200)
	for i := range won {
		users[i] = fmt.Sprint("u", i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g, err := ls.Grab(ctx, p.ID, User{users[i], users[i]})
			if err == nil {
				won[i] = g.Amount
			} else if !errors.Is(err, ErrSoldOut) {
				t.Errorf("grab: %v", err)
			}
		}(i)
	}
	wg.Wait()
	winners, sum := 0, int64(0)
	for i, amount := range won {
		if amount == 0 {
			continue
		}
		winners++
		sum += amount
		// Never less than they won: committed or pending.
		w := wallet(t, ls.Store, users[i])
		if w.Balance+w.PendingTotal != amount {
			t.Fatalf("%s won %d, wallet %+v", users[i], amount, w)
		}
	}
	if winners != 50 || sum != 5000 {
		t.Fatalf("%d winners took %d", winners, sum)
	}
	ls.settled(t, users...)
	for i, amount := range won {
		if w := wallet(t, ls.Store, users[i]); w.Balance != amount || w.ReceivedTotal != amount {
			t.Fatalf("%s won %d, committed wallet %+v", users[i], amount, w)
		}
	}
}

func TestLedgerRetriedGrabKeepsItsResult(t *testing.T) {
	ls := newLedgerStore(t, Config{})
	ctx := context.Background()
	fund(t, ls.Store, "alice", 300)
	p := mustCreate(t, ls.Store, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Equal, Total: 300, Count: 3})
	bob := newGrabRequest(User{"bob", "Bob"}, "")
	token, err := newCallToken()
	if err != nil {
		t.Fatal(err)
	}
	// Bob twice in one call: the second is already_grabbed, also when the
	// call is retried.
	first, _ := ls.grabBatch(ctx, p.ID, token, []grabRequest{bob, bob})
	again, _ := ls.grabBatch(ctx, p.ID, token, []grabRequest{bob, bob}) // the same call, retried after a lost reply
	if first[0].err != nil || again[0].err != nil || again[0].res.Amount != 100 || again[0].res.Seq != first[0].res.Seq {
		t.Fatalf("first %+v, retried %+v", first[0], again[0])
	}
	for _, o := range []grabOutcome{first[1], again[1]} {
		if !errors.Is(o.err, ErrAlreadyGrabbed) {
			t.Fatalf("bob's second grab in the call: %+v (first call %+v, retried %+v)", o, first, again)
		}
	}
	if out, _ := ls.grabBatch(ctx, p.ID, "", []grabRequest{bob}); !errors.Is(out[0].err, ErrAlreadyGrabbed) {
		t.Fatalf("a new grab by the same user: %+v", out[0])
	}
	if _, err := ls.drainOutbox(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerIdempotentOpen(t *testing.T) {
	ls := newLedgerStore(t, Config{})
	ctx := context.Background()
	fund(t, ls.Store, "alice", 1000)
	open := func(hash string) (*Opened, error) {
		d, err := ls.Draft(CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Equal, Total: 400, Count: 4})
		if err != nil {
			t.Fatal(err)
		}
		return ls.Open(ctx, []*Draft{d}, &Idempotency{Key: "k1", RequestHash: []byte(hash),
			Respond: func(o []*Draft) ([]byte, error) { return []byte(`{"id":"` + o[0].ID + `"}`), nil }})
	}
	first, err := open("h")
	if err != nil {
		t.Fatal(err)
	}
	again, err := open("h")
	if err != nil || !again.Replayed || string(again.Body) != string(first.Body) {
		t.Fatalf("replay: %+v %v, first %s", again, err, first.Body)
	}
	if _, err := open("other"); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("same key, other body: %v", err)
	}
	if w := wallet(t, ls.Store, "alice"); w.Balance != 600 || w.SentCount != 1 {
		t.Fatalf("alice debited more than once: %+v", w)
	}
}

func TestLedgerExpiryRefundsAndRedisForgets(t *testing.T) {
	ls := newLedgerStore(t, Config{RetainSettled: 200 * time.Millisecond})
	ctx := context.Background()
	fund(t, ls.Store, "alice", 1000)
	p := mustCreate(t, ls.Store, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Lucky, Total: 1000, Count: 10, TTL: time.Second})
	g, err := ls.Grab(ctx, p.ID, User{"bob", "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	before, err := ls.Detail(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.UnixMilli(p.ExpiresAt)) + 50*time.Millisecond)
	if err := ls.led.Schedule(ctx, p.ID, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := ls.Sweep(ctx)
	if err != nil || len(rep.Expired) != 1 || rep.Expired[0].Refunded != 1000-g.Amount || rep.Settled != 1 {
		t.Fatalf("sweep: %+v %v", rep, err)
	}
	if w := wallet(t, ls.Store, "alice"); w.Balance != 1000-g.Amount || w.Refunded != 1000-g.Amount {
		t.Fatalf("alice after refund: %+v", w)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys, _ := ls.rdb.Keys(ctx, "*"+p.ID+"*").Result()
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys left in Redis: %v", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after, err := ls.Detail(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != StatusExpired || after.Refunded != 1000-g.Amount || len(after.Claims) != 1 ||
		after.Claims[0] != before.Claims[0] || after.Total != before.Total || after.Greeting != before.Greeting {
		t.Fatalf("from the ledger %+v, from Redis it was %+v", after, before)
	}
	if hist, _, err := ls.Claims(ctx, "bob", "", 10); err != nil || len(hist) != 1 || hist[0].Amount != g.Amount {
		t.Fatalf("bob's claims from the ledger: %+v %v", hist, err)
	}
}

// Redis loses everything (a flush, a failover to an empty replica): the
// sweeper puts each live packet back from the ledger with its committed
// claims, so nobody grabs twice and no share is taken twice.
func TestLedgerRebuildsAfterRedisIsEmptied(t *testing.T) {
	ls := newLedgerStore(t, Config{})
	ctx := context.Background()
	fund(t, ls.Store, "alice", 1000)
	p := mustCreate(t, ls.Store, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Equal, Total: 1000, Count: 10})
	for _, u := range []string{"bob", "carol"} {
		if _, err := ls.Grab(ctx, p.ID, User{u, u}); err != nil {
			t.Fatal(err)
		}
	}
	ls.settled(t, "bob", "carol")
	if err := ls.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if d, err := ls.Detail(ctx, p.ID); err != nil || d.RemainingCount != 8 || len(d.Claims) != 2 {
		t.Fatalf("detail from the ledger while Redis is empty: %+v %v", d, err)
	}
	if err := ls.led.Schedule(ctx, p.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Grab(ctx, p.ID, User{"bob", "bob"}); !errors.Is(err, ErrAlreadyGrabbed) {
		t.Fatalf("bob again after the rebuild: %v", err)
	}
	g, err := ls.Grab(ctx, p.ID, User{"dave", "dave"})
	if err != nil || g.Seq != 3 || g.Remaining != 7 {
		t.Fatalf("dave after the rebuild: %+v %v", g, err)
	}
	ls.settled(t, "dave")
}

// The audit runs again and again while many clients grab and three
// sweepers and the settler work; it must never report a false difference.
func TestLedgerAuditExactUnderLoad(t *testing.T) {
	ls := newLedgerStore(t, Config{SettleGrace: 50 * time.Millisecond, SweepLease: 20 * time.Millisecond})
	ctx := context.Background()
	fund(t, ls.Store, "alice", 1_000_000)
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, mustCreate(t, ls.Store, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Lucky, Total: 10000, Count: 40}).ID)
	}
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for i := 0; i < 3; i++ {
		sw := mustStore(t, ls.rdb, Config{Ledger: ls.led, SweepLease: 20 * time.Millisecond})
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := sw.Sweep(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var grabbers sync.WaitGroup
	for i := 0; i < 1000; i++ {
		grabbers.Add(1)
		go func(i int) {
			defer grabbers.Done()
			u := User{fmt.Sprint("g", i), "g"}
			for _, id := range ids[i%20:] {
				if _, err := ls.Grab(ctx, id, u); err != nil && !errors.Is(err, ErrSoldOut) {
					t.Errorf("grab: %v", err)
					return
				}
			}
		}(i)
	}
	grabbing := make(chan struct{})
	go func() { grabbers.Wait(); close(grabbing) }()
	audits := 0
	for done := false; !done; audits++ {
		select {
		case <-grabbing:
			done = true
		default:
		}
		rep, err := ls.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			close(stop)
			workers.Wait()
			<-grabbing
			t.Fatalf("audit %d while traffic flowed: %s", audits, rep)
		}
	}
	close(stop)
	workers.Wait()
	t.Logf("%d clean audits while 1000 clients grabbed", audits)
}

// Tampering with the books is found.
func TestLedgerAuditFindsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, ls *ledgerStore, p *Packet)
		want   string
	}{
		{"journal row deleted", func(t *testing.T, ls *ledgerStore, p *Packet) {
			ls.sql(t, `DELETE FROM postings WHERE movement = 'claim:`+p.ID+`:bob' AND account = 'wallet:bob'`)
		}, "packet"},
		{"balance changed", func(t *testing.T, ls *ledgerStore, p *Packet) {
			ls.sql(t, `UPDATE accounts SET balance = balance + 1 WHERE id = 'wallet:bob'`)
		}, ""},
		{"meta gone", func(t *testing.T, ls *ledgerStore, p *Packet) {
			ls.rdb.Del(context.Background(), ls.k.meta(p.ID))
		}, "missing in Redis"},
		{"share lost", func(t *testing.T, ls *ledgerStore, p *Packet) {
			ls.rdb.RPop(context.Background(), ls.k.shares(p.ID))
		}, "packet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ls := newLedgerStore(t, Config{PendingGrace: time.Millisecond})
			ctx := context.Background()
			fund(t, ls.Store, "alice", 1000)
			p := mustCreate(t, ls.Store, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Equal, Total: 1000, Count: 10})
			if _, err := ls.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
				t.Fatal(err)
			}
			ls.settled(t, "bob")
			time.Sleep(2 * time.Millisecond)
			tc.tamper(t, ls, p)
			rep, err := ls.Audit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.Contains(rep.String(), tc.want) {
				t.Fatalf("tampering not found: %s", rep)
			}
			t.Log(rep.Problems)
			ls.tampered = true
		})
	}
}

func (ls *ledgerStore) sql(t *testing.T, q string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), ls.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"
)

func TestSettleBatchOf500(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1_000_000)
	var packets []Packet
	var claims []Claim
	for range 5 {
		shares := make([]int64, 100)
		users := make([]string, 100)
		for i := range shares {
			shares[i], users[i] = int64(1+i%7), fmt.Sprintf("u%02d", i) // each wins a share of every packet
		}
		p := newPacket("ann", "lobby", shares...)
		packets = append(packets, p)
		claims = append(claims, claimsOf(p, users...)...)
	}
	mustOpen(t, l, packets...)
	rand.Shuffle(len(claims), func(i, j int) { claims[i], claims[j] = claims[j], claims[i] })

	mustSettle(t, l, claims)
	var paid int64
	for _, c := range claims {
		paid += c.Amount
	}
	var received, count int64
	for i := range 100 {
		w, err := l.Wallet(ctx, fmt.Sprintf("u%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		if w.Balance != w.ReceivedTotal {
			t.Fatalf("u%02d: %+v", i, w)
		}
		received, count = received+w.ReceivedTotal, count+w.ReceivedCount
	}
	if received != paid || count != 500 {
		t.Fatalf("wallets received %d in %d claims, want %d in 500", received, count, paid)
	}
	s := assertClean(t, l)
	if s.Escrow != 0 || len(s.Live) != 5 {
		t.Fatalf("escrow %d over %d live packets, want 0 over 5", s.Escrow, len(s.Live))
	}

	// A replay moves nothing and answers as the first call did.
	committed, rejected, err := l.Settle(ctx, claims)
	if err != nil || len(committed) != len(claims) || len(rejected) != 0 {
		t.Fatalf("replayed Settle: %d committed, %v rejected, %v; want all %d reported committed", len(committed), rejected, err, len(claims))
	}
	if got, _ := l.Wallet(ctx, "u00"); got.ReceivedCount != 5 || got.ReceivedTotal != 5 {
		t.Fatalf("u00 after replay: %+v, want 5 claims of 1", got)
	}
	assertClean(t, l)
}

func TestSettleRejects(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	p := newPacket("ann", "lobby", 100, 200, 300, 400)
	mustOpen(t, l, p)
	mustSettle(t, l, claimsOf(p, "bob")) // bob: seq 1, 100

	ok := Claim{PacketID: p.ID, UserID: "cat", UserName: "Cat", Seq: 2, Amount: 200, At: 1}
	with := func(edit func(*Claim)) Claim { c := ok; edit(&c); return c }
	cases := []struct {
		name  string
		claim Claim
		want  string
	}{
		{"unknown packet", with(func(c *Claim) { c.PacketID = uuid.NewString() }), ReasonUnknownPacket},
		{"malformed packet id", with(func(c *Claim) { c.PacketID = "nope" }), ReasonInvalid},
		{"zero amount", with(func(c *Claim) { c.Amount = 0 }), ReasonInvalid},
		{"no user", with(func(c *Claim) { c.UserID = "" }), ReasonInvalid},
		{"seq past the shares", with(func(c *Claim) { c.Seq = 5 }), ReasonInvalid},
		{"seq someone holds", with(func(c *Claim) { c.Seq = 1 }), ReasonSeqTaken},
		{"differs from committed", Claim{PacketID: p.ID, UserID: "bob", Seq: 1, Amount: 101}, ReasonDiffers},
		{"over the escrow", with(func(c *Claim) { c.Amount = 901 }), ReasonExceedsEscrow},
	}
	for _, c := range cases {
		committed, rejected, err := l.Settle(ctx, []Claim{c.claim})
		if err != nil || len(committed) != 0 || len(rejected) != 1 || rejected[0].Reason != c.want {
			t.Fatalf("%s: committed %v, rejected %v, err %v; want rejected %q", c.name, committed, rejected, err, c.want)
		}
	}

	// In one batch: the good claims commit, the rest are rejected.
	batch := []Claim{
		ok,
		ok,                                    // an identical repeat merges
		with(func(c *Claim) { c.Amount = 1 }), // cat again, different: rejected
		with(func(c *Claim) { c.UserID, c.Seq = "dan", 2 }),                // seq 2 taken in this batch
		with(func(c *Claim) { c.UserID, c.Seq, c.Amount = "eve", 3, 701 }), // 200 + 701 > 900 left
		with(func(c *Claim) { c.UserID, c.Seq, c.Amount = "fay", 4, 400 }),
	}
	committed, rejected, err := l.Settle(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, r := range rejected {
		reasons[r.Claim.UserID+fmt.Sprint(r.Claim.Amount)] = r.Reason
	}
	wantReasons := map[string]string{"cat1": ReasonDuplicateInCall, "dan200": ReasonSeqTaken, "eve701": ReasonExceedsEscrow}
	if len(committed) != 2 || fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
		t.Fatalf("committed %v, rejected %v; want cat and fay committed, rejections %v", committed, reasons, wantReasons)
	}
	if got := balance(t, l, "fay"); got != 400 {
		t.Fatalf("fay has %d, want 400", got)
	}
	assertClean(t, l)
}

func TestSettleConcurrentOverlappingPaysOnce(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1_000_000)
	var all []Claim
	for range 6 {
		shares := make([]int64, 30)
		users := make([]string, 30)
		for i := range shares {
			shares[i], users[i] = int64(10+i), fmt.Sprintf("u%d", i)
		}
		p := newPacket("ann", "lobby", shares...)
		mustOpen(t, l, p)
		all = append(all, claimsOf(p, users...)...)
	}
	const workers = 4
	var wg sync.WaitGroup
	committed := make([][]Claim, workers)
	errs := make([]error, workers)
	for w := range workers {
		// Each worker settles an overlapping, differently ordered 3/4 of
		// all claims, in batches of 20.
		mine := append([]Claim(nil), all[w*len(all)/8:]...)
		mine = append(mine, all[:w*len(all)/8]...)
		mine = mine[:len(all)*3/4]
		rand.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(mine) > 0 {
				n := min(20, len(mine))
				done, rejected, err := l.Settle(ctx, mine[:n])
				if err == nil && len(rejected) > 0 {
					err = fmt.Errorf("rejected %v", rejected)
				}
				if err != nil {
					errs[w] = err
					return
				}
				committed[w] = append(committed[w], done...)
				mine = mine[n:]
			}
		}()
	}
	wg.Wait()
	reported := map[claimID]bool{}
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for _, c := range committed[w] {
			reported[claimID{c.PacketID, c.UserID}] = true
		}
	}
	if len(reported) != len(all) {
		t.Fatalf("%d claims reported committed, want all %d", len(reported), len(all))
	}
	// Paid once each: one claim movement per claim, and every wallet holds
	// exactly its six shares.
	if n := count(t, l, "select count(*) from movements where kind = 'claim'"); n != len(all) {
		t.Fatalf("%d claim movements, want %d", n, len(all))
	}
	for i := range 30 {
		w, _ := l.Wallet(ctx, fmt.Sprintf("u%d", i))
		if w.ReceivedCount != 6 || w.Balance != 6*int64(10+i) {
			t.Fatalf("u%d: %+v, want 6 claims of %d", i, w, 10+i)
		}
	}
	assertClean(t, l)
}

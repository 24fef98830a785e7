package ledger

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// workload funds, opens, settles and finishes a mix of packets, leaving some
// live: p[0] open with a claim, p[1] open and unclaimed, p[2] expired and
// refunded, p[3] emptied and settled.
func workload(t *testing.T, l *Ledger) []Packet {
	t.Helper()
	ctx := context.Background()
	mustFund(t, l, "ann", 10_000)
	mustFund(t, l, "bob", 500)
	p := []Packet{
		newPacket("ann", "lobby", 100, 200, 300),
		newPacket("ann", "lobby", 1000),
		newPacket("bob", "lobby", 50, 50),
		newPacket("ann", "hall", 10, 20),
	}
	mustOpen(t, l, p[0], p[1])
	mustOpen(t, l, p[2])
	mustOpen(t, l, p[3])
	mustSettle(t, l, append(append(claimsOf(p[0], "cat"), claimsOf(p[2], "ann")...), claimsOf(p[3], "cat", "dan")...))
	if _, err := l.Finish(ctx, p[2].ID, StatusExpired, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Finish(ctx, p[3].ID, StatusEmpty, 9); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSettled(ctx, p[3].ID); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSnapshotBalancesAfterMixedWorkload(t *testing.T) {
	l := newLedger(t)
	p := workload(t, l)
	s := assertClean(t, l)
	if s.Funded != 10_500 || s.Escrow != 500+1000 || s.Wallets != 10_500-1500 {
		t.Fatalf("snapshot sums: %+v", s)
	}
	live := map[string]LivePacket{}
	for _, lp := range s.Live {
		live[lp.ID] = lp
	}
	if len(live) != 3 {
		t.Fatalf("%d live packets, want 3: %+v", len(live), s.Live)
	}
	if lp := live[p[0].ID]; lp.Escrow != 500 || lp.EscrowPostings != 500 || len(lp.Claims) != 1 || !lp.Debited {
		t.Fatalf("live %+v", lp)
	}
	if lp := live[p[2].ID]; lp.Status != StatusExpired || lp.Refunded != 50 || lp.Escrow != 0 {
		t.Fatalf("live expired %+v", lp)
	}
}

func TestSnapshotIsExactWhileWritesFlow(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1_000_000)
	var packets []Packet
	for range 4 {
		shares := make([]int64, 200)
		for i := range shares {
			shares[i] = int64(1 + i%5)
		}
		packets = append(packets, newPacket("ann", "lobby", shares...))
	}
	mustOpen(t, l, packets...)

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := packets[w]
			for i := 0; i < p.Count; i += 5 {
				select {
				case <-done:
					return
				default:
				}
				var batch []Claim
				for j := i; j < i+5; j++ {
					batch = append(batch, Claim{PacketID: p.ID, UserID: fmt.Sprintf("u%d", j), Seq: j + 1, Amount: p.Shares[j], At: int64(j)})
				}
				if _, _, err := l.Settle(ctx, batch); err != nil {
					errs[w] = err
					return
				}
				if _, _, err := l.Fund(ctx, fmt.Sprintf("u%d", i), 3, uuid.NewString()); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	for i := range 50 {
		s, err := l.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Sum != 0 || s.Funded != s.Wallets+s.Escrow || len(s.Problems) != 0 {
			close(done)
			wg.Wait()
			t.Fatalf("snapshot %d: funded %d, wallets %d, escrow %d, problems %v", i, s.Funded, s.Wallets, s.Escrow, s.Problems)
		}
	}
	close(done)
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	assertClean(t, l)
}

func TestTamperingIsFound(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, l *Ledger, p []Packet) string // returns the id the reports must name
	}{
		{"posting of a live claim deleted", func(t *testing.T, l *Ledger, p []Packet) string {
			exec(t, l, "delete from postings where movement = $1 and account = $2", claimKey(p[0].ID, "cat"), escrowID(p[0].ID))
			return p[0].ID
		}},
		{"wallet balance changed", func(t *testing.T, l *Ledger, p []Packet) string {
			exec(t, l, "update accounts set balance = balance + 7 where id = 'wallet:cat'")
			return "wallet:cat"
		}},
		{"debited packet's row missing", func(t *testing.T, l *Ledger, p []Packet) string {
			exec(t, l, "delete from packets where id = $1", p[1].ID)
			return p[1].ID
		}},
		{"live packet without a debit", func(t *testing.T, l *Ledger, p []Packet) string {
			exec(t, l, "delete from postings where movement = $1", debitKey(p[1].ID))
			exec(t, l, "delete from movements where key = $1", debitKey(p[1].ID))
			return p[1].ID
		}},
		{"refund paid without its postings", func(t *testing.T, l *Ledger, p []Packet) string {
			exec(t, l, "delete from postings where movement = $1", refundKey(p[2].ID))
			return p[2].ID
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLedger(t)
			p := workload(t, l)
			assertClean(t, l)
			id := c.tamper(t, l, p)

			s, err := l.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			diffs, err := l.CheckJournal(context.Background(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, d := range diffs {
				found = append(found, d.Account+" "+d.Movement+" "+d.Detail)
			}
			t.Logf("problems %q\n\tdifferences %q", s.Problems, found)
			if !containsAny(s.Problems, id) && !containsAny(found, id) {
				t.Fatalf("tampering with %s went unnoticed: problems %v, differences %v", id, s.Problems, found)
			}
			if len(s.Problems) == 0 || len(diffs) == 0 {
				t.Fatalf("want both reports to notice: problems %v, differences %v", s.Problems, found)
			}
		})
	}
}

func TestCheckJournalSince(t *testing.T) {
	l := newLedger(t)
	workload(t, l)
	var cut time.Time
	if err := l.pool.QueryRow(context.Background(), "select now()").Scan(&cut); err != nil {
		t.Fatal(err)
	}
	// Old tampering is outside the window; a change after it is inside.
	exec(t, l, "update accounts set balance = balance + 1 where id = 'wallet:bob'")
	mustFund(t, l, "eve", 5)
	exec(t, l, "update accounts set balance = balance + 1 where id = 'wallet:eve'")
	diffs, err := l.CheckJournal(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || diffs[0].Account != "wallet:eve" {
		t.Fatalf("since the cut: %+v, want only wallet:eve", diffs)
	}
	all, err := l.CheckJournal(context.Background(), time.Time{})
	if err != nil || len(all) != 2 {
		t.Fatalf("whole journal: %+v, %v; want wallet:bob and wallet:eve", all, err)
	}
}

package ledger

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestFinishExpiredRefundsOnce(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	p := newPacket("ann", "lobby", 100, 200, 300, 400)
	mustOpen(t, l, p)
	mustSettle(t, l, claimsOf(p, "bob", "cat")) // 300 claimed, 700 left

	for i := range 3 {
		status := StatusExpired
		if i == 2 {
			status = StatusEmpty // a late, different call changes nothing either
		}
		refunded, err := l.Finish(ctx, p.ID, status, p.ExpiresAt)
		if err != nil || refunded != 700 {
			t.Fatalf("Finish #%d = %d, %v; want 700", i+1, refunded, err)
		}
	}
	w, _ := l.Wallet(ctx, "ann")
	if w.Balance != 700 || w.Refunded != 700 {
		t.Fatalf("sender wallet %+v, want balance and refunded 700", w)
	}
	v, err := l.Packet(ctx, p.ID)
	if err != nil || v.Status != StatusExpired || v.Refunded != 700 || v.FinishedAt != p.ExpiresAt {
		t.Fatalf("Packet = %+v, %v", v, err)
	}
	// A claim arriving after the refund finds the escrow empty.
	late := claimsOf(p, "bob", "cat", "dan")[2:]
	if _, rejected, err := l.Settle(ctx, late); err != nil || len(rejected) != 1 || rejected[0].Reason != ReasonExceedsEscrow {
		t.Fatalf("late claim: rejected %v, err %v", rejected, err)
	}
	if err := l.MarkSettled(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	assertClean(t, l)
}

func TestFinishConcurrentlyRefundsOnce(t *testing.T) {
	l := newLedger(t)
	mustFund(t, l, "ann", 1000)
	p := newPacket("ann", "lobby", 250, 250)
	mustOpen(t, l, p)
	var wg sync.WaitGroup
	refunds := make([]int64, 4)
	errs := make([]error, 4)
	for i := range refunds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refunds[i], errs[i] = l.Finish(context.Background(), p.ID, StatusExpired, 1)
		}()
	}
	wg.Wait()
	for i := range refunds {
		if errs[i] != nil || refunds[i] != 500 {
			t.Fatalf("Finish %d = %d, %v; want 500", i, refunds[i], errs[i])
		}
	}
	if got := balance(t, l, "ann"); got != 1000 {
		t.Fatalf("sender balance %d, want 1000 (one refund)", got)
	}
	assertClean(t, l)
}

func TestFinishArguments(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	_, err := l.Finish(ctx, uuid.NewString(), StatusExpired, 1)
	wantErr(t, err, ErrNotFound)
	_, err = l.Finish(ctx, "not-a-uuid", StatusExpired, 1)
	wantErr(t, err, ErrNotFound)
	_, err = l.Finish(ctx, uuid.NewString(), StatusOpen, 1)
	wantErr(t, err, ErrInvalid)
}

func TestMarkSettledOnlyWhenEscrowIsEmpty(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	p := newPacket("ann", "lobby", 100, 200)
	mustOpen(t, l, p)
	claims := claimsOf(p, "bob", "cat")

	wantErr(t, l.MarkSettled(ctx, p.ID), ErrNotSettled) // open
	mustSettle(t, l, claims[:1])
	if refunded, err := l.Finish(ctx, p.ID, StatusEmpty, 5); err != nil || refunded != 0 {
		t.Fatalf("Finish empty = %d, %v; want 0", refunded, err)
	}
	wantErr(t, l.MarkSettled(ctx, p.ID), ErrNotSettled) // cat's claim not committed yet
	mustSettle(t, l, claims[1:])
	for range 2 {
		if err := l.MarkSettled(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := l.Packet(ctx, p.ID); !v.Settled {
		t.Fatal("packet not settled")
	}
	wantErr(t, l.MarkSettled(ctx, uuid.NewString()), ErrNotFound)
	if s := assertClean(t, l); len(s.Live) != 0 {
		t.Fatalf("settled packet still live: %+v", s.Live)
	}
}

func TestClaimDueLeases(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	const now = int64(1_000_000)
	var packets []Packet
	for i := range 40 {
		p := newPacket("ann", "lobby", 1)
		p.DueAt = now - int64(i)
		packets = append(packets, p)
	}
	notDue := newPacket("ann", "lobby", 1)
	notDue.DueAt = now + 1
	mustOpen(t, l, append(packets, notDue)...)

	const lease = time.Minute
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ids, err := l.ClaimDue(ctx, now, lease, 7)
				if err != nil || len(ids) == 0 {
					errs[w] = err
					return
				}
				mu.Lock()
				for _, id := range ids {
					seen[id]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 40 {
		t.Fatalf("%d packets leased, want the 40 due", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("packet %s leased %d times within one lease", id, n)
		}
	}
	if seen[notDue.ID] != 0 {
		t.Fatal("a packet not due was leased")
	}

	// The lease runs out: the packets are due again, earliest first; a
	// settled packet never is.
	later := now + lease.Milliseconds()
	exec(t, l, "update packets set settled_at = now(), status = 'empty' where id = $1", packets[0].ID)
	ids, err := l.ClaimDue(ctx, later, lease, 100)
	if err != nil || len(ids) != 40 { // 39 + notDue
		t.Fatalf("after the lease: %d ids, %v; want 40", len(ids), err)
	}
	for _, id := range ids {
		if id == packets[0].ID {
			t.Fatal("a settled packet was leased")
		}
	}
}

func TestSchedule(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 10)
	p := newPacket("ann", "lobby", 1)
	p.DueAt = 500
	mustOpen(t, l, p)
	due := func() int64 {
		v, err := l.Packet(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v.DueAt
	}
	steps := []struct {
		name   string
		call   func() error
		wantAt int64
	}{
		{"sooner moves earlier", func() error { return l.ScheduleSooner(ctx, p.ID, 300) }, 300},
		{"sooner never later", func() error { return l.ScheduleSooner(ctx, p.ID, 900) }, 300},
		{"schedule sets", func() error { return l.Schedule(ctx, p.ID, 900) }, 900},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := due(); got != s.wantAt {
			t.Fatalf("%s: due_at %d, want %d", s.name, got, s.wantAt)
		}
	}
	wantErr(t, l.Schedule(ctx, uuid.NewString(), 1), ErrNotFound)
}

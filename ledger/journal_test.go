package ledger

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

func TestFundIsIdempotentByRef(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	steps := []struct {
		name        string
		user        string
		amount      int64
		ref         string
		wantAdded   bool
		wantBalance int64
		wantErr     error
	}{
		{"first", "ann", 100, "r1", true, 100, nil},
		{"replayed", "ann", 100, "r1", false, 100, nil},
		{"another ref", "ann", 50, "r2", true, 150, nil},
		{"ref reused for another amount", "ann", 70, "r2", false, 0, ErrIdempotencyConflict},
		{"ref reused for another user", "bob", 50, "r2", false, 0, ErrIdempotencyConflict},
		{"no ref", "ann", 50, "", false, 0, ErrInvalid},
		{"no amount", "ann", 0, "r3", false, 0, ErrInvalid},
		{"no user", "", 10, "r4", false, 0, ErrInvalid},
	}
	for _, s := range steps {
		added, bal, err := l.Fund(ctx, s.user, s.amount, s.ref)
		if s.wantErr != nil {
			if err == nil {
				t.Fatalf("%s: no error, want %v", s.name, s.wantErr)
			}
			wantErr(t, err, s.wantErr)
			continue
		}
		if err != nil || added != s.wantAdded || bal != s.wantBalance {
			t.Fatalf("%s: Fund = %v, %d, %v; want %v, %d", s.name, added, bal, err, s.wantAdded, s.wantBalance)
		}
	}
	w, err := l.Wallet(ctx, "ann")
	if err != nil || w.Funded != 150 || w.Balance != 150 {
		t.Fatalf("wallet = %+v, %v; want funded and balance 150", w, err)
	}
	assertClean(t, l)
}

func TestOpenDebitsOnce(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	p := newPacket("ann", "lobby", 100, 200)
	for i := 0; i < 2; i++ {
		replay, err := l.Open(ctx, []Packet{p}, nil)
		if err != nil || replay != nil {
			t.Fatalf("Open #%d = %q, %v", i+1, replay, err)
		}
		if got := balance(t, l, "ann"); got != 700 {
			t.Fatalf("after Open #%d balance %d, want 700", i+1, got)
		}
	}
	w, _ := l.Wallet(ctx, "ann")
	if w.SentTotal != 300 || w.SentCount != 1 {
		t.Fatalf("wallet %+v: want sent 300 in 1 packet", w)
	}
	v, err := l.Packet(ctx, p.ID)
	if err != nil || v.Status != StatusOpen || v.Total != 300 || len(v.Shares) != 2 {
		t.Fatalf("Packet = %+v, %v", v, err)
	}
	assertClean(t, l)
}

func TestOpenConcurrentWithOneIdempotencyKey(t *testing.T) {
	l := newLedger(t)
	mustFund(t, l, "ann", 10_000)
	const callers = 8
	replays := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		// Each retry of the request generated its own packet id: only the key
		// ties them together.
		p := newPacket("ann", "lobby", 300, 200)
		idem := &Idempotency{Key: "k1", RequestHash: []byte("hash"), Response: []byte(`{"id":"` + p.ID + `"}`)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replays[i], errs[i] = l.Open(context.Background(), []Packet{p}, idem)
		}()
	}
	close(start)
	wg.Wait()
	var fresh int
	var stored []byte
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if replays[i] == nil {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d callers recorded, want exactly 1", fresh)
	}
	if err := l.pool.QueryRow(context.Background(), "select response from idempotency_keys where key = 'k1'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	for i := range callers {
		if replays[i] != nil && !bytes.Equal(replays[i], stored) {
			t.Fatalf("caller %d replayed %q, want the stored %q", i, replays[i], stored)
		}
	}
	if got := balance(t, l, "ann"); got != 10_000-500 {
		t.Fatalf("balance %d, want one debit of 500", got)
	}
	if n := count(t, l, "select count(*) from packets"); n != 1 {
		t.Fatalf("%d packets recorded, want 1", n)
	}
	assertClean(t, l)
}

func TestOpenIdempotencyConflict(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	first := &Idempotency{Key: "k", RequestHash: []byte("a"), Response: []byte("r")}
	if _, err := l.Open(ctx, []Packet{newPacket("ann", "lobby", 100)}, first); err != nil {
		t.Fatal(err)
	}
	other := &Idempotency{Key: "k", RequestHash: []byte("b"), Response: []byte("r2")}
	_, err := l.Open(ctx, []Packet{newPacket("ann", "lobby", 100)}, other)
	wantErr(t, err, ErrIdempotencyConflict)
	if got := balance(t, l, "ann"); got != 900 {
		t.Fatalf("balance %d, want 900 (one debit)", got)
	}
	// The same key from another sender is another request.
	mustFund(t, l, "bob", 1000)
	if replay, err := l.Open(ctx, []Packet{newPacket("bob", "lobby", 100)}, other); err != nil || replay != nil {
		t.Fatalf("bob's Open = %q, %v; want recorded", replay, err)
	}
	// An empty stored response still reads as a replay.
	empty := &Idempotency{Key: "e", RequestHash: []byte("h")}
	if _, err := l.Open(ctx, []Packet{newPacket("bob", "lobby", 1)}, empty); err != nil {
		t.Fatal(err)
	}
	if replay, err := l.Open(ctx, []Packet{newPacket("bob", "lobby", 1)}, empty); err != nil || replay == nil {
		t.Fatalf("replay of an empty response = %v, %v; want non-nil", replay, err)
	}
}

func TestOpenInsufficientFundsRecordsNothing(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 500)
	cases := []struct {
		name    string
		packets []Packet
	}{
		{"one packet too big", []Packet{newPacket("ann", "lobby", 501)}},
		{"two packets that fit apart but not together", []Packet{newPacket("ann", "lobby", 300), newPacket("ann", "lobby", 201)}},
		{"never funded", []Packet{newPacket("nobody", "lobby", 1)}},
	}
	for _, c := range cases {
		idem := &Idempotency{Key: c.name, RequestHash: []byte("h")}
		_, err := l.Open(ctx, c.packets, idem)
		wantErr(t, err, ErrInsufficientFunds)
	}
	if got := balance(t, l, "ann"); got != 500 {
		t.Fatalf("balance %d, want 500", got)
	}
	for _, table := range []string{"packets", "idempotency_keys", "postings where movement not like 'fund:%'", "movements where kind <> 'fund'"} {
		if n := count(t, l, "select count(*) from "+table); n != 0 {
			t.Fatalf("%d rows in %s after failed Opens", n, table)
		}
	}
	// Both fit now: all of them are recorded.
	both := []Packet{newPacket("ann", "lobby", 200), newPacket("ann", "lobby", 300)}
	mustOpen(t, l, both...)
	if got := balance(t, l, "ann"); got != 0 {
		t.Fatalf("balance %d, want 0", got)
	}
	assertClean(t, l)
}

func TestOpenIsAllOrNothing(t *testing.T) {
	l := newLedger(t)
	mustFund(t, l, "ann", 1000)
	a, b := newPacket("ann", "lobby", 100), newPacket("ann", "lobby", 200)
	// b's escrow account is already taken: recording b fails after a's
	// debit and rows were written, so they must go too.
	exec(t, l, "insert into accounts (id, kind, owner) values ($1, 'escrow', $2)", escrowID(b.ID), b.ID)
	if _, err := l.Open(context.Background(), []Packet{a, b}, &Idempotency{Key: "k", RequestHash: []byte("h")}); err == nil {
		t.Fatal("Open succeeded over a taken escrow account")
	}
	if got := balance(t, l, "ann"); got != 1000 {
		t.Fatalf("balance %d, want 1000", got)
	}
	for _, table := range []string{"packets", "idempotency_keys", "movements where kind = 'debit'"} {
		if n := count(t, l, "select count(*) from "+table); n != 0 {
			t.Fatalf("%d rows in %s after a failed Open", n, table)
		}
	}
}

func TestOpenRejectsMalformedPackets(t *testing.T) {
	l := newLedger(t)
	mustFund(t, l, "ann", 1000)
	good := newPacket("ann", "lobby", 10, 20)
	bad := func(edit func(*Packet)) Packet { p := newPacket("ann", "lobby", 10, 20); edit(&p); return p }
	cases := map[string][]Packet{
		"none":              nil,
		"shares off total":  {bad(func(p *Packet) { p.Total = 31 })},
		"share of zero":     {bad(func(p *Packet) { p.Shares = []int64{30, 0} })},
		"count mismatch":    {bad(func(p *Packet) { p.Count = 3 })},
		"uppercase id":      {bad(func(p *Packet) { p.ID = "A" + p.ID[1:] })},
		"two senders":       {good, newPacket("bob", "lobby", 5)},
		"same packet twice": {good, good},
	}
	for name, packets := range cases {
		if _, err := l.Open(context.Background(), packets, nil); err == nil {
			t.Fatalf("%s: Open accepted it", name)
		} else {
			wantErr(t, err, ErrInvalid)
		}
	}
	if got := balance(t, l, "ann"); got != 1000 {
		t.Fatalf("balance %d, want 1000", got)
	}
}

func TestForgetIdempotency(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 100)
	for _, key := range []string{"old", "new"} {
		if _, err := l.Open(ctx, []Packet{newPacket("ann", "lobby", 1)}, &Idempotency{Key: key, RequestHash: []byte("h")}); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, l, "update idempotency_keys set created_at = now() - interval '25 hours' where key = 'old'")
	n, err := l.ForgetIdempotency(ctx, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("ForgetIdempotency = %d, %v; want 1", n, err)
	}
	if left := count(t, l, "select count(*) from idempotency_keys where key = 'new'"); left != 1 {
		t.Fatal("the recent key was forgotten")
	}
}

package packet

import (
	"context"
	"fmt"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// Nothing is written per winner outside the grab script while the settler
// has the claim: this instance's /me shows it from the moment it is
// answered, from memory. A claim whose commit fails gets a pending marker,
// which every instance's /me shows, until the sweeper commits it and removes
// the marker; a claim committed at once never has one.
func TestPendingMarkersOnlyForDelayedClaims(t *testing.T) {
	ctx := context.Background()
	led, _ := newLedger(t)
	_, rdb := redistest.New(t)
	s := mustStore(t, rdb, Config{Ledger: led}) // no settler runs: its claims wait in its queue
	other := mustStore(t, rdb, Config{Ledger: led})
	fund(t, s, "alice", 300)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Equal, Total: 300, Count: 3})
	marked := func(user string) bool {
		t.Helper()
		n, err := rdb.Exists(ctx, s.k.pending(user)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	money := func(st *Store, user string) (int64, int64) {
		t.Helper()
		w := wallet(t, st, user)
		return w.Balance, w.PendingTotal
	}
	if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
		t.Fatal(err)
	}
	if b, pend := money(s, "bob"); b != 0 || pend != 100 || marked("bob") {
		t.Fatalf("in flight: balance %d, pending %d, marker %v", b, pend, marked("bob"))
	}
	if known, err := s.UserKnown(ctx, "bob"); err != nil || !known {
		t.Fatalf("bob unknown while his claim is in flight: %v", err)
	}

	// The commit fails: the claim gets a marker and leaves the flight.
	failed, cancel := context.WithCancel(ctx)
	cancel()
	s.set.commit(failed, []settleItem{<-s.set.queue})
	for _, st := range []*Store{s, other} {
		if b, pend := money(st, "bob"); b != 0 || pend != 100 || !marked("bob") {
			t.Fatalf("delayed: balance %d, pending %d, marker %v", b, pend, marked("bob"))
		}
	}
	if n, err := s.drainOutbox(ctx, p.ID); err != nil || n != 1 {
		t.Fatalf("the sweeper's drain committed %d: %v", n, err)
	}
	if b, pend := money(other, "bob"); b != 100 || pend != 0 || marked("bob") {
		t.Fatalf("swept: balance %d, pending %d, marker %v", b, pend, marked("bob"))
	}

	// Committed at once: never a marker.
	if _, err := s.Grab(ctx, p.ID, User{"carol", "Carol"}); err != nil {
		t.Fatal(err)
	}
	s.set.commit(ctx, []settleItem{<-s.set.queue})
	if b, pend := money(s, "carol"); b != 100 || pend != 0 || marked("carol") {
		t.Fatalf("committed: balance %d, pending %d, marker %v", b, pend, marked("carol"))
	}
	if n, err := rdb.XLen(ctx, s.k.outbox(p.ID)).Result(); err != nil || n != 0 {
		t.Fatalf("outbox holds %d entries: %v", n, err)
	}
	if rep := auditClean(t, s); rep.Uncredited != 0 {
		t.Fatalf("uncredited: %s", rep)
	}
}

// An outbox entry names a batch's positions; one written before that holds
// the claims themselves. Both are read, and anything else is refused.
func TestOutboxClaims(t *testing.T) {
	all := []Claim{{User: User{"a", "A"}, Seq: 1, Amount: 5}, {User: User{"b", "B"}, Seq: 2, Amount: 6}, {User: User{"c", "C"}, Seq: 3, Amount: 7}}
	cases := []struct {
		entry map[string]any
		want  []string // users, or nil for an error
	}{
		{map[string]any{"/first": "2", "/last": "3"}, []string{"b", "c"}},
		{map[string]any{"/first": "1", "/last": "1"}, []string{"a"}},
		{map[string]any{"z": "9|3|100|tok|Zed"}, []string{"z"}},
		{map[string]any{"/first": "3", "/last": "2"}, nil},
		{map[string]any{"/first": "x", "/last": "2"}, nil},
		{map[string]any{"z": "garbage"}, nil},
	}
	for _, tc := range cases {
		got, err := outboxClaims(tc.entry, all)
		var users []string
		for _, c := range got {
			users = append(users, c.User.ID)
		}
		if (tc.want == nil) != (err != nil) || fmt.Sprint(users) != fmt.Sprint(tc.want) && tc.want != nil {
			t.Errorf("%v: %v %v, want %v", tc.entry, users, err, tc.want)
		}
	}
}

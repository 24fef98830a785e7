package packet

import (
	"context"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// A user is known once funded or paid, in both modes; in ledger mode a user
// whose only money is a claim the settler has not committed is known too.
func TestUserKnown(t *testing.T) {
	ctx := context.Background()
	known := func(t *testing.T, s *Store, user string, want bool) {
		t.Helper()
		got, err := s.UserKnown(ctx, user)
		if err != nil || got != want {
			t.Fatalf("UserKnown(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
	grab := func(t *testing.T, s *Store) {
		t.Helper()
		p := mustCreate(t, s, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Lucky, Total: 100, Count: 1})
		if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("redis", func(t *testing.T) {
		s, _ := newStore(t, Config{})
		known(t, s, "alice", false)
		fund(t, s, "alice", 100)
		known(t, s, "alice", true)
		known(t, s, "bob", false)
		grab(t, s)
		known(t, s, "bob", true)
	})
	t.Run("ledger, claim not committed", func(t *testing.T) {
		// No settler runs: bob's claim stays pending in Redis.
		led, _ := newLedger(t)
		_, rdb := redistest.New(t)
		s := mustStore(t, rdb, Config{Ledger: led})
		known(t, s, "alice", false)
		fund(t, s, "alice", 100)
		known(t, s, "alice", true)
		known(t, s, "bob", false)
		grab(t, s)
		if w := wallet(t, s, "bob"); w.PendingTotal != 100 || w.Balance != 0 {
			t.Fatalf("bob's claim should be pending only: %+v", w)
		}
		known(t, s, "bob", true)
	})
	t.Run("ledger, claim committed", func(t *testing.T) {
		ls := newLedgerStore(t, Config{})
		fund(t, ls.Store, "alice", 100)
		grab(t, ls.Store)
		ls.settled(t, "bob")
		known(t, ls.Store, "bob", true)
		known(t, ls.Store, "carol", false)
	})
}

package ledger

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hongbao-dev/hongbao/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openLedger opens a ledger on a fresh database, without migrating.
func openLedger(t *testing.T, url string) *Ledger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, url, Config{MaxConns: 8, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// newLedger is a migrated ledger on a fresh database of its own.
func newLedger(t *testing.T) *Ledger {
	t.Helper()
	l := openLedger(t, pgtest.New(t))
	if _, err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

var clock atomic.Int64 // distinct created_at values for packets made by newPacket

func init() { clock.Store(time.Now().UnixMilli()) }

// newPacket is an open packet of sender's in room, one share per amount.
func newPacket(sender, room string, shares ...int64) Packet {
	var total int64
	for _, s := range shares {
		total += s
	}
	now := clock.Add(1)
	return Packet{
		ID: uuid.NewString(), Room: room, SenderID: sender, SenderName: "name of " + sender,
		Kind: "lucky", Greeting: "恭喜发财", Total: total, Count: len(shares),
		CreatedAt: now, VisibleAt: now, ExpiresAt: now + 86_400_000, DueAt: now + 86_400_000,
		Shares: shares,
	}
}

// claimsOf are the claims of users[i] on share i of p.
func claimsOf(p Packet, users ...string) []Claim {
	var cs []Claim
	for i, u := range users {
		cs = append(cs, Claim{PacketID: p.ID, UserID: u, UserName: "name of " + u, Seq: i + 1, Amount: p.Shares[i], At: p.CreatedAt + int64(i) + 1})
	}
	return cs
}

func mustFund(t *testing.T, l *Ledger, user string, amount int64) {
	t.Helper()
	if _, _, err := l.Fund(context.Background(), user, amount, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, l *Ledger, packets ...Packet) {
	t.Helper()
	if _, err := l.Open(context.Background(), packets, nil); err != nil {
		t.Fatal(err)
	}
}

func mustSettle(t *testing.T, l *Ledger, claims []Claim) {
	t.Helper()
	committed, rejected, err := l.Settle(context.Background(), claims)
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 0 || len(committed) != len(claims) {
		t.Fatalf("settle: %d committed, %d rejected (first: %+v); want all %d committed",
			len(committed), len(rejected), rejected[:min(len(rejected), 1)], len(claims))
	}
}

func balance(t *testing.T, l *Ledger, user string) int64 {
	t.Helper()
	w, err := l.Wallet(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return w.Balance
}

// exec runs SQL straight on the ledger's database (to tamper, or to look).
func exec(t *testing.T, l *Ledger, sql string, args ...any) {
	t.Helper()
	if _, err := l.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, l *Ledger, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := l.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// assertClean fails t unless the books balance, Snapshot finds no problem
// and CheckJournal no difference.
func assertClean(t *testing.T, l *Ledger) *Snapshot {
	t.Helper()
	s, err := l.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Sum != 0 || s.Funded != s.Wallets+s.Escrow || len(s.Problems) != 0 {
		t.Fatalf("snapshot: funded %d, wallets %d, escrow %d, sum %d, problems %v", s.Funded, s.Wallets, s.Escrow, s.Sum, s.Problems)
	}
	diffs, err := l.CheckJournal(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 0 {
		t.Fatalf("journal differences: %v", diffs)
	}
	return s
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func containsAny(list []string, id string) bool {
	for _, s := range list {
		if strings.Contains(s, id) {
			return true
		}
	}
	return false
}

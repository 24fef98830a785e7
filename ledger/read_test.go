package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestPacketView(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 1000)
	p := newPacket("ann", "lobby", 30, 20, 10)
	p.RainID = uuid.NewString()
	mustOpen(t, l, p)
	claims := claimsOf(p, "bob", "cat")
	mustSettle(t, l, []Claim{claims[1], claims[0]})

	v, err := l.Packet(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(v.Packet) != fmt.Sprint(p) {
		t.Fatalf("Packet =\n%+v, want\n%+v", v.Packet, p)
	}
	if v.Status != StatusOpen || v.Settled || v.FinishedAt != 0 || v.Refunded != 0 {
		t.Fatalf("status %+v", v)
	}
	if !slices.Equal(v.Claims, claims) {
		t.Fatalf("claims %+v, want in seq order %+v", v.Claims, claims)
	}
	for _, id := range []string{uuid.NewString(), "nope"} {
		_, err := l.Packet(ctx, id)
		wantErr(t, err, ErrNotFound)
	}
}

func TestWalletAndUserExists(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	if w, err := l.Wallet(ctx, "ghost"); err != nil || w != (Wallet{}) {
		t.Fatalf("unknown wallet = %+v, %v; want zero", w, err)
	}
	if ok, err := l.UserExists(ctx, "ghost"); err != nil || ok {
		t.Fatalf("UserExists(ghost) = %v, %v", ok, err)
	}
	mustFund(t, l, "ann", 5)
	if ok, err := l.UserExists(ctx, "ann"); err != nil || !ok {
		t.Fatalf("UserExists(ann) = %v, %v", ok, err)
	}
}

// pageAll follows a paginated list from the start and returns every item.
func pageAll[T any](t *testing.T, limit int, page func(cursor string) ([]T, string, error)) []T {
	t.Helper()
	var all []T
	cursor := ""
	for i := 0; ; i++ {
		items, next, err := page(cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > limit || (next != "" && len(items) != limit) {
			t.Fatalf("page %d: %d items, next %q", i, len(items), next)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func TestRoomAndSentPacketsPaginate(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 100_000)
	var want []Packet
	for i := range 25 {
		p := newPacket("ann", "lobby", int64(10+i), 1)
		p.CreatedAt = int64(1000 + i/3) // ties: order falls back to the id
		want = append(want, p)
	}
	mustOpen(t, l, want...)
	mustOpen(t, l, newPacket("ann", "elsewhere", 5)) // another room
	mustSettle(t, l, claimsOf(want[3], "viewer"))
	claimedID := want[3].ID                       // the viewer took its first share, 13
	slices.SortFunc(want, func(a, b Packet) int { // newest first
		if a.CreatedAt != b.CreatedAt {
			return int(b.CreatedAt - a.CreatedAt)
		}
		return strings.Compare(b.ID, a.ID)
	})

	got := pageAll(t, 10, func(c string) ([]Listed, string, error) { return l.RoomPackets(ctx, "lobby", "viewer", c, 10) })
	if len(got) != 25 {
		t.Fatalf("%d packets listed, want 25", len(got))
	}
	for i, x := range got {
		if x.ID != want[i].ID || x.Shares != nil || x.Status != StatusOpen {
			t.Fatalf("item %d = %s (%+v), want %s", i, x.ID, x, want[i].ID)
		}
		mine := x.ClaimedCount == 1 && x.ClaimedAmount == 13 && x.Mine != nil && *x.Mine == 13
		untouched := x.ClaimedCount == 0 && x.ClaimedAmount == 0 && x.Mine == nil
		if (x.ID == claimedID && !mine) || (x.ID != claimedID && !untouched) {
			t.Fatalf("item %d: claimed %d/%d, mine %v", i, x.ClaimedCount, x.ClaimedAmount, x.Mine)
		}
	}

	sent := pageAll(t, 10, func(c string) ([]Listed, string, error) { return l.SentPackets(ctx, "ann", c, 10) })
	if len(sent) != 26 {
		t.Fatalf("%d packets sent, want 26", len(sent))
	}
	if _, _, err := l.RoomPackets(ctx, "lobby", "", "garbage!", 10); err == nil {
		t.Fatal("a bad cursor was accepted")
	} else {
		wantErr(t, err, ErrInvalid)
	}
}

func TestUserClaimsPaginateAndCommitted(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	mustFund(t, l, "ann", 100_000)
	var want []UserClaim
	var ids []string
	for i := range 25 {
		p := newPacket("ann", fmt.Sprintf("room%d", i%3), 7, 3)
		mustOpen(t, l, p)
		c := claimsOf(p, "bob")[0]
		c.At = int64(5000 + i/4) // ties: order falls back to the packet id
		mustSettle(t, l, []Claim{c})
		want = append(want, UserClaim{PacketID: p.ID, Room: p.Room, Amount: 7, At: c.At})
		ids = append(ids, p.ID)
	}
	slices.SortFunc(want, func(a, b UserClaim) int {
		if a.At != b.At {
			return int(b.At - a.At)
		}
		return strings.Compare(b.PacketID, a.PacketID)
	})
	got := pageAll(t, 10, func(c string) ([]UserClaim, string, error) { return l.UserClaims(ctx, "bob", c, 10) })
	if !slices.Equal(got, want) {
		t.Fatalf("claims listed\n%v\nwant\n%v", got, want)
	}

	other := uuid.NewString()
	committed, err := l.Committed(ctx, "bob", append([]string{other, "junk"}, ids[:3]...))
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) != 5 || committed[other] || committed["junk"] || !committed[ids[0]] || !committed[ids[2]] {
		t.Fatalf("Committed = %v", committed)
	}
}

package packet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// draftAddressed drafts req and resolves its recipients, as web does.
func draftAddressed(t *testing.T, s *Store, req CreateRequest) (*Draft, error) {
	t.Helper()
	d, err := s.Draft(req)
	if err != nil {
		return nil, err
	}
	return d, s.Address(context.Background(), d)
}

func openDraft(t *testing.T, s *Store, d *Draft) *Packet {
	t.Helper()
	if _, err := s.Open(context.Background(), []*Draft{d}, nil); err != nil {
		t.Fatalf("open: %v", err)
	}
	return &d.Packet
}

// batch settles reqs in one script call, as the coalescer does for grabs
// that arrive together, and returns each outcome's error.
func batch(t *testing.T, s *Store, id string, grabs ...grabRequest) []error {
	t.Helper()
	out := s.settleBatch(context.Background(), id, grabs)
	errs := make([]error, len(out))
	for i, o := range out {
		errs[i] = o.err
		if o.err == nil && o.res.Amount <= 0 {
			t.Fatalf("grab %d: no error and no amount", i)
		}
	}
	return errs
}

func req(t *testing.T, id, password string) grabRequest {
	t.Helper()
	return newGrabRequest(User{ID: id, Name: strings.ToUpper(id)}, password)
}

func wantErrs(t *testing.T, what string, got []error, want ...error) {
	t.Helper()
	for i := range want {
		if (want[i] == nil) != (got[i] == nil) || want[i] != nil && !errors.Is(got[i], want[i]) {
			t.Fatalf("%s: grab %d got %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

// One script call that mixes users an exclusive packet is for with users it
// is not for, and right and wrong passwords, answers each grab on its own;
// the refused grabs take no share and may try again.
func TestKindsInOneBatch(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx := context.Background()
		for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
			fund(t, s, u, 1000)
		}
		if err := s.RememberName(ctx, User{"dave", "Dave D."}); err != nil {
			t.Fatal(err)
		}
		alice := User{"alice", "Alice"}
		d, err := draftAddressed(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: 300, Count: 3, To: []string{"bob", "dave"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.To) != 2 || d.To[0] != (User{"bob", "bob"}) || d.To[1] != (User{"dave", "Dave D."}) {
			t.Fatalf("to: %+v", d.To)
		}
		ex := openDraft(t, s, d)
		errs := batch(t, s, ex.ID, req(t, "bob", ""), req(t, "carol", ""), req(t, "dave", "x"), req(t, "erin", ""), req(t, "carol", ""))
		wantErrs(t, "exclusive", errs, nil, ErrNotForYou, nil, ErrNotForYou, ErrNotForYou)
		auditClean(t, s)

		pw, err := draftAddressed(t, s, CreateRequest{Room: "r", Sender: alice, Kind: Equal, Total: 400, Count: 4, Password: "café"})
		if err != nil {
			t.Fatal(err)
		}
		pp := openDraft(t, s, pw)
		errs = batch(t, s, pp.ID, req(t, "bob", "cafe"), req(t, "carol", "cafe\u0301"), req(t, "bob", "café"), req(t, "dave", ""), req(t, "carol", "café"))
		wantErrs(t, "password", errs, ErrWrongPassword, nil, nil, ErrWrongPassword, ErrAlreadyGrabbed)
		auditClean(t, s)

		for u, want := range map[string]int64{"bob": 1200, "carol": 1100, "dave": 1100, "erin": 1000} {
			if w := wallet(t, s, u); w.Balance != want {
				t.Fatalf("%s holds %d, want %d", u, w.Balance, want)
			}
		}
		got, err := s.Detail(ctx, pp.ID)
		if err != nil || got.RemainingCount != 2 || got.Password != "café" {
			t.Fatalf("password packet after the batch: %+v %v", got, err)
		}
		got, err = s.Detail(ctx, ex.ID)
		if err != nil || got.RemainingCount != 1 || len(got.To) != 2 || got.To[1].Name != "Dave D." {
			t.Fatalf("exclusive packet after the batch: %+v %v", got, err)
		}
	})
}

// A countdown packet refuses grabs until it opens and expires TTL after.
func TestCountdownPacket(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	fund(t, s, "alice", 1000)
	opens := time.Now().Add(1500 * time.Millisecond)
	p := mustCreate(t, s, CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Lucky, Total: 100, Count: 2,
		OpensAt: opens, TTL: time.Minute})
	if p.OpensAt != opens.UnixMilli() || p.VisibleAt != p.OpensAt || p.ExpiresAt != p.OpensAt+60000 {
		t.Fatalf("countdown packet: %+v", p)
	}
	if _, err := s.Grab(ctx, p.ID, User{"bob", "Bob"}); !errors.Is(err, ErrNotYet) {
		t.Fatalf("grab before opens_at: %v", err)
	}
	auditClean(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := s.Grab(ctx, p.ID, User{"bob", "Bob"})
		if err == nil {
			if g.At < p.OpensAt {
				t.Fatalf("paid at %d, before opens_at %d", g.At, p.OpensAt)
			}
			break
		}
		if !errors.Is(err, ErrNotYet) || time.Now().After(deadline) {
			t.Fatalf("grab after opens_at: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d, err := s.Detail(ctx, p.ID); err != nil || d.OpensAt != p.OpensAt {
		t.Fatalf("detail: %+v %v", d, err)
	}
}

func TestKindsDraftRefusals(t *testing.T) {
	s, _ := newStore(t, Config{})
	fund(t, s, "bob", 1)
	base := CreateRequest{Room: "r", Sender: User{"alice", "Alice"}, Kind: Equal, Total: 100, Count: 1}
	many := make([]string, MaxRecipients+1)
	for i := range many {
		many[i] = "u" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
	}
	now := time.Now()
	cases := []struct {
		name string
		edit func(*CreateRequest)
		want error
	}{
		{"empty to", func(r *CreateRequest) { r.To = []string{} }, ErrInvalidRequest},
		{"too many", func(r *CreateRequest) { r.To = many }, ErrInvalidRequest},
		{"duplicate", func(r *CreateRequest) { r.To = []string{"bob", "bob"} }, ErrInvalidRequest},
		{"blank id", func(r *CreateRequest) { r.To = []string{""} }, ErrInvalidRequest},
		{"unknown", func(r *CreateRequest) { r.To = []string{"bob", "nobody"} }, ErrNotFound},
		{"to and password", func(r *CreateRequest) { r.To, r.Password = []string{"bob"}, "pw" }, ErrInvalidRequest},
		{"blank password", func(r *CreateRequest) { r.Password = "   " }, ErrInvalidRequest},
		{"long password", func(r *CreateRequest) { r.Password = strings.Repeat("口", MaxPassword+1) }, ErrInvalidRequest},
		{"control", func(r *CreateRequest) { r.Password = "a\nb" }, ErrInvalidRequest},
		{"zero width", func(r *CreateRequest) { r.Password = "a\u200bb" }, ErrInvalidRequest},
		{"past", func(r *CreateRequest) { r.OpensAt = now.Add(-time.Second) }, ErrInvalidRequest},
		{"too far", func(r *CreateRequest) { r.OpensAt = now.Add(MaxCountdown + time.Minute) }, ErrInvalidRequest},
		{"rain countdown", func(r *CreateRequest) { r.OpensAt, r.VisibleAt = now.Add(time.Minute), now.Add(time.Minute) }, ErrInvalidRequest},
		{"longest password", func(r *CreateRequest) { r.Password = strings.Repeat("口", MaxPassword) }, nil},
		{"hundred", func(r *CreateRequest) { r.To = many[:MaxRecipients] }, ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base
			c.edit(&r)
			_, err := draftAddressed(t, s, r)
			if (c.want == nil) != (err == nil) || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// The ledger keeps what makes a packet exclusive, password or countdown, so
// a packet rebuilt after Redis lost it refuses and pays as before.
func TestLedgerRebuildKeepsKinds(t *testing.T) {
	ls := newLedgerStore(t, Config{})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol"} {
		fund(t, ls.Store, u, 1000)
	}
	if err := ls.RememberName(ctx, User{"bob", "Bobby"}); err != nil {
		t.Fatal(err)
	}
	alice := User{"alice", "Alice"}
	open := func(r CreateRequest) *Packet {
		r.Room, r.Sender, r.Kind, r.Total, r.Count = "r", alice, Equal, 200, 2
		d, err := draftAddressed(t, ls.Store, r)
		if err != nil {
			t.Fatal(err)
		}
		return openDraft(t, ls.Store, d)
	}
	ex := open(CreateRequest{To: []string{"bob"}})
	pw := open(CreateRequest{Password: "芝麻开门"})
	cd := open(CreateRequest{OpensAt: time.Now().Add(MaxCountdown)})
	if err := ls.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Packet{ex, pw, cd} {
		d, err := ls.Detail(ctx, p.ID)
		if err != nil || len(d.To) != len(p.To) || d.Password != p.Password || d.OpensAt != p.OpensAt {
			t.Fatalf("from the ledger: %+v %v, want %+v", d, err, p)
		}
		if err := ls.led.Schedule(ctx, p.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ls.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := ls.Detail(ctx, ex.ID); err != nil || len(d.To) != 1 || d.To[0] != (User{"bob", "Bobby"}) {
		t.Fatalf("rebuilt exclusive packet: %+v %v", d, err)
	}
	steps := []struct {
		p        *Packet
		user, pw string
		want     error
	}{
		{ex, "carol", "", ErrNotForYou}, {ex, "bob", "", nil},
		{pw, "bob", "芝麻", ErrWrongPassword}, {pw, "bob", "芝麻开门", nil},
		{cd, "carol", "", ErrNotYet},
	}
	for _, st := range steps {
		_, err := ls.GrabWithPassword(ctx, st.p.ID, User{st.user, st.user}, st.pw)
		if (st.want == nil) != (err == nil) || st.want != nil && !errors.Is(err, st.want) {
			t.Fatalf("%s grabs %s after the rebuild: %v, want %v", st.user, st.p.ID, err, st.want)
		}
	}
	ls.settled(t, "bob", "carol")
}

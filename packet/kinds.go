package packet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// The kinds of packet beyond lucky and equal, which combine with both:
// exclusive (To), password and countdown (OpensAt). Exclusive and password
// do not combine: a phrase said in the room would unlock nothing for anyone
// but the named users, who need none.
const (
	// MaxRecipients is the most users an exclusive packet may name.
	MaxRecipients = 100
	// MaxPassword is the longest password, in runes after NFC.
	MaxPassword = 32
	// MaxCountdown is how far ahead a countdown packet may open.
	MaxCountdown = 10 * time.Minute
)

// NormalizePassword is the form in which passwords are stored and compared:
// NFC, so that "é" typed as one code point or as e + U+0301 is one phrase.
func NormalizePassword(p string) string { return norm.NFC.String(p) }

// passwordHash is what the grab script compares: the SHA-256 of the
// normalised phrase, in hex; "" for no phrase.
func passwordHash(p string) string {
	if p == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(NormalizePassword(p)))
	return hex.EncodeToString(sum[:])
}

// draftKinds checks the exclusive, password and countdown parts of req and
// sets them on p, whose VisibleAt is then a countdown's OpensAt.
func draftKinds(req CreateRequest, p *Packet, now time.Time) error {
	if req.To != nil {
		to, err := recipients(req.To)
		if err != nil {
			return err
		}
		p.To = to
	}
	if req.Password != "" {
		pw := NormalizePassword(req.Password)
		if strings.TrimSpace(pw) == "" || !ValidText(pw, MaxPassword) {
			return apierr.Refuse(ErrInvalidRequest, "password must be 1 to %d characters of text", MaxPassword)
		}
		if p.To != nil {
			return apierr.Refuse(ErrInvalidRequest, "a packet is exclusive (to) or has a password, not both")
		}
		p.Password = pw
	}
	if !req.OpensAt.IsZero() {
		if !req.VisibleAt.IsZero() {
			return apierr.Refuse(ErrInvalidRequest, "a rain's packets have no countdown")
		}
		switch {
		case req.OpensAt.Before(now):
			return apierr.Refuse(ErrInvalidRequest, "opens_at is in the past")
		case req.OpensAt.After(now.Add(MaxCountdown)):
			return apierr.Refuse(ErrInvalidRequest, "opens_at may be at most %v ahead", MaxCountdown)
		}
		p.OpensAt = req.OpensAt.UnixMilli()
	}
	return nil
}

// recipients checks an exclusive packet's list of user ids: 1..MaxRecipients
// distinct, non-empty ids. Their names are the ids until Address fills them.
func recipients(ids []string) ([]User, error) {
	if len(ids) == 0 || len(ids) > MaxRecipients {
		return nil, apierr.Refuse(ErrInvalidRequest, "to must list 1 to %d user ids, got %d", MaxRecipients, len(ids))
	}
	seen := make(map[string]bool, len(ids))
	out := make([]User, len(ids))
	for i, id := range ids {
		if id == "" || len(id) > 128 || strings.ContainsAny(id, "{}|") || !ValidText(id, 128) {
			return nil, apierr.Refuse(ErrInvalidRequest, "to[%d] is not a user id", i)
		}
		if seen[id] {
			return nil, apierr.Refuse(ErrInvalidRequest, "to names %q twice", id)
		}
		seen[id] = true
		out[i] = User{ID: id, Name: id}
	}
	return out, nil
}

// Address checks that every user an exclusive draft is for is known (has
// held a wallet; see UserKnown), else not_found naming the first who is not,
// and fills in their latest display names from the user directory.
func (s *Store) Address(ctx context.Context, d *Draft) error {
	if len(d.To) == 0 {
		return nil
	}
	ids := make([]string, len(d.To))
	for i, u := range d.To {
		known, err := s.UserKnown(ctx, u.ID)
		if err != nil {
			return err
		}
		if !known {
			return apierr.Refuse(ErrNotFound, "no user %q", u.ID)
		}
		ids[i] = u.ID
	}
	names, err := s.Names(ctx, ids)
	if err != nil {
		return err
	}
	for i := range d.To {
		if n := names[d.To[i].ID]; n != "" {
			d.To[i].Name = n
		}
	}
	return nil
}

// toJSON is the To list as the packet's meta keeps it: "" for none.
func toJSON(to []User) (string, error) {
	if len(to) == 0 {
		return "", nil
	}
	b, err := json.Marshal(to)
	return string(b), err
}

// parseTo reads the To list from the packet's meta.
func parseTo(v string) ([]User, error) {
	if v == "" {
		return nil, nil
	}
	var to []User
	if err := json.Unmarshal([]byte(v), &to); err != nil {
		return nil, fmt.Errorf("bad to %q: %w", v, err)
	}
	return to, nil
}

func userIDs(us []User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func userNames(us []User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Name
	}
	return out
}

// usersOf pairs ids with names (a name missing is the id).
func usersOf(ids, names []string) []User {
	if len(ids) == 0 {
		return nil
	}
	out := make([]User, len(ids))
	for i, id := range ids {
		out[i] = User{ID: id, Name: id}
		if i < len(names) && names[i] != "" {
			out[i].Name = names[i]
		}
	}
	return out
}

// Package packet is the money core of hongbao: red packets, their pre-split
// shares, wallets, and a Redis store in which every state change is one
// atomic Lua script touching the keys of a single hash slot.
//
// All amounts are int64 fen (1/100 yuan). Nothing in this package uses a
// floating-point number for money.
package packet

import (
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// Kind is how a packet's total is divided.
type Kind string

const (
	// Lucky shares are random (double-mean method), pre-split at creation.
	Lucky Kind = "lucky"
	// Equal shares are total / count each.
	Equal Kind = "equal"
)

// Status is where a packet is in its life.
type Status string

const (
	// StatusPending: created, sender not yet confirmed debited. Not grabbable.
	StatusPending Status = "pending"
	// StatusActive: debited and open for grabs (from VisibleAt on).
	StatusActive Status = "active"
	// StatusEmpty: every share was grabbed.
	StatusEmpty Status = "empty"
	// StatusExpired: closed at ExpiresAt; the remainder is refunded.
	StatusExpired Status = "expired"
	// StatusCancelled: creation failed before the sender was debited. Holds no
	// money and is never shown.
	StatusCancelled Status = "cancelled"
)

// User identifies a wallet owner; Name is what others see.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Packet is a red packet's immutable description.
type Packet struct {
	ID       string `json:"id"`
	Room     string `json:"room"`
	Sender   User   `json:"sender"`
	Kind     Kind   `json:"kind"`
	Total    int64  `json:"total"`
	Count    int    `json:"count"`
	Greeting string `json:"greeting"`
	// Times are Unix milliseconds.
	CreatedAt int64 `json:"created_at"`
	VisibleAt int64 `json:"visible_at"`
	ExpiresAt int64 `json:"expires_at"`
	// To lists the only users who may grab an exclusive packet (专属), with
	// their display names; empty for anyone.
	To []User `json:"to,omitempty"`
	// Password is the phrase a grab must carry (口令), NFC-normalised; ""
	// for none. It is public in the room, like a phrase said in the chat.
	Password string `json:"password,omitempty"`
	// OpensAt is when a countdown packet (定时) opens, Unix ms (= VisibleAt);
	// 0 for others. Unlike a rain's packets, it is announced at creation.
	OpensAt int64 `json:"opens_at,omitempty"`
}

// State is a packet with its current status and what is left in it.
type State struct {
	Packet
	Status          Status `json:"status"`
	RemainingCount  int    `json:"remaining_count"`
	RemainingAmount int64  `json:"remaining_amount"`
}

// Limits bound what a sender may create. Zero fields take the defaults in
// DefaultLimits().
type Limits struct {
	// MaxCount is the largest number of shares. Default 1000.
	MaxCount int
	// MinShare is the smallest share in fen. Default 1 (¥0.01).
	MinShare int64
	// MaxShare is the largest share in fen, for lucky and equal alike.
	// Default 20000 (¥200).
	MaxShare int64
	// MaxGreeting is the longest greeting in runes. Default 64.
	MaxGreeting int
	// DefaultTTL is how long a packet stays open when the request names no
	// TTL. Default 24 h.
	DefaultTTL time.Duration
	// MaxTTL is the longest TTL a request may ask for. Default 72 h.
	MaxTTL time.Duration
	// MinTTL is the shortest TTL a request may ask for. Default 1 s.
	MinTTL time.Duration
}

// DefaultLimits returns the limits used for zero fields of Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxCount:    1000,
		MinShare:    1,
		MaxShare:    20000,
		MaxGreeting: 64,
		DefaultTTL:  24 * time.Hour,
		MaxTTL:      72 * time.Hour,
		MinTTL:      time.Second,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxCount > 0 {
		d.MaxCount = l.MaxCount
	}
	if l.MinShare > 0 {
		d.MinShare = l.MinShare
	}
	if l.MaxShare > 0 {
		d.MaxShare = l.MaxShare
	}
	if l.MaxGreeting > 0 {
		d.MaxGreeting = l.MaxGreeting
	}
	if l.DefaultTTL > 0 {
		d.DefaultTTL = l.DefaultTTL
	}
	if l.MaxTTL > 0 {
		d.MaxTTL = l.MaxTTL
	}
	if l.MinTTL > 0 {
		d.MinTTL = l.MinTTL
	}
	return d
}

// Check validates a kind, total and count against the limits. Each violation
// has its own code.
func (l Limits) Check(kind Kind, total int64, count int) error {
	l = l.withDefaults()
	if kind != Lucky && kind != Equal {
		return apierr.Refuse(ErrInvalidRequest, "kind must be %q or %q", Lucky, Equal)
	}
	if total <= 0 {
		return apierr.Refuse(ErrInvalidAmount, "total must be a positive number of fen, got %d", total)
	}
	if count < 1 || count > l.MaxCount {
		return apierr.Refuse(ErrInvalidCount, "count must be between 1 and %d, got %d", l.MaxCount, count)
	}
	n := int64(count)
	if total < n*l.MinShare {
		return apierr.Refuse(ErrShareTooSmall, "%d fen cannot give %d shares of at least %d fen", total, count, l.MinShare)
	}
	if kind == Equal {
		if total%n != 0 {
			return apierr.Refuse(ErrUnevenTotal, "%d fen does not divide evenly into %d shares", total, count)
		}
		if total/n > l.MaxShare {
			return apierr.Refuse(ErrShareTooLarge, "each share would be %d fen, above the maximum of %d", total/n, l.MaxShare)
		}
	}
	if total > n*l.MaxShare {
		return apierr.Refuse(ErrTotalTooLarge, "%d fen over %d shares exceeds %d × %d fen", total, count, count, l.MaxShare)
	}
	return nil
}

// ValidText reports whether s is valid UTF-8 without control characters or
// format characters (Unicode category Cf: bidi overrides, zero-width
// spaces and joiners, with which "Alice\u200b" passes for Alice) and at most
// max runes long. Used for names, greetings and chat alike.
func ValidText(s string, max int) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

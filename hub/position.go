package hub

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Position is a place in a room's stream of durable frames: Seq is the
// number of the last durable frame (1 for the first; 0 before any) and Epoch
// names the history that Seq counts in. A room's epoch changes when its
// history is lost (Redis restarted without persistence, the room sat idle
// past the broker's HistoryMetaTTL), and seqs of different epochs are not
// comparable.
type Position struct {
	Seq   uint64
	Epoch string
}

// maxEpochLen bounds an epoch token, so a client cannot make the hub carry
// a long string around; generated epochs are epochLen long.
const (
	maxEpochLen = 32
	epochLen    = 12
)

// ErrBadPosition is wrapped by every ParsePosition error.
var ErrBadPosition = errors.New("bad position")

// ParsePosition parses "<epoch>:<seq>" as a client sends it in since=: epoch
// is 1 to 32 characters of [A-Za-z0-9], seq a decimal uint64 without sign or
// leading zeros. It never panics; every error wraps ErrBadPosition and says
// what is wrong.
func ParsePosition(s string) (Position, error) {
	epoch, seq, ok := strings.Cut(s, ":")
	if !ok {
		return Position{}, fmt.Errorf("%w: want <epoch>:<seq>, got no ':'", ErrBadPosition)
	}
	if err := checkEpoch(epoch); err != nil {
		return Position{}, err
	}
	if seq == "" || len(seq) > 1 && seq[0] == '0' {
		return Position{}, fmt.Errorf("%w: seq must be a decimal number without leading zeros", ErrBadPosition)
	}
	for i := 0; i < len(seq); i++ {
		if seq[i] < '0' || seq[i] > '9' {
			return Position{}, fmt.Errorf("%w: seq must be a decimal number without leading zeros", ErrBadPosition)
		}
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("%w: seq is out of range", ErrBadPosition)
	}
	return Position{Seq: n, Epoch: epoch}, nil
}

func checkEpoch(e string) error {
	if e == "" || len(e) > maxEpochLen {
		return fmt.Errorf("%w: epoch must be 1 to %d characters", ErrBadPosition, maxEpochLen)
	}
	for i := 0; i < len(e); i++ {
		if !isEpochChar(e[i]) {
			return fmt.Errorf("%w: epoch must be letters and digits only", ErrBadPosition)
		}
	}
	return nil
}

func isEpochChar(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// String formats p as ParsePosition reads it.
func (p Position) String() string {
	return p.Epoch + ":" + strconv.FormatUint(p.Seq, 10)
}

// IsZero reports whether p is no position at all (no epoch).
func (p Position) IsZero() bool { return p.Epoch == "" }

// newEpoch returns a fresh random epoch token. Epochs come from Go, never
// from Lua, whose math.random is seeded identically on every Redis start and
// would hand a restarted Redis the epoch it had before.
func newEpoch() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [epochLen]byte
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// Durable frames start with their position, written by the broker in
// exactly this form: {"seq":<digits>,"epoch":"<token>", or the same with
// '}' instead of the last ',' when the caller's object was empty.
const (
	seqPrefix   = `{"seq":`
	epochPrefix = `,"epoch":"`
)

// framePosition reads the position a durable frame starts with. It reports
// false for any other frame (ephemeral frames have none), and never panics:
// it is a fixed-format scan, not a JSON parse, because it runs for every
// frame of every room.
func framePosition(frame []byte) (Position, bool) {
	if len(frame) < len(seqPrefix) || string(frame[:len(seqPrefix)]) != seqPrefix {
		return Position{}, false
	}
	rest := frame[len(seqPrefix):]
	var seq uint64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		d := uint64(rest[i] - '0')
		if seq > (^uint64(0)-d)/10 {
			return Position{}, false
		}
		seq = seq*10 + d
	}
	if i == 0 || i > 1 && rest[0] == '0' {
		return Position{}, false
	}
	rest = rest[i:]
	if len(rest) < len(epochPrefix) || string(rest[:len(epochPrefix)]) != epochPrefix {
		return Position{}, false
	}
	rest = rest[len(epochPrefix):]
	j := 0
	for ; j < len(rest) && j <= maxEpochLen && isEpochChar(rest[j]); j++ {
	}
	if j == 0 || j > maxEpochLen || len(rest) < j+2 || rest[j] != '"' || rest[j+1] != ',' && rest[j+1] != '}' {
		return Position{}, false
	}
	return Position{Seq: seq, Epoch: string(rest[:j])}, true
}

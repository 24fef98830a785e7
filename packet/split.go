package packet

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// Splitter divides totals into shares. It is safe for concurrent use.
//
// Randomness comes from a ChaCha8 generator seeded from crypto/rand, so
// splits are unpredictable and unbiased; Lua never generates randomness.
type Splitter struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// NewSplitter returns a Splitter seeded from crypto/rand.
func NewSplitter() *Splitter {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read never fails on supported platforms.
	return NewSplitterSeed(seed)
}

// NewSplitterSeed returns a deterministic Splitter, for tests and fuzzing.
func NewSplitterSeed(seed [32]byte) *Splitter {
	return &Splitter{rng: rand.New(rand.NewChaCha8(seed))}
}

// Split divides total into count shares for kind, each within
// [minShare, maxShare], summing exactly to total. The caller has validated the
// inputs with Limits.Check; Split returns an error rather than a wrong split
// if they are not satisfiable anyway.
func (s *Splitter) Split(kind Kind, total int64, count int, minShare, maxShare int64) ([]int64, error) {
	if count < 1 || total < int64(count)*minShare || total > int64(count)*maxShare || minShare < 1 {
		return nil, apierr.Refuse(ErrInvalidRequest, "cannot split %d fen into %d shares within [%d, %d]", total, count, minShare, maxShare)
	}
	if kind == Equal {
		if total%int64(count) != 0 {
			return nil, apierr.Refuse(ErrUnevenTotal, "%d fen does not divide evenly into %d shares", total, count)
		}
		shares := make([]int64, count)
		for i := range shares {
			shares[i] = total / int64(count)
		}
		return shares, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return splitLucky(s.rng, total, count, minShare, maxShare), nil
}

// splitLucky is the double-mean method: each share is uniform in
// [minShare, 2 × the mean of what remains], narrowed so that the shares still
// to come can each stay within [minShare, maxShare]; the last share takes the
// rest. Positions drawn early have a different spread from late ones, so the
// result is shuffled: every grab position then has the same distribution.
func splitLucky(rng *rand.Rand, total int64, count int, minShare, maxShare int64) []int64 {
	shares := make([]int64, count)
	remaining := total
	for i := 0; i < count-1; i++ {
		left := int64(count - i) // shares still to assign, this one included
		lo := max(minShare, remaining-(left-1)*maxShare)
		hi := min(maxShare, 2*remaining/left, remaining-(left-1)*minShare)
		if hi < lo {
			// Only when the max bound forces shares above twice the mean.
			hi = lo
		}
		share := lo + rng.Int64N(hi-lo+1)
		shares[i] = share
		remaining -= share
	}
	shares[count-1] = remaining
	rng.Shuffle(count, func(i, j int) { shares[i], shares[j] = shares[j], shares[i] })
	return shares
}

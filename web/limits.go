package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterSet holds one token bucket per key (a user id), dropping buckets
// that have been idle long enough to be full again.
type limiterSet struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[string]*entry
	swept time.Time
}

type entry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiterSet(r rate.Limit, burst int) *limiterSet {
	return &limiterSet{rate: r, burst: burst, m: map[string]*entry{}}
}

// allow takes a token from key's bucket.
func (s *limiterSet) allow(key string) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.swept) > time.Minute {
		for k, e := range s.m {
			if now.Sub(e.seen) > time.Minute {
				delete(s.m, k)
			}
		}
		s.swept = now
	}
	e, ok := s.m[key]
	if !ok {
		e = &entry{lim: rate.NewLimiter(s.rate, s.burst)}
		s.m[key] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}

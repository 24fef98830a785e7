package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterSet holds one token bucket per key (a user id, a client address),
// dropping buckets that have been idle long enough to be full again, so a
// dropped bucket and a new one are the same.
type limiterSet struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	idle  time.Duration // how long an untouched bucket takes to refill
	m     map[string]*entry
	swept time.Time
}

type entry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiterSet(r rate.Limit, burst int) *limiterSet {
	idle := time.Minute
	if r > 0 {
		// At most a day, so a tiny rate cannot overflow the duration.
		refill := min(float64(burst)/float64(r), 24*3600)
		idle = max(idle, time.Duration(refill*float64(time.Second)))
	}
	return &limiterSet{rate: r, burst: burst, idle: idle, m: map[string]*entry{}}
}

// allow takes a token from key's bucket.
func (s *limiterSet) allow(key string) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.swept) > s.idle {
		for k, e := range s.m {
			if now.Sub(e.seen) > s.idle {
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

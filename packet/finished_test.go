package packet

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Every answer the finished-packet cache gives is the one grabmany.lua gives
// the same grab. For each kind of packet, once it is empty, every probe
// (its winners, a user who got sold_out, outsiders, a recipient who did not
// grab; no, the right and a wrong phrase) is answered by the cache and by
// the script itself, and the two must agree. An instance that only heard
// sold_out from Redis learns the packet as well as the one that emptied it.
// Near expiry the cache gives no answer and Redis says expired.
func TestFinishedCacheAnswersAsRedis(t *testing.T) {
	const phrase = "芝麻开门"
	cases := []struct {
		name string
		req  CreateRequest
		// opensIn makes a countdown packet that opens this long after
		// its subtest starts.
		opensIn time.Duration
		// expire probes once Redis time is past the packet's expiry.
		expire bool
	}{
		{name: "lucky", req: CreateRequest{Kind: Lucky, Total: 700, Count: 3}},
		{name: "equal", req: CreateRequest{Kind: Equal, Total: 300, Count: 3}},
		{name: "big", req: CreateRequest{Kind: Lucky, Total: 4000, Count: 40}},
		{name: "password", req: CreateRequest{Kind: Lucky, Total: 500, Count: 3, Password: phrase}},
		{name: "exclusive", req: CreateRequest{Kind: Equal, Total: 300, Count: 3, To: []string{"w0", "w1", "w2", "member"}}},
		{name: "countdown", req: CreateRequest{Kind: Lucky, Total: 300, Count: 3}, opensIn: 300 * time.Millisecond},
		{name: "expired", req: CreateRequest{Kind: Equal, Total: 300, Count: 3, TTL: 2 * time.Second}, expire: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s, rdb := newStore(t, Config{Metrics: NewMetrics(reg)})
			ctx := context.Background()
			fund(t, s, "alice", 10000)
			for _, u := range []string{"member", "loser", "outsider"} {
				fund(t, s, u, 1) // known users, for the exclusive packet
			}
			winners := make([]string, tc.req.Count)
			for i := range winners {
				winners[i] = fmt.Sprint("w", i)
				fund(t, s, winners[i], 1)
			}
			tc.req.Room, tc.req.Sender = "r", User{"alice", "Alice"}
			if tc.opensIn > 0 {
				tc.req.OpensAt = time.Now().Add(tc.opensIn)
			}
			d, err := draftAddressed(t, s, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			p := openDraft(t, s, d)
			for _, w := range winners {
				grabUntilOpen(t, s, p.ID, req(t, w, tc.req.Password))
			}
			// Another instance hears sold_out from Redis, then knows too.
			other := mustStore(t, rdb, Config{})
			if _, err := other.GrabWithPassword(ctx, p.ID, User{"loser", "LOSER"}, tc.req.Password); !errors.Is(err, wantAfterEmpty(tc.req, "loser")) {
				t.Fatalf("loser's grab: %v", err)
			}
			if tc.expire {
				awaitRedisTime(t, rdb, p.ExpiresAt)
			}
			users := append([]string{"loser", "outsider", "member"}, winners...)
			passwords := []string{"", tc.req.Password, "wrong"}
			answered, expired := 0, 0
			for _, store := range []*Store{s, other} {
				for _, u := range users {
					for _, pw := range passwords {
						r := req(t, u, pw)
						local, ok := store.done.answer(p.ID, r, store.cfg.Now().UnixMilli())
						viaRedis, _ := store.grabBatch(ctx, p.ID, "", []grabRequest{r}) // the script itself, no cache
						if errors.Is(viaRedis[0].err, ErrExpired) {
							expired++
						}
						if !ok {
							continue
						}
						answered++
						if local.err != viaRedis[0].err || local.res != viaRedis[0].res {
							t.Errorf("%s with %q: the cache says %v %+v, Redis %v %+v", u, pw, local.err, local.res, viaRedis[0].err, viaRedis[0].res)
						}
					}
				}
			}
			probes := 2 * len(users) * len(passwords)
			switch {
			case tc.expire && (answered != 0 || expired == 0):
				t.Fatalf("past expiry the cache answered %d of %d probes; Redis said expired %d times", answered, probes, expired)
			case !tc.expire && answered != probes:
				t.Fatalf("the cache answered %d of %d probes", answered, probes)
			}
			// Local answers are counted; the grabs that went to Redis are not.
			if _, err := s.GrabWithPassword(ctx, p.ID, User{"outsider", "O"}, tc.req.Password); !tc.expire && !errors.Is(err, wantAfterEmpty(tc.req, "outsider")) {
				t.Fatalf("outsider's grab: %v", err)
			}
			n := counterSum(t, reg, "hongbao_grab_local_answers_total")
			if want := wantAfterEmpty(tc.req, "outsider").Code; !tc.expire && (len(n) != 1 || n[want] != 1) || tc.expire && len(n) != 0 {
				t.Fatalf("local answers counted: %v", n)
			}
		})
	}
}

// wantAfterEmpty is what user gets from an empty packet with req's phrase.
func wantAfterEmpty(req CreateRequest, user string) *Error {
	if req.To != nil && user != "member" {
		return ErrNotForYou
	}
	return ErrSoldOut
}

// grabUntilOpen settles r alone, again while the packet is not open yet.
func grabUntilOpen(t *testing.T, s *Store, id string, r grabRequest) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := batch(t, s, id, r)[0]
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotYet) || time.Now().After(deadline) {
			t.Fatalf("grab by %s: %v", r.user.ID, err)
		}
		time.Sleep(20 * time.Millisecond) // a countdown: wait for the clock
	}
}

// awaitRedisTime returns once Redis's clock is past ms (Unix).
func awaitRedisTime(t *testing.T, rdb *redis.Client, ms int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := rdb.Time(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if now.UnixMilli() > ms {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis time %v never passed %d", now, ms)
		}
		time.Sleep(20 * time.Millisecond) // waiting for the clock itself
	}
}

// The cache stays within its bounds: the oldest entries go first, ended
// ones before them, and a packet bigger than the whole cache is not kept.
func TestFinishedCacheBounds(t *testing.T) {
	c := newFinishedCache(10)
	entry := func(claims int, until int64) *finishedPacket {
		p := &finishedPacket{until: until, claims: map[string]cachedClaim{}}
		for i := range claims {
			p.claims[fmt.Sprint("u", i)] = cachedClaim{seq: i + 1, amount: 1}
		}
		return p
	}
	has := func(id string) bool { _, ok := c.luckiestOf(id); return ok }
	c.put("a", entry(4, 100), 0)
	c.put("b", entry(4, 50), 0)
	c.put("c", entry(4, 100), 0) // over 10: a, the oldest, goes
	if has("a") || !has("b") || !has("c") || c.claims != 8 {
		t.Fatalf("after c: a %v b %v c %v, %d claims", has("a"), has("b"), has("c"), c.claims)
	}
	c.put("d", entry(2, 100), 60) // b ended at 50
	if has("b") || !has("c") || !has("d") || c.claims != 6 {
		t.Fatalf("after d: b %v c %v d %v, %d claims", has("b"), has("c"), has("d"), c.claims)
	}
	c.put("huge", entry(11, 100), 60)
	if has("huge") || c.claims != 6 {
		t.Fatalf("a packet bigger than the cache was kept")
	}
	if _, ok := c.answer("d", grabRequest{user: User{ID: "x"}}, 100); ok {
		t.Fatal("an entry answered at its end")
	}
	if o, ok := c.answer("d", grabRequest{user: User{ID: "u1"}}, 99); !ok || o.err != ErrAlreadyGrabbed || o.res.Seq != 2 {
		t.Fatalf("a winner: %+v %v", o, ok)
	}
}

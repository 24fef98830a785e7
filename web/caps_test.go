package web

import (
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// Many connections of one user racing for the last places: exactly the cap
// get in, and releasing them all leaves nothing counted.
func TestConnCapsExactUnderConcurrency(t *testing.T) {
	k := newConnCaps(Config{MaxConnsPerUser: 5, MaxConnsPerIP: 50, MaxRooms: 3, NewRoomsPerIP: -1})
	const n = 200
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		releases []func()
		refused  = map[int]int{}
	)
	for i := range n {
		wg.Go(func() {
			user := fmt.Sprint("u", i%20)      // 10 tries per user
			addr := fmt.Sprint("10.0.0.", i%2) // 100 tries per address
			room := fmt.Sprint("r", i%4)
			release, no := k.acquire(user, addr, room)
			mu.Lock()
			defer mu.Unlock()
			if no != nil {
				refused[no.code]++
				return
			}
			releases = append(releases, release)
		})
	}
	wg.Wait()
	if len(releases) > 2*50 {
		t.Fatalf("%d admitted past the cap of 50 per address on 2 addresses", len(releases))
	}
	for u, c := range k.users {
		if c > 5 {
			t.Fatalf("user %s holds %d connections, cap 5", u, c)
		}
	}
	if len(k.rooms) > 3 {
		t.Fatalf("%d rooms, cap 3", len(k.rooms))
	}
	if len(releases)+refused[CloseTooManyForUser]+refused[CloseTooManyForAddress]+refused[CloseTooManyRooms] != n {
		t.Fatalf("admitted %d, refused %v: does not add up to %d", len(releases), refused, n)
	}
	for _, r := range releases {
		wg.Go(func() { r(); r() }) // a second release changes nothing
	}
	wg.Wait()
	if len(k.users)+len(k.addrs)+len(k.rooms) != 0 {
		t.Fatalf("after every release: users %v addrs %v rooms %v", k.users, k.addrs, k.rooms)
	}
}

// Each cap refuses with its own code, in order: user, address, rooms, new
// rooms; joining a room that has members is always allowed.
func TestConnCapsCodes(t *testing.T) {
	k := newConnCaps(Config{MaxConnsPerUser: 2, MaxConnsPerIP: 3, MaxRooms: 2, NewRoomsPerIP: 3})
	steps := []struct {
		user, addr, room string
		code             int // 0: admitted
	}{
		{"a", "ip1", "r1", 0},
		{"a", "ip1", "r1", 0},
		{"a", "ip1", "r1", CloseTooManyForUser},
		{"b", "ip1", "r2", 0},
		{"c", "ip1", "r1", CloseTooManyForAddress},
		{"c", "ip2", "r3", CloseTooManyRooms},
		{"c", "ip2", "r2", 0}, // an existing room
	}
	var releases []func()
	for i, s := range steps {
		release, no := k.acquire(s.user, s.addr, s.room)
		code := 0
		if no != nil {
			code = no.code
		} else {
			releases = append(releases, release)
		}
		if code != s.code {
			t.Fatalf("step %d %+v: code %d", i, s, code)
		}
	}
	for _, r := range releases {
		r()
	}
	// New rooms per address: a bucket of 3 per minute, spent only by
	// connections that open a room.
	k2 := newConnCaps(Config{MaxConnsPerUser: -1, MaxConnsPerIP: -1, MaxRooms: -1, NewRoomsPerIP: 3})
	for i, want := range []int{0, 0, 0, CloseTooManyNewRooms} {
		_, no := k2.acquire("u", "ip", fmt.Sprint("room", i))
		if got := codeOf(no); got != want {
			t.Fatalf("new room %d: code %d, want %d", i, got, want)
		}
	}
	if no := codeOf(mustRefusal(k2.acquire("u", "ip", "room0"))); no != 0 {
		t.Fatalf("joining an existing room: code %d", no)
	}
	if no := codeOf(mustRefusal(k2.acquire("u", "other-ip", "room9"))); no != 0 {
		t.Fatalf("another address's new room: code %d", no)
	}
}

func codeOf(r *refusal) int {
	if r == nil {
		return 0
	}
	return r.code
}

func mustRefusal(_ func(), r *refusal) *refusal { return r }

// The frame score: refused frames add strikes, served ones take one away,
// so a client that keeps sending faster than its limit is closed however it
// interleaves, and one that bursts now and then is not.
func TestTally(t *testing.T) {
	s := &wsSession{}
	for range 10 {
		s.tally(ErrRateLimited)
	}
	s.tally(nil)
	s.tally(invalid("x"))
	if s.strikes != 8 {
		t.Fatalf("strikes %d, want 8", s.strikes)
	}
	for range 20 {
		s.tally(nil)
	}
	if s.strikes != 0 {
		t.Fatalf("strikes %d, want 0", s.strikes)
	}
}

// A Host header cannot write directives into the policy.
func TestCSPHost(t *testing.T) {
	for host, explicit := range map[string]bool{
		"127.0.0.1:8080":         true,
		"hongbao.example":        true,
		"[::1]:80":               true,
		"":                       false,
		"a; script-src *":        false,
		"x'unsafe-inline'":       false,
		strings.Repeat("a", 300): false,
	} {
		p := csp(host)
		if got := strings.Contains(p, "ws://"); got != explicit {
			t.Errorf("host %q: %s", host, p)
		}
		if strings.Count(p, "script-src") != 1 || strings.Contains(p, "unsafe") {
			t.Errorf("host %q: %s", host, p)
		}
	}
}

// A bucket dropped while idle is as full as a new one: with a slow rate,
// idle buckets are kept until they would have refilled.
func TestLimiterSetKeepsSlowBuckets(t *testing.T) {
	s := newLimiterSet(1.0/3600, 2) // 2 per 2 hours
	if s.idle != 2*time.Hour {
		t.Fatalf("idle %v, want 2h", s.idle)
	}
	if !s.allow("k") || !s.allow("k") || s.allow("k") {
		t.Fatal("want 2 allowed, then refused")
	}
	if newLimiterSet(1e-12, 10).idle != 24*time.Hour {
		t.Fatal("a tiny rate must not overflow the idle time")
	}
	if newLimiterSet(10, 20).idle != time.Minute {
		t.Fatal("fast buckets are swept after a minute")
	}
}

// The caps key clients as the guest-session limit does: IPv6 by its /64,
// and X-Forwarded-For only from a trusted proxy.
func TestClientKeyForCaps(t *testing.T) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	for _, tc := range []struct {
		remote, xff string
		trusted     []*net.IPNet
		want        string
	}{
		{"[2001:db8:1:2:aaaa::1]:5000", "", nil, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:5001", "", nil, "2001:db8:1:2::/64"},
		{"198.51.100.7:5000", "", nil, "198.51.100.7"},
		{"127.0.0.1:5000", "203.0.113.9", nil, "127.0.0.1"},
		{"127.0.0.1:5000", "203.0.113.9", []*net.IPNet{loopback}, "203.0.113.9"},
		{"127.0.0.1:5000", "2001:db8:9:9::5", []*net.IPNet{loopback}, "2001:db8:9:9::/64"},
	} {
		e := echo.New()
		e.IPExtractor = ipExtractor(tc.trusted)
		req := httptest.NewRequest("GET", "/ws", nil)
		req.RemoteAddr = tc.remote
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		got, _ := clientKey(e.NewContext(req, httptest.NewRecorder()))
		if got != tc.want {
			t.Errorf("%s via %q (trusted %v): key %q, want %q", tc.remote, tc.xff, tc.trusted, got, tc.want)
		}
	}
}

package hub

import (
	"context"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// waitPresence reads frames until a presence frame reports want online.
func waitPresence(t *testing.T, c *wsClient, want int) testFrame {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f, ok := c.tryNext(time.Until(deadline))
		if ok && f.Type == "presence" && f.Online == want {
			return f
		}
	}
	t.Fatalf("no presence frame with online=%d", want)
	return testFrame{}
}

func TestPresenceSumsAcrossInstances(t *testing.T) {
	db, rdbA := redistest.New(t)
	rdbB := db.Client()
	t.Cleanup(func() { _ = rdbB.Close() })
	prefix := testPrefix(t)
	presB := NewRedisPresence(rdbB, RedisPresenceConfig{Prefix: prefix})
	cfgA := Config{InstanceID: "A", PresenceInterval: 100 * time.Millisecond,
		Presence: NewRedisPresence(rdbA, RedisPresenceConfig{Prefix: prefix})}
	cfgB := Config{InstanceID: "B", PresenceInterval: 100 * time.Millisecond, Presence: presB}
	a := redisHub(t, rdbA, prefix, cfgA)
	b := redisHub(t, rdbB, prefix, cfgB)

	var clients []*wsClient
	for _, uid := range []string{"a1", "a2"} {
		clients = append(clients, a.dial(t, "room", uid))
	}
	for _, uid := range []string{"b1", "b2", "b3"} {
		clients = append(clients, b.dial(t, "room", uid))
	}
	for i, c := range clients {
		f := waitPresence(t, c, 5)
		if len(f.Users) != 5 {
			t.Fatalf("client %d: users %+v, want all 5", i, f.Users)
		}
	}
	keyB := presB.InstanceKey("B")
	if want := prefix + ":presence:{B}"; keyB != want {
		t.Fatalf("key %q, want %q", keyB, want)
	}
	ctx := context.Background()
	for _, inst := range []string{"A", "B"} {
		if ok, err := rdbA.HExists(ctx, presB.InstanceKey(inst), "room").Result(); err != nil || !ok {
			t.Fatalf("instance %s has no entry for the room (%v)", inst, err)
		}
	}
	if ttl := rdbA.PTTL(ctx, keyB).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("PTTL %v, want (0, 30s]", ttl)
	}

	// Someone leaves on B; everybody, on both instances, sees 4.
	_ = clients[4].conn.Close()
	for _, c := range clients[:4] {
		waitPresence(t, c, 4)
	}
	// Everyone leaves B: A's members see B withdraw promptly.
	for _, c := range clients[2:4] {
		_ = c.conn.Close()
	}
	for _, c := range clients[:2] {
		waitPresence(t, c, 2)
	}
	waitFor(t, 5*time.Second, "B's entry to go", func() bool {
		return !rdbA.HExists(ctx, keyB, "room").Val()
	})
}

func TestPresenceUnchangedIsNotRepeated(t *testing.T) {
	mp := NewMemoryPresence()
	ts := startHub(t, Config{PresenceInterval: 50 * time.Millisecond, Presence: mp}, NewMemoryBroker())
	c := ts.dial(t, "room", "u1")
	f := waitPresence(t, c, 1)
	if len(f.Users) != 1 || f.Users[0] != (User{ID: "u1", Name: "name-u1"}) {
		t.Fatalf("users %+v", f.Users)
	}
	if f, ok := c.tryNext(300 * time.Millisecond); ok {
		t.Fatalf("repeated presence with nothing changed: %s", f.Raw)
	}
	// A newcomer is told even though it is the only change.
	c2 := ts.dial(t, "room", "u2")
	waitPresence(t, c2, 2)
	waitPresence(t, c, 2)
}

func TestMergePresence(t *testing.T) {
	var many []User
	for i := range 60 {
		many = append(many, User{ID: "m" + string(rune('A'+i))})
	}
	live := map[string]struct{}{"i1": {}, "i2": {}, "big": {}}
	got := mergePresence(map[string]presenceEntry{
		"i2":   {N: 3, Users: []User{{ID: "x"}, {ID: "y"}}},
		"i1":   {N: 2, Users: []User{{ID: "x"}, {ID: "w"}}},
		"dead": {N: 100, Users: []User{{ID: "ghost"}}},
		"big":  {N: 60, Users: many},
	}, live)
	if got.Online != 65 {
		t.Errorf("online %d, want 65 (instance that is not live excluded)", got.Online)
	}
	if len(got.Users) != presenceUsers {
		t.Errorf("%d users, want capped at %d", len(got.Users), presenceUsers)
	}
	for _, u := range got.Users {
		if u.ID == "ghost" {
			t.Error("dead instance's user merged")
		}
	}
	small := mergePresence(map[string]presenceEntry{
		"i2": {N: 3, Users: []User{{ID: "x"}, {ID: "y"}}},
		"i1": {N: 2, Users: []User{{ID: "x"}, {ID: "w"}}},
	}, live)
	if ids := usersKey(small.Users); ids != usersKey([]User{{ID: "x"}, {ID: "w"}, {ID: "y"}}) {
		t.Errorf("merged users %+v, want x,w,y (distinct, instance order)", small.Users)
	}
}

func TestKeepOldest(t *testing.T) {
	var s []*Client
	for _, seq := range []uint64{9, 3, 7, 1, 8, 2} {
		s = keepOldest(s, &Client{seq: seq}, 3)
	}
	if len(s) != 3 || s[0].seq != 1 || s[1].seq != 2 || s[2].seq != 3 {
		got := []uint64{}
		for _, c := range s {
			got = append(got, c.seq)
		}
		t.Fatalf("kept %v, want [1 2 3]", got)
	}
}

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
	key := presB.Key("room")
	if want := prefix + ":{r:room}:online"; key != want {
		t.Fatalf("key %q, want %q", key, want)
	}
	ctx := context.Background()
	fields, err := rdbA.HKeys(ctx, key).Result()
	if err != nil || len(fields) != 2 {
		t.Fatalf("hash fields %v (%v), want one per instance", fields, err)
	}
	if ttl := rdbA.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 30*time.Second {
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
	waitFor(t, 5*time.Second, "B's field to go", func() bool {
		return len(rdbA.HKeys(ctx, key).Val()) == 1
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
	now := time.Now()
	fresh := now.UnixMilli()
	stale := now.Add(-10 * time.Second).UnixMilli()
	var many []User
	for i := range 60 {
		many = append(many, User{ID: "m" + string(rune('A'+i))})
	}
	got := mergePresence(map[string]presenceEntry{
		"i2":   {N: 3, Users: []User{{ID: "x"}, {ID: "y"}}, TS: fresh},
		"i1":   {N: 2, Users: []User{{ID: "x"}, {ID: "w"}}, TS: fresh},
		"dead": {N: 100, Users: []User{{ID: "ghost"}}, TS: stale},
		"big":  {N: 60, Users: many, TS: fresh},
	}, now, 3*time.Second)
	if got.Online != 65 {
		t.Errorf("online %d, want 65 (stale instance excluded)", got.Online)
	}
	if len(got.Users) != presenceUsers {
		t.Errorf("%d users, want capped at %d", len(got.Users), presenceUsers)
	}
	// Sorted by instance: "big" first, then i1, i2; ghost never.
	for _, u := range got.Users {
		if u.ID == "ghost" {
			t.Error("stale instance's user merged")
		}
	}
	small := mergePresence(map[string]presenceEntry{
		"i2": {N: 3, Users: []User{{ID: "x"}, {ID: "y"}}, TS: fresh},
		"i1": {N: 2, Users: []User{{ID: "x"}, {ID: "w"}}, TS: fresh},
	}, now, 3*time.Second)
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

package hub

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// commandStats returns INFO commandstats as command -> calls.
func commandStats(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// Two instances with many idle rooms: once their joins are synced, an
// interval costs each instance a fixed handful of commands, none of them
// about a room.
func TestPresenceIdleRoomsIssueNoRoomCommands(t *testing.T) {
	_, rdb := redistest.Durable(t) // private: commandstats counts only us
	ctx := context.Background()
	const rooms = 300
	var hubs []*testServer
	for _, id := range []string{"A", "B"} {
		cfg := Config{InstanceID: id, PresenceInterval: 50 * time.Millisecond,
			Presence: NewRedisPresence(rdb, RedisPresenceConfig{Prefix: "hb"})}
		ts := startHub(t, cfg, NewMemoryBroker())
		hubs = append(hubs, ts)
		for i := range rooms {
			c := newClient(ctx, ts.hub, nil, "room-"+strconv.Itoa(i), User{ID: id + strconv.Itoa(i)})
			if err := ts.hub.join(ctx, c); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ts.hub.leave(ctx, c) })
		}
	}
	// Synced when every room's entry of both instances is in Redis and
	// nothing about rooms was written or read for a while.
	perRoom := func(st map[string]int64) int64 {
		return st["hset"] + st["hdel"] + st["hget"] + st["hgetall"] + st["xadd"]
	}
	waitFor(t, 20*time.Second, "joins to be synced", func() bool {
		return rdb.HLen(ctx, "hb:presence:{A}").Val() == rooms && rdb.HLen(ctx, "hb:presence:{B}").Val() == rooms
	})
	var before map[string]int64
	stable := 0
	waitFor(t, 20*time.Second, "room commands to stop", func() bool {
		st := commandStats(t, rdb)
		if before != nil && st["zadd"] < before["zadd"]+4 {
			return false // fewer than two syncs per instance since the last look
		}
		if before != nil && perRoom(st) == perRoom(before) {
			stable++
		} else {
			stable = 0
		}
		before = st
		return stable == 3
	})
	// Watch at least 20 more syncs (each heartbeats with one ZADD).
	start := commandStats(t, rdb)
	var end map[string]int64
	waitFor(t, 20*time.Second, "20 syncs", func() bool {
		end = commandStats(t, rdb)
		return end["zadd"] >= start["zadd"]+20
	})
	if d := perRoom(end) - perRoom(start); d != 0 {
		t.Fatalf("%d room commands (HSET/HDEL/HGET/HGETALL/XADD) while every room was idle", d)
	}
	var total int64
	for name, n := range end {
		if name != "info" && name != "hlen" {
			total += n - start[name]
		}
	}
	syncs := end["zadd"] - start["zadd"]
	t.Logf("%d idle rooms on each of 2 instances: %d commands in %d syncs (%.1f per sync)", rooms, total, syncs, float64(total)/float64(syncs))
	if total > 5*syncs+5 {
		t.Fatalf("%d commands for %d syncs, want at most 5 per sync", total, syncs)
	}
}

// An instance that dies without withdrawing stops being counted within
// the staleness window, and its hash leaves Redis after its TTL.
func TestPresenceDeadInstanceVanishes(t *testing.T) {
	_, rdb := redistest.New(t)
	prefix := testPrefix(t)
	interval := 100 * time.Millisecond
	a := startHub(t, Config{InstanceID: "A", PresenceInterval: interval,
		Presence: NewRedisPresence(rdb, RedisPresenceConfig{Prefix: prefix})}, NewMemoryBroker())
	c := a.dial(t, "room", "a1")
	waitPresence(t, c, 1)

	// "B" is a bare RedisPresence syncing three members until it dies.
	dead := NewRedisPresence(rdb, RedisPresenceConfig{Prefix: prefix, TTL: time.Second})
	snap := PresenceSnapshot{Online: 3, Users: []User{{ID: "b1"}, {ID: "b2"}, {ID: "b3"}}}
	sync := PresenceSync{Instance: "B", Changed: map[string]PresenceSnapshot{"room": snap},
		Local:  func(string) bool { return true },
		All:    func() map[string]PresenceSnapshot { return map[string]PresenceSnapshot{"room": snap} },
		MaxAge: 3 * interval}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := dead.Sync(context.Background(), sync); err == nil {
				sync.Changed = nil
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	waitPresence(t, c, 4)
	close(stop)
	<-done
	began := time.Now()
	waitPresence(t, c, 1)
	t.Logf("a dead instance stopped being counted %v after its last sync", time.Since(began).Round(time.Millisecond))
	waitFor(t, 5*time.Second, "the dead instance's hash to expire", func() bool {
		return rdb.Exists(context.Background(), dead.InstanceKey("B")).Val() == 0
	})
}

// When Redis loses the presence data (a restart without persistence, a
// failover), each instance notices its hash is gone and writes it again.
func TestPresenceRewrittenAfterDataLoss(t *testing.T) {
	_, rdb := redistest.New(t)
	prefix := testPrefix(t)
	pres := NewRedisPresence(rdb, RedisPresenceConfig{Prefix: prefix})
	a := startHub(t, Config{InstanceID: "A", PresenceInterval: 50 * time.Millisecond, Presence: pres}, NewMemoryBroker())
	b := startHub(t, Config{InstanceID: "B", PresenceInterval: 50 * time.Millisecond, Presence: pres}, NewMemoryBroker())
	ca := a.dial(t, "room", "a1")
	cb := b.dial(t, "room", "b1")
	waitPresence(t, ca, 2)
	waitPresence(t, cb, 2)
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both instances to write their entries again", func() bool {
		return rdb.HExists(ctx, pres.InstanceKey("A"), "room").Val() && rdb.HExists(ctx, pres.InstanceKey("B"), "room").Val()
	})
	// And a change after the loss still reaches the other instance.
	cb2 := b.dial(t, "room", "b2")
	waitPresence(t, cb2, 3)
	waitPresence(t, ca, 3)
}

// A room of thousands gets presence frames spaced by its size however much
// it churns, and the newest view still goes out once its turn comes; a
// small room is told every interval.
func TestPresenceSpacedInBigRooms(t *testing.T) {
	h := New(Config{PresenceInterval: time.Hour}, NewMemoryBroker(), testLogger(), nil)
	ctx := context.Background()
	next := 0
	join := func(room string, n int) {
		for range n {
			next++
			if err := h.join(ctx, newClient(ctx, h, nil, room, User{ID: strconv.Itoa(next)})); err != nil {
				t.Fatal(err)
			}
		}
	}
	join("big", 2*presenceMembersPerTick+500) // spacing 3
	join("small", 10)                         // spacing 1
	st := &presenceLoopState{sent: make(map[string]*presenceSent), held: make(map[string]presenceView)}
	var bigTicks, smallTicks []uint64
	for range 9 {
		st.tick++
		h.presenceTick(ctx, st)
		if st.sent["big"].tick == st.tick {
			bigTicks = append(bigTicks, st.tick)
		}
		if st.sent["small"].tick == st.tick {
			smallTicks = append(smallTicks, st.tick)
		}
		join("big", 1) // churn every interval
		join("small", 1)
	}
	if !slices.Equal(bigTicks, []uint64{1, 4, 7}) || len(smallTicks) != 9 {
		t.Fatalf("big room told at ticks %v, small at %v; want big at 1, 4, 7 and small at every tick", bigTicks, smallTicks)
	}
	// Churn stops: the held newest view goes out at the big room's next turn.
	for range 3 {
		st.tick++
		h.presenceTick(ctx, st)
	}
	if got, want := st.sent["big"].online, 2*presenceMembersPerTick+500+9; got != want {
		t.Fatalf("big room last told %d online, want %d", got, want)
	}
}

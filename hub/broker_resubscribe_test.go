package hub

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// recorder is a Receiver that queues what the broker hands it.
type recorder struct {
	events chan recEvent
	block  chan struct{} // when non-nil, Receive waits on it once
	once   sync.Once
}

type recEvent struct {
	room  string
	msg   string
	resub bool
}

func (r *recorder) Receive(room string, msg []byte) {
	if r.block != nil {
		r.once.Do(func() { <-r.block })
	}
	r.events <- recEvent{room: room, msg: string(msg)}
}

func (r *recorder) Resubscribed(room string) { r.events <- recEvent{room: room, resub: true} }

func (r *recorder) ReceiveUser(user string, frame []byte) {
	r.events <- recEvent{room: "user:" + user, msg: string(frame)}
}

// runBroker runs br with a recorder until the test ends, then closes br.
func runBroker(t *testing.T, br Broker, block chan struct{}) *recorder {
	t.Helper()
	rec := &recorder{events: make(chan recEvent, 100000), block: block}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = br.Run(ctx, rec)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := br.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return rec
}

// awaitResubscribed reads rec until every room in rooms was reported
// resubscribed, failing after limit. Messages read meanwhile are returned.
func awaitResubscribed(t *testing.T, rec *recorder, rooms []string, limit time.Duration) []recEvent {
	t.Helper()
	want := make(map[string]bool, len(rooms))
	for _, r := range rooms {
		want[r] = true
	}
	var seen []recEvent
	deadline := time.After(limit)
	for len(want) > 0 {
		select {
		case e := <-rec.events:
			seen = append(seen, e)
			if e.resub {
				delete(want, e.room)
			}
		case <-deadline:
			t.Fatalf("no Resubscribed after %v for %d rooms, e.g. %v", limit, len(want), firstKey(want))
		}
	}
	return seen
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// expectDelivery publishes a marker to each room until it comes back,
// failing after limit; the subscription is back once one does.
func expectDelivery(t *testing.T, br Broker, rec *recorder, rooms []string, limit time.Duration) {
	t.Helper()
	ctx := context.Background()
	for _, room := range rooms {
		marker := "after-" + room + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := br.Publish(ctx, room, []byte(marker)); err != nil {
			t.Fatalf("publish %s: %v", room, err)
		}
		deadline := time.After(limit)
	wait:
		for {
			select {
			case e := <-rec.events:
				if e.room == room && e.msg == marker {
					break wait
				}
			case <-deadline:
				t.Fatalf("room %s: marker published after the resubscription never arrived", room)
			}
		}
	}
}

func subscribeAll(t *testing.T, br Broker, rooms []string) {
	t.Helper()
	ctx := context.Background()
	for _, r := range rooms {
		if err := br.Subscribe(ctx, r); err != nil {
			t.Fatalf("subscribe %s: %v", r, err)
		}
	}
}

func TestRedisBrokerReportsKilledConnection(t *testing.T) {
	forBothModes(t, func(t *testing.T, sharded bool) {
		// A private server: the kill must not hit other tests' connections.
		_, rdb := redistest.Durable(t)
		br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t), Sharded: sharded})
		rec := runBroker(t, br, nil)
		rooms := []string{"a", "b", "c"}
		subscribeAll(t, br, rooms)
		expectDelivery(t, br, rec, rooms, 5*time.Second)

		if err := rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		awaitResubscribed(t, rec, rooms, 15*time.Second)
		expectDelivery(t, br, rec, rooms, 5*time.Second)
		if n := numSub(t, rdb, sharded, br.Channel("a")); n != 1 {
			t.Fatalf("%d subscribers after the resubscription, want 1", n)
		}
	})
}

func TestRedisBrokerReportsRestart(t *testing.T) {
	forBothModes(t, func(t *testing.T, sharded bool) {
		srv, rdb := redistest.Durable(t)
		br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: "hb", Sharded: sharded, HealthInterval: 200 * time.Millisecond})
		rec := runBroker(t, br, nil)
		rooms := []string{"a", "b"}
		subscribeAll(t, br, rooms)
		expectDelivery(t, br, rec, rooms, 5*time.Second)
		if err := srv.RestartAfter(500 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		awaitResubscribed(t, rec, rooms, 20*time.Second)
		expectDelivery(t, br, rec, rooms, 5*time.Second)
	})
}

// Redis cuts a subscriber whose output buffer passes its pubsub limit: a
// Run that stalls is seen as a lost subscription, never as silence.
func TestRedisBrokerReportsLaggingSubscriberCut(t *testing.T) {
	forBothModes(t, func(t *testing.T, sharded bool) {
		_, rdb := redistest.Durable(t)
		ctx := context.Background()
		if err := rdb.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 256kb 128kb 1").Err(); err != nil {
			t.Fatal(err)
		}
		br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: "hb", Sharded: sharded, HealthInterval: 200 * time.Millisecond})
		block := make(chan struct{})
		rec := runBroker(t, br, block)
		subscribeAll(t, br, []string{"lag"})
		// Run blocks on the first message; the reader fills b.in, then
		// stops reading, and Redis's buffer for the connection grows.
		payload := strings.Repeat("x", 16<<10)
		cut := false
		for i := 0; i < 20000 && !cut; i++ {
			if err := br.Publish(ctx, "lag", []byte(payload)); err != nil {
				t.Fatal(err)
			}
			if i%100 == 99 {
				cut = pubsubClients(t, rdb) == 0
			}
		}
		waitFor(t, 10*time.Second, "Redis to cut the lagging subscriber", func() bool {
			return pubsubClients(t, rdb) == 0 || cut
		})
		close(block)
		awaitResubscribed(t, rec, []string{"lag"}, 20*time.Second)
		expectDelivery(t, br, rec, []string{"lag"}, 5*time.Second)
	})
}

// pubsubClients counts the server's pub/sub connections that hold a
// subscription.
func pubsubClients(t testing.TB, rdb *redis.Client) int {
	t.Helper()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		subs := 0
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			if k == "sub" || k == "psub" || k == "ssub" {
				c, _ := strconv.Atoi(v)
				subs += c
			}
		}
		if subs > 0 {
			n++
		}
	}
	return n
}

// clusterRooms returns n rooms spread over the cluster's masters.
func clusterRooms(n int) []string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%d", i)
	}
	return rooms
}

// pubsubPerMaster counts, on each master, the pub/sub connections with a
// subscription.
func pubsubPerMaster(t *testing.T, rdb *redis.ClusterClient) map[string]int {
	t.Helper()
	var mu sync.Mutex
	out := make(map[string]int)
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		c := pubsubClients(t, n)
		mu.Lock()
		out[n.Options().Addr] = c
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClusterOnePubSubConnectionPerMaster(t *testing.T) {
	rdb := redistest.NewCluster(t)
	br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t), Sharded: true})
	rec := runBroker(t, br, nil)
	rooms := clusterRooms(300)
	subscribeAll(t, br, rooms)
	per := pubsubPerMaster(t, rdb)
	for addr, n := range per {
		if n != 1 {
			t.Fatalf("master %s has %d subscribed pubsub connections for %d rooms, want 1 (all: %v)", addr, n, len(rooms), per)
		}
	}
	if len(per) != redistest.ClusterMasters {
		t.Fatalf("connections on %d masters, want %d", len(per), redistest.ClusterMasters)
	}
	expectDelivery(t, br, rec, rooms[:20], 5*time.Second)

	// Kill every master's pubsub connections: every room is reported and
	// comes back, still one connection per master.
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		return n.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	awaitResubscribed(t, rec, rooms, 20*time.Second)
	expectDelivery(t, br, rec, rooms[:20], 5*time.Second)
	for addr, n := range pubsubPerMaster(t, rdb) {
		if n != 1 {
			t.Fatalf("after the kill, master %s has %d pubsub connections, want 1", addr, n)
		}
	}
}

// A room's slot moves to another master while frames flow: the broker sees
// the sunsubscribe, subscribes on the new owner, reports Resubscribed, and
// frames published after that arrive.
func TestClusterSlotMigrationMidBroadcast(t *testing.T) {
	rdb := redistest.NewCluster(t)
	prefix := testPrefix(t)
	br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true})
	rec := runBroker(t, br, nil)
	rooms := clusterRooms(30)
	subscribeAll(t, br, rooms)
	moving := rooms[0]
	ch := br.Channel(moving)
	ctx := context.Background()
	// The channel's slot holds a key too, so MIGRATE has work to do.
	if err := rdb.Set(ctx, prefix+":{r:"+moving+"}:k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	pubDone := make(chan int)
	go func() {
		i := 0
		for {
			select {
			case <-stop:
				pubDone <- i
				return
			default:
			}
			_ = br.Publish(ctx, moving, []byte(strconv.Itoa(i)))
			i++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	slot := int(rdb.ClusterKeySlot(ctx, ch).Val())
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	from, to, err := redistest.MoveSlot(mctx, rdb, slot)
	cancel()
	if err != nil {
		close(stop)
		<-pubDone
		t.Fatal(err)
	}
	t.Logf("moved slot %d from %s to %s", slot, from, to)
	seen := awaitResubscribed(t, rec, []string{moving}, 20*time.Second)
	close(stop)
	published := <-pubDone

	// Frames reach Run in publish order, and the ones after the
	// resubscription keep coming.
	last := -1
	for _, e := range seen {
		if e.room != moving || e.resub {
			continue
		}
		n, _ := strconv.Atoi(e.msg)
		if n <= last {
			t.Fatalf("frame %d after %d", n, last)
		}
		last = n
	}
	t.Logf("published %d frames during the move, %d reached Run before Resubscribed", published, last+1)
	expectDelivery(t, br, rec, []string{moving}, 5*time.Second)
	expectDelivery(t, br, rec, rooms[1:5], 5*time.Second)

	var newOwner *redis.Client
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if n.Options().Addr == to {
			newOwner = n
		}
		return nil
	})
	if err != nil || newOwner == nil {
		t.Fatalf("new owner %s not found: %v", to, err)
	}
	if n := numSub(t, newOwner, true, ch); n != 1 {
		t.Fatalf("SHARDNUMSUB on the new owner: %d, want 1", n)
	}
	for addr, n := range pubsubPerMaster(t, rdb) {
		if n > 1 {
			t.Fatalf("master %s has %d pubsub connections, want at most 1", addr, n)
		}
	}
}

// A connection that goes silent (here Redis is paused, so a ping gets no
// answer) is given up after two health intervals and replaced, and its
// rooms are reported: the broker does not wait for TCP to notice.
func TestRedisBrokerReplacesSilentConnection(t *testing.T) {
	forBothModes(t, func(t *testing.T, sharded bool) {
		_, rdb := redistest.Durable(t)
		br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: "hb", Sharded: sharded, HealthInterval: 100 * time.Millisecond})
		rec := runBroker(t, br, nil)
		subscribeAll(t, br, []string{"quiet"})
		expectDelivery(t, br, rec, []string{"quiet"}, 5*time.Second)
		ctx := context.Background()
		if err := rdb.Do(ctx, "CLIENT", "PAUSE", 1500, "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		awaitResubscribed(t, rec, []string{"quiet"}, 15*time.Second)
		expectDelivery(t, br, rec, []string{"quiet"}, 5*time.Second)
	})
}

// Subscribing a room whose slot moved after the client loaded its slot map
// gets MOVED; the broker reloads the map and subscribes on the new owner
// before Subscribe returns.
func TestClusterSubscribeFollowsMoved(t *testing.T) {
	rdb := redistest.NewCluster(t)
	br := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t), Sharded: true})
	rec := runBroker(t, br, nil)
	ctx := context.Background()
	// Load the slot map and open a connection to every master.
	subscribeAll(t, br, clusterRooms(30))
	ch := br.Channel("late")
	stale, err := rdb.MasterForKey(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	_, to, err := redistest.MoveSlot(ctx, rdb, int(rdb.ClusterKeySlot(ctx, ch).Val()))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.MasterForKey(ctx, ch); n.Options().Addr != stale.Options().Addr {
		t.Skip("the client learned the new slot map already; nothing to test")
	}
	if err := br.Subscribe(ctx, "late"); err != nil {
		t.Fatalf("subscribe after the move: %v", err)
	}
	expectDelivery(t, br, rec, []string{"late"}, 5*time.Second)
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if n.Options().Addr != to {
			return nil
		}
		m, err := n.PubSubShardNumSub(ctx, ch).Result()
		if err == nil && m[ch] != 1 {
			err = fmt.Errorf("SHARDNUMSUB on the new owner %s: %d, want 1", to, m[ch])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/redis/go-redis/v9"
)

// position is what a frame says about the room's history.
type position struct {
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	Packet    struct {
		ID string `json:"id"`
	} `json:"packet"`
}

func positionOf(t testing.TB, f frame) position {
	t.Helper()
	var p position
	if err := json.Unmarshal(f.Raw, &p); err != nil {
		t.Fatalf("frame %s: %v", f.Raw, err)
	}
	return p
}

// dialSince connects to room giving since= and waits for the welcome.
func dialSince(t testing.TB, s *server, room, token, since string) (*wsClient, position) {
	t.Helper()
	c, _, err := dialWS(t, s, room+"&since="+since, token, nil)
	if err != nil {
		t.Fatalf("dial with since=%s: %v", since, err)
	}
	return c, positionOf(t, c.waitFor("welcome", nil, 5*time.Second))
}

// packetsOf returns the packet frames c has got, in order, failing on a
// repeated seq or packet.
func packetsOf(t testing.TB, c *wsClient) []position {
	t.Helper()
	var out []position
	seen := map[string]bool{}
	for _, f := range c.all("packet") {
		p := positionOf(t, f)
		key := fmt.Sprint(p.Epoch, ":", p.Seq)
		if seen[key] || seen[p.Packet.ID] {
			t.Fatalf("packet frame %s arrived twice", f.Raw)
		}
		seen[key], seen[p.Packet.ID] = true, true
		out = append(out, p)
	}
	return out
}

// awaitPackets waits until c has n packet frames.
func awaitPackets(t testing.TB, c *wsClient, n int) []position {
	t.Helper()
	c.waitFor("packet", func(frame) bool { return len(c.all("packet")) >= n }, 10*time.Second)
	return packetsOf(t, c)
}

var onePacket = map[string]any{"kind": "lucky", "total": 100, "count": 1}

// A client that reconnects with since=<epoch>:<seq> after 3 packets fell
// receives those 3 packet events, each once, with consecutive seq; a bad
// since is refused before the upgrade.
func TestReconnectWithSinceGetsMissedPackets(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	_, senderTok := session(t, s, "Sender")
	_, viewerTok := session(t, s, "Viewer")

	for _, bad := range []string{"nocolon", "ep-och:1", "e:-1", "e:01", "e:18446744073709551616"} {
		_, resp, err := dialWS(t, s, "since&since="+bad, viewerTok, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("since=%s: %v, %v; want 400", bad, resp, err)
		}
	}

	c := mustDial(t, s, "since", viewerTok)
	first := newPacket(t, s, senderTok, "since", onePacket)
	seen := awaitPackets(t, c, 1)[0]
	if seen.Packet.ID != first.ID || seen.Seq == 0 || seen.Epoch == "" {
		t.Fatalf("live packet %+v", seen)
	}
	_ = c.conn.Close()
	<-c.closed

	var fell []string
	for i := 0; i < 3; i++ {
		fell = append(fell, newPacket(t, s, senderTok, "since", onePacket).ID)
	}
	back, w := dialSince(t, s, "since", viewerTok, fmt.Sprint(seen.Epoch, ":", seen.Seq))
	if w.Recovered == nil || !*w.Recovered || w.Epoch != seen.Epoch || w.Seq != seen.Seq+3 {
		t.Fatalf("welcome %+v, want recovered at seq %d", w, seen.Seq+3)
	}
	got := awaitPackets(t, back, 3)
	for i, p := range got {
		if p.Packet.ID != fell[i] || p.Seq != seen.Seq+1+uint64(i) || p.Epoch != seen.Epoch {
			t.Fatalf("recovered packet %d: %+v, want %s at seq %d", i, p, fell[i], seen.Seq+1+uint64(i))
		}
	}
	// Nothing more: no duplicate from the live path, no resync.
	after := newPacket(t, s, senderTok, "since", onePacket)
	got = awaitPackets(t, back, 4)
	if len(got) != 4 || got[3].Packet.ID != after.ID || got[3].Seq != seen.Seq+4 {
		t.Fatalf("after recovery got %+v", got)
	}
	if r := back.all("resync"); len(r) != 0 {
		t.Fatalf("resync after a recovery: %s", r[0].Raw)
	}
	// grabbed is ephemeral; finished is durable, numbered next.
	if r := back.request(map[string]any{"type": "grab", "packet_id": after.ID}, 5*time.Second); !r.OK {
		t.Fatalf("grab: %s", r.Raw)
	}
	fin := positionOf(t, back.waitFor("finished", nil, 5*time.Second))
	grabbed := back.waitFor("grabbed", nil, 5*time.Second)
	if g := positionOf(t, grabbed); g.Seq != 0 || g.Epoch != "" {
		t.Fatalf("grabbed carries a position: %s", grabbed.Raw)
	}
	if fin.Seq != seen.Seq+5 || fin.Epoch != seen.Epoch {
		t.Fatalf("finished at %+v, want seq %d", fin, seen.Seq+5)
	}
	auditClean(t, s)
}

// A room keeps HONGBAO_HISTORY_SIZE durable events: a client that missed
// more than that is told to resync, and one that missed fewer recovers.
func TestHistorySizeBoundsRecovery(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.HistorySize = 2
	s := startServer(t, cfg)
	_, senderTok := session(t, s, "Sender")
	_, viewerTok := session(t, s, "Viewer")
	c := mustDial(t, s, "short", viewerTok)
	newPacket(t, s, senderTok, "short", onePacket)
	seen := awaitPackets(t, c, 1)[0]
	_ = c.conn.Close()
	<-c.closed
	for i := 0; i < 3; i++ {
		newPacket(t, s, senderTok, "short", onePacket)
	}
	far, w := dialSince(t, s, "short", viewerTok, fmt.Sprint(seen.Epoch, ":", seen.Seq))
	if w.Recovered == nil || *w.Recovered {
		t.Fatalf("3 missed with a history of 2: welcome %+v, want recovered false", w)
	}
	far.waitFor("resync", nil, 5*time.Second)
	near, w := dialSince(t, s, "short", viewerTok, fmt.Sprint(seen.Epoch, ":", seen.Seq+2))
	if w.Recovered == nil || !*w.Recovered {
		t.Fatalf("1 missed with a history of 2: welcome %+v, want recovered", w)
	}
	awaitPackets(t, near, 1)
	auditClean(t, s)
}

// A fresh joiner gets the room's last 50 chat messages, oldest first, each
// once, and no more.
func TestJoinerGetsLast50Chats(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.ChatRate, cfg.ChatBurst = 10000, 10000
	cfg.FrameRate, cfg.FrameBurst = 10000, 10000
	s := startServer(t, cfg)
	_, tok := session(t, s, "Talker")
	talker := mustDial(t, s, "talk", tok)
	for i := 1; i <= 60; i++ {
		if r := talker.request(map[string]any{"type": "chat", "text": fmt.Sprint("msg ", i)}, 5*time.Second); !r.OK {
			t.Fatalf("chat %d: %s", i, r.Raw)
		}
	}
	talker.waitFor("chat", func(f frame) bool { return f.Text == "msg 60" }, 5*time.Second)

	_, tok2 := session(t, s, "Joiner")
	joiner, _, err := dialWS(t, s, "talk", tok2, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := positionOf(t, joiner.waitFor("welcome", nil, 5*time.Second))
	if w.Recovered != nil || w.Seq != 60 {
		t.Fatalf("welcome %+v, want seq 60 and no recovered", w)
	}
	joiner.waitFor("chat", func(f frame) bool { return f.Text == "msg 60" }, 5*time.Second)
	// One more live chat marks the end of what the join sent.
	if r := talker.request(map[string]any{"type": "chat", "text": "live"}, 5*time.Second); !r.OK {
		t.Fatalf("chat: %s", r.Raw)
	}
	joiner.waitFor("chat", func(f frame) bool { return f.Text == "live" }, 5*time.Second)
	chats := joiner.all("chat")
	if len(chats) != 51 {
		t.Fatalf("joiner got %d chats, want the last 50 and one live", len(chats))
	}
	for i, f := range chats[:50] {
		p := positionOf(t, f)
		if want := fmt.Sprint("msg ", i+11); f.Text != want || p.Seq != uint64(i+11) || p.Epoch != w.Epoch {
			t.Fatalf("chat %d: %s, want %q at seq %d", i, f.Raw, want, i+11)
		}
	}
	auditClean(t, s)
}

// A client connected through a Redis restart receives the missed events,
// or resync. Without persistence the room's history is gone with the rest
// of Redis, so a new epoch begins and the client must resync; with an
// append-only file fsynced on every write the history survives, and the
// client gets every packet, each once, in order, and no resync.
func TestRedisRestartRecoversOrResyncs(t *testing.T) {
	for _, durable := range []bool{false, true} {
		name := "no-persistence"
		if durable {
			name = "aof-always"
		}
		t.Run(name, func(t *testing.T) { redisRestart(t, durable) })
	}
}

func redisRestart(t *testing.T, durable bool) {
	var srv *redistest.Server
	var rdb *redis.Client
	if durable {
		srv, rdb = redistest.Durable(t)
	} else {
		srv, rdb = redistest.Volatile(t)
	}
	cfg := testConfig(t, srv.URL(0))
	s := startServer(t, cfg)
	_, senderTok := session(t, s, "Sender")
	_, viewerTok := session(t, s, "Viewer")
	c := mustDial(t, s, "restart", viewerTok)
	newPacket(t, s, senderTok, "restart", onePacket)
	before := awaitPackets(t, c, 1)[0]

	if err := srv.RestartAfter(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Without persistence the sender's wallet is gone too: a new guest
	// sends. Packets go out as soon as Redis answers, which may be before
	// the hub has subscribed again: those are missed live.
	senderTok = retrySession(t, s, "Sender after")
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, retryPacket(t, s, senderTok, "restart"))
	}
	// Once subscribed again, one more: it arrives live, and shows the
	// hub any gap.
	ch := cfg.KeyPrefix + ":{r:restart}:events"
	deadline := time.Now().Add(10 * time.Second)
	for rdb.PubSubNumSub(context.Background(), ch).Val()[ch] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the hub did not subscribe again within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids = append(ids, retryPacket(t, s, senderTok, "restart"))

	last := c.waitFor("packet", func(f frame) bool { return positionOf(t, f).Packet.ID == ids[3] }, 10*time.Second)
	got := packetsOf(t, c)
	resyncs := c.all("resync")
	if durable {
		if len(resyncs) != 0 {
			t.Fatalf("history survived the restart, yet the client got resync")
		}
		if len(got) != 5 {
			t.Fatalf("got %d packets, want the one before and the 4 after the restart", len(got))
		}
		for i, p := range got[1:] {
			if p.Packet.ID != ids[i] || p.Epoch != before.Epoch || p.Seq != before.Seq+1+uint64(i) {
				t.Fatalf("packet %d after the restart: %+v, want %s at seq %d of %s", i, p, ids[i], before.Seq+1+uint64(i), before.Epoch)
			}
		}
	} else {
		if len(resyncs) == 0 {
			t.Fatalf("history was lost in the restart, yet the client got no resync")
		}
		if p := positionOf(t, last); p.Epoch == before.Epoch {
			t.Fatalf("history was lost, yet the epoch is still %s", p.Epoch)
		}
	}
	t.Logf("packets received: %d, resyncs: %d", len(got), len(resyncs))
	auditClean(t, s)
}

// retrySession creates a guest, retrying while Redis comes back.
func retrySession(t testing.TB, s *server, name string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var out struct {
			Token string `json:"token"`
		}
		if call(t, s, "POST", "/api/v1/sessions", "", map[string]string{"name": name}, &out) == http.StatusCreated {
			return out.Token
		}
		if time.Now().After(deadline) {
			t.Fatal("no session within 15s of the Redis restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retryPacket creates a one-share packet, retrying while Redis comes back.
func retryPacket(t testing.TB, s *server, token, room string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var out struct {
			Packet packet.State `json:"packet"`
		}
		if call(t, s, "POST", "/api/v1/rooms/"+room+"/packets", token, onePacket, &out) == http.StatusCreated {
			return out.Packet.ID
		}
		if time.Now().After(deadline) {
			t.Fatal("no packet within 15s of the Redis restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

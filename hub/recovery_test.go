package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// recHandler welcomes a client with its position, as web does.
type recHandler struct{}

func (recHandler) OnOpen(ctx context.Context, c *Client) {
	pos := c.Position()
	w := map[string]any{"type": "welcome", "seq": pos.Seq, "epoch": pos.Epoch}
	if rec, asked := c.Recovered(); asked {
		w["recovered"] = rec
	}
	b, _ := json.Marshal(w)
	c.Send(b)
}
func (recHandler) HandleMessage(context.Context, *Client, []byte) {}
func (recHandler) OnClose(*Client)                                {}

type recHub struct {
	hub     *Hub
	srv     *httptest.Server
	metrics *Metrics
}

// startRecHub serves rooms at /?room=R[&since=E:N] with recHandler.
func startRecHub(t *testing.T, cfg Config, broker Broker) *recHub {
	t.Helper()
	rh := &recHub{metrics: NewMetrics(prometheus.NewRegistry())}
	rh.hub = New(cfg, broker, testLogger(), rh.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- rh.hub.Run(ctx) }()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	rh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var opts ServeOptions
		if s := r.URL.Query().Get("since"); s != "" {
			p, err := ParsePosition(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			opts.Since = &p
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		rh.hub.Serve(r.Context(), conn, r.URL.Query().Get("room"), User{ID: "u"}, recHandler{}, opts)
	}))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		rh.hub.Shutdown(sctx)
		rh.srv.Close()
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("hub.Run: %v", err)
		}
		_ = broker.Close()
	})
	return rh
}

// dial connects to room, recovering from since when it is not empty, and
// returns the client and its welcome.
func (rh *recHub) dial(t *testing.T, room, since string) (*wsClient, recFrame) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(rh.srv.URL, "http") + "/?room=" + url.QueryEscape(room)
	if since != "" {
		u += "&since=" + url.QueryEscape(since)
	}
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := newWSClient(conn)
	w := nextRec(t, c)
	if w.Type != "welcome" {
		t.Fatalf("first frame %s, want welcome", w.raw)
	}
	return c, w
}

// recFrame is any frame these tests see.
type recFrame struct {
	Type      string `json:"type"`
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	P         int    `json:"p"`
	I         int    `json:"i"`
	N         uint64 `json:"n"`
	Recovered *bool  `json:"recovered"`
	raw       []byte
}

func (f recFrame) durable() bool { _, ok := framePosition(f.raw); return ok }

func nextRec(t *testing.T, c *wsClient) recFrame {
	t.Helper()
	f, ok := tryRec(c, 10*time.Second)
	if !ok {
		t.Fatalf("no frame within 10s (read err: %v)", c.readErr())
	}
	return f
}

func tryRec(c *wsClient, d time.Duration) (recFrame, bool) {
	select {
	case raw := <-c.frames:
		var f recFrame
		_ = json.Unmarshal(raw, &f)
		f.raw = raw
		return f, true
	case <-time.After(d):
		return recFrame{}, false
	}
}

// expectDurable reads frames until it has seen durable seqs from..to, and
// fails on any durable frame out of that order (a gap, a duplicate).
// Ephemeral frames are returned in the order they came.
func expectDurable(t *testing.T, c *wsClient, epoch string, from, to uint64) []recFrame {
	t.Helper()
	var other []recFrame
	for want := from; want <= to; {
		f := nextRec(t, c)
		if !f.durable() {
			other = append(other, f)
			continue
		}
		if f.Seq != want || f.Epoch != epoch {
			t.Fatalf("got %s, want seq %d of epoch %s", f.raw, want, epoch)
		}
		want++
	}
	return other
}

// quietAfter fails if c gets any frame within d.
func quietAfter(t *testing.T, c *wsClient, d time.Duration) {
	t.Helper()
	if f, ok := tryRec(c, d); ok {
		t.Fatalf("unexpected frame %s", f.raw)
	}
}

// hubBrokers are the brokers hub-level recovery tests run on.
var hubBrokers = []struct {
	name string
	make func(t *testing.T, hc histConfig) Broker
}{
	{"memory", brokerKinds[0].make},
	{"redis", brokerKinds[1].make},
}

func forHubBrokers(t *testing.T, fn func(t *testing.T, mk func(histConfig) Broker)) {
	for _, k := range hubBrokers {
		t.Run(k.name, func(t *testing.T) { fn(t, func(hc histConfig) Broker { return k.make(t, hc) }) })
	}
}

// Durable and ephemeral frames published concurrently to one room: every
// member gets each publisher's frames in the order it published them,
// whatever their kind, and the durable ones numbered 1..N exactly once.
func TestDurableKeepsOrderWithEphemeral(t *testing.T) {
	forHubBrokers(t, func(t *testing.T, mk func(histConfig) Broker) {
		rh := startRecHub(t, Config{PresenceInterval: time.Hour, SendQueue: 100000}, mk(histConfig{}))
		c, w := rh.dial(t, "r", "")
		const publishers, each = 4, 100
		var wg sync.WaitGroup
		seqs := make(chan uint64, publishers*each)
		for p := 0; p < publishers; p++ {
			wg.Go(func() {
				for i := 0; i < each; i++ {
					frame := fmt.Appendf(nil, `{"type":"e","p":%d,"i":%d}`, p, i)
					if i%2 == 1 {
						frame = fmt.Appendf(nil, `{"type":"d","p":%d,"i":%d}`, p, i)
						pos, err := rh.hub.PublishDurable(context.Background(), "r", frame, DurableOptions{})
						if err != nil || pos.Epoch != w.Epoch {
							t.Errorf("PublishDurable: %v, %v", pos, err)
							return
						}
						seqs <- pos.Seq
						continue
					}
					if err := rh.hub.Publish(context.Background(), "r", frame); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(seqs)
		told := map[uint64]bool{}
		for s := range seqs {
			told[s] = true
		}
		if len(told) != publishers*each/2 {
			t.Fatalf("publishers were told %d distinct seqs, want %d", len(told), publishers*each/2)
		}
		next := make([]int, publishers)
		var seq uint64
		for n := 0; n < publishers*each; n++ {
			f := nextRec(t, c)
			if f.I != next[f.P] {
				t.Fatalf("publisher %d: got frame %d (%s), want %d", f.P, f.I, f.raw, next[f.P])
			}
			next[f.P]++
			if f.durable() != (f.Type == "d") {
				t.Fatalf("frame %s: durable=%v", f.raw, f.durable())
			}
			if f.Type == "d" {
				if seq++; f.Seq != seq || !told[seq] {
					t.Fatalf("durable frame %s, want seq %d", f.raw, seq)
				}
			}
		}
	})
}

// Clients join while durable frames keep coming: one recovering from a
// position, one fresh. Each gets every durable frame after its position
// exactly once, in order, whether it came from history or live.
func TestRecoverExactlyOnceWhilePublishing(t *testing.T) {
	forHubBrokers(t, func(t *testing.T, mk func(histConfig) Broker) {
		rh := startRecHub(t, Config{PresenceInterval: time.Hour, SendQueue: 100000}, mk(histConfig{size: 10000}))
		a, w := rh.dial(t, "r", "")
		const total = 400
		var wg sync.WaitGroup
		var published atomic.Int64
		wg.Go(func() {
			for i := 1; i <= total; i++ {
				if _, err := rh.hub.PublishDurable(context.Background(), "r", fmt.Appendf(nil, `{"type":"d","n":%d}`, i), DurableOptions{}); err != nil {
					t.Error(err)
					return
				}
				published.Add(1)
			}
		})
		// A saw up to 50; it comes back with since while the rest is
		// being published.
		expectDurable(t, a, w.Epoch, 1, 50)
		b, wb := rh.dial(t, "r", w.Epoch+":50")
		c, wc := rh.dial(t, "r", "")
		if wb.Recovered == nil || !*wb.Recovered || wb.Epoch != w.Epoch || wb.Seq < 50 {
			t.Fatalf("recovering welcome %s", wb.raw)
		}
		if wc.Recovered != nil || wc.Epoch != w.Epoch {
			t.Fatalf("fresh welcome %s", wc.raw)
		}
		t.Logf("joined at %d and %d of %d (published %d)", wb.Seq, wc.Seq, total, published.Load())
		wg.Wait()
		expectDurable(t, a, w.Epoch, 51, total)
		expectDurable(t, b, w.Epoch, 51, total)
		expectDurable(t, c, w.Epoch, wc.Seq+1, total)
		for _, cl := range []*wsClient{a, b, c} {
			quietAfter(t, cl, 200*time.Millisecond)
		}
		if n := counterValue(t, rh.metrics.recoveries.WithLabelValues("client", "recovered")); n != 1 {
			t.Fatalf("client recoveries counted %v, want 1", n)
		}
	})
}

// A client the history cannot serve gets resync and then the recent kept
// frames; one it can serve gets exactly what it missed.
func TestRecoverOrResync(t *testing.T) {
	forHubBrokers(t, func(t *testing.T, mk func(histConfig) Broker) {
		rh := startRecHub(t, Config{PresenceInterval: time.Hour}, mk(histConfig{size: 5, recent: 3}))
		_, w := rh.dial(t, "r", "")
		for i := 1; i <= 10; i++ {
			if _, err := rh.hub.PublishDurable(context.Background(), "r", fmt.Appendf(nil, `{"type":"chat","n":%d}`, i), DurableOptions{Keep: true}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name, since string
			recovered   bool
		}{
			{"trimmed", w.Epoch + ":2", false},
			{"other epoch", "x" + w.Epoch + ":8", false},
			{"ahead", w.Epoch + ":11", false},
			{"covered", w.Epoch + ":7", true},
			{"up to date", w.Epoch + ":10", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, wc := rh.dial(t, "r", tc.since)
				if wc.Recovered == nil || *wc.Recovered != tc.recovered || wc.Seq != 10 || wc.Epoch != w.Epoch {
					t.Fatalf("welcome %s, want recovered %v at 10", wc.raw, tc.recovered)
				}
				if tc.recovered {
					since, _ := ParsePosition(tc.since)
					expectDurable(t, c, w.Epoch, since.Seq+1, 10)
				} else {
					if f := nextRec(t, c); f.Type != "resync" {
						t.Fatalf("got %s, want resync", f.raw)
					}
					expectDurable(t, c, w.Epoch, 8, 10) // the 3 recent frames
				}
				quietAfter(t, c, 100*time.Millisecond)
			})
		}
		// A fresh joiner gets the recent frames and no resync.
		c, wc := rh.dial(t, "r", "")
		if wc.Recovered != nil {
			t.Fatalf("fresh welcome %s", wc.raw)
		}
		expectDurable(t, c, w.Epoch, 8, 10)
		quietAfter(t, c, 100*time.Millisecond)
	})
}

// lossyBroker drops every message while drop is set, like a subscription
// that broke, and can report a resubscription as a broker would.
type lossyBroker struct {
	Broker
	mu      sync.Mutex // one Receiver call at a time, as Run promises
	r       Receiver
	drop    bool
	dropped int // frames dropped
}

func (b *lossyBroker) Run(ctx context.Context, r Receiver) error {
	b.mu.Lock()
	b.r = r
	b.mu.Unlock()
	return b.Broker.Run(ctx, lossyReceiver{b})
}

type lossyReceiver struct{ b *lossyBroker }

func (l lossyReceiver) Receive(room string, msg []byte) {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	if l.b.drop {
		l.b.dropped += strings.Count(string(msg), "\n") + 1
		return
	}
	l.b.r.Receive(room, msg)
}

func (l lossyReceiver) Resubscribed(room string) { l.b.resubscribed(room) }

func (l lossyReceiver) ReceiveUser(user string, frame []byte) {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	l.b.r.ReceiveUser(user, frame)
}

func (b *lossyBroker) resubscribed(room string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.r.Resubscribed(room)
}

// lose publishes n durable frames from seq from on that never arrive.
func (b *lossyBroker) lose(t *testing.T, h *Hub, room string, from, n int) {
	t.Helper()
	b.mu.Lock()
	b.drop, b.dropped = true, 0
	b.mu.Unlock()
	for i := from; i < from+n; i++ {
		if _, err := h.PublishDurable(context.Background(), room, fmt.Appendf(nil, `{"type":"d","n":%d}`, i), DurableOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "frames to be lost", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.dropped == n
	})
	b.mu.Lock()
	b.drop = false
	b.mu.Unlock()
}

func publishD(t *testing.T, h *Hub, room string, n int) {
	t.Helper()
	if _, err := h.PublishDurable(context.Background(), room, fmt.Appendf(nil, `{"type":"d","n":%d}`, n), DurableOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A room whose subscription broke and came back, or that sees a seq jump,
// gets what it missed from history, in order, before later frames; if the
// history cannot cover the gap its members get resync.
func TestRoomRepair(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		trigger func(t *testing.T, b *lossyBroker, h *Hub)
		resync  bool
	}{
		{"resubscribed", 0, func(t *testing.T, b *lossyBroker, h *Hub) { b.resubscribed("r") }, false},
		{"seq gap", 0, func(t *testing.T, b *lossyBroker, h *Hub) { publishD(t, h, "r", 5) }, false},
		{"gap beyond history", 2, func(t *testing.T, b *lossyBroker, h *Hub) { publishD(t, h, "r", 5) }, true},
		{"resubscribed beyond history", 2, func(t *testing.T, b *lossyBroker, h *Hub) { b.resubscribed("r") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forHubBrokers(t, func(t *testing.T, mk func(histConfig) Broker) {
				b := &lossyBroker{Broker: mk(histConfig{size: tc.size})}
				rh := startRecHub(t, Config{PresenceInterval: time.Hour}, b)
				c, w := rh.dial(t, "r", "")
				publishD(t, rh.hub, "r", 1)
				expectDurable(t, c, w.Epoch, 1, 1)
				b.lose(t, rh.hub, "r", 2, 3)
				tc.trigger(t, b, rh.hub)
				if tc.resync {
					if f := nextRec(t, c); f.Type != "resync" {
						t.Fatalf("got %s, want resync", f.raw)
					}
				} else {
					expectDurable(t, c, w.Epoch, 2, 4)
				}
				// Then the room goes on from where it stands: the frame
				// that showed the gap, and the next one.
				next := uint64(5)
				if strings.Contains(tc.name, "gap") {
					expectDurable(t, c, w.Epoch, 5, 5)
					next = 6
				}
				publishD(t, rh.hub, "r", int(next))
				expectDurable(t, c, w.Epoch, next, next)
				quietAfter(t, c, 100*time.Millisecond)
				result := "recovered"
				if tc.resync {
					result = "resync"
				}
				if n := counterValue(t, rh.metrics.recoveries.WithLabelValues("room", result)); n != 1 {
					t.Fatalf("room repairs counted %v %s, want 1", n, result)
				}
			})
		})
	}
}

// When a room's history is lost (here: its keys deleted, as a Redis
// restart without persistence would), the next durable frame comes in a new
// epoch: members get resync, then the frame.
func TestRoomEpochChange(t *testing.T) {
	_, rdb := redistest.New(t)
	br := historyRedisBroker(t, rdb, histConfig{}, false)
	rh := startRecHub(t, Config{PresenceInterval: time.Hour}, br)
	c, w := rh.dial(t, "r", "")
	publishD(t, rh.hub, "r", 1)
	expectDurable(t, c, w.Epoch, 1, 1)
	if err := rdb.Del(context.Background(), br.historyKeys("r")...).Err(); err != nil {
		t.Fatal(err)
	}
	publishD(t, rh.hub, "r", 1)
	if f := nextRec(t, c); f.Type != "resync" {
		t.Fatalf("got %s, want resync", f.raw)
	}
	f := nextRec(t, c)
	if f.Seq != 1 || f.Epoch == w.Epoch || !f.durable() {
		t.Fatalf("got %s, want seq 1 of a new epoch", f.raw)
	}
	publishD(t, rh.hub, "r", 2)
	expectDurable(t, c, f.Epoch, 2, 2)
}

// On Redis Cluster each room's history and channel share a slot: the
// script numbers, stores and SPUBLISHes on the slot's master, and a joiner
// on another instance recovers from it.
func TestClusterDurableAndRecover(t *testing.T) {
	rdb := redistest.NewCluster(t)
	prefix := testPrefix(t)
	a := startRecHub(t, Config{PresenceInterval: time.Hour}, NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true}))
	b := startRecHub(t, Config{PresenceInterval: time.Hour}, NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix, Sharded: true}))
	for _, room := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
		cb, w := b.dial(t, room, "")
		for i := 1; i <= 3; i++ {
			publishD(t, a.hub, room, i)
		}
		expectDurable(t, cb, w.Epoch, 1, 3)
		late, wl := b.dial(t, room, w.Epoch+":1")
		if wl.Recovered == nil || !*wl.Recovered || wl.Seq != 3 {
			t.Fatalf("room %s: welcome %s", room, wl.raw)
		}
		expectDurable(t, late, w.Epoch, 2, 3)
	}
}

// slowRecoverBroker holds every Recover until release is closed.
type slowRecoverBroker struct {
	*lossyBroker
	release  chan struct{}
	received atomic.Int64
}

func (b *slowRecoverBroker) Recover(ctx context.Context, room string, since Position, limit int) ([][]byte, Position, error) {
	<-b.release
	return b.lossyBroker.Recover(ctx, room, since, limit)
}

func (b *slowRecoverBroker) Run(ctx context.Context, r Receiver) error {
	return b.lossyBroker.Run(ctx, receiveCounter{r, &b.received})
}

type receiveCounter struct {
	Receiver
	n *atomic.Int64
}

func (c receiveCounter) Receive(room string, msg []byte) {
	c.Receiver.Receive(room, msg)
	c.n.Add(1)
}

// A repair that outlasts more frames than a room may hold drops the rest
// and ends in resync rather than growing without bound.
func TestRoomRepairOverflowResyncs(t *testing.T) {
	b := &slowRecoverBroker{lossyBroker: &lossyBroker{Broker: NewMemoryBroker()}, release: make(chan struct{})}
	rh := startRecHub(t, Config{PresenceInterval: time.Hour, SendQueue: 2 * maxHeldFrames}, b)
	c, _ := rh.dial(t, "r", "")
	b.resubscribed("r")
	const n = maxHeldFrames + 10
	for i := 0; i < n; i++ {
		if err := rh.hub.Publish(context.Background(), "r", fmt.Appendf(nil, `{"type":"e","i":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every frame to reach the hub", func() bool { return b.received.Load() == n })
	close(b.release)
	if f := nextRec(t, c); f.Type != "resync" {
		t.Fatalf("got %s, want resync", f.raw)
	}
	for i := 0; i < maxHeldFrames; i++ {
		if f := nextRec(t, c); f.I != i {
			t.Fatalf("held frame %d: got %s", i, f.raw)
		}
	}
	quietAfter(t, c, 100*time.Millisecond)
	if v := counterValue(t, rh.metrics.recoveries.WithLabelValues("room", "resync")); v != 1 {
		t.Fatalf("room resyncs counted %v, want 1", v)
	}
}

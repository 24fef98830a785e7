package hub

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// quiet keeps presence frames out of tests that count frames.
func quiet() Config { return Config{PresenceInterval: time.Hour} }

func redisHub(t testing.TB, rdb redis.UniversalClient, prefix string, cfg Config) *testServer {
	t.Helper()
	return startHub(t, cfg, NewRedisBroker(rdb, RedisBrokerConfig{Prefix: prefix}))
}

func TestPublishReachesEveryInstanceExactlyOnce(t *testing.T) {
	db, rdbA := redistest.New(t)
	rdbB := db.Client()
	t.Cleanup(func() { _ = rdbB.Close() })
	prefix := testPrefix(t)
	a := redisHub(t, rdbA, prefix, quiet())
	b := redisHub(t, rdbB, prefix, quiet())
	b.handler.welcome = true

	var inRoom []*wsClient
	for _, uid := range []string{"a1", "a2", "a3"} {
		inRoom = append(inRoom, a.dial(t, "r1", uid))
	}
	for _, uid := range []string{"b1", "b2"} {
		c := b.dial(t, "r1", uid)
		if f := c.next(t, 5*time.Second); f.Type != "welcome" {
			t.Fatalf("first frame on B = %s, want welcome", f.Raw)
		}
		inRoom = append(inRoom, c)
	}
	other := a.dial(t, "r2", "x1")
	waitConns(t, a.hub, 4)
	waitConns(t, b.hub, 2)

	const n = 50
	ctx := context.Background()
	for i := range n {
		if err := a.hub.Publish(ctx, "r1", seqFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	for ci, c := range inRoom {
		for i := range n {
			f := c.next(t, 5*time.Second)
			if f.Type != "event" || f.Seq != i {
				t.Fatalf("client %d frame %d = %s, want seq %d in order", ci, i, f.Raw, i)
			}
		}
	}
	// Exactly once: nothing further arrives anywhere (no echo duplicates).
	time.Sleep(300 * time.Millisecond)
	for ci, c := range append(inRoom, other) {
		if f, ok := c.tryNext(0); ok {
			t.Fatalf("client %d got extra frame %s", ci, f.Raw)
		}
	}
	if got := counterValue(t, a.metrics.brokerPub); got != n {
		t.Errorf("A broker_published = %v, want %d", got, n)
	}
	for name, ts := range map[string]*testServer{"A": a, "B": b} {
		if got := counterValue(t, ts.metrics.brokerRecv); got != n {
			t.Errorf("%s broker_received = %v, want %d", name, got, n)
		}
	}
	if got := gaugeValue(t, a.metrics.connections); got != 4 {
		t.Errorf("A connections gauge = %v, want 4", got)
	}
	if got := gaugeValue(t, a.metrics.rooms); got != 2 {
		t.Errorf("A rooms gauge = %v, want 2", got)
	}

	// A client's own message travels through the handler and the broker
	// back to everyone, B included.
	if err := inRoom[0].conn.WriteMessage(websocket.TextMessage, seqFrame(1000)); err != nil {
		t.Fatal(err)
	}
	for ci, c := range inRoom {
		if f := c.next(t, 5*time.Second); f.Seq != 1000 {
			t.Fatalf("client %d got %s, want seq 1000", ci, f.Raw)
		}
	}
	if got := counterValue(t, a.metrics.messagesIn); got != 1 {
		t.Errorf("messages_in = %v, want 1", got)
	}
	waitFor(t, 2*time.Second, "messages_out", func() bool {
		return counterValue(t, a.metrics.messagesOut) == 3*(n+1)
	})
}

func TestSlowClientEvictedOthersUnaffected(t *testing.T) {
	_, rdb := redistest.New(t)
	cfg := quiet()
	cfg.SendQueue = 8
	ts := redisHub(t, rdb, testPrefix(t), cfg)
	// Small kernel buffers so a peer that does not read backs up into the
	// hub's queue after a few frames instead of after megabytes.
	ts.tune = func(c net.Conn) { _ = c.(*net.TCPConn).SetWriteBuffer(16 << 10) }

	smallRead := &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		return d.Dial(network, addr)
	}}
	slow := ts.dialRaw(t, "room", "slow", smallRead) // never reads
	fast := ts.dial(t, "room", "fast")
	waitConns(t, ts.hub, 2)

	const n = 200
	pad := strings.Repeat("x", 32<<10)
	for i := range n {
		frame := []byte(`{"type":"event","seq":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}`)
		if err := ts.hub.Publish(context.Background(), "room", frame); err != nil {
			t.Fatal(err)
		}
		// Lockstep with the reading client, so only the slow one can fall
		// behind however loaded the machine is.
		if f := fast.next(t, 10*time.Second); f.Seq != i {
			t.Fatalf("fast client frame %d has seq %d", i, f.Seq)
		}
	}
	waitConns(t, ts.hub, 1)
	if got := counterValue(t, ts.metrics.evictions); got != 1 {
		t.Errorf("slow_client_evictions = %v, want 1", got)
	}
	if fast.readErr() != nil {
		t.Errorf("fast client closed: %v", fast.readErr())
	}
	// The slow client's connection is over: reading drains what the kernel
	// held and then fails.
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("slow client connection still open after eviction")
			}
			break
		}
	}
}

func TestOversizeFrameCloses1009(t *testing.T) {
	_, rdb := redistest.New(t)
	cfg := quiet()
	cfg.ReadLimit = 1024
	ts := redisHub(t, rdb, testPrefix(t), cfg)
	for _, size := range []int{1025, 64 << 10} {
		c := ts.dial(t, "room", "big")
		waitConns(t, ts.hub, 1)
		// The write itself may fail with ErrCloseSent: the server's 1009 can
		// arrive (and be answered) while a large frame is still going out.
		_ = c.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("a", size)))
		if code := c.closeCode(t, 5*time.Second); code != websocket.CloseMessageTooBig {
			t.Fatalf("size %d: close code %d (%v), want 1009", size, code, c.err)
		}
		waitConns(t, ts.hub, 0)
	}
	waitFor(t, 2*time.Second, "2 OnClose calls", func() bool { return ts.handler.closed.Load() == 2 })
	if got := ts.handler.msgs.Load(); got != 0 {
		t.Errorf("oversize frames reached the handler %d times", got)
	}
}

func TestPingPongKeepsLiveClientsAndDropsDeadOnes(t *testing.T) {
	_, rdb := redistest.New(t)
	cfg := quiet()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PongTimeout = 200 * time.Millisecond
	ts := redisHub(t, rdb, testPrefix(t), cfg)

	var pings atomic.Int32
	live := ts.dialRaw(t, "room", "live", nil)
	live.SetPingHandler(func(data string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	liveC := newWSClient(live)
	_ = ts.dialRaw(t, "room", "dead", nil) // never reads, so never answers pings
	waitConns(t, ts.hub, 2)
	waitFor(t, 3*time.Second, "3 pings", func() bool { return pings.Load() >= 3 })
	// The dead one is dropped after PingInterval+PongTimeout without a pong.
	waitConns(t, ts.hub, 1)
	time.Sleep(500 * time.Millisecond)
	if err := liveC.readErr(); err != nil {
		t.Fatalf("live client dropped: %v", err)
	}
	waitConns(t, ts.hub, 1)
	for reason, want := range map[string]float64{"silent": 1, "write_timeout": 0} {
		if got := counterValue(t, ts.metrics.cuts.WithLabelValues(reason)); got != want {
			t.Errorf("cut_connections_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func TestShutdownClosesWith1001WithinBound(t *testing.T) {
	_, rdb := redistest.New(t)
	ts := redisHub(t, rdb, testPrefix(t), quiet())
	var clients []*wsClient
	for _, uid := range []string{"u1", "u2", "u3"} {
		clients = append(clients, ts.dial(t, "room-"+uid, uid))
	}
	deaf := ts.dialRaw(t, "room-u1", "deaf", nil) // never answers the close
	_ = deaf
	waitConns(t, ts.hub, 4)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	ts.hub.Shutdown(ctx)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v", took)
	}
	for i, c := range clients {
		if code := c.closeCode(t, time.Second); code != websocket.CloseGoingAway {
			t.Errorf("client %d close code %d, want 1001", i, code)
		}
	}
	if n, r := ts.hub.Stats(); n != 0 || r != 0 {
		t.Errorf("after Shutdown Stats = %d conns, %d rooms", n, r)
	}
	// New connections are refused with 1001.
	late := ts.dial(t, "room", "late")
	if code := late.closeCode(t, 2*time.Second); code != websocket.CloseGoingAway {
		t.Errorf("late client close code %d, want 1001", code)
	}
	if got := ts.handler.opened.Load(); got != 4 {
		t.Errorf("OnOpen calls = %d, want 4 (late client must not open)", got)
	}
}

func TestShutdownRespectsContext(t *testing.T) {
	h := New(quiet(), NewMemoryBroker(), testLogger(), nil)
	c := newClient(context.Background(), h, nil, "r", User{ID: "u"})
	if err := h.join(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	h.serving.Add(1) // a Serve that never returns (handler stuck)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	h.Shutdown(ctx)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Shutdown ignored its context: took %v", took)
	}
}

// A room's Throttle sees every frame before fan-out, in order, with the
// local member count; what it takes is not delivered, and what it sends
// reaches the members before the frame it was offered.
func TestThrottleSitsBeforeFanOut(t *testing.T) {
	_, rdb := redistest.New(t)
	cfg := quiet()
	var seen atomic.Int32
	cfg.NewThrottle = func(room string, send func([]byte)) Throttle {
		return throttleFunc(func(frame []byte, members int) bool {
			seen.Store(int32(members))
			switch string(frame) {
			case `{"n":"drop"}`:
				return true
			case `{"n":"swap"}`:
				send([]byte(`{"n":"swapped"}`))
				return true
			case `{"n":"before"}`:
				send([]byte(`{"n":"first"}`))
			}
			return false
		})
	}
	ts := redisHub(t, rdb, testPrefix(t), cfg)
	a, b := ts.dial(t, "room", "a"), ts.dial(t, "room", "b")
	waitConns(t, ts.hub, 2)
	for _, n := range []string{"drop", "one", "swap", "before", "last"} {
		if err := ts.hub.Publish(context.Background(), "room", []byte(`{"n":"`+n+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`{"n":"one"}`, `{"n":"swapped"}`, `{"n":"first"}`, `{"n":"before"}`, `{"n":"last"}`}
	for ci, c := range []*wsClient{a, b} {
		for i, w := range want {
			if f := c.next(t, 5*time.Second); string(f.Raw) != w {
				t.Fatalf("client %d frame %d = %s, want %s", ci, i, f.Raw, w)
			}
		}
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the throttle was told of %d members, want 2", n)
	}
}

type throttleFunc func(frame []byte, members int) bool

func (f throttleFunc) Take(frame []byte, members int) bool { return f(frame, members) }

// BenchmarkBroadcast measures the local fan-out of one frame, the way a
// live-stream room sees it (broadcasts far enough apart that every queue is
// empty when the next one comes): encode once, snapshot the members, queue
// the frame for each, start each member's writer, which takes the frame and
// exits. Members are connection-less clients whose writers drop what they
// take, so ns/member is the hub's cost per delivery (locking, queuing,
// writer goroutines), not the network's; TestIdleConnectionsLoad measures
// the whole path over loopback.
func BenchmarkBroadcast(b *testing.B) {
	for _, members := range []int{10, 1000, 10000} {
		b.Run(strconv.Itoa(members), func(b *testing.B) {
			h := New(Config{PresenceInterval: time.Hour}, NewMemoryBroker(), testLogger(), nil)
			ctx := context.Background()
			for i := range members {
				c := newClient(ctx, h, nil, "room", User{ID: strconv.Itoa(i)})
				if err := h.join(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			frame := []byte(`{"type":"grabbed","packet_id":"p1","user":"someone","amount":188,"remaining":12}`)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			want := int64(0)
			for b.Loop() {
				h.deliver("room", frame)
				want += int64(members)
				for h.nullWrites.Load() < want {
					runtime.Gosched()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/member")
		})
	}
}

package hub

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// smallReadDialer dials with a 16 KB receive buffer, so a client that stops
// reading backs up into the hub after a few frames.
var smallReadDialer = &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
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

// Data frames carry no socket deadline; the hub's timekeeper cuts a write
// that has been stuck for WriteTimeout. With a queue too deep to overflow,
// that is the only thing that can drop a peer that stopped reading.
func TestStuckWriteIsCutAfterWriteTimeout(t *testing.T) {
	cfg := quiet()
	cfg.SendQueue = 1 << 20
	cfg.WriteTimeout = 300 * time.Millisecond
	ts := startHub(t, cfg, NewMemoryBroker())
	ts.tune = func(c net.Conn) { _ = c.(*net.TCPConn).SetWriteBuffer(16 << 10) }
	_ = ts.dialRaw(t, "room", "stuck", smallReadDialer) // never reads
	live := ts.dial(t, "room", "live")
	waitConns(t, ts.hub, 2)

	pad := strings.Repeat("x", 32<<10)
	start := time.Now()
	for i := range 40 {
		frame := []byte(`{"type":"event","seq":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}`)
		if err := ts.hub.Publish(context.Background(), "room", frame); err != nil {
			t.Fatal(err)
		}
		if f := live.next(t, 5*time.Second); f.Seq != i {
			t.Fatalf("live client frame %d has seq %d", i, f.Seq)
		}
	}
	waitConns(t, ts.hub, 1)
	if took := time.Since(start); took < cfg.WriteTimeout {
		t.Errorf("stuck client dropped after %v, before WriteTimeout", took)
	}
	if got := counterValue(t, ts.metrics.evictions); got != 0 {
		t.Errorf("slow_client_evictions = %v, want 0 (the write timeout, not the queue, drops it)", got)
	}
	if got := counterValue(t, ts.metrics.cuts.WithLabelValues("write_timeout")); got != 1 {
		t.Errorf("cut_connections_total{reason=write_timeout} = %v, want 1", got)
	}
	if err := live.readErr(); err != nil {
		t.Errorf("live client closed: %v", err)
	}
}

// An idle connection has no writer goroutine; a frame starts one, which
// exits once the queue is empty.
func TestWriterRunsOnlyWhileThereIsSomethingToWrite(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	c := ts.dial(t, "room", "u1")
	waitConns(t, ts.hub, 1)
	var cl *Client
	ts.hub.eachClient(func(x *Client) { cl = x })
	writing := func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return cl.writing
	}
	if writing() {
		t.Fatal("writer running on a connection nothing was sent to")
	}
	for i := range 100 {
		if !cl.Send(seqFrame(i)) {
			t.Fatalf("Send %d refused", i)
		}
	}
	for i := range 100 {
		if f := c.next(t, 2*time.Second); f.Seq != i {
			t.Fatalf("frame %d has seq %d", i, f.Seq)
		}
	}
	waitFor(t, 2*time.Second, "writer to exit", func() bool { return !writing() })
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if n := len(cl.queue) - cl.head; n != 0 || cap(cl.queue) > 8 {
		t.Errorf("idle queue holds %d frames in %d slots", n, cap(cl.queue))
	}
}

// onlyClient returns the hub's one client.
func onlyClient(t *testing.T, h *Hub) *Client {
	t.Helper()
	var cl *Client
	h.eachClient(func(x *Client) { cl = x })
	if cl == nil {
		t.Fatal("no client")
	}
	return cl
}

// queued is how many frames wait in cl's queue.
func queued(cl *Client) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.queue) - cl.head
}

// Frames that queue up while the writer is busy go out in its next write,
// all of them, intact and in order.
func TestQueuedFramesGoInOneWrite(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	c := ts.dial(t, "room", "u1")
	waitConns(t, ts.hub, 1)
	cl := onlyClient(t, ts.hub)
	writes0 := counterValue(t, ts.metrics.writes)
	out0 := counterValue(t, ts.metrics.messagesOut)

	// Holding wmu keeps the writer from writing: it takes frame 0 and
	// waits, and the frames sent meanwhile queue behind it.
	cl.wmu.Lock()
	cl.Send(seqFrame(0))
	waitFor(t, 2*time.Second, "the writer to take frame 0", func() bool { return queued(cl) == 0 })
	const n = 12 // under maxTurnFrames
	for i := 1; i <= n; i++ {
		frame := fmt.Appendf(nil, `{"type":"event","seq":%d,"pad":"%s"}`, i, strings.Repeat("y", i*40))
		if !cl.Send(frame) {
			t.Fatalf("Send %d refused", i)
		}
	}
	cl.wmu.Unlock()

	for i := 0; i <= n; i++ {
		f := c.next(t, 2*time.Second)
		want := string(seqFrame(0))
		if i > 0 {
			want = fmt.Sprintf(`{"type":"event","seq":%d,"pad":"%s"}`, i, strings.Repeat("y", i*40))
		}
		if string(f.Raw) != want {
			t.Fatalf("frame %d = %.60s…, want %.60s…", i, f.Raw, want)
		}
	}
	waitFor(t, 2*time.Second, "the metrics", func() bool {
		return counterValue(t, ts.metrics.messagesOut)-out0 == n+1
	})
	if w := counterValue(t, ts.metrics.writes) - writes0; w != 2 {
		t.Errorf("%d frames went in %v writes, want 2 (frame 0, then the rest together)", n+1, w)
	}
}

// Every payload length frames correctly: the three header sizes and their
// edges, and frames larger than one write.
func TestWireFramesOfEveryLength(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	c := ts.dial(t, "room", "u1")
	waitConns(t, ts.hub, 1)
	cl := onlyClient(t, ts.hub)
	lengths := []int{0, 1, 125, 126, 127, 65535, 65536, maxWriteBytes + 1, 200000}
	cl.wmu.Lock() // so they go as one batch, split only by maxWriteBytes
	for i, n := range lengths {
		p := make([]byte, n)
		for j := range p {
			p[j] = 'a' + byte((i+j)%26)
		}
		if !cl.Send(p) {
			t.Fatalf("Send of %d bytes refused", n)
		}
	}
	cl.wmu.Unlock()
	for i, n := range lengths {
		var raw []byte
		select {
		case raw = <-c.frames:
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d (%d bytes) not received: %v", i, n, c.readErr())
		}
		if len(raw) != n {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(raw), n)
		}
		for j, b := range raw {
			if b != 'a'+byte((i+j)%26) {
				t.Fatalf("frame %d of %d bytes differs at %d", i, n, j)
			}
		}
	}
}

// The writer's raw writes share the socket with control frames written
// through gorilla: pong replies from the read goroutine and the hub's own
// pings. A client that pings hard while frames stream to it still reads
// every frame whole and in order, and gets its pongs.
func TestBatchesInterleavedWithControlFramesStayWellFormed(t *testing.T) {
	cfg := quiet()
	cfg.PingInterval = 20 * time.Millisecond // the hub's pings ride the batches
	cfg.SendQueue = 1 << 16                  // the frames are sent faster than read
	ts := startHub(t, cfg, NewMemoryBroker())
	conn := ts.dialRaw(t, "room", "u1", nil)
	var pongs, pings atomic.Int64
	conn.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	conn.SetPingHandler(func(data string) error {
		pings.Add(1)
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	c := newWSClient(conn)
	waitConns(t, ts.hub, 1)
	cl := onlyClient(t, ts.hub)

	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
				return
			}
			runtime.Gosched()
		}
	}()
	const n = 3000
	pad := strings.Repeat("z", 300)
	go func() {
		for i := range n {
			cl.Send(fmt.Appendf(nil, `{"type":"event","seq":%d,"pad":"%s"}`, i, pad))
			if i%50 == 0 {
				runtime.Gosched()
			}
		}
	}()
	for i := range n {
		f := c.next(t, 5*time.Second)
		if f.Seq != i || !strings.HasSuffix(string(f.Raw), `"pad":"`+pad+`"}`) {
			t.Fatalf("frame %d = %.80s", i, f.Raw)
		}
	}
	close(stop)
	<-pinged
	if pongs.Load() == 0 || pings.Load() == 0 {
		t.Fatalf("%d pongs and %d pings reached the client; want some of each", pongs.Load(), pings.Load())
	}
	if err := c.readErr(); err != nil {
		t.Fatalf("connection failed: %v", err)
	}
}

// A control frame written through gorilla leaves a write deadline on the
// socket (a pong reply's is a second away); the writer's next raw write,
// long after that deadline, must still go through.
func TestWriteDeadlineOfAControlFrameDoesNotFailLaterWrites(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	conn := ts.dialRaw(t, "room", "u1", nil)
	pong := make(chan time.Time, 1)
	conn.SetPongHandler(func(string) error {
		select {
		case pong <- time.Now():
		default:
		}
		return nil
	})
	c := newWSClient(conn)
	waitConns(t, ts.hub, 1)
	cl := onlyClient(t, ts.hub)
	if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	select {
	case at = <-pong:
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	// gorilla's ping handler answered with a deadline 1 s out; let it pass.
	time.Sleep(time.Until(at.Add(1200 * time.Millisecond)))
	for i := range 5 {
		cl.Send(seqFrame(i))
	}
	for i := range 5 {
		if f := c.next(t, 2*time.Second); f.Seq != i {
			t.Fatalf("frame %d has seq %d", i, f.Seq)
		}
	}
	if err := c.readErr(); err != nil {
		t.Fatalf("connection failed: %v", err)
	}
}

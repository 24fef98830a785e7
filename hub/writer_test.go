package hub

import (
	"context"
	"net"
	"strconv"
	"strings"
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

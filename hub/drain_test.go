package hub

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// scriptHandler answers each frame with {"type":"result","ref":<frame>},
// except for a few frames that script trouble:
//   - "slow" signals started, waits for release, then answers;
//   - "boom" panics.
//
// Users named "panic-open" and "panic-close" make OnOpen and OnClose panic.
type scriptHandler struct {
	started chan struct{}
	release chan struct{}
	closed  atomic.Int32
}

func newScriptHandler() *scriptHandler {
	return &scriptHandler{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (sh *scriptHandler) OnOpen(ctx context.Context, c *Client) {
	if c.User().ID == "panic-open" {
		panic("scripted panic in OnOpen")
	}
}

func (sh *scriptHandler) HandleMessage(ctx context.Context, c *Client, msg []byte) {
	switch string(msg) {
	case "boom":
		panic("scripted panic in HandleMessage")
	case "slow":
		sh.started <- struct{}{}
		<-sh.release
	}
	c.Send([]byte(`{"type":"result","packet_id":"` + string(msg) + `"}`))
}

func (sh *scriptHandler) OnClose(c *Client) {
	sh.closed.Add(1)
	if c.User().ID == "panic-close" {
		panic("scripted panic in OnClose")
	}
}

// startScripted runs a hub on real Redis whose connections are served by
// sh. Cleanup shuts it down.
func startScripted(t *testing.T, sh *scriptHandler) *testServer {
	t.Helper()
	_, rdb := redistest.New(t)
	broker := NewRedisBroker(rdb, RedisBrokerConfig{Prefix: testPrefix(t)})
	ts := &testServer{broker: broker, metrics: NewMetrics(prometheus.NewRegistry())}
	ts.hub = New(quiet(), broker, testLogger(), ts.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ts.hub.Run(ctx) }()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		q := r.URL.Query()
		ts.hub.Serve(r.Context(), conn, q.Get("room"), User{ID: q.Get("uid")}, sh)
	}))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		ts.hub.Shutdown(sctx)
		ts.srv.Close()
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("hub.Run: %v", err)
		}
		_ = broker.Close()
	})
	return ts
}

func (c *wsClient) say(t *testing.T, msg string) {
	t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
}

// expectResult waits for the answer to msg.
func (c *wsClient) expectResult(t *testing.T, msg string) {
	t.Helper()
	if f := c.next(t, 5*time.Second); f.Type != "result" || f.PacketID != msg {
		t.Fatalf("answer to %q: got %s", msg, f.Raw)
	}
}

// A frame being handled when the hub shuts down still gets its answer, and
// only then the 1001 close; a frame read after the drain began is not
// handled at all.
func TestShutdownAnswersFramesInHandBefore1001(t *testing.T) {
	sh := newScriptHandler()
	ts := startScripted(t, sh)
	busy := ts.dial(t, "room", "busy")
	idle := ts.dial(t, "other", "idle")
	waitConns(t, ts.hub, 2)

	busy.say(t, "slow")
	<-sh.started
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts.hub.Shutdown(ctx)
	}()
	waitFor(t, 5*time.Second, "the drain to begin", ts.hub.draining.Load)
	busy.say(t, "late") // read only after "slow" is handled: never handled
	select {
	case <-shut:
		t.Fatal("Shutdown returned while a frame was being handled")
	default:
	}
	if err := busy.readErr(); err != nil {
		t.Fatalf("closed while its frame was being handled: %v", err)
	}

	close(sh.release)
	busy.expectResult(t, "slow")
	if code := busy.closeCode(t, 5*time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d after the answer, want 1001", code)
	}
	if len(busy.frames) != 0 {
		t.Fatalf("a frame after the answer to the frame in hand: %s", <-busy.frames)
	}
	if code := idle.closeCode(t, 5*time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("idle client: close code %d, want 1001", code)
	}
	<-shut
}

// Drain gives up at its deadline, and says so, when a handler does not
// finish in time; Shutdown then closes regardless.
func TestDrainGivesUpAtItsDeadline(t *testing.T) {
	sh := newScriptHandler()
	ts := startScripted(t, sh)
	stuck := ts.dial(t, "room", "stuck")
	waitConns(t, ts.hub, 1)
	stuck.say(t, "slow")
	<-sh.started

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.hub.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a stuck handler: %v", err)
	}
	// A new connection is refused once draining.
	late := ts.dial(t, "room", "late")
	if code := late.closeCode(t, 5*time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("connection during the drain: close code %d, want 1001", code)
	}
	close(sh.release)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	ts.hub.Shutdown(sctx)
	if code := stuck.closeCode(t, 5*time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
}

// A panic while serving one connection closes that connection with 1011,
// is counted, and leaves the hub serving everyone else.
func TestPanicClosesOnlyThatConnection(t *testing.T) {
	sh := newScriptHandler()
	ts := startScripted(t, sh)
	bystander := ts.dial(t, "room", "bystander")
	waitConns(t, ts.hub, 1)

	for i, tc := range []struct {
		name string
		// provoke makes a connection panic and returns the close code it
		// should see.
		provoke func(t *testing.T) int
	}{
		{"HandleMessage", func(t *testing.T) int {
			c := ts.dial(t, "room", "victim")
			c.say(t, "fine")
			c.expectResult(t, "fine")
			c.say(t, "boom")
			return c.closeCode(t, 5*time.Second)
		}},
		{"OnOpen", func(t *testing.T) int {
			return ts.dial(t, "room", "panic-open").closeCode(t, 5*time.Second)
		}},
		{"OnClose", func(t *testing.T) int {
			c := ts.dial(t, "room", "panic-close")
			c.say(t, "fine")
			c.expectResult(t, "fine")
			closed := sh.closed.Load()
			_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			code := c.closeCode(t, 5*time.Second)
			waitFor(t, 5*time.Second, "OnClose", func() bool { return sh.closed.Load() > closed })
			return code
		}},
		{"writer", func(t *testing.T) int {
			c := ts.dial(t, "room", "writer-victim")
			waitConns(t, ts.hub, 2)
			var victim *Client
			ts.hub.eachClient(func(cl *Client) {
				if cl.User().ID == "writer-victim" {
					victim = cl
				}
			})
			victim.enqueue(nil) // the writer panics on a nil frame
			return c.closeCode(t, 5*time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := tc.provoke(t)
			if want := websocket.CloseInternalServerErr; tc.name != "OnClose" && code != want {
				t.Fatalf("close code %d, want %d", code, want)
			}
			waitFor(t, 5*time.Second, "the panic to be counted", func() bool {
				return counterValue(t, ts.metrics.panics) == float64(i+1)
			})
			waitConns(t, ts.hub, 1)
			msg := "still-here-" + tc.name
			bystander.say(t, msg)
			bystander.expectResult(t, msg)
		})
	}
}

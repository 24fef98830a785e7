package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// testLogger logs to stderr when HUB_TEST_LOG is set (e.g. =debug), and
// nowhere otherwise: goroutines may outlive a test, and t.Log would panic.
func testLogger() *slog.Logger {
	lvl := os.Getenv("HUB_TEST_LOG")
	if lvl == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var l slog.Level
	_ = l.UnmarshalText([]byte(lvl))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// testPrefix gives each test its own Redis namespace: pub/sub channels are
// server-wide, not per database, so per-test databases do not isolate them.
func testPrefix(t testing.TB) string {
	r := strings.NewReplacer("/", "_", " ", "_")
	return fmt.Sprintf("t%d_%s", time.Now().UnixNano()%1e6, r.Replace(t.Name()))
}

type testHandler struct {
	hub     *Hub
	welcome bool
	opened  atomic.Int32
	closed  atomic.Int32
	msgs    atomic.Int32
}

func (th *testHandler) OnOpen(ctx context.Context, c *Client) {
	th.opened.Add(1)
	if th.welcome {
		c.Send([]byte(`{"type":"welcome","user":"` + c.User().ID + `"}`))
	}
}

// HandleMessage republishes what a client says to its room: the shape of a
// real handler (client action -> room event) without any packet logic.
func (th *testHandler) HandleMessage(ctx context.Context, c *Client, msg []byte) {
	th.msgs.Add(1)
	_ = th.hub.Publish(ctx, c.Room(), msg)
}

func (th *testHandler) OnClose(c *Client) { th.closed.Add(1) }

type testServer struct {
	hub     *Hub
	broker  Broker
	handler *testHandler
	srv     *httptest.Server
	metrics *Metrics
	// tune, when set, adjusts each server-side TCP connection.
	tune func(net.Conn)
}

func startHub(t testing.TB, cfg Config, broker Broker) *testServer {
	t.Helper()
	ts := &testServer{broker: broker, metrics: NewMetrics(prometheus.NewRegistry())}
	ts.hub = New(cfg, broker, testLogger(), ts.metrics)
	ts.handler = &testHandler{hub: ts.hub}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ts.hub.Run(ctx) }()

	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if ts.tune != nil {
			ts.tune(conn.NetConn())
		}
		q := r.URL.Query()
		ts.hub.Serve(r.Context(), conn, q.Get("room"), User{ID: q.Get("uid"), Name: "name-" + q.Get("uid")}, ts.handler)
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

func (ts *testServer) url(room, uid string) string {
	return "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/?room=" + url.QueryEscape(room) + "&uid=" + url.QueryEscape(uid)
}

// dialRaw connects without reading; the caller owns the connection.
func (ts *testServer) dialRaw(t testing.TB, room, uid string, d *websocket.Dialer) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	conn, _, err := d.Dial(ts.url(room, uid), nil)
	if err != nil {
		t.Fatalf("dial %s/%s: %v", room, uid, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// wsClient reads every frame into a channel on its own goroutine, the way a
// browser would.
type wsClient struct {
	conn   *websocket.Conn
	frames chan []byte
	done   chan struct{}
	err    error // read error; valid after done is closed
}

func (ts *testServer) dial(t testing.TB, room, uid string) *wsClient {
	t.Helper()
	return newWSClient(ts.dialRaw(t, room, uid, nil))
}

func newWSClient(conn *websocket.Conn) *wsClient {
	c := &wsClient{conn: conn, frames: make(chan []byte, 100000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			c.frames <- msg
		}
	}()
	return c
}

type testFrame struct {
	Type      string          `json:"type"`
	Seq       int             `json:"seq"`
	PacketID  string          `json:"packet_id"`
	Remaining int             `json:"remaining"`
	Online    int             `json:"online"`
	Users     []User          `json:"users"`
	Raw       json.RawMessage `json:"-"`
}

// next returns the next frame whose type is not skipped, or fails t.
func (c *wsClient) next(t testing.TB, timeout time.Duration, skip ...string) testFrame {
	t.Helper()
	f, ok := c.tryNext(timeout, skip...)
	if !ok {
		t.Fatalf("no frame within %v (read err: %v)", timeout, c.readErr())
	}
	return f
}

func (c *wsClient) tryNext(timeout time.Duration, skip ...string) (testFrame, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case raw := <-c.frames:
			var f testFrame
			_ = json.Unmarshal(raw, &f)
			f.Raw = raw
			if contains(skip, f.Type) {
				continue
			}
			return f, true
		case <-deadline:
			return testFrame{}, false
		}
	}
}

func (c *wsClient) readErr() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// closeCode waits for the connection to end and returns its close code
// (1006 if it ended without a close frame).
func (c *wsClient) closeCode(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("connection still open after %v", timeout)
	}
	var ce *websocket.CloseError
	if errors.As(c.err, &ce) {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConns(t testing.TB, h *Hub, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d connections", n), func() bool {
		c, _ := h.Stats()
		return c == n
	})
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func seqFrame(i int) []byte {
	return fmt.Appendf(nil, `{"type":"event","seq":%d}`, i)
}

package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// stack is one App wired as server/app.go wires it (a Redis store, a hub on
// a Redis broker with Redis presence), on a private redis-server that this
// test alone uses, so a test may stall or kill it without other tests
// feeling it. The fault tests and the REST fuzz target run on it; they need
// web and hub settings (GrabTimeout, SendQueue, WriteTimeout) that the
// server's flags do not reach.
type stack struct {
	redis *redistest.Server
	rdb   *redis.Client
	store *packet.Store
	hub   *hub.Hub
	app   *App
	// reg holds the hub's, the store's and the App's metrics.
	reg *prometheus.Registry
	// URL is the HTTP server's base URL ("" unless served).
	URL string
}

// stackOptions shape a stack. Zero fields take the package defaults, except
// the rate limits, which stackConfig raises: the tests measure faults, not
// limits.
type stackOptions struct {
	redis redistest.Options
	web   Config
	hub   hub.Config
	// serve starts an HTTP server on a loopback port (URL).
	serve bool
	// direct settles each grab alone (HONGBAO_COALESCE_GRABS=false).
	direct bool
	// counters keeps the sending limits' counters in the stack's Redis.
	counters bool
	// sndbuf, when positive, is the send buffer of every accepted socket.
	// Loopback sockets otherwise get megabytes of buffer, so a client that
	// stops reading would take that much traffic to back up; across a real
	// network a few round trips of data are in flight at most.
	sndbuf int
}

const stackSecret = "stack-test-secret-0123456789abcdef"

// stackConfig is the web config of a test stack: generous rate limits
// (newStack raises the connection caps).
func stackConfig() Config {
	return Config{
		Secret:       []byte(stackSecret),
		SessionRate:  1e6,
		SessionBurst: 1e6,
		GrabRate:     1e6,
		GrabBurst:    1e6,
		ChatRate:     1e6,
		ChatBurst:    1e6,
	}
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	srv, rdb := redistest.Start(t, o.redis)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	var app *App
	store, err := packet.NewStore(rdb, packet.Config{Prefix: "hb", Logger: log, Metrics: packet.NewMetrics(reg), DisableCoalescing: o.direct,
		OnGrabs: func(ctx context.Context, b packet.GrabBatch) { app.OnGrabs(ctx, b) }})
	if err != nil {
		t.Fatal(err)
	}
	hc := o.hub
	hc.Presence = hub.NewRedisPresence(rdb, hub.RedisPresenceConfig{Prefix: "hb"})
	h := hub.New(hc, hub.NewRedisBroker(rdb, hub.RedisBrokerConfig{Prefix: "hb"}), log, hub.NewMetrics(reg))
	wc := o.web
	wc.Logger, wc.Registerer, wc.Gatherer, wc.Ready = log, reg, reg, store.Ping
	// Every test client has a user of its own, but all of them come from
	// 127.0.0.1, and a fault test opens up to 2 000 and retries fast: the
	// per-address caps and the frame budget are raised.
	wc.MaxConnsPerIP, wc.NewRoomsPerIP = -1, -1
	wc.FrameRate, wc.FrameBurst = 1e6, 1e6
	if o.counters {
		wc.Counters = rdb
	}
	app = New(wc, store, h)
	s := &stack{redis: srv, rdb: rdb, store: store, hub: h, app: app, reg: reg}

	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		if err := h.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub: %v", err)
		}
	}()
	var httpSrv *http.Server
	served := make(chan struct{})
	if o.serve {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		httpSrv = &http.Server{Handler: app.Echo(), ReadHeaderTimeout: 10 * time.Second}
		s.URL = "http://" + ln.Addr().String()
		if o.sndbuf > 0 {
			ln = smallSendBuffers{ln, o.sndbuf}
		}
		go func() {
			defer close(served)
			_ = httpSrv.Serve(ln)
		}()
	} else {
		close(served)
	}
	// Registered after redistest.Start's cleanups, so this runs first: the
	// stack stops before its Redis does.
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if httpSrv != nil {
			_ = httpSrv.Shutdown(sctx)
		}
		<-served
		app.Close()
		h.Shutdown(sctx)
		cancel()
		<-hubDone
	})
	return s
}

// smallSendBuffers sets the send buffer of every socket it accepts.
type smallSendBuffers struct {
	net.Listener
	size int
}

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// wsURL is the WebSocket address of room for token.
func (s *stack) wsURL(room, token string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?room=" + room + "&token=" + token
}

// user mints a token for a new user of id and funds its wallet with
// balance fen (none when 0).
func (s *stack) user(t testing.TB, id string, balance int64) (packet.User, string) {
	t.Helper()
	u := packet.User{ID: id, Name: id}
	if balance > 0 {
		if _, _, err := s.store.Fund(context.Background(), id, balance, "fund-"+id); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.app.Tokens().Issue(u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return u, tok
}

// tokens mints tokens for n new users, prefix0 .. prefix<n-1>, with empty
// wallets.
func (s *stack) tokens(t testing.TB, prefix string, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		_, out[i] = s.user(t, fmt.Sprintf("%s%d", prefix, i), 0)
	}
	return out
}

// auditClean fails t unless the money audit is clean.
func (s *stack) auditClean(t testing.TB) packet.AuditReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := s.store.Audit(ctx)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("audit: %s", rep)
	}
	return rep
}

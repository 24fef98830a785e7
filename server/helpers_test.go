package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/pgtest"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/hongbao-dev/hongbao/web"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	redistest.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binDir holds the server binary that serverBinary builds, once per test
// binary, for the tests that run the server as a process.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binBuild error
)

// serverBinary builds the server (once) and returns its path.
func serverBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binBuild = os.MkdirTemp("", "hongbao-bin-"); binBuild != nil {
			return
		}
		binPath = filepath.Join(binDir, "hongbao")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binBuild = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binBuild != nil {
		t.Fatal(binBuild)
	}
	return binPath
}

const testSecret = "test-secret-0123456789abcdef0123"
const testAdmin = "admin-token-for-tests-0123456789ab"

// testConfig is a server config for tests: a real Redis database, a shared
// secret, generous rate limits and a fast sweeper. Pub/sub channels are
// server-wide, not per database, so each test gets its own key prefix.
func testConfig(t testing.TB, redisURL string) Config {
	c, err := parseConfig(nil, io.Discard)
	if err != nil {
		panic(err)
	}
	c.Addr = "127.0.0.1:0"
	c.RedisURL = redisURL
	c.Secret = testSecret
	c.AdminToken = testAdmin
	c.SessionRate, c.SessionBurst = 10000, 10000
	// Every test client comes from 127.0.0.1: the per-address caps are
	// raised (the abuse tests set their own).
	c.MaxConnsPerIP, c.NewRoomsPerIP = 10000, 10000
	c.SweepInterval = 100 * time.Millisecond
	c.ShutdownTimeout = 5 * time.Second
	c.DrainDelay = 0 // tests that drain set their own
	c.KeyPrefix = "hbt-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	// The tests of other things send freely; the limit tests set their own.
	c.DailySendTotal, c.DailySendCount, c.RoomPacketsPerMinute, c.MaxPacketTotal = -1, -1, -1, -1
	return c
}

// testLedgerConfig is testConfig with a fresh PostgreSQL database as the
// ledger.
func testLedgerConfig(t testing.TB, redisURL string) Config {
	c := testConfig(t, redisURL)
	c.DatabaseURL = pgtest.New(t)
	return c
}

// modes are the two ways to run: wallets in Redis, or in the ledger.
var modes = []struct {
	name   string
	config func(t testing.TB, redisURL string) Config
}{{"redis", testConfig}, {"ledger", testLedgerConfig}}

// server is one in-process instance.
type server struct {
	*instance
	URL    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func startServer(t testing.TB, cfg Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger()
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	in, err := newInstance(cfg, log, ln)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{instance: in, URL: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- in.run(ctx) }()
	t.Cleanup(func() { _ = s.stop(t) })
	return s
}

// stop shuts the server down, waits for it and returns what run returned
// (idempotent).
func (s *server) stop(t testing.TB) error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
			if s.err != nil {
				t.Errorf("server stopped with %v", s.err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("server did not stop within 15s")
		}
	})
	return s.err
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// session creates a guest on s.
func session(t testing.TB, s *server, name string) (packet.User, string) {
	t.Helper()
	var out struct {
		User  packet.User `json:"user"`
		Token string      `json:"token"`
	}
	status := call(t, s, "POST", "/api/v1/sessions", "", map[string]string{"name": name}, &out)
	if status != http.StatusCreated {
		t.Fatalf("session: status %d", status)
	}
	return out.User, out.Token
}

// meBalance is the wallet balance that GET /api/v1/me reports.
func meBalance(t *testing.T, s *server, token string) int64 {
	t.Helper()
	return getMe(t, s, token).Balance
}

// meResponse is GET /api/v1/me.
type meResponse struct {
	Balance  int64 `json:"balance"`
	Received struct {
		Total int64 `json:"total"`
		Count int64 `json:"count"`
	} `json:"received"`
	Pending struct {
		Total int64 `json:"total"`
		Count int64 `json:"count"`
	} `json:"pending"`
}

func getMe(t *testing.T, s *server, token string) meResponse {
	t.Helper()
	var me meResponse
	if st := call(t, s, "GET", "/api/v1/me", token, nil, &me); st != http.StatusOK {
		t.Fatalf("GET /api/v1/me: %d", st)
	}
	return me
}

// meMoney is what /me shows a user owns: committed plus on its way.
func meMoney(t *testing.T, s *server, token string) int64 {
	t.Helper()
	me := getMe(t, s, token)
	return me.Balance + me.Pending.Total
}

// meMoneyReaches polls /me until the user's money reaches want or 5 s
// pass, and returns what it saw last. A claim settled by another instance
// shows in /me here once that instance's settler commits it (milliseconds):
// before that, only the winning instance knows it as pending.
func meMoneyReaches(t *testing.T, s *server, token string, want int64) int64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := meMoney(t, s, token)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call makes a JSON request and decodes the response into out (if non-nil).
func call(t testing.TB, s *server, method, path, token string, body any, out any) int {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		r = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// frame is any server → client message.
type frame struct {
	Type      string          `json:"type"`
	Ref       string          `json:"ref"`
	OK        bool            `json:"ok"`
	PacketID  string          `json:"packet_id"`
	Amount    int64           `json:"amount"`
	Remaining int             `json:"remaining"`
	Reason    string          `json:"reason"`
	User      packet.User     `json:"user"`
	Grabs     []grab          `json:"grabs"`
	Text      string          `json:"text"`
	Online    int             `json:"online"`
	ErrorObj  json.RawMessage `json:"error"`
	Packet    json.RawMessage `json:"packet"`
	Rain      json.RawMessage `json:"rain"`
	Raw       []byte          `json:"-"`
	at        time.Time       // when the client read it
}

// grab is one grab of a grabbed frame's batch.
type grab struct {
	User   packet.User `json:"user"`
	Amount int64       `json:"amount"`
}

func (f frame) code() string {
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(f.ErrorObj, &e)
	return e.Code
}

// wsClient is a test WebSocket client that records every frame it receives.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	mu     sync.Mutex
	frames []frame
	notify chan struct{}
	closed chan struct{}
	// closeErr is the error that ended the read loop (a *websocket.CloseError
	// when the server closed with a code).
	closeErr error
	wmu      sync.Mutex
}

func dialWS(t testing.TB, s *server, room, token string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?room=" + room + "&token=" + token
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{t: t, conn: conn, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { conn.Close() })
	return c, resp, nil
}

func mustDial(t testing.TB, s *server, room, token string) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, s, room, token, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.waitFor("welcome", nil, 5*time.Second)
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.closed)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.t.Errorf("server sent invalid JSON %q", data)
			continue
		}
		f.Raw, f.at = data, time.Now()
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

func (c *wsClient) send(v any) {
	if err := c.trySend(v); err != nil {
		c.t.Logf("ws send: %v", err)
	}
}

// trySend writes one frame: a string as it is, anything else as JSON.
func (c *wsClient) trySend(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if s, ok := v.(string); ok {
		return c.conn.WriteMessage(websocket.TextMessage, []byte(s))
	}
	return c.conn.WriteJSON(v)
}

// all returns the frames of type typ received so far.
func (c *wsClient) all(typ string) []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []frame
	for _, f := range c.frames {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

// waitFor waits for a frame of type typ matching pred (nil: any).
func (c *wsClient) waitFor(typ string, pred func(frame) bool, timeout time.Duration) frame {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		for _, f := range c.all(typ) {
			if pred == nil || pred(f) {
				return f
			}
		}
		select {
		case <-c.notify:
		case <-c.closed:
			for _, f := range c.all(typ) {
				if pred == nil || pred(f) {
					return f
				}
			}
			c.t.Fatalf("connection closed (%v) while waiting for %s", c.closeErr, typ)
		case <-deadline:
			c.t.Fatalf("no %s frame within %v", typ, timeout)
		}
	}
}

// result sends a message with a ref and waits for its result.
func (c *wsClient) request(msg map[string]any, timeout time.Duration) frame {
	c.t.Helper()
	ref := fmt.Sprintf("r%d", time.Now().UnixNano())
	msg["ref"] = ref
	c.send(msg)
	return c.waitFor("result", func(f frame) bool { return f.Ref == ref }, timeout)
}

func auditClean(t testing.TB, s *server) packet.AuditReport {
	t.Helper()
	rep, err := s.store.Audit(context.Background())
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("audit: %s", rep)
	}
	return rep
}

func newPacket(t testing.TB, s *server, token, room string, body map[string]any) packet.State {
	t.Helper()
	var out struct {
		Packet packet.State `json:"packet"`
		apiError
	}
	status := call(t, s, "POST", "/api/v1/rooms/"+room+"/packets", token, body, &out)
	if status != http.StatusCreated {
		t.Fatalf("create packet: %d %+v", status, out.Error)
	}
	return out.Packet
}

// mintToken signs a token with the test secret, as another system would.
func mintToken(t testing.TB, sub string, ttl time.Duration) string {
	return mintTokenWith(t, testSecret, sub, ttl)
}

func mintTokenWith(t testing.TB, secret, sub string, ttl time.Duration) string {
	t.Helper()
	tok, err := web.NewTokens([]byte(secret), ttl).Issue(packet.User{ID: sub, Name: sub}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

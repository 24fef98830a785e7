package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// During a drain, /readyz is 503 while /healthz still answers and open
// WebSockets are still served; after the drain delay the listener closes
// and the WebSockets get 1001.
func TestDrainReadyzThenListenerCloses(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.DrainDelay = 5 * time.Second
	s := startServer(t, cfg)
	_, tok := session(t, s, "Alice")
	c := mustDial(t, s, "drain", tok)
	if st := status(t, s.URL+"/readyz"); st != http.StatusOK {
		t.Fatalf("/readyz before the drain: %d", st)
	}

	s.cancel() // what SIGTERM does
	waitUntil(t, 5*time.Second, "/readyz to answer 503", func() bool { return status(t, s.URL+"/readyz") == http.StatusServiceUnavailable })
	if st := status(t, s.URL+"/healthz"); st != http.StatusOK {
		t.Fatalf("/healthz during the drain: %d", st)
	}
	if r := c.request(map[string]any{"type": "ping"}, 5*time.Second); !r.OK {
		t.Fatalf("WebSocket during the drain: %s", r.Raw)
	}

	waitUntil(t, 15*time.Second, "the listener to close", func() bool {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	<-c.closed
	var ce *websocket.CloseError
	if !errors.As(c.closeErr, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("WebSocket ended with %v, want 1001", c.closeErr)
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
}

// ReadTimeout bounds reading a request, not an upgraded WebSocket: one that
// idles for longer still works, and so does REST.
func TestWebSocketOutlivesReadTimeout(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.ReadTimeout, cfg.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond
	s := startServer(t, cfg)
	_, tok := session(t, s, "Alice")
	c := mustDial(t, s, "idle", tok)
	// The idling is what is tested, not a wait for something to happen.
	time.Sleep(4 * cfg.ReadTimeout)
	if r := c.request(map[string]any{"type": "ping"}, 5*time.Second); !r.OK {
		t.Fatalf("ping after idling past ReadTimeout: %s", r.Raw)
	}
	if st := status(t, s.URL+"/healthz"); st != http.StatusOK {
		t.Fatalf("/healthz: %d", st)
	}

	// A request whose body never comes is cut at ReadTimeout.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("a stalled request body was not cut by ReadTimeout: %v", err)
	}
}

// HONGBAO_PING_INTERVAL and HONGBAO_PONG_TIMEOUT reach the hub: a client
// that reads but never answers a ping is pinged on the configured interval
// and cut once silent for their sum.
func TestPingSettingsCutASilentClient(t *testing.T) {
	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.PingInterval, cfg.PongTimeout = 100*time.Millisecond, 200*time.Millisecond
	s := startServer(t, cfg)
	_, tok := session(t, s, "Alice")
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws?room=quiet&token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pings atomic.Int32
	conn.SetPingHandler(func(string) error { pings.Add(1); return nil }) // no pong
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("a client that never answers pings was not cut (%d pings)", pings.Load())
			}
			break
		}
	}
	if took := time.Since(start); pings.Load() < 2 || took < cfg.PingInterval+cfg.PongTimeout {
		t.Fatalf("cut after %v and %d pings; want at least 2 pings, 100ms apart, and PingInterval+PongTimeout of silence", took, pings.Load())
	}
}

// /metrics is not public: on the main port it needs the admin token (and
// is absent without one), or it lives on its own listener.
func TestMetricsNotOnPublicPort(t *testing.T) {
	db, _ := redistest.New(t)
	for _, tc := range []struct {
		name        string
		admin       string
		metricsAddr string
	}{
		{"admin token, no metrics listener", testAdmin, ""},
		{"no admin token", "", ""},
		{"metrics listener", testAdmin, "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, db.URL())
			cfg.AdminToken, cfg.MetricsAddr = tc.admin, tc.metricsAddr
			s := startServer(t, cfg)
			if st, body := get(t, s.URL+"/metrics", ""); st == http.StatusOK || strings.Contains(body, "hongbao_") {
				t.Fatalf("/metrics without a token on the main port: %d %.80s", st, body)
			}
			if st, body := get(t, s.URL+"/metrics", "wrong-token-wrong-token-wrong-token"); st == http.StatusOK || strings.Contains(body, "hongbao_") {
				t.Fatalf("/metrics with a wrong token: %d %.80s", st, body)
			}
			st, body := get(t, s.URL+"/metrics", testAdmin)
			onMain := st == http.StatusOK && strings.Contains(body, "hongbao_hub_connections")
			if want := tc.admin != "" && tc.metricsAddr == ""; onMain != want {
				t.Fatalf("/metrics with the admin token on the main port: %d, want served=%v", st, want)
			}
			if tc.metricsAddr == "" {
				if s.metricsLn != nil {
					t.Fatal("a metrics listener without HONGBAO_METRICS_ADDR")
				}
				return
			}
			if st, body := get(t, "http://"+s.metricsLn.Addr().String()+"/metrics", ""); st != http.StatusOK || !strings.Contains(body, "hongbao_hub_connections") {
				t.Fatalf("/metrics on its own listener: %d %.80s", st, body)
			}
		})
	}
}

func status(t testing.TB, url string) int {
	t.Helper()
	st, _ := get(t, url, "")
	return st
}

// get fetches url, with a bearer token when one is given.
func get(t testing.TB, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitUntil polls cond until it holds, failing t after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

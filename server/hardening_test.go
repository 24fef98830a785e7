package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/hongbao-dev/hongbao/web"
)

// From one address, guest sessions sent with a different X-Forwarded-For
// each are still limited: the header is believed only from trusted proxies.
func TestSpoofedForwardedForIsLimited(t *testing.T) {
	db, _ := redistest.New(t)
	for _, tc := range []struct {
		name    string
		trusted string
		limited bool
	}{
		{"no trusted proxy", "", true},
		{"loopback is the trusted proxy", "127.0.0.0/8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, db.URL())
			cfg.SessionRate, cfg.SessionBurst = 0.001, 5
			cfg.TrustedProxies = tc.trusted
			s := startServer(t, cfg)
			refused := 0
			for i := 0; i < 10; i++ {
				req, _ := http.NewRequest("POST", s.URL+"/api/v1/sessions", strings.NewReader(`{"name":"x"}`))
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					refused++
				}
			}
			if limited := refused == 5; limited != tc.limited {
				t.Fatalf("%d of 10 sessions refused; want limited=%v", refused, tc.limited)
			}
		})
	}
}

// A setting that does not parse, or makes no sense, stops startup with exit
// status 2 and names its variable and value.
func TestBadSettingsStopStartup(t *testing.T) {
	for _, tc := range []struct{ env, value string }{
		{"HONGBAO_GRAB_RATE", "ten"},
		{"HONGBAO_SHUTDOWN_TIMEOUT", "30"},
		{"HONGBAO_MAX_COUNT", "many"},
		{"HONGBAO_COALESCE_GRABS", "perhaps"},
		{"HONGBAO_STARTING_BALANCE", "1.5"},
		{"HONGBAO_TRUSTED_PROXIES", "10.0.0.1"},
		{"HONGBAO_SEND_QUEUE", "0"},
		{"HONGBAO_SEND_QUEUE", "-5"},
		{"HONGBAO_WRITE_TIMEOUT", "0s"},
		{"HONGBAO_WRITE_TIMEOUT", "10"},
		{"HONGBAO_PING_INTERVAL", "-1s"},
		{"HONGBAO_PONG_TIMEOUT", "soon"},
		{"HONGBAO_GRAB_RATE", "0"},
		{"HONGBAO_GRAB_RATE", "NaN"},
		{"HONGBAO_CHAT_RATE", "-1"},
		{"HONGBAO_SESSION_RATE", "+Inf"},
		{"HONGBAO_CHAT_BURST", "0"},
		{"HONGBAO_MAX_COUNT", "0"},
		{"HONGBAO_MAX_COUNT", "20000"},
		{"HONGBAO_MAX_SHARE", "0"},
		{"HONGBAO_PACKET_TTL", "100h"},
		{"HONGBAO_STARTING_BALANCE", "-2"},
		{"HONGBAO_PROGRESS_ABOVE", "0"},
		{"HONGBAO_DRAIN_DELAY", "-1s"},
		{"HONGBAO_SHUTDOWN_TIMEOUT", "0s"},
		{"HONGBAO_READ_TIMEOUT", "0s"},
		{"HONGBAO_SWEEP_INTERVAL", "0s"},
		{"HONGBAO_REDIS_WAIT_REPLICAS", "-1"},
		{"HONGBAO_LOG_LEVEL", "loud"},
		{"HONGBAO_LOG_FORMAT", "xml"},
		{"HONGBAO_KEY_PREFIX", "a{b}"},
		{"HONGBAO_METRICS_ADDR", "9090"},
		{"HONGBAO_JWKS_URL", "ftp://idp.example/jwks"},
		{"HONGBAO_JWKS_URL", "idp.example/jwks.json"},
		{"HONGBAO_JWKS_REFRESH", "0s"},
		{"HONGBAO_DAILY_SEND_TOTAL", "0"},
		{"HONGBAO_DAILY_SEND_TOTAL", "12.5"},
		{"HONGBAO_DAILY_SEND_COUNT", "-2"},
		{"HONGBAO_ROOM_PACKETS_PER_MINUTE", "0"},
		{"HONGBAO_MAX_PACKET_TOTAL", "lots"},
		{"HONGBAO_MAX_PACKET_TOTAL", "0"},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			_, err := parseConfig(nil, io.Discard)
			if !errors.Is(err, errBadConfig) || exitCode(err) != 2 ||
				!strings.Contains(err.Error(), tc.env) || !strings.Contains(err.Error(), tc.value) {
				t.Fatalf("%s=%s: %v (exit %d)", tc.env, tc.value, err, exitCode(err))
			}
		})
	}
	if _, err := parseConfig([]string{"-grab-rate", "ten"}, io.Discard); exitCode(err) != 2 {
		t.Fatalf("bad flag: %v", err)
	}
	if exitCode(errors.New("listen: address in use")) != 1 {
		t.Fatal("a runtime failure must exit 1")
	}
}

// A secret or admin token shorter than 32 bytes stops startup with exit
// status 2; the message gives its length, never the secret. Empty keeps its
// meaning (a random secret; no admin API).
func TestShortSecretsStopStartup(t *testing.T) {
	for _, env := range []string{"HONGBAO_SECRET", "HONGBAO_ADMIN_TOKEN"} {
		for _, tc := range []struct {
			value string
			ok    bool
		}{
			{"", true},
			{"Q", false},
			{"sixteen-bytes-16", false},
			{strings.Repeat("k", 31), false},
			{strings.Repeat("k", 32), true},
		} {
			t.Run(fmt.Sprintf("%s/%d bytes", env, len(tc.value)), func(t *testing.T) {
				t.Setenv(env, tc.value)
				_, err := parseConfig(nil, io.Discard)
				if tc.ok {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				if exitCode(err) != 2 || !strings.Contains(err.Error(), fmt.Sprintf("%s=<%d bytes>", env, len(tc.value))) {
					t.Fatalf("%v (exit %d)", err, exitCode(err))
				}
				if strings.Contains(err.Error(), tc.value) {
					t.Fatalf("the message shows the secret: %v", err)
				}
			})
		}
	}
}

// Defaults are each package's DefaultConfig, and they pass their own rules.
func TestDefaultsComeFromPackages(t *testing.T) {
	c, err := parseConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h, p, w := hub.DefaultConfig(), packet.DefaultConfig(), web.DefaultConfig()
	b := hub.DefaultRedisBrokerConfig()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"send queue", c.SendQueue, h.SendQueue},
		{"write timeout", c.WriteTimeout, h.WriteTimeout},
		{"ping interval", c.PingInterval, h.PingInterval},
		{"pong timeout", c.PongTimeout, h.PongTimeout},
		{"progress above", c.ProgressAbove, web.DefaultProgressAbove},
		{"max count", c.MaxCount, p.Limits.MaxCount},
		{"max share", c.MaxShare, p.Limits.MaxShare},
		{"packet ttl", c.PacketTTL, p.Limits.DefaultTTL},
		{"settle grace", c.SettleGrace, p.SettleGrace},
		{"key prefix", c.KeyPrefix, p.Prefix},
		{"grab rate", c.GrabRate, float64(w.GrabRate)},
		{"grab burst", c.GrabBurst, w.GrabBurst},
		{"session burst", c.SessionBurst, w.SessionBurst},
		{"starting balance", c.StartingBalance, w.StartingBalance},
		{"history size", c.HistorySize, b.HistorySize},
		{"history ttl", c.HistoryTTL, b.HistoryTTL},
		{"recent chat", c.RecentChat, b.RecentSize},
		{"max conns per user", c.MaxConnsPerUser, w.MaxConnsPerUser},
		{"jwks refresh", c.JWKSRefresh, w.JWKSRefresh},
		{"daily send total", c.DailySendTotal, w.DailySendTotal},
		{"daily send count", c.DailySendCount, w.DailySendCount},
		{"room packets per minute", c.RoomPacketsPerMinute, w.RoomPacketsPerMinute},
		{"max packet total", c.MaxPacketTotal, w.MaxPacketTotal},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: default %v, package default %v", tc.name, tc.got, tc.want)
		}
	}
}

// /readyz does not tell the world where Redis lives.
func TestReadyzHidesInternals(t *testing.T) {
	srv, _ := redistest.Durable(t)
	s := startServer(t, testConfig(t, srv.URL(0)))
	srv.Stop()
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("readyz with Redis down: %d %s", resp.StatusCode, body)
	}
}

// HONGBAO_STARTING_BALANCE=0 means what it says (no money for guests), not
// "the default".
func TestZeroStartingBalance(t *testing.T) {
	db, _ := redistest.New(t)
	for _, tc := range []struct {
		balance, want int64
	}{{0, 0}, {-1, 0}, {250, 250}} {
		t.Run(fmt.Sprint(tc.balance), func(t *testing.T) {
			cfg := testConfig(t, db.URL())
			cfg.StartingBalance = tc.balance
			s := startServer(t, cfg)
			_, tok := session(t, s, "Guest")
			if got := meBalance(t, s, tok); got != tc.want {
				t.Fatalf("starting balance %d: guest has %d, want %d", tc.balance, got, tc.want)
			}
		})
	}
}

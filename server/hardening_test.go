package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/redistest"
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

// A setting that does not parse stops startup with exit status 2 and names
// its variable and value.
func TestBadSettingsStopStartup(t *testing.T) {
	for _, tc := range []struct{ env, value string }{
		{"HONGBAO_GRAB_RATE", "ten"},
		{"HONGBAO_SHUTDOWN_TIMEOUT", "30"},
		{"HONGBAO_MAX_COUNT", "many"},
		{"HONGBAO_COALESCE_GRABS", "perhaps"},
		{"HONGBAO_STARTING_BALANCE", "1.5"},
		{"HONGBAO_TRUSTED_PROXIES", "10.0.0.1"},
	} {
		t.Run(tc.env, func(t *testing.T) {
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

package main

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// Browsers authenticate the WebSocket with the subprotocol entry
// "bearer.<jwt>" next to "hongbao.v1", so the token stays out of URLs; the
// query parameter keeps working for other clients, and loses to the
// subprotocol when both are given.
func TestWebSocketSubprotocolAuth(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testConfig(t, db.URL()))
	alice, aliceTok := session(t, s, "Alice")
	bob, bobTok := session(t, s, "Bob")
	offer := func(protocols string) http.Header {
		return http.Header{"Sec-WebSocket-Protocol": {protocols}}
	}
	tests := []struct {
		name     string
		query    string // ?token=
		header   http.Header
		status   int    // 101 when the upgrade succeeds
		user     string // the welcome's user
		protocol string // the subprotocol answered
	}{
		{"subprotocol", "", offer("hongbao.v1, bearer." + aliceTok), 101, alice.ID, "hongbao.v1"},
		{"query", bobTok, nil, 101, bob.ID, ""},
		{"subprotocol wins", bobTok, offer("hongbao.v1, bearer." + aliceTok), 101, alice.ID, "hongbao.v1"},
		{"query with our protocol", bobTok, offer("hongbao.v1"), 101, bob.ID, "hongbao.v1"},
		{"no token", "", offer("hongbao.v1"), 401, "", ""},
		{"bad bearer beats a good query", bobTok, offer("hongbao.v1, bearer.x.y.z"), 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := dialWS(t, s, "auth", tt.query, tt.header)
			if tt.status != http.StatusSwitchingProtocols {
				if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != tt.status {
					t.Fatalf("dial: %v, %+v; want HTTP %d", err, resp, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.protocol {
				t.Errorf("answered subprotocol %q, want %q", got, tt.protocol)
			}
			if w := c.waitFor("welcome", nil, 5*time.Second); w.User.ID != tt.user {
				t.Errorf("welcomed as %q, want %q", w.User.ID, tt.user)
			}
		})
	}
}

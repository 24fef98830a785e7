package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// With HONGBAO_JWKS_URL, a token from the app's identity provider is
// accepted over REST and WebSocket, one signed by a key the provider does
// not publish is refused, and HS256 tokens keep working. A provider that
// is down at startup does not stop the server: its tokens are refused
// until it answers.
func TestJWKSServer(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "starting", http.StatusBadGateway)
			return
		}
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "app-1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	defer idp.Close()
	sign := func(k *rsa.PrivateKey, aud string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"sub": "app-user-7", "name": "七号", "iss": "https://id.app.example", "aud": aud,
			"exp": time.Now().Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = "app-1"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	db, _ := redistest.New(t)
	cfg := testConfig(t, db.URL())
	cfg.JWKSURL = idp.URL + "/.well-known/jwks.json"
	cfg.JWTIssuer, cfg.JWTAudience = "https://id.app.example", "hongbao"
	s := startServer(t, cfg)
	good := sign(key, "hongbao")
	if status := call(t, s, "GET", "/api/v1/me", good, nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("while the provider is down: %d, want 401", status)
	}
	up.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for call(t, s, "GET", "/api/v1/me", good, nil, nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the provider's token was never accepted after it came up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var me struct {
		User struct{ ID, Name string } `json:"user"`
	}
	call(t, s, "GET", "/api/v1/me", good, nil, &me)
	if me.User.ID != "app-user-7" || me.User.Name != "七号" {
		t.Errorf("/me: %+v", me.User)
	}
	for name, tok := range map[string]string{
		"an unknown key": sign(stranger, "hongbao"),
		"another aud":    sign(key, "other-app"),
	} {
		if status := call(t, s, "GET", "/api/v1/me", tok, nil, nil); status != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, status)
		}
	}
	if status := call(t, s, "GET", "/api/v1/me", mintToken(t, "hs-user", time.Hour), nil, nil); status != http.StatusOK {
		t.Errorf("HS256 beside the JWKS: %d", status)
	}

	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?room=jwks"
	d := websocket.Dialer{Subprotocols: []string{"hongbao.v1", "bearer." + good}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("WebSocket with the provider's token: %v %v", err, resp)
	}
	conn.Close()
	d.Subprotocols = []string{"hongbao.v1", "bearer." + sign(stranger, "hongbao")}
	if _, resp, err := d.Dial(url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WebSocket with an unknown key: %v %v, want 401", err, resp)
	}
}

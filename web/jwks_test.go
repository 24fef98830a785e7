package web

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// testIdP is an identity provider serving a JWK Set that a test changes,
// and signing tokens with its keys.
type testIdP struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    map[string]any // kid -> *rsa.PrivateKey or ed25519.PrivateKey
	down    bool
}

func newTestIdP(t *testing.T) *testIdP {
	p := &testIdP{keys: map[string]any{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIdP) serve(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	b64 := base64.RawURLEncoding.EncodeToString
	var keys []map[string]string
	for kid, k := range p.keys {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			keys = append(keys, map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		case ed25519.PrivateKey:
			keys = append(keys, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
				"x": b64(k.Public().(ed25519.PublicKey))})
		}
	}
	// An encryption key and a key of another type are skipped, not fatal.
	keys = append(keys, map[string]string{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]string{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"})
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}

func (p *testIdP) set(kid string, key any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key == nil {
		delete(p.keys, kid)
	} else {
		p.keys[kid] = key
	}
}

func (p *testIdP) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// idpClaims are a provider's claims for sub, valid for an hour.
func idpClaims(sub, iss, aud string) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "preferred_username": sub + "-name", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	if iss != "" {
		c["iss"] = iss
	}
	if aud != "" {
		c["aud"] = aud
	}
	return c
}

// sign signs c with key under kid.
func sign(t *testing.T, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	var m jwt.SigningMethod = jwt.SigningMethodRS256
	if _, ok := key.(ed25519.PrivateKey); ok {
		m = jwt.SigningMethodEdDSA
	}
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withHeader re-encodes token's header with h, keeping its payload and
// signature: a forged header.
func withHeader(token string, h map[string]any) string {
	parts := strings.Split(token, ".")
	hb, _ := json.Marshal(h)
	parts[0] = base64.RawURLEncoding.EncodeToString(hb)
	return strings.Join(parts, ".")
}

// unsigned is token without its signature.
func unsigned(token string) string {
	return token[:strings.LastIndex(token, ".")+1]
}

// hs256With signs c with HS256 under secret (the alg-confusion attack uses
// the provider's public key as the secret).
func hs256With(c jwt.MapClaims, kid string, secret []byte) string {
	hb, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
	cb, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// status is the status of GET /api/v1/me with token.
func (s *stack) status(t *testing.T, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// meName is the user name /me answers for token.
func (s *stack) meName(t *testing.T, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me meResponse
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil {
		t.Fatal(err)
	}
	return me.User.Name
}

const (
	testIss = "https://idp.example"
	testAud = "hongbao"
)

func jwksStack(t *testing.T, idp *testIdP, minGap time.Duration) *stack {
	wc := stackConfig()
	wc.JWKSURL = idp.srv.URL + "/jwks.json"
	wc.JWTIssuer, wc.JWTAudience = testIss, testAud
	wc.JWKSMinGap = minGap
	return newStack(t, stackOptions{web: wc, serve: true})
}

// A token signed by a JWKS key (RSA or Ed25519) is accepted over REST and
// over a WebSocket's bearer entry; an unknown key, a wrong iss or aud, and
// forged algs are refused; HS256 tokens keep working.
func TestJWKSTokens(t *testing.T) {
	idp := newTestIdP(t)
	rk, ek, stranger := rsaKey(t), edKey(t), rsaKey(t)
	idp.set("rsa-1", rk)
	idp.set("ed-1", ek)
	s := jwksStack(t, idp, time.Nanosecond)
	good := sign(t, "rsa-1", rk, idpClaims("alice", testIss, testAud))
	pubDER, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	_, hsTok := s.user(t, "guest-1", 0)
	noExp := idpClaims("alice", testIss, testAud)
	delete(noExp, "exp")
	expired := idpClaims("alice", testIss, testAud)
	expired["exp"] = time.Now().Add(-time.Hour).Unix()

	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"RS256 from the JWKS", good, http.StatusOK},
		{"EdDSA from the JWKS", sign(t, "ed-1", ek, idpClaims("bob", testIss, testAud)), http.StatusOK},
		{"HS256 with the secret", hsTok, http.StatusOK},
		{"unknown key", sign(t, "rsa-9", stranger, idpClaims("mallory", testIss, testAud)), http.StatusUnauthorized},
		{"known kid, other key", sign(t, "rsa-1", stranger, idpClaims("mallory", testIss, testAud)), http.StatusUnauthorized},
		{"RSA kid, EdDSA alg", sign(t, "rsa-1", ek, idpClaims("mallory", testIss, testAud)), http.StatusUnauthorized},
		{"wrong issuer", sign(t, "rsa-1", rk, idpClaims("alice", "https://evil.example", testAud)), http.StatusUnauthorized},
		{"no issuer", sign(t, "rsa-1", rk, idpClaims("alice", "", testAud)), http.StatusUnauthorized},
		{"wrong audience", sign(t, "rsa-1", rk, idpClaims("alice", testIss, "other-app")), http.StatusUnauthorized},
		{"no exp", sign(t, "rsa-1", rk, noExp), http.StatusUnauthorized},
		{"expired", sign(t, "rsa-1", rk, expired), http.StatusUnauthorized},
		{"RS256 token relabelled HS256", withHeader(good, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}), http.StatusUnauthorized},
		{"HS256 keyed with the public key", hs256With(idpClaims("mallory", testIss, testAud), "rsa-1", pubPEM), http.StatusUnauthorized},
		{"alg none", unsigned(withHeader(good, map[string]any{"alg": "none", "kid": "rsa-1"})), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.status(t, tc.token); got != tc.want {
				t.Errorf("GET /me: %d, want %d", got, tc.want)
			}
		})
	}
	if got := s.meName(t, good); got != "alice-name" {
		t.Errorf("name %q, want the preferred_username alice-name", got)
	}

	// Over a WebSocket, the token in the browser's bearer entry.
	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?room=jwks"
	d := websocket.Dialer{Subprotocols: []string{wsSubprotocol, bearerPrefix + good}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("WebSocket with a JWKS token: %v (%v)", err, resp)
	}
	conn.Close()
	bad := sign(t, "rsa-9", stranger, idpClaims("mallory", testIss, testAud))
	d.Subprotocols = []string{wsSubprotocol, bearerPrefix + bad}
	if _, resp, err := d.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WebSocket with an unknown key: %v, %v; want 401", err, resp)
	}
}

// The provider rotates: a new key is picked up when a token first names
// it, and a removed key stops verifying once the set is fetched again.
func TestJWKSRotation(t *testing.T) {
	idp := newTestIdP(t)
	old, next := rsaKey(t), edKey(t)
	idp.set("k1", old)
	s := jwksStack(t, idp, time.Nanosecond)
	oldTok := sign(t, "k1", old, idpClaims("alice", testIss, testAud))
	if got := s.status(t, oldTok); got != http.StatusOK {
		t.Fatalf("before rotation: %d", got)
	}
	idp.set("k2", next)
	newTok := sign(t, "k2", next, idpClaims("alice", testIss, testAud))
	if got := s.status(t, newTok); got != http.StatusOK {
		t.Fatalf("a token signed with the new key: %d, want 200 after the refresh its kid causes", got)
	}
	idp.set("k1", nil)
	// A token naming a kid the set lacks makes the server fetch it again.
	s.status(t, sign(t, "k3", next, idpClaims("alice", testIss, testAud)))
	if got := s.status(t, oldTok); got != http.StatusUnauthorized {
		t.Errorf("a token signed with the removed key: %d, want 401", got)
	}
	if got := s.status(t, newTok); got != http.StatusOK {
		t.Errorf("the new key after the removal: %d, want 200", got)
	}
}

// Tokens naming unknown kids make at most one fetch per JWKSMinGap, and a
// provider that is down at the start is retried until it answers.
func TestJWKSRefreshIsLimited(t *testing.T) {
	idp := newTestIdP(t)
	k := rsaKey(t)
	idp.set("k1", k)
	idp.setDown(true)
	s := jwksStack(t, idp, time.Hour)
	good := sign(t, "k1", k, idpClaims("alice", testIss, testAud))
	// The background fetch retries, backing off from a second, until the
	// provider answers; meanwhile the key is unknown.
	deadline := time.Now().Add(30 * time.Second)
	for idp.fetches.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the JWKS fetch was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.status(t, good); got != http.StatusUnauthorized {
		t.Errorf("while the provider is down: %d, want 401", got)
	}
	idp.setDown(false)
	for s.status(t, good) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the key was never fetched after the provider came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := idp.fetches.Load()
	other := rsaKey(t)
	for i := range 50 {
		kid := "bogus-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if got := s.status(t, sign(t, kid, other, idpClaims("mallory", testIss, testAud))); got != http.StatusUnauthorized {
			t.Fatalf("unknown kid %s: %d", kid, got)
		}
	}
	if n := idp.fetches.Load() - before; n > 1 {
		t.Errorf("50 tokens with unknown kids made %d fetches, want at most 1 per JWKSMinGap", n)
	}
}

func TestValidJWKSURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example/.well-known/jwks.json", true},
		{"http://127.0.0.1:8081/jwks", true},
		{"ftp://idp.example/jwks", false},
		{"idp.example/jwks", false},
		{"https://", false},
		{"::", false},
	} {
		if err := ValidJWKSURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

// A JWK Set's signing keys are read; other keys are skipped, and a bad key
// does not cost the good ones.
func TestParseJWKS(t *testing.T) {
	rk, ek := rsaKey(t), edKey(t)
	b64 := base64.RawURLEncoding.EncodeToString
	n, e := b64(rk.N.Bytes()), b64(big.NewInt(int64(rk.E)).Bytes())
	x := b64(ek.Public().(ed25519.PublicKey))
	set := func(keys ...string) []byte { return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`) }
	for _, tc := range []struct {
		name string
		body []byte
		kids string // the kids read, sorted, comma-separated
		bad  int
		err  bool
	}{
		{"rsa and ed25519", set(`{"kty":"RSA","kid":"r","n":"`+n+`","e":"`+e+`"}`, `{"kty":"OKP","crv":"Ed25519","kid":"e","x":"`+x+`"}`), "e,r", 0, false},
		{"encryption key skipped", set(`{"kty":"RSA","kid":"r","use":"enc","n":"` + n + `","e":"` + e + `"}`), "", 0, false},
		{"no kid skipped", set(`{"kty":"RSA","n":"` + n + `","e":"` + e + `"}`), "", 0, false},
		{"other alg skipped", set(`{"kty":"RSA","kid":"r","alg":"RS512","n":"` + n + `","e":"` + e + `"}`), "", 0, false},
		{"EC skipped", set(`{"kty":"EC","kid":"c","crv":"P-256","x":"AA","y":"AA"}`), "", 0, false},
		{"weak RSA beside a good key", set(`{"kty":"RSA","kid":"weak","n":"AQAB","e":"AQAB"}`, `{"kty":"OKP","crv":"Ed25519","kid":"e","x":"`+x+`"}`), "e", 1, false},
		{"short ed25519", set(`{"kty":"OKP","crv":"Ed25519","kid":"e","x":"AAAA"}`), "", 1, false},
		{"not JSON", []byte(`<html>`), "", 0, true},
		{"no keys member", []byte(`{"issuer":"x"}`), "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, bad, err := parseJWKS(tc.body)
			if (err != nil) != tc.err || len(bad) != tc.bad {
				t.Fatalf("err %v, bad %v; want err=%v, %d bad", err, bad, tc.err, tc.bad)
			}
			var kids []string
			for k := range keys {
				kids = append(kids, k)
			}
			slices.Sort(kids)
			if got := strings.Join(kids, ","); got != tc.kids {
				t.Errorf("kids %q, want %q", got, tc.kids)
			}
		})
	}
}

package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// An app's identity provider publishes its public keys as a JWK Set
// (RFC 7517); tokens it signs with RS256 or EdDSA name their key by kid.
// jwks keeps those keys: fetched at start (in the background, so that an
// unreachable provider delays no start), again every refresh interval,
// and at once when a token names a kid it does not know, which is how a
// provider's rotation to a new key is picked up. Fetches caused by unknown
// kids are at most one per minGap: tokens with made-up kids cannot turn
// into a flood of requests to the provider, they are refused in the
// meantime.
//
// It is hand-written rather than taken from a JWKS library because the
// libraries at hand either block the request while their rate limit
// waits, or leave a refresh goroutine that Close cannot wait for; the
// format needed here (RSA and Ed25519 public keys) is small.

// jwks holds the provider's keys by kid.
type jwks struct {
	url    string
	client *http.Client
	log    *slog.Logger
	every  time.Duration // periodic refresh
	minGap time.Duration // shortest time between fetches for unknown kids

	mu   sync.RWMutex
	keys map[string]jwk
	// fetchMu makes fetches one at a time; lastTry is when the last one
	// started (under fetchMu).
	fetchMu sync.Mutex
	lastTry time.Time
}

// jwk is one verification key with the alg it is for.
type jwk struct {
	alg string // "RS256" or "EdDSA"
	key any    // *rsa.PublicKey or ed25519.PublicKey
}

// jwksFetchTimeout bounds one fetch of the key set.
const jwksFetchTimeout = 10 * time.Second

// maxJWKSBytes is the largest key set read: a provider publishes a few
// keys, and a runaway answer must not fill memory.
const maxJWKSBytes = 1 << 20

func newJWKS(rawURL string, every, minGap time.Duration, log *slog.Logger) *jwks {
	return &jwks{
		url: rawURL, every: every, minGap: minGap, log: log,
		client: &http.Client{Timeout: jwksFetchTimeout},
		keys:   map[string]jwk{},
	}
}

// ValidJWKSURL reports whether s is an absolute http or https URL.
func ValidJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	return nil
}

// run fetches the key set now and every refresh interval until ctx ends.
// While fetches fail it retries sooner, backing off from a second up to
// the refresh interval.
func (j *jwks) run(ctx context.Context) {
	wait := time.Duration(0)
	backoff := time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := j.refresh(ctx, false); err != nil {
			j.log.Warn("JWKS fetch failed; tokens signed by keys not yet known are refused until it succeeds", "url", j.url, "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, j.every)
			continue
		}
		wait, backoff = j.every, time.Second
	}
}

// key returns the key kid names. An unknown kid causes a fetch, unless one
// started less than minGap ago.
func (j *jwks) key(ctx context.Context, kid string) (jwk, bool) {
	if k, ok := j.lookup(kid); ok {
		return k, true
	}
	if err := j.refresh(ctx, true); err != nil {
		j.log.Warn("JWKS fetch for an unknown kid failed", "url", j.url, "err", err)
	}
	return j.lookup(kid)
}

func (j *jwks) lookup(kid string) (jwk, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	k, ok := j.keys[kid]
	return k, ok
}

// refresh fetches the key set and replaces the keys held, so that a key the
// provider removed stops verifying. With limited, it does nothing when a
// fetch started less than minGap ago.
func (j *jwks) refresh(ctx context.Context, limited bool) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	if limited && time.Since(j.lastTry) < j.minGap {
		return nil
	}
	j.lastTry = time.Now()
	keys, err := j.fetch(ctx)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
	return nil
}

func (j *jwks) fetch(ctx context.Context) (map[string]jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("jwks read: %w", err)
	}
	keys, bad, err := parseJWKS(body)
	if len(bad) > 0 {
		j.log.Warn("JWKS keys skipped", "url", j.url, "err", errors.Join(bad...))
	}
	return keys, err
}

// rawJWK is one key of a JWK Set as published.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
}

// parseJWKS reads the RSA and Ed25519 signing keys of a JWK Set. Keys of
// other types, keys for encryption and keys without a kid are skipped: no
// token could be verified with them here. A malformed or weak key is
// skipped too, and reported in bad, so that one bad key does not keep the
// provider's good ones (a rotation) from being used.
func parseJWKS(body []byte) (keys map[string]jwk, bad []error, err error) {
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("jwks: not a JWK Set: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`jwks: not a JWK Set: no "keys"`)
	}
	keys = map[string]jwk{}
	for _, r := range set.Keys {
		if r.Kid == "" || (r.Use != "" && r.Use != "sig") {
			continue
		}
		k, err := r.key()
		if err != nil {
			bad = append(bad, fmt.Errorf("key %q: %w", r.Kid, err))
			continue
		}
		if k.alg != "" {
			keys[r.Kid] = k
		}
	}
	return keys, bad, nil
}

// key decodes r; a key type this server does not verify with gives a zero
// jwk.
func (r rawJWK) key() (jwk, error) {
	switch {
	case r.Kty == "RSA" && (r.Alg == "" || r.Alg == "RS256"):
		n, err := base64.RawURLEncoding.DecodeString(r.N)
		if err != nil {
			return jwk{}, fmt.Errorf("n: %w", err)
		}
		e, err := base64.RawURLEncoding.DecodeString(r.E)
		if err != nil {
			return jwk{}, fmt.Errorf("e: %w", err)
		}
		ev := new(big.Int).SetBytes(e)
		if len(n) < 256 || !ev.IsInt64() || ev.Int64() < 3 || ev.Int64() > 1<<31-1 {
			return jwk{}, errors.New("RSA keys need at least 2048 bits and a small odd exponent")
		}
		return jwk{alg: "RS256", key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev.Int64())}}, nil
	case r.Kty == "OKP" && r.Crv == "Ed25519" && (r.Alg == "" || r.Alg == "EdDSA"):
		x, err := base64.RawURLEncoding.DecodeString(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return jwk{}, errors.New("x must be a 32-byte Ed25519 public key")
		}
		return jwk{alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
	}
	return jwk{}, nil
}

// withJWKS makes t accept, beside its HS256 tokens, RS256 and EdDSA tokens
// signed with j's keys and carrying issuer and audience (each when set).
func (t *Tokens) withJWKS(j *jwks, issuer, audience string) {
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway)}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	t.idp, t.idpCheck = j, jwt.NewValidator(opts...)
	t.parser = jwt.NewParser(jwt.WithValidMethods([]string{"HS256", "RS256", "EdDSA"}), jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway))
}

package web

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

func TestTokens(t *testing.T) {
	tk := NewTokens([]byte("s3cret-s3cret-s3cret-s3cret-1234"), time.Hour)
	now := time.Now()
	good, err := tk.Issue(packet.User{ID: "u1", Name: "小明"}, now)
	if err != nil {
		t.Fatal(err)
	}
	u, err := tk.Verify(good)
	if err != nil || u.ID != "u1" || u.Name != "小明" {
		t.Fatalf("Verify = %+v, %v", u, err)
	}

	sign := func(method jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	secret := []byte("s3cret-s3cret-s3cret-s3cret-1234")
	exp := now.Add(time.Hour).Unix()
	// A token from another system: same secret, no name.
	other := sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42", "exp": exp})
	if u, err := tk.Verify(other); err != nil || u.ID != "42" || u.Name != "42" {
		t.Fatalf("foreign-issued token: %+v, %v", u, err)
	}
	bad := map[string]string{
		"expired":      sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "exp": now.Add(-time.Hour).Unix()}),
		"no exp":       sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u"}),
		"no sub":       sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}),
		"bad sub":      sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a}b{c", "exp": exp}),
		"wrong secret": sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-12"), jwt.MapClaims{"sub": "u", "exp": exp}),
		"HS512":        sign(jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "u", "exp": exp}),
		"alg none":     sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u", "exp": exp}),
		"garbage":      "a.b.c",
		"empty":        "",
	}
	for name, tok := range bad {
		if _, err := tk.Verify(tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Verify = %v, want unauthorized", name, err)
		}
	}
}

func TestErrorObjectCovers(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{packet.ErrInvalidRequest, 400, "invalid_request"},
		{packet.ErrInvalidAmount, 400, "invalid_amount"},
		{packet.ErrInvalidCount, 400, "invalid_count"},
		{packet.ErrUnevenTotal, 400, "uneven_total"},
		{packet.ErrShareTooSmall, 400, "share_too_small"},
		{packet.ErrShareTooLarge, 400, "share_too_large"},
		{packet.ErrTotalTooLarge, 400, "total_too_large"},
		{ErrUnauthorized, 401, "unauthorized"},
		{ErrForbidden, 403, "forbidden"},
		{packet.ErrNotFound, 404, "not_found"},
		{packet.ErrAlreadyGrabbed, 409, "already_grabbed"},
		{packet.ErrInsufficientFunds, 409, "insufficient_funds"},
		{packet.ErrIdempotencyConflict, 409, "idempotency_conflict"},
		{packet.ErrSoldOut, 410, "sold_out"},
		{packet.ErrExpired, 410, "expired"},
		{packet.ErrNotYet, 425, "not_yet"},
		{ErrRateLimited, 429, "rate_limited"},
		{packet.ErrUnavailable, 503, "unavailable"},
		{errors.New("redis: connection refused"), 503, "unavailable"},
		{echo.ErrNotFound, 404, "not_found"},
		{echo.ErrMethodNotAllowed, 405, "invalid_request"},
		{echo.ErrStatusRequestEntityTooLarge, 413, "invalid_request"},
	}
	for _, tt := range tests {
		status, obj := errorObject(tt.err)
		if status != tt.status || obj.Code != tt.code || obj.Message == "" {
			t.Errorf("%v: %d %+v, want %d %s", tt.err, status, obj, tt.status, tt.code)
		}
	}
	// Internal error text never reaches the client.
	if _, obj := errorObject(errors.New("secret internals")); strings.Contains(obj.Message, "secret") {
		t.Fatalf("internal error leaked: %+v", obj)
	}
	// The documented codes and the mapped ones are the same, with the same
	// statuses.
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]int{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (\\d{3}) \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]], _ = strconv.Atoi(m[2])
	}
	if !maps.Equal(documented, statusOf) {
		t.Fatalf("docs/protocol.md documents %v, the server maps %v", documented, statusOf)
	}
	_ = http.StatusOK
}

func TestParseClientMessage(t *testing.T) {
	tests := []struct {
		in      string
		typ     string
		ref     string
		err     bool
		notJSON bool
	}{
		{`{"type":"grab","ref":"c1","packet_id":"p"}`, "grab", "c1", false, false},
		{`{"type":"chat","ref":"c2","text":"hi","extra":[1,2]}`, "chat", "c2", false, false},
		{`{"type":"grab","ref":"c3","packet_id":5}`, "grab", "c3", true, false},
		{`{"type":7}`, "", "", true, false},
		{`not json`, "", "", true, true},
		{`[1,2]`, "", "", true, true},
		{"{\"type\":\"chat\",\"text\":\"\xff\"}", "", "", true, true},
		{``, "", "", true, true},
	}
	for _, tt := range tests {
		m, err := parseClientMessage([]byte(tt.in))
		if (err != nil) != tt.err || errors.Is(err, errNotJSON) != tt.notJSON {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		if !tt.notJSON && (m.Type != tt.typ || m.Ref != tt.ref) {
			t.Errorf("%q: got %+v", tt.in, m)
		}
	}
}

func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{`{"type":"grab","ref":"c1","packet_id":"p"}`, `{"type":"chat","text":"你好"}`, `{"ref":1}`, `null`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseClientMessage(b)
		if err != nil && apierr.CodeOf(err) != "invalid_request" {
			t.Fatalf("error without invalid_request code: %v", err)
		}
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q as %+v", b, m)
		}
	})
}

// number accepts JSON numbers only, kept as text so fen never passes
// through float64.
func FuzzNumberFen(f *testing.F) {
	for _, s := range []string{`1000`, `10.5`, `1e3`, `"100"`, `-1`, `99999999999999999999`, `null`, `true`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req packetRequest
		body := append(append([]byte(`{"total":`), b...), '}')
		if err := json.Unmarshal(body, &req); err != nil {
			return
		}
		v, err := fen(req.Total, "total", packet.ErrInvalidAmount)
		if err != nil {
			if !errors.Is(err, packet.ErrInvalidAmount) {
				t.Fatalf("fen(%q): %v", req.Total, err)
			}
			return
		}
		// An accepted amount is exactly the integer the client wrote.
		var exact int64
		if err := json.Unmarshal([]byte(req.Total), &exact); err != nil || exact != v {
			t.Fatalf("fen(%q) = %d, JSON integer %d (%v)", req.Total, v, exact, err)
		}
	})
}

func TestValidRoom(t *testing.T) {
	for room, want := range map[string]bool{
		"lobby": true, "直播间-1": true, "a.b_c": true, "": false, "a b": false,
		"a}b": false, "a{b": false, strings.Repeat("x", 65): false, strings.Repeat("x", 64): true,
	} {
		if got := validRoom(room); got != want {
			t.Errorf("validRoom(%q) = %v", room, got)
		}
	}
}

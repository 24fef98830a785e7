package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of every webhook request.
const (
	// SignatureHeader carries t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>">. A receiver may find several v1= entries (one per
	// secret while secrets rotate); one matching is enough.
	SignatureHeader = "X-Hongbao-Signature"
	// EventIDHeader repeats the event's id, for deduplication before the
	// body is parsed.
	EventIDHeader = "X-Hongbao-Event-Id"
	// EventTypeHeader repeats the event's type.
	EventTypeHeader = "X-Hongbao-Event-Type"
)

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock in Verify's examples: old enough for clock skew, too
// young for a captured request to be replayed later.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns; each wraps ErrInvalidSignature.
var (
	ErrInvalidSignature = errors.New("webhook: invalid signature")
	ErrMalformed        = fmt.Errorf("%w: malformed %s header", ErrInvalidSignature, SignatureHeader)
	ErrMismatch         = fmt.Errorf("%w: no v1 signature matches", ErrInvalidSignature)
	ErrStale            = fmt.Errorf("%w: timestamp outside the tolerance", ErrInvalidSignature)
)

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// Verify checks a request's SignatureHeader value against its raw body
// (as read, before any parsing) and secret: a v1 signature must match, and
// its timestamp must be within tolerance of the receiver's clock, either
// way. It returns nil or an error wrapping ErrInvalidSignature.
func Verify(secret []byte, header string, body []byte, tolerance time.Duration) error {
	return verifyAt(secret, header, body, tolerance, time.Now())
}

func verifyAt(secret []byte, header string, body []byte, tolerance time.Duration, now time.Time) error {
	ts, sigs, err := parseHeader(header)
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrMismatch
}

// parseHeader splits "t=…,v1=…[,v1=…]" into the timestamp and the v1
// signatures; unknown schemes are ignored, so newer ones can be added.
func parseHeader(header string) (ts string, v1 []string, err error) {
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return "", nil, ErrMalformed
		case k == "t":
			ts = v
		case k == "v1":
			v1 = append(v1, v)
		}
	}
	if ts == "" || len(v1) == 0 {
		return "", nil, ErrMalformed
	}
	return ts, v1, nil
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

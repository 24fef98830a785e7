package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	secret := []byte("a-webhook-secret-of-32-bytes-or-more")
	body := []byte(`{"id":"packet.created:x","type":"packet.created"}`)
	now := time.Unix(1_800_000_000, 0)
	good := Sign(secret, now, body)
	if err := Verify(secret, Sign(secret, time.Now(), body), body, DefaultTolerance); err != nil {
		t.Fatalf("Verify of a fresh signature: %v", err)
	}
	other := Sign([]byte("another-secret-of-32-bytes-or-more!!"), now, body)
	_, otherV1, _ := strings.Cut(other, ",")
	tests := []struct {
		name   string
		secret []byte
		header string
		body   string
		at     time.Time
		want   error
	}{
		{"valid", secret, good, string(body), now, nil},
		{"valid, a little late", secret, good, string(body), now.Add(4 * time.Minute), nil},
		{"valid among rotated secrets", secret, good + "," + otherV1, string(body), now, nil},
		{"unknown scheme ignored", secret, good + ",v0=abc", string(body), now, nil},
		{"wrong secret", []byte("not-the-secret-but-just-as-long!!!!!"), good, string(body), now, ErrMismatch},
		{"tampered body", secret, good, strings.Replace(string(body), "created", "refunded", 1), now, ErrMismatch},
		{"stale", secret, good, string(body), now.Add(6 * time.Minute), ErrStale},
		{"from the future", secret, good, string(body), now.Add(-6 * time.Minute), ErrStale},
		{"timestamp changed", secret, strings.Replace(good, "t=1800000000", "t=1800000001", 1), string(body), now, ErrMismatch},
		{"empty", secret, "", string(body), now, ErrMalformed},
		{"no v1", secret, "t=1800000000", string(body), now, ErrMalformed},
		{"no t", secret, strings.TrimPrefix(good, "t=1800000000,"), string(body), now, ErrMalformed},
		{"bad t", secret, strings.Replace(good, "t=1800000000", "t=soon", 1), string(body), now, ErrMalformed},
		{"not hex", secret, "t=1800000000,v1=zz", string(body), now, ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAt(tc.secret, tc.header, []byte(tc.body), DefaultTolerance, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
			if tc.want != nil && !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("%v does not wrap ErrInvalidSignature", err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 10*time.Second, time.Hour
	for n := 1; n <= 40; n++ {
		full := lo << min(n-1, 20)
		full = min(full, hi)
		for range 50 {
			if got := backoff(n, lo, hi); got < full/2 || got > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, got, full/2, full)
			}
		}
	}
	var total time.Duration
	for n := 1; n < DefaultConfig().MaxAttempts; n++ {
		total += min(lo<<min(n-1, 20), hi)
	}
	if total < 12*time.Hour || total > 48*time.Hour {
		t.Fatalf("the default schedule spans up to %v; the docs promise about a day", total)
	}
}

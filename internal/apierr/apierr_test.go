package apierr

import (
	"errors"
	"fmt"
	"testing"
)

func TestDescribe(t *testing.T) {
	base := &Error{Code: "sold_out", Message: "all shares are taken"}
	tests := []struct {
		name           string
		err            error
		code, msg, cof string
	}{
		{"sentinel", base, "sold_out", "all shares are taken", "sold_out"},
		{"wrapped sentinel", fmt.Errorf("grab p1: %w", base), "sold_out", "all shares are taken", "sold_out"},
		{"refused", Refuse(base, "packet %s is empty", "p1"), "sold_out", "packet p1 is empty", "sold_out"},
		{"wrapped refusal", fmt.Errorf("x: %w", Refuse(base, "detail")), "sold_out", "detail", "sold_out"},
		{"uncoded", errors.New("dial tcp: refused"), "", "dial tcp: refused", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := Describe(tt.err)
			if code != tt.code || msg != tt.msg {
				t.Fatalf("Describe = %q, %q; want %q, %q", code, msg, tt.code, tt.msg)
			}
			if got := CodeOf(tt.err); got != tt.cof {
				t.Fatalf("CodeOf = %q, want %q", got, tt.cof)
			}
			if tt.code != "" && !errors.Is(tt.err, base) {
				t.Fatal("does not match its sentinel with errors.Is")
			}
		})
	}
}

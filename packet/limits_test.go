package packet

import (
	"errors"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

func TestLimitsCheck(t *testing.T) {
	var lim Limits // zero: defaults
	tests := []struct {
		name  string
		kind  Kind
		total int64
		count int
		want  error
	}{
		{"lucky ok", Lucky, 1000, 3, nil},
		{"equal ok", Equal, 900, 3, nil},
		{"one share", Lucky, 1, 1, nil},
		{"max everything", Lucky, 1000 * 20000, 1000, nil},
		{"unknown kind", "fair", 100, 1, ErrInvalidRequest},
		{"zero total", Lucky, 0, 1, ErrInvalidAmount},
		{"negative total", Lucky, -100, 1, ErrInvalidAmount},
		{"zero count", Lucky, 100, 0, ErrInvalidCount},
		{"negative count", Lucky, 100, -1, ErrInvalidCount},
		{"count over max", Lucky, 100000, 1001, ErrInvalidCount},
		{"share too small", Lucky, 2, 3, ErrShareTooSmall},
		{"uneven", Equal, 1000, 3, ErrUnevenTotal},
		{"equal share too large", Equal, 40002, 2, ErrShareTooLarge},
		{"lucky total too large", Lucky, 40001, 2, ErrTotalTooLarge},
		{"huge total", Lucky, 1 << 62, 1, ErrTotalTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lim.Check(tt.kind, tt.total, tt.count)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLimitsConfigurable(t *testing.T) {
	lim := Limits{MaxCount: 10, MaxShare: 100}
	if err := lim.Check(Lucky, 1000, 10); err != nil {
		t.Fatalf("10 × 100 fen within limits: %v", err)
	}
	if err := lim.Check(Lucky, 1001, 10); !errors.Is(err, ErrTotalTooLarge) {
		t.Fatalf("want total_too_large, got %v", err)
	}
	if err := lim.Check(Lucky, 100, 11); !errors.Is(err, ErrInvalidCount) {
		t.Fatalf("want invalid_count, got %v", err)
	}
}

func TestValidText(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want bool
	}{
		{"恭喜发财，大吉大利", 64, true},
		{"", 64, true},
		{"abc", 2, false},
		{"line\nbreak", 64, false},
		{"nul\x00", 64, false},
		{"bad \xff utf8", 64, false},
		{"🧧🧧", 2, true},
		{"Alice\u200b", 64, false},      // zero-width space: passes for Alice
		{"\u202eecilA", 64, false},      // right-to-left override
		{"soft\u00adhyphen", 64, false}, // Cf as well
	}
	for _, tt := range tests {
		if got := ValidText(tt.s, tt.max); got != tt.want {
			t.Errorf("ValidText(%q, %d) = %v, want %v", tt.s, tt.max, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	_, err := ParseYuan("1.234")
	code, msg := apierr.Describe(err)
	if code != "invalid_amount" || msg == "" {
		t.Fatalf("Describe = %q, %q", code, msg)
	}
	if code, _ := apierr.Describe(ErrSoldOut); code != "sold_out" {
		t.Fatalf("apierr.Describe(ErrSoldOut) = %q", code)
	}
}

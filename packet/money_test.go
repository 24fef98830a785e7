package packet

import (
	"errors"
	"math"
	"testing"
)

func TestParseYuan(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"12.34", 1234, true},
		{"12.3", 1230, true},
		{"12", 1200, true},
		{"0.01", 1, true},
		{"0", 0, true},
		{"8.88", 888, true},
		{"007.50", 750, true},
		{"92233720368547758.07", math.MaxInt64, true},
		{"92233720368547758.08", 0, false},
		{"92233720368547759", 0, false},
		{"99999999999999999999", 0, false},
		{"1.234", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{".5", 0, false},
		{"5.", 0, false},
		{"1e3", 0, false},
		{" 1", 0, false},
		{"1,00", 0, false},
		{"１２", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseYuan(tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseYuan(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidAmount) {
			t.Errorf("ParseYuan(%q) = %d, %v; want invalid_amount", tt.in, got, err)
		}
	}
}

func TestFormatYuan(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{1234, "12.34"}, {1, "0.01"}, {0, "0.00"}, {100, "1.00"}, {-5, "-0.05"},
		{math.MaxInt64, "92233720368547758.07"}, {math.MinInt64, "-92233720368547758.08"},
	}
	for _, tt := range tests {
		if got := FormatYuan(tt.in); got != tt.want {
			t.Errorf("FormatYuan(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"12.34", "0.01", "1.234", "-1", "abc", "92233720368547758.07", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := ParseYuan(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAmount) {
				t.Fatalf("ParseYuan(%q): error without invalid_amount code: %v", s, err)
			}
			return
		}
		if fen < 0 {
			t.Fatalf("ParseYuan(%q) = %d < 0", s, fen)
		}
		// Round trip: formatting and parsing again gives the same fen.
		back, err := ParseYuan(FormatYuan(fen))
		if err != nil || back != fen {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, fen, FormatYuan(fen), back, err)
		}
	})
}

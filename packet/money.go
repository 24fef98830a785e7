package packet

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// Money is always an int64 count of fen (1/100 yuan). These helpers convert
// between fen and the "12.34" yuan text people type and read; they use only
// integer arithmetic and string handling.

// ParseYuan parses a non-negative yuan amount with at most two decimals
// ("12", "12.3", "12.34", "0.01") into fen. It rejects signs, exponents,
// spaces, more than two decimals and values that overflow int64 fen.
func ParseYuan(s string) (int64, error) {
	if s == "" {
		return 0, apierr.Refuse(ErrInvalidAmount, "empty amount")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 2)) {
		return 0, apierr.Refuse(ErrInvalidAmount, "%q is not a yuan amount with at most two decimals", s)
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, apierr.Refuse(ErrInvalidAmount, "%q is not a yuan amount with at most two decimals", s)
	}
	if len(frac) == 1 {
		frac += "0"
	}
	if frac == "" {
		frac = "00"
	}
	fen, _ := strconv.ParseInt(frac, 10, 64)
	yuan, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || yuan > (math.MaxInt64-fen)/100 {
		return 0, apierr.Refuse(ErrInvalidAmount, "%q is too large", s)
	}
	return yuan*100 + fen, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatYuan renders fen as yuan with exactly two decimals: 1234 → "12.34",
// -5 → "-0.05".
func FormatYuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign = "-"
		u = uint64(-(fen + 1)) + 1 // safe for math.MinInt64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

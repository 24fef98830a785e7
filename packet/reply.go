package packet

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// grabRefusals maps the grab script's refusal codes to errors.
var grabRefusals = map[string]*Error{
	"not_found": ErrNotFound, "not_yet": ErrNotYet, "expired": ErrExpired,
	"already_grabbed": ErrAlreadyGrabbed, "sold_out": ErrSoldOut,
	"not_for_you": ErrNotForYou, "wrong_password": ErrWrongPassword,
}

// parseGrab reads one user's item of the grab script's reply:
// "amount|remaining|seq", "already_grabbed|<claim>" or a refusal code. For
// already_grabbed with a claim, the result describes that claim so that it
// can be paid.
func parseGrab(id, room string, at, duration int64, item any) (GrabResult, error) {
	v, _ := item.(string)
	if e, ok := grabRefusals[v]; ok {
		return GrabResult{}, e
	}
	if claim, ok := strings.CutPrefix(v, "already_grabbed|"); ok {
		c, err := parseClaim("", claim)
		if err != nil {
			return GrabResult{}, fmt.Errorf("grab %s: %w", id, err)
		}
		return GrabResult{PacketID: id, Room: room, Amount: c.Amount, Seq: c.Seq, At: c.At}, ErrAlreadyGrabbed
	}
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return GrabResult{}, fmt.Errorf("grab %s: unexpected reply %q", id, v)
	}
	amount, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return GrabResult{}, fmt.Errorf("grab %s: bad amount %q", id, parts[0])
	}
	g := GrabResult{PacketID: id, Room: room, Amount: amount, At: at}
	g.Remaining, _ = strconv.Atoi(parts[1])
	g.Seq, _ = strconv.Atoi(parts[2])
	if g.Remaining == 0 && duration >= 0 {
		g.Emptied, g.DurationMs = true, duration
	}
	return g, nil
}

// parseClaim decodes one claim, "seq|amount|at_ms|token|name".
func parseClaim(user, v string) (Claim, error) {
	parts := strings.SplitN(v, "|", 5)
	if len(parts) != 5 {
		return Claim{}, fmt.Errorf("bad claim %q", v)
	}
	seq, err1 := strconv.Atoi(parts[0])
	amount, err2 := strconv.ParseInt(parts[1], 10, 64)
	at, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Claim{}, fmt.Errorf("bad claim %q", v)
	}
	return Claim{User: User{ID: user, Name: parts[4]}, Amount: amount, At: at, Seq: seq}, nil
}

// parseClaims decodes a claims hash (user id -> claim) into grab order.
func parseClaims(raw map[string]string) ([]Claim, error) {
	claims := make([]Claim, 0, len(raw))
	for user, v := range raw {
		c, err := parseClaim(user, v)
		if err != nil {
			return nil, err
		}
		claims = append(claims, c)
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].Seq < claims[j].Seq })
	return claims, nil
}

// parseShare reads a share, "amount:left_after".
func parseShare(v string) (int64, error) {
	amount, _, _ := strings.Cut(v, ":")
	n, err := strconv.ParseInt(amount, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad share %q", v)
	}
	return n, nil
}

func sumShares(shares []string) (int64, error) {
	var sum int64
	for _, sh := range shares {
		n, err := parseShare(sh)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not an integer amount: %q", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("not an integer amount: %v", v)
}

// asInt reads a small integer (count, position, time) from a script reply.
func asInt(v any) int64 {
	n, _ := toInt64(v)
	return n
}

func atoi64(s string) int64 {
	n, _ := toInt64(s)
	return n
}

// isNil reports a missing key or field.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }

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

// batchReply is the head of the grab script's reply: what the batch as a
// whole did.
type batchReply struct {
	room string
	// at is the Redis time of the batch, Unix ms.
	at int64
	// duration is the time from VisibleAt to the last share, when this
	// batch took it; -1 otherwise.
	duration int64
	// entry is the outbox entry of the batch's new claims, "" if none.
	entry string
	// count is the packet's shares, left those left after the batch.
	count, left int
}

// parseBatchReply reads the grab script's reply for n grabs: its head, and
// one item per grab.
func parseBatchReply(id string, res []any, n int) (batchReply, []any, error) {
	if len(res) != 6+n {
		return batchReply{}, nil, fmt.Errorf("grab %s: reply has %d items for %d grabs", id, len(res), n)
	}
	b := batchReply{at: asInt(res[1]), duration: asInt(res[2]), count: int(asInt(res[4])), left: int(asInt(res[5]))}
	b.room, _ = res[0].(string)
	b.entry, _ = res[3].(string)
	return b, res[6:], nil
}

// parseGrab reads one user's item of the grab script's reply: "amount|seq",
// "already_grabbed|<claim>" or a refusal code. For already_grabbed with a
// claim, the result describes that claim so that it can be paid.
func parseGrab(id string, b batchReply, item any) (GrabResult, error) {
	v, _ := item.(string)
	if e, ok := grabRefusals[v]; ok {
		return GrabResult{}, e
	}
	if claim, ok := strings.CutPrefix(v, "already_grabbed|"); ok {
		c, err := parseClaim("", claim)
		if err != nil {
			return GrabResult{}, fmt.Errorf("grab %s: %w", id, err)
		}
		return GrabResult{PacketID: id, Room: b.room, Amount: c.Amount, Seq: c.Seq, At: c.At}, ErrAlreadyGrabbed
	}
	a, sq, ok := strings.Cut(v, "|")
	amount, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.Atoi(sq)
	if !ok || err1 != nil || err2 != nil {
		return GrabResult{}, fmt.Errorf("grab %s: unexpected reply %q", id, v)
	}
	g := GrabResult{PacketID: id, Room: b.room, Amount: amount, At: b.at, Seq: seq, Remaining: b.count - seq}
	if g.Remaining == 0 && b.duration >= 0 {
		g.Emptied, g.DurationMs = true, b.duration
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

// parseClaims decodes a claims hash (user id -> claim) into grab order. It
// skips the field named "" that keeps a big packet's hash a hash table
// (create.lua): no user id is empty.
func parseClaims(raw map[string]string) ([]Claim, error) {
	claims := make([]Claim, 0, len(raw))
	for user, v := range raw {
		if user == "" {
			continue
		}
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

package packet

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/ledger"
)

// "My red packets": the packets a user sent, and their totals per year.
//
// With a ledger both come from PostgreSQL (the packets and claims tables,
// by their sender and user indexes). Without one, the debit script that
// takes a packet's money also lists it in its sender's sent index and adds
// it to the sender's per-year totals, as the credit and refund scripts do
// for what they pay: maintained counters in the user's own slot, moved in
// the same step as the money, so they never disagree with the wallet.

// Sent is a packet in its sender's list, with how it stands now.
type Sent struct {
	State
	// Mine is the sender's own claim on it, if any.
	Mine *int64
	// Refunded is what went back to the sender (0 until it expired).
	Refunded int64
}

// Totals is a sum of fen and how many items made it.
type Totals struct {
	Total int64 `json:"total"`
	Count int64 `json:"count"`
}

// Summary is what a user sent, received and had refunded in one year (UTC):
// packets by their creation, claims by their grab (with a ledger, once
// committed), refunds of more than nothing by when they were paid.
type Summary struct {
	Year     int    `json:"year"`
	Sent     Totals `json:"sent"`
	Received Totals `json:"received"`
	Refunded Totals `json:"refunded"`
}

// yearOf is the UTC year of a unix-ms time, as the per-year fields name it.
func yearOf(ms int64) string {
	return strconv.Itoa(time.UnixMilli(ms).UTC().Year())
}

// sentMember is a packet's entry in its sender's sent index: members sort
// by creation time, then id, because the time has a fixed width.
func sentMember(createdAt int64, id string) string {
	return fmt.Sprintf("%016d:%s", createdAt, id)
}

// SentPackets lists the packets userID sent, newest first, each with its
// live state, limit at a time: cursor "" starts at the newest, and the
// cursor returned is "" after the last page. A cursor this server did not
// give is refused with ErrInvalidRequest.
func (s *Store) SentPackets(ctx context.Context, userID, cursor string, limit int) ([]Sent, string, error) {
	if s.led != nil {
		return s.ledgerSent(ctx, userID, cursor, limit)
	}
	at, id, err := decodeSentCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 20
	}
	max := "+"
	if cursor != "" {
		max = "(" + sentMember(at, id)
	}
	members, err := s.rdb.ZRevRangeByLex(ctx, s.k.sent(userID), &redis.ZRangeBy{
		Max: max, Min: "-", Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", unavailable("sent packets", err)
	}
	next := ""
	if len(members) > limit {
		members = members[:limit]
		last := members[limit-1]
		at, _ := strconv.ParseInt(last[:16], 10, 64)
		next = encodeSentCursor(at, last[17:])
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m[17:]
	}
	live, err := s.sentStates(ctx, ids, userID)
	if err != nil {
		return nil, "", err
	}
	out := make([]Sent, 0, len(live))
	for _, l := range live {
		if l != nil { // a packet still being created: listed once open
			out = append(out, *l)
		}
	}
	return out, next, nil
}

// ledgerSent pages the ledger's list, each packet shown as Redis has it
// while Redis still holds it (its claims may not be committed yet).
func (s *Store) ledgerSent(ctx context.Context, userID, cursor string, limit int) ([]Sent, string, error) {
	rows, next, err := s.led.SentPackets(ctx, userID, cursor, limit)
	if err != nil {
		return nil, "", readError("sent packets", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	live, err := s.sentStates(ctx, ids, userID)
	if err != nil {
		return nil, "", err
	}
	out := make([]Sent, len(rows))
	for i, r := range rows {
		if live[i] != nil {
			out[i] = *live[i]
			continue
		}
		l := listedOf(r)
		out[i] = Sent{State: l.State, Mine: l.Mine, Refunded: r.Refunded}
	}
	return out, next, nil
}

// sentStates reads the Redis state of packets ids with viewer's claim, in
// one round trip; nil for a packet Redis does not hold (or not yet open).
func (s *Store) sentStates(ctx context.Context, ids []string, viewer string) ([]*Sent, error) {
	live, err := s.readLive(ctx, ids, viewer, "sent packets")
	if err != nil {
		return nil, err
	}
	out := make([]*Sent, len(ids))
	for i, l := range live {
		if l.detail != nil {
			out[i] = &Sent{State: l.detail.State, Refunded: l.detail.Refunded, Mine: l.mine}
		}
	}
	return out, nil
}

// A sent-list cursor is the (created_at, id) of the last packet of a page,
// base64url encoded, like the ledger's.
func encodeSentCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + ":" + id))
}

func decodeSentCursor(cursor string) (int64, string, error) {
	if cursor == "" {
		return 0, "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		a, id, _ := strings.Cut(string(raw), ":")
		var at int64
		if at, err = strconv.ParseInt(a, 10, 64); err == nil && at >= 0 {
			if _, err = uuid.Parse(id); err == nil && len(id) == 36 {
				return at, id, nil
			}
		}
	}
	return 0, "", apierr.Refuse(ErrInvalidRequest, "sent packets: the cursor is not one this server gave")
}

// Summary adds up what userID sent, received and had refunded in year
// (UTC).
func (s *Store) Summary(ctx context.Context, userID string, year int) (Summary, error) {
	out := Summary{Year: year}
	if s.led != nil {
		from := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		to := time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		sum, err := s.led.Summary(ctx, userID, from, to)
		if err != nil {
			return Summary{}, unavailable("summary", err)
		}
		out.Sent, out.Received, out.Refunded = totalsOf(sum.Sent), totalsOf(sum.Received), totalsOf(sum.Refunded)
		return out, nil
	}
	y := strconv.Itoa(year)
	fields := []string{"sent_total", "sent_count", "recv_total", "recv_count", "refund_total", "refund_count"}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = y + ":" + f
	}
	vals, err := s.rdb.HMGet(ctx, s.k.years(userID), names...).Result()
	if err != nil {
		return Summary{}, unavailable("summary", err)
	}
	dst := []*int64{&out.Sent.Total, &out.Sent.Count, &out.Received.Total, &out.Received.Count,
		&out.Refunded.Total, &out.Refunded.Count}
	for i, v := range vals {
		if v == nil {
			continue
		}
		if *dst[i], err = toInt64(v); err != nil {
			return Summary{}, fmt.Errorf("summary %s: %w", names[i], err)
		}
	}
	return out, nil
}

func totalsOf(t ledger.Totals) Totals { return Totals{Total: t.Total, Count: t.Count} }

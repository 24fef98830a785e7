package packet

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// Claim is one grab of a packet.
type Claim struct {
	User   User  `json:"user"`
	Amount int64 `json:"amount"`
	At     int64 `json:"at"`
	// Seq is the grab order, 1-based.
	Seq int `json:"-"`
}

// Detail is everything known about one packet.
type Detail struct {
	State
	// Claims are in grab order.
	Claims []Claim
	// Luckiest is the largest claim (the earlier grab wins a tie), nil when
	// nobody has grabbed yet.
	Luckiest *Claim
	// DurationMs is the time from VisibleAt to the last share being taken,
	// nil unless the packet is empty.
	DurationMs *int64
	// Refunded is what went back to the sender at expiry.
	Refunded int64
}

// Detail reads a packet with its claims: from Redis while it lives there,
// from the ledger after. Pending and cancelled packets are not found: they
// hold no shares anyone could see.
func (s *Store) Detail(ctx context.Context, id string) (*Detail, error) {
	d, err := s.loadPacket(ctx, id)
	if err != nil {
		return nil, err
	}
	if d == nil && s.led != nil {
		d, err = s.ledgerDetail(ctx, id)
		if err != nil {
			return nil, err
		}
	}
	if d == nil {
		return nil, apierr.Refuse(ErrNotFound, "no packet %q", id)
	}
	return d, nil
}

// loadPacket reads a packet's meta and claims in one round trip; nil when
// the packet is missing, pending or cancelled.
func (s *Store) loadPacket(ctx context.Context, id string) (*Detail, error) {
	pipe := s.rdb.Pipeline()
	meta := pipe.HGetAll(ctx, s.k.meta(id))
	claims := pipe.HGetAll(ctx, s.k.claims(id))
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return nil, unavailable("read packet", err)
	}
	d, err := buildDetail(meta.Val(), claims.Val())
	if err != nil {
		return nil, fmt.Errorf("packet %s: %w", id, err)
	}
	return d, nil
}

// buildDetail assembles a Detail from the packet's meta and claims; nil when
// the packet is missing, pending or cancelled.
func buildDetail(meta map[string]string, rawClaims map[string]string) (*Detail, error) {
	st, err := parseState(meta)
	if err != nil || st == nil {
		return nil, err
	}
	d := &Detail{State: *st}
	if st.Status == StatusExpired {
		d.Refunded, d.RemainingCount, d.RemainingAmount = st.RemainingAmount, 0, 0
	}
	if d.Claims, err = parseClaims(rawClaims); err != nil {
		return nil, err
	}
	d.findLuckiest()
	if st.Status == StatusEmpty {
		if emptied, err := strconv.ParseInt(meta["emptied_at"], 10, 64); err == nil {
			dur := emptied - st.VisibleAt
			d.DurationMs = &dur
		}
	}
	return d, nil
}

func (d *Detail) findLuckiest() {
	for i := range d.Claims {
		if d.Luckiest == nil || d.Claims[i].Amount > d.Luckiest.Amount {
			d.Luckiest = &d.Claims[i]
		}
	}
}

// parseState reads a packet's meta; nil when it is missing, pending or
// cancelled. RemainingCount and RemainingAmount are what is left in the
// shares (for an expired packet: what was refunded).
func parseState(m map[string]string) (*State, error) {
	status := Status(m["status"])
	if status == "" || status == StatusPending || status == StatusCancelled {
		return nil, nil
	}
	var st State
	st.ID, st.Room, st.Greeting = m["id"], m["room"], m["greeting"]
	st.Sender = User{ID: m["sender_id"], Name: m["sender_name"]}
	st.Kind, st.Status = Kind(m["kind"]), status
	var err error
	ints := []struct {
		field string
		dst   *int64
	}{{"total", &st.Total}, {"created_at", &st.CreatedAt}, {"visible_at", &st.VisibleAt},
		{"expires_at", &st.ExpiresAt}, {"left_amount", &st.RemainingAmount}}
	for _, f := range ints {
		if *f.dst, err = strconv.ParseInt(m[f.field], 10, 64); err != nil {
			return nil, fmt.Errorf("packet %s: bad %s %q", st.ID, f.field, m[f.field])
		}
	}
	if st.Count, err = strconv.Atoi(m["count"]); err != nil {
		return nil, fmt.Errorf("packet %s: bad count %q", st.ID, m["count"])
	}
	if st.RemainingCount, err = strconv.Atoi(m["left_count"]); err != nil {
		return nil, fmt.Errorf("packet %s: bad left_count %q", st.ID, m["left_count"])
	}
	if st.To, err = parseTo(m["to"]); err != nil {
		return nil, fmt.Errorf("packet %s: %w", st.ID, err)
	}
	st.Password, st.OpensAt = m["password"], atoi64(m["opens_at"])
	return &st, nil
}

// Listed is a packet in a room listing, with what the viewer got from it.
type Listed struct {
	State
	// Mine is the viewer's claim, nil when the viewer has not grabbed it.
	Mine *int64 `json:"grabbed_by_me"`
}

// RoomPackets lists a room's packets, newest first: all of them, or only
// those still open when activeOnly, each with viewer's claim (viewer may be
// empty). With a ledger the list pages: pass the returned cursor to get the
// next page ("" when there is none; an activeOnly page may hold fewer than
// limit). Without one it holds the room's latest Config.RoomHistory packets.
func (s *Store) RoomPackets(ctx context.Context, room, viewer string, activeOnly bool, cursor string, limit int) ([]Listed, string, error) {
	if s.led != nil {
		return s.ledgerRoomPackets(ctx, room, viewer, activeOnly, cursor, limit)
	}
	if limit <= 0 || limit > s.cfg.RoomHistory {
		limit = s.cfg.RoomHistory
	}
	ids, err := s.rdb.ZRevRange(ctx, s.k.room(room), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, "", unavailable("room packets", err)
	}
	out := make([]Listed, 0, len(ids))
	live, err := s.liveStates(ctx, ids, viewer)
	if err != nil {
		return nil, "", err
	}
	for _, l := range live {
		if l != nil && (!activeOnly || l.Status == StatusActive) {
			out = append(out, *l)
		}
	}
	return out, "", nil
}

// liveStates reads the Redis state of packets ids, with viewer's claim, in
// one round trip; nil for a packet Redis does not hold.
func (s *Store) liveStates(ctx context.Context, ids []string, viewer string) ([]*Listed, error) {
	live, err := s.readLive(ctx, ids, viewer, "room packets")
	if err != nil {
		return nil, err
	}
	out := make([]*Listed, len(ids))
	for i, l := range live {
		if l.detail != nil {
			out[i] = &Listed{State: l.detail.State, Mine: l.mine}
		}
	}
	return out, nil
}

// liveState is one packet as Redis holds it (detail nil when it holds
// none), with what the viewer claimed of it.
type liveState struct {
	detail *Detail
	mine   *int64
}

// readLive reads the meta of packets ids, and viewer's claim of each when
// viewer is set, in one round trip; what names the read in errors.
func (s *Store) readLive(ctx context.Context, ids []string, viewer, what string) ([]liveState, error) {
	out := make([]liveState, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	metas := make([]*redis.MapStringStringCmd, len(ids))
	mine := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		metas[i] = pipe.HGetAll(ctx, s.k.meta(id))
		if viewer != "" {
			mine[i] = pipe.HGet(ctx, s.k.claims(id), viewer)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return nil, unavailable(what, err)
	}
	for i := range ids {
		d, err := buildDetail(metas[i].Val(), nil)
		if err != nil {
			return nil, err
		}
		out[i].detail = d
		if d != nil && mine[i] != nil && mine[i].Val() != "" {
			if c, err := parseClaim(viewer, mine[i].Val()); err == nil {
				out[i].mine = &c.Amount
			}
		}
	}
	return out, nil
}

// Wallet is a user's money at a glance.
type Wallet struct {
	Balance       int64 `json:"balance"`
	Funded        int64 `json:"-"`
	ReceivedTotal int64 `json:"received_total"`
	ReceivedCount int64 `json:"received_count"`
	SentTotal     int64 `json:"sent_total"`
	SentCount     int64 `json:"sent_count"`
	Refunded      int64 `json:"refunded"`
	// PendingTotal and PendingCount are claims won but not committed to the
	// ledger yet: not in Balance or ReceivedTotal until they are.
	PendingTotal int64 `json:"pending_total"`
	PendingCount int64 `json:"pending_count"`
}

// Wallet reads user's wallet; an unknown user has an empty one.
func (s *Store) Wallet(ctx context.Context, userID string) (Wallet, error) {
	if s.led != nil {
		return s.ledgerWallet(ctx, userID)
	}
	m, err := s.rdb.HGetAll(ctx, s.k.wallet(userID)).Result()
	if err != nil {
		return Wallet{}, unavailable("wallet", err)
	}
	return parseWallet(m)
}

func parseWallet(m map[string]string) (Wallet, error) {
	var w Wallet
	fields := []struct {
		name string
		dst  *int64
	}{{"balance", &w.Balance}, {"funded", &w.Funded}, {"recv_total", &w.ReceivedTotal},
		{"recv_count", &w.ReceivedCount}, {"sent_total", &w.SentTotal}, {"sent_count", &w.SentCount},
		{"refund_total", &w.Refunded}}
	for _, f := range fields {
		v, ok := m[f.name]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Wallet{}, fmt.Errorf("wallet: bad %s %q", f.name, v)
		}
		*f.dst = n
	}
	return w, nil
}

// Claims returns up to limit of user's latest claims, newest first. With a
// ledger, claims not committed yet come first, marked pending, and the list
// pages by cursor ("" for the first page; the returned cursor is "" after
// the last).
func (s *Store) Claims(ctx context.Context, userID, cursor string, limit int) ([]UserClaim, string, error) {
	if s.led != nil {
		return s.ledgerClaims(ctx, userID, cursor, limit)
	}
	if limit <= 0 || limit > s.cfg.HistoryLen {
		limit = s.cfg.HistoryLen
	}
	raw, err := s.rdb.LRange(ctx, s.k.history(userID), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, "", unavailable("claims", err)
	}
	out := make([]UserClaim, 0, len(raw))
	for _, r := range raw {
		var c UserClaim
		if err := json.Unmarshal([]byte(r), &c); err != nil {
			return nil, "", fmt.Errorf("claims: bad entry %q: %w", r, err)
		}
		out = append(out, c)
	}
	return out, "", nil
}

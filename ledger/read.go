package ledger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Wallet is a user's balance and the totals that explain it:
// Balance = Funded + ReceivedTotal + Refunded - SentTotal.
type Wallet struct {
	Balance, Funded, ReceivedTotal, ReceivedCount, SentTotal, SentCount, Refunded int64
}

// Wallet returns userID's wallet; a user without one has the zero Wallet.
func (l *Ledger) Wallet(ctx context.Context, userID string) (Wallet, error) {
	var w Wallet
	err := l.pool.QueryRow(ctx, `select balance, funded, received_total, received_count, sent_total, sent_count, refunded
		from accounts where id = $1`, walletID(userID)).
		Scan(&w.Balance, &w.Funded, &w.ReceivedTotal, &w.ReceivedCount, &w.SentTotal, &w.SentCount, &w.Refunded)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Wallet{}, fmt.Errorf("ledger: wallet %s: %w", userID, err)
	}
	return w, nil
}

// UserExists reports whether userID has a wallet (was ever funded or paid).
func (l *Ledger) UserExists(ctx context.Context, userID string) (bool, error) {
	var ok bool
	err := l.pool.QueryRow(ctx, "select exists (select 1 from accounts where id = $1)", walletID(userID)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("ledger: user exists %s: %w", userID, err)
	}
	return ok, nil
}

// PacketView is a packet with how it stands and its committed claims.
type PacketView struct {
	Packet
	// Status is StatusOpen, StatusEmpty or StatusExpired.
	Status string
	// FinishedAt (unix ms) and Refunded are 0 until Finish.
	FinishedAt, Refunded int64
	// Settled: MarkSettled was called; nothing is left to do.
	Settled bool
	// Claims are the committed claims in seq order.
	Claims []Claim
}

// Packet returns packet id with its committed claims, read at one instant;
// ErrNotFound if there is no such packet.
func (l *Ledger) Packet(ctx context.Context, id string) (*PacketView, error) {
	if !validUUID(id) {
		return nil, fmt.Errorf("ledger: packet %s: %w", id, ErrNotFound)
	}
	v := &PacketView{}
	err := l.readTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `select id::text, room, sender_id, sender_name, kind, greeting, total, count,
				created_at, visible_at, expires_at, due_at, shares, coalesce(rain_id::text, ''),
				status, coalesce(finished_at, 0), coalesce(refunded, 0), settled_at is not null,
				to_ids, to_names, password, opens_at
			from packets where id = $1`, id).Scan(
			&v.ID, &v.Room, &v.SenderID, &v.SenderName, &v.Kind, &v.Greeting, &v.Total, &v.Count,
			&v.CreatedAt, &v.VisibleAt, &v.ExpiresAt, &v.DueAt, &v.Shares, &v.RainID,
			&v.Status, &v.FinishedAt, &v.Refunded, &v.Settled,
			&v.To, &v.ToNames, &v.Password, &v.OpensAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		v.Claims, err = packetClaims(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: packet %s: %w", id, err)
	}
	return v, nil
}

func packetClaims(ctx context.Context, tx pgx.Tx, id string) ([]Claim, error) {
	rows, err := tx.Query(ctx, `select packet_id::text, user_id, user_name, seq, amount, at
		from claims where packet_id = $1 order by seq`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanClaim)
}

func scanClaim(row pgx.CollectableRow) (Claim, error) {
	var c Claim
	err := row.Scan(&c.PacketID, &c.UserID, &c.UserName, &c.Seq, &c.Amount, &c.At)
	return c, err
}

// Listed is a packet in a list: its description (Shares nil) and how it
// stands.
type Listed struct {
	Packet
	Status        string
	ClaimedCount  int
	ClaimedAmount int64
	Refunded      int64
	Settled       bool
	// Mine is the viewer's committed claim on this packet, if any.
	Mine *int64
}

// Lists are pages of at most maxPage items; limit <= 0 asks for defaultPage.
const (
	defaultPage = 20
	maxPage     = 200
)

func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return defaultPage
	case limit > maxPage:
		return maxPage
	}
	return limit
}

// RoomPackets lists room's packets newest first (by created_at, then id),
// one page at a time: cursor "" starts at the newest, and the next cursor
// returned is "" after the last page. Mine is viewer's claim. Keyset
// pagination: a packet added meanwhile never shifts a page.
func (l *Ledger) RoomPackets(ctx context.Context, room, viewer, cursor string, limit int) ([]Listed, string, error) {
	list, next, err := l.listPackets(ctx, "room", room, viewer, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: room packets %s: %w", room, err)
	}
	return list, next, nil
}

// SentPackets lists the packets userID sent, newest first, paginated like
// RoomPackets; Mine is the sender's own claim.
func (l *Ledger) SentPackets(ctx context.Context, userID, cursor string, limit int) ([]Listed, string, error) {
	list, next, err := l.listPackets(ctx, "sender_id", userID, userID, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: sent packets %s: %w", userID, err)
	}
	return list, next, nil
}

// listPackets pages through packets where column = value; column is a
// constant of this package, never input.
func (l *Ledger) listPackets(ctx context.Context, column, value, viewer, cursor string, limit int) ([]Listed, string, error) {
	at, id, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	n := pageSize(limit)
	rows, err := l.pool.Query(ctx, `select p.id::text, p.room, p.sender_id, p.sender_name, p.kind, p.greeting,
			p.total, p.count, p.created_at, p.visible_at, p.expires_at, p.due_at, coalesce(p.rain_id::text, ''),
			p.status, coalesce(p.refunded, 0), p.settled_at is not null, s.n, s.amount, mine.amount,
			p.to_ids, p.to_names, p.password, p.opens_at
		from packets p
		cross join lateral (select count(*)::int as n, coalesce(sum(amount), 0)::bigint as amount
			from claims c where c.packet_id = p.id) s
		left join claims mine on mine.packet_id = p.id and mine.user_id = $2
		where p.`+column+` = $1 and (p.created_at, p.id) < ($3, $4::uuid)
		order by p.created_at desc, p.id desc limit $5`, value, viewer, at, id, n+1)
	if err != nil {
		return nil, "", err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Listed, error) {
		var x Listed
		err := row.Scan(&x.ID, &x.Room, &x.SenderID, &x.SenderName, &x.Kind, &x.Greeting,
			&x.Total, &x.Count, &x.CreatedAt, &x.VisibleAt, &x.ExpiresAt, &x.DueAt, &x.RainID,
			&x.Status, &x.Refunded, &x.Settled, &x.ClaimedCount, &x.ClaimedAmount, &x.Mine,
			&x.To, &x.ToNames, &x.Password, &x.OpensAt)
		return x, err
	})
	if err != nil || len(list) <= n {
		return list, "", err
	}
	last := list[n-1]
	return list[:n], encodeCursor(last.CreatedAt, last.ID), nil
}

// UserClaim is one of a user's committed claims.
type UserClaim struct {
	PacketID, Room string
	Amount, At     int64
}

// UserClaims lists userID's committed claims newest first (by At, then
// packet id), paginated like RoomPackets.
func (l *Ledger) UserClaims(ctx context.Context, userID, cursor string, limit int) ([]UserClaim, string, error) {
	at, id, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: user claims %s: %w", userID, err)
	}
	n := pageSize(limit)
	rows, err := l.pool.Query(ctx, `select c.packet_id::text, p.room, c.amount, c.at
		from claims c join packets p on p.id = c.packet_id
		where c.user_id = $1 and (c.at, c.packet_id) < ($2, $3::uuid)
		order by c.at desc, c.packet_id desc limit $4`, userID, at, id, n+1)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: user claims %s: %w", userID, err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[UserClaim])
	if err != nil {
		return nil, "", fmt.Errorf("ledger: user claims %s: %w", userID, err)
	}
	if len(list) <= n {
		return list, "", nil
	}
	last := list[n-1]
	return list[:n], encodeCursor(last.At, last.PacketID), nil
}

// Committed reports, for each of packetIDs, whether userID's claim on it is
// committed. Every id given is a key of the map.
func (l *Ledger) Committed(ctx context.Context, userID string, packetIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(packetIDs))
	var valid []string
	for _, id := range packetIDs {
		out[id] = false
		if validUUID(id) {
			valid = append(valid, id)
		}
	}
	rows, err := l.pool.Query(ctx, `select packet_id::text from claims where user_id = $1 and packet_id = any($2::uuid[])`,
		userID, valid)
	if err != nil {
		return nil, fmt.Errorf("ledger: committed %s: %w", userID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger: committed %s: %w", userID, err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// A cursor is the (time, id) of the last item of a page, base64url encoded;
// "" means before everything, i.e. the newest first.
func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + ":" + id))
}

const lastUUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"

func decodeCursor(cursor string) (at int64, id string, err error) {
	if cursor == "" {
		return math.MaxInt64, lastUUID, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		s, i, _ := strings.Cut(string(raw), ":")
		at, err = strconv.ParseInt(s, 10, 64)
		id = i
	}
	if err != nil || !validUUID(id) {
		return 0, "", fmt.Errorf("%w: cursor %q", ErrInvalid, cursor)
	}
	return at, id, nil
}

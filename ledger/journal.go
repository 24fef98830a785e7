package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Fund moves amount from the funding account into userID's wallet (creating
// the wallet), once per ref: the movement is fund:<ref>, so a replayed Fund
// moves nothing. It returns whether money moved now and the wallet's balance
// after the call. Reusing a ref for another user or amount is
// ErrIdempotencyConflict.
func (l *Ledger) Fund(ctx context.Context, userID string, amount int64, ref string) (added bool, balance int64, err error) {
	if userID == "" || ref == "" || amount <= 0 {
		return false, 0, fmt.Errorf("ledger: fund: %w: need a user, a ref and a positive amount", ErrInvalid)
	}
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		added, err = insertFund(ctx, tx, userID, amount, ref)
		switch {
		case err != nil:
			return err
		case !added:
			return tx.QueryRow(ctx, "select balance from accounts where id = $1", walletID(userID)).Scan(&balance)
		}
		balance, err = postFund(ctx, tx, userID, amount, ref)
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("ledger: fund %s: %w", userID, err)
	}
	return added, balance, nil
}

// insertFund records movement fund:<ref>, reporting false when it already
// exists (for the same user and amount).
func insertFund(ctx context.Context, tx pgx.Tx, userID string, amount int64, ref string) (bool, error) {
	tag, err := tx.Exec(ctx, `insert into movements (key, kind, user_id, amount) values ($1, 'fund', $2, $3)
		on conflict do nothing`, fundKey(ref), userID, amount)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var user string
	var had int64
	if err := tx.QueryRow(ctx, "select user_id, amount from movements where key = $1", fundKey(ref)).Scan(&user, &had); err != nil {
		return false, err
	}
	if user != userID || had != amount {
		return false, fmt.Errorf("%w: fund ref %q already moved %d to %s", ErrIdempotencyConflict, ref, had, user)
	}
	return false, nil
}

// postFund writes fund:<ref>'s postings and balances (wallet first, funding
// last: the funding row is the one every Fund locks, so it is held for the
// shortest time) and returns the wallet's new balance.
func postFund(ctx context.Context, tx pgx.Tx, userID string, amount int64, ref string) (balance int64, err error) {
	b := &pgx.Batch{}
	b.Queue(`insert into accounts (id, kind, owner, balance, funded) values ($1, 'wallet', $2, $3, $3)
		on conflict (id) do update set balance = accounts.balance + excluded.balance,
			funded = accounts.funded + excluded.funded, updated_at = now()
		returning balance`, walletID(userID), userID, amount).QueryRow(func(row pgx.Row) error {
		return row.Scan(&balance)
	})
	b.Queue(`insert into postings (movement, account, amount) values ($1, $2, $3), ($1, $4, -$3::bigint)`,
		fundKey(ref), walletID(userID), amount, fundingAccount)
	b.Queue(`update accounts set balance = balance - $1, updated_at = now() where id = $2`, amount, fundingAccount)
	return balance, tx.SendBatch(ctx, b).Close()
}

// Packet is what Open records of a packet: its description, its pre-split
// shares (so Redis can be rebuilt) and when the sweeper first looks at it.
// Times are unix milliseconds. ID is a canonical lowercase UUID; RainID is
// one too, or "" for a packet outside a rain.
type Packet struct {
	ID, Room, SenderID, SenderName, Kind, Greeting string
	Total                                          int64
	Count                                          int
	CreatedAt, VisibleAt, ExpiresAt, DueAt         int64
	Shares                                         []int64
	RainID                                         string
	// To and ToNames are an exclusive packet's users, position for
	// position; empty for anyone.
	To, ToNames []string
	// Password is a password packet's phrase, "" for none.
	Password string
	// OpensAt is a countdown packet's opening time, 0 for others.
	OpensAt int64
}

// Idempotency ties an Open to a client's Idempotency-Key: Response is what
// the caller answers, stored with the debit and replayed to every retry that
// carries the same key and RequestHash.
type Idempotency struct {
	Key         string
	RequestHash []byte
	Response    []byte
}

// Open debits the packets' sender (all packets share one sender) for each
// packet once and records the packets with their escrow accounts, in one
// transaction: all or nothing. The wallet is checked and debited in one
// UPDATE ... WHERE balance >= Σ totals; a short wallet is
// ErrInsufficientFunds and nothing is recorded. A packet whose debit:<id>
// movement exists is skipped, so a retried Open is a no-op.
//
// With idem, the (sender, key) is stored with idem.Response in the same
// transaction. A key seen before returns its stored response as replay (never
// nil then) and debits nothing, or ErrIdempotencyConflict when its
// RequestHash differs. Concurrent Opens with one key: one debits, the others
// wait for it on the key and replay. replay is nil when this call recorded.
func (l *Ledger) Open(ctx context.Context, packets []Packet, idem *Idempotency) (replay []byte, err error) {
	sender, err := checkPackets(packets)
	if err != nil {
		return nil, fmt.Errorf("ledger: open: %w", err)
	}
	sorted := append([]Packet(nil), packets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID }) // lock order
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		if idem != nil {
			var err error
			if replay, err = takeIdempotencyKey(ctx, tx, sender, idem); err != nil || replay != nil {
				return err
			}
		}
		fresh, err := insertDebits(ctx, tx, sender, sorted)
		if err != nil || len(fresh) == 0 {
			return err
		}
		if err := debitSender(ctx, tx, sender, fresh); err != nil {
			return err
		}
		if err := recordPackets(ctx, tx, fresh); err != nil {
			return err
		}
		return l.enqueue(ctx, tx, createdEvents(fresh, time.Now().UnixMilli()))
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: open: %w", err)
	}
	return replay, nil
}

// checkPackets validates what Open is given and returns the one sender.
func checkPackets(packets []Packet) (sender string, err error) {
	if len(packets) == 0 {
		return "", fmt.Errorf("%w: no packets", ErrInvalid)
	}
	sender = packets[0].SenderID
	seen := map[string]bool{}
	for _, p := range packets {
		if err := checkPacket(p); err != nil {
			return "", fmt.Errorf("%w: packet %q: %v", ErrInvalid, p.ID, err)
		}
		if p.SenderID != sender {
			return "", fmt.Errorf("%w: packets from %s and %s in one call", ErrInvalid, sender, p.SenderID)
		}
		if seen[p.ID] {
			return "", fmt.Errorf("%w: packet %s twice", ErrInvalid, p.ID)
		}
		seen[p.ID] = true
	}
	return sender, nil
}

func checkPacket(p Packet) error {
	switch {
	case !validUUID(p.ID):
		return errors.New("id is not a lowercase uuid")
	case p.RainID != "" && !validUUID(p.RainID):
		return errors.New("rain id is not a lowercase uuid")
	case p.SenderID == "":
		return errors.New("no sender")
	case p.Total <= 0 || p.Count <= 0 || len(p.Shares) != p.Count:
		return errors.New("needs a positive total and count shares")
	}
	var sum int64
	for _, s := range p.Shares {
		if s <= 0 {
			return errors.New("a share is not positive")
		}
		sum += s
	}
	if sum != p.Total {
		return fmt.Errorf("shares sum to %d, not the total %d", sum, p.Total)
	}
	return nil
}

// takeIdempotencyKey stores (sender, idem.Key) and returns nil, or returns
// the stored response of an earlier call with the same request. An insert
// racing an uncommitted one with the same key waits for it to end.
func takeIdempotencyKey(ctx context.Context, tx pgx.Tx, sender string, idem *Idempotency) ([]byte, error) {
	tag, err := tx.Exec(ctx, `insert into idempotency_keys (sender_id, key, request_hash, response)
		values ($1, $2, $3, $4) on conflict do nothing`, sender, idem.Key, idem.RequestHash, idem.Response)
	if err != nil || tag.RowsAffected() == 1 {
		return nil, err
	}
	var hash, response []byte
	if err := tx.QueryRow(ctx, `select request_hash, response from idempotency_keys where sender_id = $1 and key = $2`,
		sender, idem.Key).Scan(&hash, &response); err != nil {
		return nil, err
	}
	if !bytes.Equal(hash, idem.RequestHash) {
		return nil, fmt.Errorf("%w: key %q", ErrIdempotencyConflict, idem.Key)
	}
	if response == nil {
		response = []byte{}
	}
	return response, nil
}

// insertDebits records debit:<id> for each packet (in id order) and returns
// the packets whose debit is new.
func insertDebits(ctx context.Context, tx pgx.Tx, sender string, packets []Packet) ([]Packet, error) {
	ids, totals := make([]string, len(packets)), make([]int64, len(packets))
	for i, p := range packets {
		ids[i], totals[i] = p.ID, p.Total
	}
	rows, err := tx.Query(ctx, `insert into movements (key, kind, packet_id, user_id, amount)
		select 'debit:' || id, 'debit', id::uuid, $2, total from unnest($1::text[], $3::bigint[]) as u(id, total)
		on conflict do nothing returning packet_id::text`, ids, sender, totals)
	if err != nil {
		return nil, err
	}
	added, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	isNew := map[string]bool{}
	for _, id := range added {
		isNew[id] = true
	}
	var fresh []Packet
	for _, p := range packets {
		if isNew[p.ID] {
			fresh = append(fresh, p)
		}
	}
	return fresh, nil
}

// debitSender takes Σ totals from the sender's wallet in one guarded UPDATE.
func debitSender(ctx context.Context, tx pgx.Tx, sender string, packets []Packet) error {
	var sum int64
	for _, p := range packets {
		sum += p.Total
	}
	tag, err := tx.Exec(ctx, `update accounts set balance = balance - $2, sent_total = sent_total + $2,
			sent_count = sent_count + $3, updated_at = now()
		where id = $1 and balance >= $2`, walletID(sender), sum, len(packets))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s cannot pay %d", ErrInsufficientFunds, walletID(sender), sum)
	}
	return nil
}

// recordPackets writes the packets, their escrow accounts (holding each
// total) and the debits' postings, in one round trip.
func recordPackets(ctx context.Context, tx pgx.Tx, packets []Packet) error {
	b := &pgx.Batch{}
	ids, totals := make([]string, len(packets)), make([]int64, len(packets))
	for i, p := range packets {
		ids[i], totals[i] = p.ID, p.Total
		var rain *string
		if p.RainID != "" {
			rain = &p.RainID
		}
		b.Queue(`insert into packets (id, room, sender_id, sender_name, kind, total, count, greeting,
				created_at, visible_at, expires_at, shares, rain_id, due_at, to_ids, to_names, password, opens_at)
			values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
			p.ID, p.Room, p.SenderID, p.SenderName, p.Kind, p.Total, p.Count, p.Greeting,
			p.CreatedAt, p.VisibleAt, p.ExpiresAt, p.Shares, rain, p.DueAt,
			nonNil(p.To), nonNil(p.ToNames), p.Password, p.OpensAt)
	}
	b.Queue(`insert into accounts (id, kind, owner, balance)
		select 'escrow:' || id, 'escrow', id, total from unnest($1::text[], $2::bigint[]) as u(id, total)`, ids, totals)
	b.Queue(`insert into postings (movement, account, amount)
		select 'debit:' || id, $3, -total from unnest($1::text[], $2::bigint[]) as u(id, total)
		union all
		select 'debit:' || id, 'escrow:' || id, total from unnest($1::text[], $2::bigint[]) as u(id, total)`,
		ids, totals, walletID(packets[0].SenderID))
	return tx.SendBatch(ctx, b).Close()
}

// ForgetIdempotency deletes idempotency keys stored more than olderThan ago
// and returns how many. A retry after that is treated as a new request, so
// keep keys at least as long as clients retry (hongbao: 24 h or more).
func (l *Ledger) ForgetIdempotency(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("ledger: forget idempotency: %w: negative age", ErrInvalid)
	}
	age := pgtype.Interval{Microseconds: olderThan.Microseconds(), Valid: true}
	tag, err := l.pool.Exec(ctx, `delete from idempotency_keys where created_at < now() - $1::interval`, age)
	if err != nil {
		return 0, fmt.Errorf("ledger: forget idempotency: %w", err)
	}
	return tag.RowsAffected(), nil
}

// nonNil is list, or an empty one for nil (the columns are not null).
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Statuses a packet can be finished with.
const (
	StatusOpen    = "open"
	StatusEmpty   = "empty"
	StatusExpired = "expired"
)

// Finish records how a packet ended: status StatusEmpty or StatusExpired, at
// finishedAt (unix ms). Expired refunds whatever its escrow still holds to
// the sender, once (movement refund:<id>), and returns that amount; empty
// refunds nothing. Finish is idempotent: a later call changes nothing and
// returns the first call's refund, whatever status it names.
//
// Commit every claim the packet will ever have before finishing it expired:
// the refund takes what the escrow holds, and claims arriving later are
// rejected (ReasonExceedsEscrow).
func (l *Ledger) Finish(ctx context.Context, id, status string, finishedAt int64) (refunded int64, err error) {
	if status != StatusEmpty && status != StatusExpired {
		return 0, fmt.Errorf("ledger: finish %s: %w: status %q", id, ErrInvalid, status)
	}
	if !validUUID(id) {
		return 0, fmt.Errorf("ledger: finish %s: %w", id, ErrNotFound)
	}
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		var escrow int64
		err := tx.QueryRow(ctx, "select balance from accounts where id = $1 for update", escrowID(id)).Scan(&escrow)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if status == StatusExpired {
			refunded = escrow
		}
		d := FinishedData{PacketID: id, Status: status, Refunded: refunded, FinishedAt: finishedAt}
		err = tx.QueryRow(ctx, `update packets set status = $2, finished_at = $3, refunded = $4
			where id = $1 and status = 'open'
			returning sender_id, room, total, count, (select count(*) from claims where packet_id = $1)`,
			id, status, finishedAt, refunded).Scan(&d.SenderID, &d.Room, &d.Total, &d.Count, &d.ClaimedCount)
		if errors.Is(err, pgx.ErrNoRows) { // finished before
			return tx.QueryRow(ctx, "select coalesce(refunded, 0) from packets where id = $1", id).Scan(&refunded)
		}
		if err != nil {
			return err
		}
		if status == StatusExpired {
			if err := refund(ctx, tx, id, d.SenderID, refunded); err != nil {
				return err
			}
		}
		d.Claimed = d.Total - escrow
		return l.enqueue(ctx, tx, finishedEvents(d, time.Now().UnixMilli()))
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: finish %s: %w", id, err)
	}
	return refunded, nil
}

// refund moves amount (possibly 0: a movement without postings) from the
// packet's escrow, locked by the caller, back to the sender's wallet.
func refund(ctx context.Context, tx pgx.Tx, id, sender string, amount int64) error {
	b := &pgx.Batch{}
	b.Queue(`insert into movements (key, kind, packet_id, user_id, amount) values ($1, 'refund', $2, $3, $4)`,
		refundKey(id), id, sender, amount)
	if amount > 0 {
		b.Queue(`insert into postings (movement, account, amount) values ($1, $2, -$4::bigint), ($1, $3, $4)`,
			refundKey(id), escrowID(id), walletID(sender), amount)
		b.Queue(`update accounts set balance = balance - $2, updated_at = now() where id = $1`, escrowID(id), amount)
		b.Queue(`update accounts set balance = balance + $2, refunded = refunded + $2, updated_at = now() where id = $1`,
			walletID(sender), amount)
	}
	return tx.SendBatch(ctx, b).Close()
}

// MarkSettled records that nothing is left to do for a finished packet whose
// escrow is empty, which takes it out of Snapshot and ClaimDue. A packet
// still open, or whose escrow holds money (claims still to commit), is
// ErrNotSettled; an unknown one ErrNotFound. Marking twice is fine.
func (l *Ledger) MarkSettled(ctx context.Context, id string) error {
	if !validUUID(id) {
		return fmt.Errorf("ledger: mark settled %s: %w", id, ErrNotFound)
	}
	tag, err := l.pool.Exec(ctx, `update packets p set settled_at = now() from accounts a
		where p.id = $1 and a.id = 'escrow:' || p.id and p.status <> 'open' and a.balance = 0 and p.settled_at is null`, id)
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	var status string
	var settled bool
	var escrow int64
	err = l.pool.QueryRow(ctx, `select p.status, p.settled_at is not null, coalesce(a.balance, 0)
		from packets p left join accounts a on a.id = 'escrow:' || p.id where p.id = $1`, id).Scan(&status, &settled, &escrow)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("ledger: mark settled %s: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("ledger: mark settled %s: %w", id, err)
	case settled:
		return nil
	}
	return fmt.Errorf("ledger: mark settled %s: %w: status %s, escrow %d", id, ErrNotSettled, status, escrow)
}

// ClaimDue leases up to limit unsettled packets whose due_at has come (at
// nowMs), earliest first, to the caller: their due_at moves to nowMs+lease,
// so no other ClaimDue returns them until the lease runs out. Concurrent
// callers skip each other's rows (FOR NO KEY UPDATE SKIP LOCKED) rather than
// wait; Settle, which only key-share-locks packets, never waits for them.
func (l *Ledger) ClaimDue(ctx context.Context, nowMs int64, lease time.Duration, limit int) ([]string, error) {
	if lease < time.Millisecond || limit <= 0 {
		return nil, fmt.Errorf("ledger: claim due: %w: need a lease of 1 ms or more and a positive limit", ErrInvalid)
	}
	rows, err := l.pool.Query(ctx, `update packets set due_at = $1 + $2 where id in (
			select id from packets where settled_at is null and due_at <= $1
			order by due_at, id limit $3 for no key update skip locked)
		returning id::text`, nowMs, lease.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: claim due: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger: claim due: %w", err)
	}
	return ids, nil
}

// Schedule sets when the sweeper next looks at packet id (unix ms).
func (l *Ledger) Schedule(ctx context.Context, id string, atMs int64) error {
	return l.setDue(ctx, "schedule", id, atMs, "$2")
}

// ScheduleSooner moves packet id's due time to atMs if that is earlier.
func (l *Ledger) ScheduleSooner(ctx context.Context, id string, atMs int64) error {
	return l.setDue(ctx, "schedule sooner", id, atMs, "least(due_at, $2)")
}

func (l *Ledger) setDue(ctx context.Context, op, id string, atMs int64, expr string) error {
	if !validUUID(id) {
		return fmt.Errorf("ledger: %s %s: %w", op, id, ErrNotFound)
	}
	tag, err := l.pool.Exec(ctx, "update packets set due_at = "+expr+" where id = $1", id, atMs)
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("ledger: %s %s: %w", op, id, err)
	}
	return nil
}

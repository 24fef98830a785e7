package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RecordRefused keeps claims that Settle rejected, once each, so that every
// later Snapshot reports them until an operator resolves them. A winner
// told about such a claim is owed money the ledger could not pay: that must
// never pass an audit silently.
func (l *Ledger) RecordRefused(ctx context.Context, rejected []Rejection) error {
	if len(rejected) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, r := range rejected {
		c := r.Claim
		batch.Queue(`insert into refused_claims (packet_id, user_id, user_name, seq, amount, at, reason)
			values ($1::uuid, $2, $3, $4, $5, $6, $7) on conflict do nothing`,
			c.PacketID, c.UserID, c.UserName, c.Seq, c.Amount, c.At, r.Reason)
	}
	if err := l.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("ledger: record refused claims: %w", err)
	}
	return nil
}

// readRefused reports every refused claim not yet resolved.
func readRefused(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	rows, err := tx.Query(ctx, `select packet_id::text, user_id, seq, amount, reason from refused_claims
		where resolved_at is null order by refused_at`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var packet, user, reason string
		var seq int
		var amount int64
		if err := rows.Scan(&packet, &user, &seq, &amount, &reason); err != nil {
			return err
		}
		s.problem("packet %s: user %s claimed %d fen at position %d in Redis, refused by the ledger (%s): owed, unpaid, unresolved",
			packet, user, amount, seq, reason)
	}
	return rows.Err()
}

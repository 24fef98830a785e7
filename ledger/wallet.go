package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// WalletAndCommitted returns userID's wallet and, for each of packetIDs,
// whether the user's claim on it is committed, both read at one instant. A
// caller that adds the claims still on their way to the balance thus counts
// each claim exactly once: in the balance or as on its way, never both or
// neither.
func (l *Ledger) WalletAndCommitted(ctx context.Context, userID string, packetIDs []string) (Wallet, map[string]bool, error) {
	var w Wallet
	done := make(map[string]bool, len(packetIDs))
	var valid []string
	for _, id := range packetIDs {
		done[id] = false
		if validUUID(id) {
			valid = append(valid, id)
		}
	}
	err := l.readTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `select balance, funded, received_total, received_count, sent_total, sent_count, refunded
			from accounts where id = $1`, walletID(userID)).
			Scan(&w.Balance, &w.Funded, &w.ReceivedTotal, &w.ReceivedCount, &w.SentTotal, &w.SentCount, &w.Refunded)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, err := tx.Query(ctx, `select packet_id::text from claims where user_id = $1 and packet_id = any($2::uuid[])`, userID, valid)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range ids {
			done[id] = true
		}
		return err
	})
	if err != nil {
		return Wallet{}, nil, fmt.Errorf("ledger: wallet %s: %w", userID, err)
	}
	return w, done, nil
}

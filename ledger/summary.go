package ledger

import (
	"context"
	"fmt"
)

// Totals is a sum of fen and how many items made it.
type Totals struct {
	Total, Count int64
}

// Summary is what a user sent, received and had refunded in a period.
type Summary struct {
	Sent, Received, Refunded Totals
}

// Summary adds up userID's money in [from, to) (unix ms): packets sent by
// their creation time, committed claims by their grab time, and refunds of
// more than nothing by the time their packet finished. Each sum walks one
// index by user and time (packets_sender, claims_user, packets_refunded).
func (l *Ledger) Summary(ctx context.Context, userID string, from, to int64) (Summary, error) {
	var s Summary
	err := l.pool.QueryRow(ctx, `select
			(select coalesce(sum(total), 0)::bigint from packets where sender_id = $1 and created_at >= $2 and created_at < $3),
			(select count(*) from packets where sender_id = $1 and created_at >= $2 and created_at < $3),
			(select coalesce(sum(amount), 0)::bigint from claims where user_id = $1 and at >= $2 and at < $3),
			(select count(*) from claims where user_id = $1 and at >= $2 and at < $3),
			(select coalesce(sum(refunded), 0)::bigint from packets
				where sender_id = $1 and refunded > 0 and finished_at >= $2 and finished_at < $3),
			(select count(*) from packets
				where sender_id = $1 and refunded > 0 and finished_at >= $2 and finished_at < $3)`,
		userID, from, to).Scan(&s.Sent.Total, &s.Sent.Count, &s.Received.Total, &s.Received.Count,
		&s.Refunded.Total, &s.Refunded.Count)
	if err != nil {
		return Summary{}, fmt.Errorf("ledger: summary %s: %w", userID, err)
	}
	return s, nil
}

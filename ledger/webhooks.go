package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Webhook event types. With Config.Webhooks, each is written to the
// webhook_outbox table in the transaction that makes its change, once: the
// change itself happens once (its movement key), and the event id, derived
// from that key, is the outbox's primary key besides.
const (
	// EventPacketCreated: a packet's debit committed (Open).
	EventPacketCreated = "packet.created"
	// EventClaimSettled: a claim committed to the winner's wallet (Settle).
	EventClaimSettled = "claim.settled"
	// EventPacketFinished: a packet ended, empty or expired (Finish).
	EventPacketFinished = "packet.finished"
	// EventPacketRefunded: an expired packet's remainder went back to its
	// sender (Finish); not sent when nothing was left.
	EventPacketRefunded = "packet.refunded"
)

// event is one webhook event as POSTed. Amounts are fen; times unix ms.
type event struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	CreatedAt int64  `json:"created_at"`
	Data      any    `json:"data"`
}

// CreatedData is the data of a packet.created event.
type CreatedData struct {
	PacketID   string `json:"packet_id"`
	Room       string `json:"room"`
	SenderID   string `json:"sender_id"`
	SenderName string `json:"sender_name"`
	Kind       string `json:"kind"`
	Total      int64  `json:"total"`
	Count      int    `json:"count"`
	Greeting   string `json:"greeting"`
	CreatedAt  int64  `json:"created_at"`
	ExpiresAt  int64  `json:"expires_at"`
	RainID     string `json:"rain_id,omitempty"`
}

// SettledData is the data of a claim.settled event: the Seq-th share of the
// packet, Amount fen, credited to UserID; Remaining is what the packet's
// escrow holds after this claim.
type SettledData struct {
	PacketID  string `json:"packet_id"`
	Room      string `json:"room"`
	SenderID  string `json:"sender_id"`
	UserID    string `json:"user_id"`
	UserName  string `json:"user_name"`
	Seq       int    `json:"seq"`
	Amount    int64  `json:"amount"`
	At        int64  `json:"at"`
	Remaining int64  `json:"remaining"`
}

// FinishedData is the data of packet.finished (Status empty or expired) and
// of packet.refunded (Refunded > 0, returned to SenderID).
type FinishedData struct {
	PacketID     string `json:"packet_id"`
	Room         string `json:"room"`
	SenderID     string `json:"sender_id"`
	Status       string `json:"status"`
	Total        int64  `json:"total"`
	Count        int    `json:"count"`
	Claimed      int64  `json:"claimed"`
	ClaimedCount int    `json:"claimed_count"`
	Refunded     int64  `json:"refunded"`
	FinishedAt   int64  `json:"finished_at"`
}

// enqueue writes events to the outbox in tx, skipping ids already there.
// It does nothing unless the ledger was opened with Config.Webhooks.
func (l *Ledger) enqueue(ctx context.Context, tx pgx.Tx, events []event) error {
	if !l.webhooks || len(events) == 0 {
		return nil
	}
	ids, types, bodies := make([]string, len(events)), make([]string, len(events)), make([][]byte, len(events))
	for i, e := range events {
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("webhook event %s: %w", e.ID, err)
		}
		ids[i], types[i], bodies[i] = e.ID, e.Type, body
	}
	_, err := tx.Exec(ctx, `insert into webhook_outbox (id, type, body)
		select * from unnest($1::text[], $2::text[], $3::bytea[]) on conflict do nothing`, ids, types, bodies)
	return err
}

func createdEvents(packets []Packet, now int64) []event {
	events := make([]event, len(packets))
	for i, p := range packets {
		events[i] = event{ID: EventPacketCreated + ":" + p.ID, Type: EventPacketCreated, CreatedAt: now, Data: CreatedData{
			PacketID: p.ID, Room: p.Room, SenderID: p.SenderID, SenderName: p.SenderName, Kind: p.Kind,
			Total: p.Total, Count: p.Count, Greeting: p.Greeting, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt, RainID: p.RainID,
		}}
	}
	return events
}

// settledEvents describes fresh claims, in the order Settle took them from
// the locked escrows.
func settledEvents(fresh []Claim, escrows map[string]escrowState, now int64) []event {
	left := map[string]int64{}
	for id, e := range escrows {
		left[id] = e.balance
	}
	events := make([]event, len(fresh))
	for i, c := range fresh {
		left[c.PacketID] -= c.Amount
		e := escrows[c.PacketID]
		events[i] = event{ID: fmt.Sprintf("%s:%s:%d", EventClaimSettled, c.PacketID, c.Seq), Type: EventClaimSettled, CreatedAt: now, Data: SettledData{
			PacketID: c.PacketID, Room: e.room, SenderID: e.sender, UserID: c.UserID, UserName: c.UserName,
			Seq: c.Seq, Amount: c.Amount, At: c.At, Remaining: left[c.PacketID],
		}}
	}
	return events
}

// finishedEvents describes a packet Finish just ended: packet.finished, and
// packet.refunded when money went back.
func finishedEvents(d FinishedData, now int64) []event {
	events := []event{{ID: EventPacketFinished + ":" + d.PacketID, Type: EventPacketFinished, CreatedAt: now, Data: d}}
	if d.Refunded > 0 {
		events = append(events, event{ID: EventPacketRefunded + ":" + d.PacketID, Type: EventPacketRefunded, CreatedAt: now, Data: d})
	}
	return events
}

// Webhook is an outbox event leased to a dispatcher: Attempt is this POST's
// number, from 1.
type Webhook struct {
	ID, Type  string
	Body      []byte
	Attempt   int
	CreatedAt time.Time
}

// LeaseWebhooks takes up to limit due events, oldest first, for lease: no
// other LeaseWebhooks returns them until the lease runs out, so a dispatcher
// that dies holding one only delays it. Concurrent callers skip each other's
// rows (FOR UPDATE SKIP LOCKED). Each lease counts as an attempt.
func (l *Ledger) LeaseWebhooks(ctx context.Context, lease time.Duration, limit int) ([]Webhook, error) {
	if lease < time.Millisecond || limit <= 0 {
		return nil, fmt.Errorf("ledger: lease webhooks: %w: need a lease of 1 ms or more and a positive limit", ErrInvalid)
	}
	rows, err := l.pool.Query(ctx, `update webhook_outbox set next_at = now() + $1::interval, attempts = attempts + 1
		where id in (select id from webhook_outbox where dead_at is null and next_at <= now()
			order by next_at, id limit $2 for update skip locked)
		returning id, type, body, attempts, created_at`, interval(lease), limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: lease webhooks: %w", err)
	}
	var out []Webhook
	var w Webhook
	_, err = pgx.ForEachRow(rows, []any{&w.ID, &w.Type, &w.Body, &w.Attempt, &w.CreatedAt}, func() error {
		out = append(out, w)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: lease webhooks: %w", err)
	}
	return out, nil
}

// WebhookDelivered removes an acknowledged event from the outbox, whoever
// holds its lease now: it has been delivered.
func (l *Ledger) WebhookDelivered(ctx context.Context, id string) error {
	if _, err := l.pool.Exec(ctx, "delete from webhook_outbox where id = $1", id); err != nil {
		return fmt.Errorf("ledger: webhook delivered %s: %w", id, err)
	}
	return nil
}

// WebhookFailed records that attempt of event id failed with reason: it is
// due again after retryIn, or, when dead, never again (kept, with dead_at
// set, for an operator). A lease taken since (a later attempt) wins: then
// nothing changes.
func (l *Ledger) WebhookFailed(ctx context.Context, id string, attempt int, reason string, retryIn time.Duration, dead bool) error {
	_, err := l.pool.Exec(ctx, `update webhook_outbox set next_at = now() + $3::interval, last_error = $4,
			dead_at = case when $5 then now() end
		where id = $1 and attempts = $2`, id, attempt, interval(retryIn), reason, dead)
	if err != nil {
		return fmt.Errorf("ledger: webhook failed %s: %w", id, err)
	}
	return nil
}

// WebhookQueue describes the outbox: events waiting (leased or not), the
// age of the oldest of them, and dead events.
type WebhookQueue struct {
	Waiting int64
	Oldest  time.Duration
	Dead    int64
}

// WebhookQueue reads the outbox's depth.
func (l *Ledger) WebhookQueue(ctx context.Context) (WebhookQueue, error) {
	var q WebhookQueue
	var oldestMs int64
	err := l.pool.QueryRow(ctx, `select count(*) filter (where dead_at is null),
			coalesce((extract(epoch from now() - min(created_at) filter (where dead_at is null)) * 1000)::bigint, 0),
			count(*) filter (where dead_at is not null)
		from webhook_outbox`).Scan(&q.Waiting, &oldestMs, &q.Dead)
	if err != nil {
		return q, fmt.Errorf("ledger: webhook queue: %w", err)
	}
	q.Oldest = time.Duration(oldestMs) * time.Millisecond
	return q, nil
}

func interval(d time.Duration) pgtype.Interval {
	return pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
}

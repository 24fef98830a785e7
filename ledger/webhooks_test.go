package ledger

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/pgtest"
)

// webhookLedger is a migrated ledger on a fresh database that writes
// webhook events.
func webhookLedger(t *testing.T) *Ledger {
	t.Helper()
	ctx := context.Background()
	l, err := Open(ctx, pgtest.New(t), Config{MaxConns: 8, Logger: slog.New(slog.DiscardHandler), Webhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return l
}

type outboxEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt int64           `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// outbox reads every event waiting in l's outbox, by id.
func outbox(t *testing.T, l *Ledger) map[string]outboxEvent {
	t.Helper()
	rows, err := l.pool.Query(context.Background(), "select body from webhook_outbox")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]outboxEvent{}
	for rows.Next() {
		var body []byte
		var e outboxEvent
		if err := rows.Scan(&body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("outbox body %s: %v", body, err)
		}
		out[e.ID] = e
	}
	return out
}

// Every money change writes its event once, with its amounts, and replays
// write nothing more; a ledger without Webhooks writes none.
func TestWebhookEventsFollowTheLedger(t *testing.T) {
	ctx := context.Background()
	l := webhookLedger(t)
	mustFund(t, l, "s", 1000)
	full, left := newPacket("s", "room", 100, 200), newPacket("s", "room", 50, 70)
	mustOpen(t, l, full, left)
	mustOpen(t, l, full) // replay
	claims := append(claimsOf(full, "a", "b"), claimsOf(left, "a")...)
	mustSettle(t, l, claims)
	mustSettle(t, l, claims) // replay
	if _, err := l.Finish(ctx, full.ID, StatusEmpty, 1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r, err := l.Finish(ctx, left.ID, StatusExpired, 2); err != nil || r != 70 {
			t.Fatalf("finish expired: refund %d, %v; want 70", r, err)
		}
	}

	events := outbox(t, l)
	var ids []string
	for id := range events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	want := []string{
		"claim.settled:" + full.ID + ":1", "claim.settled:" + full.ID + ":2", "claim.settled:" + left.ID + ":1",
		"packet.created:" + full.ID, "packet.created:" + left.ID,
		"packet.finished:" + full.ID, "packet.finished:" + left.ID,
		"packet.refunded:" + left.ID,
	}
	sort.Strings(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("outbox ids:\n%v\nwant\n%v", ids, want)
	}
	var settled SettledData
	if err := json.Unmarshal(events["claim.settled:"+full.ID+":2"].Data, &settled); err != nil {
		t.Fatal(err)
	}
	if settled.UserID != "b" || settled.Amount != 200 || settled.Remaining != 0 || settled.Room != "room" || settled.SenderID != "s" {
		t.Fatalf("claim.settled data %+v", settled)
	}
	var refunded FinishedData
	if err := json.Unmarshal(events["packet.refunded:"+left.ID].Data, &refunded); err != nil {
		t.Fatal(err)
	}
	want2 := FinishedData{PacketID: left.ID, Room: "room", SenderID: "s", Status: StatusExpired, Total: 120, Count: 2,
		Claimed: 50, ClaimedCount: 1, Refunded: 70, FinishedAt: 2}
	if refunded != want2 {
		t.Fatalf("packet.refunded data %+v, want %+v", refunded, want2)
	}
	assertClean(t, l)

	plain := newLedger(t)
	mustFund(t, plain, "s", 100)
	mustOpen(t, plain, newPacket("s", "room", 100))
	if n := count(t, plain, "select count(*) from webhook_outbox"); n != 0 {
		t.Fatalf("a ledger without webhooks queued %d events", n)
	}
}

// A lease hides an event from other dispatchers until it runs out; a failure
// reschedules it (unless a newer lease holds it), and a delivery removes it.
func TestWebhookLeases(t *testing.T) {
	ctx := context.Background()
	l := webhookLedger(t)
	mustFund(t, l, "s", 1000)
	p := newPacket("s", "room", 100)
	mustOpen(t, l, p)

	first, err := l.LeaseWebhooks(ctx, 300*time.Millisecond, 10)
	if err != nil || len(first) != 1 || first[0].Attempt != 1 || first[0].Type != EventPacketCreated {
		t.Fatalf("first lease: %+v, %v", first, err)
	}
	if again, err := l.LeaseWebhooks(ctx, time.Minute, 10); err != nil || len(again) != 0 {
		t.Fatalf("a leased event was leased again: %+v, %v", again, err)
	}
	var second []Webhook
	deadline := time.Now().Add(10 * time.Second)
	for len(second) == 0 && time.Now().Before(deadline) {
		if second, err = l.LeaseWebhooks(ctx, time.Minute, 10); err != nil {
			t.Fatal(err)
		}
	}
	if len(second) != 1 || second[0].Attempt != 2 || string(second[0].Body) != string(first[0].Body) {
		t.Fatalf("after the lease ran out: %+v", second)
	}
	// The first dispatcher's late failure does not shorten the second's lease.
	if err := l.WebhookFailed(ctx, first[0].ID, 1, "late", 0, false); err != nil {
		t.Fatal(err)
	}
	if again, _ := l.LeaseWebhooks(ctx, time.Minute, 10); len(again) != 0 {
		t.Fatalf("a stale failure released the event: %+v", again)
	}
	if err := l.WebhookFailed(ctx, first[0].ID, 2, "status 500", 0, true); err != nil {
		t.Fatal(err)
	}
	q, err := l.WebhookQueue(ctx)
	if err != nil || q.Waiting != 0 || q.Dead != 1 {
		t.Fatalf("queue after a dead event: %+v, %v", q, err)
	}
	if again, _ := l.LeaseWebhooks(ctx, time.Minute, 10); len(again) != 0 {
		t.Fatalf("a dead event was leased: %+v", again)
	}
	if err := l.WebhookDelivered(ctx, first[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := count(t, l, "select count(*) from webhook_outbox"); n != 0 {
		t.Fatalf("%d events left after delivery", n)
	}
}

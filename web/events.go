package web

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/packet"
)

// The server → client frames of protocol v1 (docs/protocol.md). Each is
// encoded once and published to the room; the hub hands the same bytes to
// every member.

type packetEvent struct {
	Type   string      `json:"type"`
	Packet packetState `json:"packet"`
}

// packetState is a packet object with its live state, as the REST API and
// the packet event show it.
type packetState struct {
	packet.State
	GrabbedByMe *int64 `json:"grabbed_by_me,omitempty"`
}

// grabbedEvent is one grab batch of a packet: every share it granted, in
// grab order, and what is left after it. packet_id and remaining come
// first, for the progress throttle.
type grabbedEvent struct {
	Type      string     `json:"type"`
	PacketID  string     `json:"packet_id"`
	Remaining int        `json:"remaining"`
	Grabs     []grabJSON `json:"grabs"`
}

type grabJSON struct {
	User   packet.User `json:"user"`
	Amount int64       `json:"amount"`
}

type luckiest struct {
	User   packet.User `json:"user"`
	Amount int64       `json:"amount"`
}

// finishedEvent closes a packet for its room. It replaces the packet's last
// progress frame (progress.go drops a pending one), so it carries the final
// remaining count: 0 for an emptied packet, the shares left for an expired
// one. Remaining is nil only when the server could not read an expired
// packet's claims; the field is then left out.
type finishedEvent struct {
	Type       string    `json:"type"`
	PacketID   string    `json:"packet_id"`
	Reason     string    `json:"reason"`
	Remaining  *int      `json:"remaining,omitempty"`
	DurationMs *int64    `json:"duration_ms"`
	Luckiest   *luckiest `json:"luckiest"`
}

// emptiedEvent is the finished event of a packet whose last share was
// taken durationMs after it became visible.
func emptiedEvent(packetID string, durationMs int64, l *luckiest) finishedEvent {
	none := 0
	return finishedEvent{Type: "finished", PacketID: packetID, Reason: "empty", Remaining: &none, DurationMs: &durationMs, Luckiest: l}
}

type chatEvent struct {
	Type string      `json:"type"`
	ID   string      `json:"id"`
	User packet.User `json:"user"`
	Text string      `json:"text"`
	At   int64       `json:"at"`
}

type rainEvent struct {
	Type string `json:"type"`
	Rain rain   `json:"rain"`
}

type welcomeEvent struct {
	Type       string      `json:"type"`
	User       packet.User `json:"user"`
	Room       string      `json:"room"`
	ServerTime int64       `json:"server_time"`
	// Seq and Epoch are the room's position when this connection joined.
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
	// Recovered is set when the client gave since=: whether every durable
	// event it missed follows (true) or a resync frame does (false).
	Recovered *bool `json:"recovered,omitempty"`
}

type resultEvent struct {
	Type      string       `json:"type"`
	Ref       string       `json:"ref"`
	OK        bool         `json:"ok"`
	PacketID  string       `json:"packet_id,omitempty"`
	Amount    *int64       `json:"amount,omitempty"`
	Remaining *int         `json:"remaining,omitempty"`
	Error     *ErrorObject `json:"error,omitempty"`
}

type errorEvent struct {
	Type  string      `json:"type"`
	Error ErrorObject `json:"error"`
}

func luckiestOf(c *packet.Claim) *luckiest {
	if c == nil {
		return nil
	}
	return &luckiest{User: c.User, Amount: c.Amount}
}

// publish encodes ev once and sends it to every member of room on every
// instance, and returns why it could not. A failed publish is logged; a
// packet, rain or finished event is retried in the background (republish),
// a chat is refused to its sender, and an ephemeral event is lost to live
// clients, who reload that state over REST; the money is settled either way.
//
// packet, rain, finished and chat events are durable: the hub numbers them
// and keeps them in the room's history, so a client that reconnects gets
// what it missed; chat is also kept among the room's recent frames that
// every joiner gets. The others (grabbed, progress, presence) are state a
// client reloads.
func (a *App) publish(ctx context.Context, room string, ev any) error {
	frame, err := json.Marshal(ev)
	if err != nil {
		a.log.Error("encode event", "err", err)
		return err
	}
	ctx = context.WithoutCancel(ctx)
	switch ev.(type) {
	case packetEvent, rainEvent, finishedEvent:
		if _, err = a.hub.PublishDurable(ctx, room, frame, hub.DurableOptions{}); err != nil {
			a.republish(room, frame, hub.DurableOptions{})
		}
	case chatEvent:
		// Not retried: the sender is told, and sends again.
		_, err = a.hub.PublishDurable(ctx, room, frame, hub.DurableOptions{Keep: true})
	default:
		err = a.hub.Publish(ctx, room, frame)
	}
	if err != nil {
		a.log.Warn("publish event failed", "room", room, "err", err)
	}
	return err
}

// announce publishes a packet's drop to its room.
func (a *App) announce(ctx context.Context, p *packet.Packet) {
	st := packet.State{Packet: *p, Status: packet.StatusActive, RemainingCount: p.Count, RemainingAmount: p.Total}
	a.publish(ctx, p.Room, packetEvent{Type: "packet", Packet: packetState{State: st}})
}

// SweepHooks are the App's handlers for what the sweeper did; pass them to
// packet.Store.RunSweeper.
func (a *App) SweepHooks() packet.SweepHooks {
	return packet.SweepHooks{OnExpired: a.OnExpired, OnOpened: a.OnOpened}
}

// OnOpened tells a packet's room about a packet whose create the sweeper
// finished (its creating request failed after the debit).
func (a *App) OnOpened(p packet.Packet) {
	// A countdown packet is shown at once, counting down; a rain's drop
	// when it becomes visible.
	if time.Now().UnixMilli() >= p.VisibleAt || p.OpensAt != 0 {
		a.announce(context.Background(), &p)
		return
	}
	a.announceAt(&p)
}

// OnExpired tells a packet's room that the sweeper closed it, and its
// sender, on every connection, what came back (mine.go).
func (a *App) OnExpired(f packet.Finished) {
	ctx := context.Background()
	a.publish(ctx, f.Packet.Room, finishedEvent{
		Type: "finished", PacketID: f.Packet.ID, Reason: "expired", Remaining: a.sharesLeft(ctx, &f.Packet),
		Luckiest: luckiestOf(f.Luckiest),
	})
	a.tellRefunded(f)
}

// sharesLeft counts the shares nobody took of a packet that expired (its
// claims are final), or returns nil if its claims cannot be read.
func (a *App) sharesLeft(ctx context.Context, p *packet.Packet) *int {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.GrabTimeout)
	defer cancel()
	d, err := a.store.Detail(ctx, p.ID)
	if err != nil {
		a.log.Warn("reading an expired packet's claims failed; its finished event goes without remaining", "packet", p.ID, "err", err)
		return nil
	}
	left := p.Count - len(d.Claims)
	return &left
}

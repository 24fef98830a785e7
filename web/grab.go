package web

import (
	"context"
	"time"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// grab settles one grab (with the phrase of a password packet, or ""), whether it came over REST or WebSocket.
// The room hears of it from OnGrabs, once per grab batch. The grab runs to
// completion even if the caller goes away, so a client that disconnects
// mid-grab still gets its money.
func (a *App) grab(ctx context.Context, u packet.User, packetID, password string) (packet.GrabResult, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.GrabTimeout)
	defer cancel()
	g, err := a.store.GrabWithPassword(ctx, packetID, u, password)
	result := "ok"
	if err != nil {
		if result, _ = apierr.Describe(err); result == "" {
			result = "error"
		}
	}
	a.metrics.grab(result, start)
	return g, err
}

// OnGrabs tells a packet's room about one grab batch: one grabbed event
// naming every grab of the batch, and a finished event when the batch took
// the last share. Pass it as packet.Config.OnGrabs. The store calls it
// before the batch's grabbers are answered, so a grabber's own grabbed
// event is published before its result.
func (a *App) OnGrabs(ctx context.Context, b packet.GrabBatch) {
	ev := grabbedEvent{Type: "grabbed", PacketID: b.PacketID, Remaining: b.Remaining, Grabs: make([]grabJSON, len(b.Grabs))}
	for i, g := range b.Grabs {
		ev.Grabs[i] = grabJSON{User: g.User, Amount: g.Amount}
	}
	a.publish(ctx, b.Room, ev)
	if b.Emptied {
		a.publish(ctx, b.Room, emptiedEvent(b.PacketID, b.DurationMs, luckiestOf(b.Luckiest)))
	}
}

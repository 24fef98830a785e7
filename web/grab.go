package web

import (
	"context"
	"time"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// grab settles one grab (with the phrase of a password packet, or ""), whether it came over REST or WebSocket, and tells
// the room: a grabbed event, and a finished event when it took the last share.
// The grab runs to completion even if the caller goes away, so a client that
// disconnects mid-grab still gets its money.
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
	if err != nil {
		return g, err
	}
	a.publish(ctx, g.Room, grabbedEvent{Type: "grabbed", PacketID: g.PacketID, User: u, Amount: g.Amount, Remaining: g.Remaining})
	if g.Emptied {
		var l *luckiest
		if d, err := a.store.Detail(ctx, g.PacketID); err == nil {
			l = luckiestOf(d.Luckiest)
		}
		a.publish(ctx, g.Room, emptiedEvent(g.PacketID, g.DurationMs, l))
	}
	return g, nil
}

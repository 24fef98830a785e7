package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/packet"
)

// "My red packets": what a user sent, their yearly totals, and the refunded
// event that tells a sender, wherever they are connected, that an expired
// packet's remainder came back.

// refundedEvent goes to every connection of a packet's sender (hub
// PublishUser), not to a room; it is ephemeral, like grabbed.
type refundedEvent struct {
	Type     string `json:"type"`
	PacketID string `json:"packet_id"`
	Room     string `json:"room"`
	Amount   int64  `json:"amount"`
	At       int64  `json:"at"`
}

// tellRefunded sends a refunded event to the sender of a packet the
// sweeper closed with money left in it. A sender who is not connected (or
// whose instance misses it) sees the refund in /me and /me/packets.
func (a *App) tellRefunded(f packet.Finished) {
	if f.Refunded <= 0 {
		return
	}
	frame, err := json.Marshal(refundedEvent{Type: "refunded", PacketID: f.Packet.ID, Room: f.Packet.Room,
		Amount: f.Refunded, At: time.Now().UnixMilli()})
	if err != nil {
		a.log.Error("encode event", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.GrabTimeout)
	defer cancel()
	if err := a.hub.PublishUser(ctx, f.Packet.Sender.ID, frame); err != nil {
		a.log.Warn("publish refunded event failed", "packet", f.Packet.ID, "err", err)
	}
}

// sentPacket is a packet object with its live state, as /me/packets lists
// it: Refunded is set once it has finished (0 for one emptied).
type sentPacket struct {
	packetState
	Refunded *int64 `json:"refunded,omitempty"`
}

// myPackets lists the packets the user sent, newest first, paged like
// /me/claims.
func (a *App) myPackets(c echo.Context) error {
	limit, err := limitParam(c, 20, 100)
	if err != nil {
		return err
	}
	list, next, err := a.store.SentPackets(c.Request().Context(), userOf(c).ID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	out := make([]sentPacket, len(list))
	for i, p := range list {
		out[i] = sentPacket{packetState: packetState{State: p.State, GrabbedByMe: p.Mine}}
		if p.Status != packet.StatusActive {
			out[i].Refunded = &list[i].Refunded
		}
	}
	if next != "" {
		c.Response().Header().Set("X-Next-Cursor", next)
	}
	return c.JSON(http.StatusOK, out)
}

// mySummary is the user's totals for ?year= (default: this UTC year).
func (a *App) mySummary(c echo.Context) error {
	year := time.Now().UTC().Year()
	if s := c.QueryParam("year"); s != "" {
		y, err := strconv.Atoi(s)
		if err != nil || len(s) != 4 || y < 1970 {
			return invalid("year must be a four-digit year from 1970, got %q", s)
		}
		year = y
	}
	sum, err := a.store.Summary(c.Request().Context(), userOf(c).ID, year)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sum)
}

package web

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/labstack/echo/v4"
)

// A rain (红包雨) is many packets dropped over a few seconds. The room gets
// the whole schedule up front in one rain event, so every client on every
// instance drops the packets in sync without depending on any server timer;
// each packet's visible_at is enforced by the grab script itself. As a
// courtesy the creating instance also announces each packet as it drops.

type rain struct {
	ID             string      `json:"id"`
	Sender         packet.User `json:"sender"`
	Greeting       string      `json:"greeting"`
	StartsAt       int64       `json:"starts_at"`
	EndsAt         int64       `json:"ends_at"`
	TotalPerPacket int64       `json:"total_per_packet"`
	CountPerPacket int         `json:"count_per_packet"`
	Packets        []rainDrop  `json:"packets"`
}

type rainDrop struct {
	ID        string `json:"id"`
	VisibleAt int64  `json:"visible_at"`
}

type rainRequest struct {
	Packets         number  `json:"packets"`
	TotalPerPacket  number  `json:"total_per_packet"`
	CountPerPacket  number  `json:"count_per_packet"`
	DurationSeconds number  `json:"duration_seconds"`
	Greeting        *string `json:"greeting"`
}

func (a *App) createRain(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req rainRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	n, err := count(req.Packets, "packets", packet.ErrInvalidCount)
	if err != nil {
		return err
	}
	if n < 1 || n > a.cfg.MaxRainPackets {
		return packet.Refuse(packet.ErrInvalidCount, "a rain has 1 to %d packets, got %d", a.cfg.MaxRainPackets, n)
	}
	perTotal, err := fen(req.TotalPerPacket, "total_per_packet", packet.ErrInvalidAmount)
	if err != nil {
		return err
	}
	perCount, err := count(req.CountPerPacket, "count_per_packet", packet.ErrInvalidCount)
	if err != nil {
		return err
	}
	secs, err := count(req.DurationSeconds, "duration_seconds", packet.ErrInvalidRequest)
	if err != nil {
		return err
	}
	duration := time.Duration(secs) * time.Second
	if duration < time.Second || duration > a.cfg.MaxRainDuration {
		return invalid("duration_seconds must be from 1 to %d", int(a.cfg.MaxRainDuration.Seconds()))
	}
	if err := a.store.Limits().Check(packet.Lucky, perTotal, perCount); err != nil {
		return err
	}
	greeting := greetingOf(req.Greeting)
	u := userOf(c)
	ctx := c.Request().Context()
	// A friendly early refusal; the debit of each packet is what really guards the money.
	if w, err := a.store.Wallet(ctx, u.ID); err == nil && w.Balance < int64(n)*perTotal {
		return packet.Refuse(packet.ErrInsufficientFunds, "this rain needs ¥%s, the wallet holds ¥%s",
			packet.FormatYuan(int64(n)*perTotal), packet.FormatYuan(w.Balance))
	}

	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	start := time.Now().Add(a.cfg.RainLead)
	r := rain{
		ID: id.String(), Sender: u, Greeting: greeting,
		StartsAt: start.UnixMilli(), EndsAt: start.Add(duration).UnixMilli(),
		TotalPerPacket: perTotal, CountPerPacket: perCount,
	}
	var created []*packet.Packet
	var createErr error
	for i := 0; i < n; i++ {
		// Evenly spaced over the duration, the first at the start.
		visible := start.Add(duration * time.Duration(i) / time.Duration(n))
		p, err := a.store.Create(ctx, packet.CreateRequest{
			Room: room, Sender: u, Kind: packet.Lucky, Total: perTotal, Count: perCount,
			Greeting: greeting, VisibleAt: visible, TTL: a.cfg.RainTTL,
		})
		if err != nil {
			createErr = err
			break
		}
		a.metrics.packet("rain")
		created = append(created, p)
		r.Packets = append(r.Packets, rainDrop{ID: p.ID, VisibleAt: p.VisibleAt})
	}
	if len(created) == 0 {
		return createErr
	}
	if createErr != nil {
		// The packets made so far hold the sender's money: rain them rather
		// than strand them, and say how many there are.
		a.log.Warn("rain cut short", "rain", r.ID, "created", len(created), "asked", n, "err", createErr)
	}
	a.publish(ctx, room, rainEvent{Type: "rain", Rain: r})
	for _, p := range created {
		a.announceAt(p)
	}
	return c.JSON(http.StatusCreated, map[string]any{"rain": r})
}

// announceAt publishes p's packet event when it becomes visible.
func (a *App) announceAt(p *packet.Packet) {
	a.rainMu.Lock()
	defer a.rainMu.Unlock()
	if a.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(time.Until(time.UnixMilli(p.VisibleAt)), func() {
		a.rainMu.Lock()
		delete(a.rains, t)
		a.rainMu.Unlock()
		a.announce(context.Background(), p)
	})
	a.rains[t] = struct{}{}
}

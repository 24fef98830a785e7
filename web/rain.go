package web

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
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
	raw, err := readBody(c)
	if err != nil {
		return err
	}
	plan, err := a.rainPlan(raw)
	if err != nil {
		return err
	}
	u := userOf(c)
	ctx, cancel := a.detached(c)
	defer cancel()
	// A friendly early refusal; the debit of each packet is what really
	// guards the money. Not for a keyed request: it may be a replay, whose
	// answer is the first response whatever the balance is now.
	keyed := c.Request().Header.Get("Idempotency-Key") != ""
	if w, err := a.store.Wallet(ctx, u.ID); err == nil && !keyed && w.Balance < int64(plan.packets)*plan.total {
		return apierr.Refuse(packet.ErrInsufficientFunds, "this rain needs ¥%s, the wallet holds ¥%s",
			packet.FormatYuan(int64(plan.packets)*plan.total), packet.FormatYuan(w.Balance))
	}
	r, drafts, err := a.draftRain(room, u, plan)
	if err != nil {
		return err
	}
	respond := func(opened []*packet.Draft) ([]byte, error) {
		return json.Marshal(map[string]any{"rain": r.with(opened)})
	}
	idem, err := idempotencyOf(c, raw, respond)
	if err != nil {
		return err
	}
	hold, err := a.reserveSend(ctx, u.ID, room, plan.total, plan.packets, keyOf(idem))
	if err != nil {
		return err
	}
	o, err := a.store.Open(ctx, drafts, idem)
	hold.settle(ctx, o, err)
	if err != nil {
		return err
	}
	if !o.Replayed {
		if len(o.Drafts) < len(drafts) {
			// The packets made so far hold the sender's money: rain them
			// rather than strand them; the response lists only them.
			a.log.Warn("rain cut short", "rain", r.ID, "created", len(o.Drafts), "asked", len(drafts))
		}
		a.publish(ctx, room, rainEvent{Type: "rain", Rain: r.with(o.Drafts)})
		for _, d := range o.Drafts {
			a.metrics.packet("rain")
			a.announceAt(&d.Packet)
		}
	}
	return a.created(c, o, respond)
}

// rainShape is a validated rain request.
type rainShape struct {
	packets, count int
	total          int64
	duration       time.Duration
	greeting       string
}

func (a *App) rainPlan(raw []byte) (rainShape, error) {
	var req rainRequest
	if err := decodeBytes(raw, &req); err != nil {
		return rainShape{}, err
	}
	n, err := count(req.Packets, "packets", packet.ErrInvalidCount)
	if err != nil {
		return rainShape{}, err
	}
	if n < 1 || n > a.cfg.MaxRainPackets {
		return rainShape{}, apierr.Refuse(packet.ErrInvalidCount, "a rain has 1 to %d packets, got %d", a.cfg.MaxRainPackets, n)
	}
	perTotal, err := fen(req.TotalPerPacket, "total_per_packet", packet.ErrInvalidAmount)
	if err != nil {
		return rainShape{}, err
	}
	perCount, err := count(req.CountPerPacket, "count_per_packet", packet.ErrInvalidCount)
	if err != nil {
		return rainShape{}, err
	}
	secs, err := count(req.DurationSeconds, "duration_seconds", packet.ErrInvalidRequest)
	if err != nil {
		return rainShape{}, err
	}
	duration := time.Duration(secs) * time.Second
	if duration < time.Second || duration > a.cfg.MaxRainDuration {
		return rainShape{}, invalid("duration_seconds must be from 1 to %d", int(a.cfg.MaxRainDuration.Seconds()))
	}
	if err := a.store.Limits().Check(packet.Lucky, perTotal, perCount); err != nil {
		return rainShape{}, err
	}
	return rainShape{packets: n, count: perCount, total: perTotal, duration: duration, greeting: greetingOf(req.Greeting)}, nil
}

// draftRain splits every packet of a rain, evenly spaced over its
// duration, the first at its start.
func (a *App) draftRain(room string, u packet.User, plan rainShape) (rain, []*packet.Draft, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return rain{}, nil, err
	}
	start := time.Now().Add(a.cfg.RainLead)
	r := rain{
		ID: id.String(), Sender: u, Greeting: plan.greeting,
		StartsAt: start.UnixMilli(), EndsAt: start.Add(plan.duration).UnixMilli(),
		TotalPerPacket: plan.total, CountPerPacket: plan.count,
	}
	drafts := make([]*packet.Draft, plan.packets)
	for i := range drafts {
		visible := start.Add(plan.duration * time.Duration(i) / time.Duration(plan.packets))
		drafts[i], err = a.store.Draft(packet.CreateRequest{
			Room: room, Sender: u, Kind: packet.Lucky, Total: plan.total, Count: plan.count,
			Greeting: plan.greeting, VisibleAt: visible, TTL: a.cfg.RainTTL, RainID: r.ID,
		})
		if err != nil {
			return rain{}, nil, err
		}
	}
	return r, drafts, nil
}

// with is the rain as made of the drafts opened.
func (r rain) with(opened []*packet.Draft) rain {
	r.Packets = make([]rainDrop, len(opened))
	for i, d := range opened {
		r.Packets[i] = rainDrop{ID: d.ID, VisibleAt: d.VisibleAt}
	}
	return r
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

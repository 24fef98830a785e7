package packet

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Finished is a packet the sweeper closed at expiry, for the room to hear.
type Finished struct {
	Packet   Packet
	Refunded int64
	Luckiest *Claim
}

// SweepReport says what one Sweep call did.
type SweepReport struct {
	// Visited counts the due packets this sweeper took.
	Visited int
	// Expired lists packets this call closed (each is closed by exactly one
	// sweeper, so each appears in exactly one report).
	Expired []Finished
	// Credited counts claims paid that a crash had left unpaid.
	Credited int
	// Activated and Cancelled count pending packets settled either way.
	Activated, Cancelled int
}

// Sweep settles the packets that are due: it closes and refunds expired
// packets, pays claims that a crash left uncredited, and settles packets left
// pending by a crashed create. Any number of sweepers may run at once on any
// number of instances: each due packet is leased to one of them, and every
// step is idempotent, so money moves exactly once even when leases overlap.
func (s *Store) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	now := s.cfg.Now().UnixMilli()
	ids, err := s.lua.claimDue.Run(ctx, s.rdb, []string{s.k.due()}, now, s.cfg.SweepLease.Milliseconds(), s.cfg.SweepBatch).StringSlice()
	if err != nil {
		return rep, unavailable("sweep", err)
	}
	for _, id := range ids {
		rep.Visited++
		if err := s.settle(ctx, id, &rep); err != nil {
			// The lease runs out and a sweeper tries again.
			s.cfg.Logger.Warn("sweep: settling packet failed", "packet", id, "err", err)
		}
	}
	return rep, nil
}

// RunSweeper calls Sweep every interval until ctx ends, handing each report
// with expired packets to onExpired.
func (s *Store) RunSweeper(ctx context.Context, interval time.Duration, onExpired func(Finished)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			rep, err := s.Sweep(ctx)
			if err != nil {
				s.cfg.Logger.Warn("sweep failed", "err", err)
				break
			}
			for _, f := range rep.Expired {
				onExpired(f)
			}
			if rep.Visited < s.cfg.SweepBatch {
				break
			}
		}
	}
}

// settle moves one due packet forward as far as it can go.
func (s *Store) settle(ctx context.Context, id string, rep *SweepReport) error {
	meta, err := s.rdb.HGetAll(ctx, s.k.meta(id)).Result()
	if err != nil {
		return err
	}
	status := Status(meta["status"])
	switch status {
	case "", StatusPending:
		return s.settlePending(ctx, id, meta, rep)
	case StatusCancelled:
		return s.rdb.ZRem(ctx, s.k.due(), id).Err()
	}
	st, err := parseState(meta)
	if err != nil {
		return err
	}
	if status == StatusActive && s.cfg.Now().UnixMilli() >= st.ExpiresAt ||
		status == StatusExpired {
		// Closes the packet, or finds it closed and repeats the refund a
		// crash may have interrupted (a no-op when it was paid).
		if err := s.expire(ctx, &st.Packet, rep); err != nil {
			return err
		}
		status = StatusExpired
	}
	if err := s.reconcile(ctx, id, rep); err != nil {
		return err
	}
	if status == StatusActive {
		return s.pipelined(ctx, func(pipe redis.Pipeliner) { s.indexOpen(ctx, pipe, &st.Packet) })
	}
	return s.rdb.ZRem(ctx, s.k.due(), id).Err()
}

// settlePending decides a packet that a create left pending (or missing):
// activate it if its sender was debited, else make the debit impossible and
// cancel it.
func (s *Store) settlePending(ctx context.Context, id string, meta map[string]string, rep *SweepReport) error {
	sender := meta["sender_id"]
	if sender == "" {
		// Indexed but never stored: leave a tombstone so a late create does nothing.
		rep.Cancelled++
		return s.cancel(ctx, id)
	}
	debited, err := s.lua.void.Run(ctx, s.rdb, []string{s.k.ledger(sender)}, id).Text()
	if err != nil {
		return err
	}
	if debited == "void" {
		rep.Cancelled++
		return s.cancel(ctx, id)
	}
	st, err := parseStatePending(meta)
	if err != nil {
		return err
	}
	rep.Activated++
	return s.activate(ctx, st)
}

// parseStatePending reads a pending packet's description.
func parseStatePending(meta map[string]string) (*Packet, error) {
	m := make(map[string]string, len(meta))
	for k, v := range meta {
		m[k] = v
	}
	m["status"] = string(StatusActive) // parseState skips pending packets
	st, err := parseState(m)
	if err != nil {
		return nil, err
	}
	return &st.Packet, nil
}

// expire closes an active packet past its expiry and refunds the remainder.
func (s *Store) expire(ctx context.Context, p *Packet, rep *SweepReport) error {
	res, err := s.lua.expire.Run(ctx, s.rdb, s.k.packetKeys(p.ID)[:2]).StringSlice()
	if err != nil {
		return err
	}
	if len(res) == 0 || (res[0] != "closed" && res[0] != "already") {
		return fmt.Errorf("expire %s: packet is %v", p.ID, res)
	}
	refunded, err := s.refund(ctx, p)
	if err != nil {
		return err
	}
	if res[0] == "closed" {
		f := Finished{Packet: *p, Refunded: refunded}
		if d, err := s.Detail(ctx, p.ID); err == nil {
			f.Luckiest = d.Luckiest
		}
		rep.Expired = append(rep.Expired, f)
	}
	return nil
}

// refund pays an expired packet's remainder back to its sender, once.
func (s *Store) refund(ctx context.Context, p *Packet) (int64, error) {
	shares, err := s.rdb.LRange(ctx, s.k.shares(p.ID), 0, -1).Result()
	if err != nil {
		return 0, err
	}
	left, err := sumShares(shares)
	if err != nil {
		return 0, err
	}
	if err := s.lua.refund.Run(ctx, s.rdb, s.k.walletKeys(p.Sender.ID)[:2], p.ID, left).Err(); err != nil {
		return 0, err
	}
	return left, nil
}

// reconcile pays every claim of a packet into its grabber's wallet; claims
// already paid are skipped by the credit script itself.
func (s *Store) reconcile(ctx context.Context, id string, rep *SweepReport) error {
	d, err := s.loadPacket(ctx, id)
	if err != nil || d == nil {
		return err
	}
	if len(d.Claims) == 0 {
		return nil
	}
	cmds := make([]*redis.Cmd, len(d.Claims))
	err = s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for i, c := range d.Claims {
			cmds[i] = s.creditCmd(ctx, pipe, c.User.ID, GrabResult{PacketID: id, Room: d.Room, Amount: c.Amount, At: c.At})
		}
	})
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			rep.Credited++
		}
	}
	return nil
}

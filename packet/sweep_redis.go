package packet

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// visitRedis moves one due packet forward as far as it can go (Redis-only
// mode).
func (s *Store) visitRedis(ctx context.Context, id string, rep *SweepReport) error {
	meta, err := s.rdb.HGetAll(ctx, s.k.meta(id)).Result()
	if err != nil {
		return err
	}
	status := Status(meta["status"])
	switch status {
	case "", StatusPending:
		return s.settlePending(ctx, id, meta, rep)
	case StatusCancelled:
		return s.rdb.ZRem(ctx, s.k.due(id), id).Err()
	}
	st, err := parseState(meta)
	if err != nil {
		return err
	}
	if status == StatusActive && s.cfg.Now().UnixMilli() >= st.ExpiresAt ||
		status == StatusExpired {
		// Closes the packet, or finds it closed and repeats the refund a
		// crash may have interrupted (a no-op when it was paid).
		if err := s.expireRedis(ctx, &st.Packet, rep); err != nil {
			return err
		}
		status = StatusExpired
	}
	if err := s.reconcile(ctx, id, rep); err != nil {
		return err
	}
	if status == StatusActive {
		return s.rdb.Do(ctx, "ZADD", s.k.due(id), st.ExpiresAt, id).Err()
	}
	return s.rdb.ZRem(ctx, s.k.due(id), id).Err()
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
	p, err := parseStatePending(meta)
	if err != nil {
		return err
	}
	if err := s.activate(ctx, p); err != nil {
		return err
	}
	rep.Opened = append(rep.Opened, *p)
	return nil
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

// expireRedis closes an active packet past its expiry and refunds the
// remainder into the sender's Redis wallet.
func (s *Store) expireRedis(ctx context.Context, p *Packet, rep *SweepReport) error {
	closed, left, err := s.close(ctx, p.ID)
	if err != nil {
		return err
	}
	u := p.Sender.ID
	keys := []string{s.k.wallet(u), s.k.ledger(u), s.k.years(u)}
	if err := s.lua.refund.Run(ctx, s.rdb, keys, p.ID, left, yearOf(s.cfg.Now().UnixMilli())).Err(); err != nil {
		return err
	}
	if closed {
		s.reportExpired(ctx, p, left, rep)
	}
	return nil
}

// close runs expire.lua: it reports whether this call closed the packet
// and what was left in it.
func (s *Store) close(ctx context.Context, id string) (bool, int64, error) {
	res, err := s.lua.expire.Run(ctx, s.rdb, s.k.packetKeys(id)[:2]).StringSlice()
	if err != nil {
		return false, 0, err
	}
	if len(res) == 0 || (res[0] != "closed" && res[0] != "already") {
		return false, 0, fmt.Errorf("expire %s: packet is %v", id, res)
	}
	left, err := sumShares(res[1:])
	return res[0] == "closed", left, err
}

func (s *Store) reportExpired(ctx context.Context, p *Packet, refunded int64, rep *SweepReport) {
	f := Finished{Packet: *p, Refunded: refunded}
	if d, err := s.Detail(ctx, p.ID); err == nil {
		f.Luckiest = d.Luckiest
	}
	rep.Expired = append(rep.Expired, f)
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

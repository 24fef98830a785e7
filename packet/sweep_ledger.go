package packet

import (
	"context"
	"errors"
	"fmt"

	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/redis/go-redis/v9"
)

// visitLedger moves one due packet forward as far as it can go (ledger
// mode): commit what its outbox holds, close it at expiry, record how it
// ended, and once every fen of it is committed let Redis forget it.
func (s *Store) visitLedger(ctx context.Context, id string, rep *SweepReport) error {
	view, err := s.led.Packet(ctx, id)
	if err != nil {
		return err
	}
	meta, err := s.rdb.HGetAll(ctx, s.k.meta(id)).Result()
	if err != nil {
		return err
	}
	if len(meta) == 0 {
		return s.restore(ctx, view, rep)
	}
	n, err := s.drainOutbox(ctx, id)
	rep.Credited += n
	if err != nil {
		return err
	}
	status := Status(meta["status"])
	now := s.cfg.Now().UnixMilli()
	switch {
	case status == StatusActive && now < view.ExpiresAt:
		// Grabs are still coming: look again soon, in case an arm set
		// during this visit was overwritten by it. Else at expiry.
		next := view.ExpiresAt
		if n > 0 {
			next = min(next, now+s.cfg.SettleGrace.Milliseconds())
		}
		return s.led.Schedule(ctx, id, next)
	case status == StatusActive || status == StatusExpired:
		return s.expireLedger(ctx, view, rep)
	case status == StatusEmpty:
		return s.finishLedger(ctx, view, StatusEmpty, atoi64(meta["emptied_at"]), rep)
	}
	return fmt.Errorf("packet %s is %q in Redis", id, status)
}

// expireLedger closes a packet past its expiry, commits the claims that
// raced the close, and refunds what the ledger still holds for it.
func (s *Store) expireLedger(ctx context.Context, view *ledger.PacketView, rep *SweepReport) error {
	closed, left, err := s.close(ctx, view.ID)
	if err != nil {
		return err
	}
	n, err := s.drainOutbox(ctx, view.ID)
	rep.Credited += n
	if err != nil {
		return err
	}
	if err := s.finishLedger(ctx, view, StatusExpired, s.cfg.Now().UnixMilli(), rep); err != nil {
		return err
	}
	if refunded := s.refunded(ctx, view.ID); refunded != left {
		s.cfg.Metrics.difference("refund_mismatch")
		s.cfg.Logger.Error("refund differs from the shares left in Redis", "packet", view.ID, "ledger", refunded, "redis", left)
	}
	if closed {
		s.reportExpired(ctx, &packetOf(view).Packet, left, rep)
	}
	return nil
}

func (s *Store) refunded(ctx context.Context, id string) int64 {
	v, err := s.led.Packet(ctx, id)
	if err != nil {
		return -1
	}
	return v.Refunded
}

// finishLedger records how a packet ended, commits every claim Redis holds
// for it (the claims hash is the truth; nothing new can join a finished
// packet), lets its Redis keys expire and marks it settled. Keys expire
// before the mark, so a crash in between leaves a packet that is still due
// and whose next visit finds Redis empty and only marks it.
func (s *Store) finishLedger(ctx context.Context, view *ledger.PacketView, status Status, at int64, rep *SweepReport) error {
	if _, err := s.led.Finish(ctx, view.ID, string(status), at); err != nil {
		return err
	}
	if err := s.commitClaimsHash(ctx, view); err != nil && !errors.Is(err, errRejected) {
		return err
	}
	if err := s.retain(ctx, view.ID); err != nil {
		return err
	}
	if err := s.led.MarkSettled(ctx, view.ID); err != nil {
		return err
	}
	rep.Settled++
	return nil
}

// commitClaimsHash commits the claims of view's packet that Redis holds and
// view (read at the start of the visit) did not: the outbox drain's, which
// replay as no-ops, and any that never reached the outbox. Usually none, and
// then the ledger is not written to at all.
func (s *Store) commitClaimsHash(ctx context.Context, view *ledger.PacketView) error {
	raw, err := s.rdb.HGetAll(ctx, s.k.claims(view.ID)).Result()
	if err != nil {
		return err
	}
	claims, err := parseClaims(raw)
	if err != nil {
		return err
	}
	known := make(map[string]int64, len(view.Claims))
	for _, c := range view.Claims {
		known[c.UserID] = c.Amount
	}
	var missing []ledger.Claim
	for _, c := range claims {
		if amount, ok := known[c.User.ID]; !ok || amount != c.Amount {
			missing = append(missing, ledgerClaim(view.ID, c))
		}
	}
	committed, err := s.settleClaims(ctx, missing, false)
	s.tidy(ctx, nil, committed)
	return err
}

// retain lets a settled packet's keys expire after RetainSettled.
func (s *Store) retain(ctx context.Context, id string) error {
	return s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, k := range s.k.packetKeys(id) {
			pipe.PExpire(ctx, k, s.cfg.RetainSettled)
		}
	})
}

// restore handles a packet the ledger holds and Redis does not: a create
// that crashed after its commit, or a Redis that lost its data. Past expiry
// the ledger refunds it; before, it is put back into Redis with the claims
// the ledger committed, so that no one can take a share twice.
func (s *Store) restore(ctx context.Context, view *ledger.PacketView, rep *SweepReport) error {
	now := s.cfg.Now().UnixMilli()
	if view.Status != "open" || now >= view.ExpiresAt {
		status, at := Status(view.Status), view.FinishedAt
		if view.Status == "open" {
			status, at = StatusExpired, now
		}
		if err := s.finishLedger(ctx, view, status, at, rep); err != nil {
			return err
		}
		if view.Status == "open" {
			rep.Expired = append(rep.Expired, Finished{Packet: packetOf(view).Packet, Refunded: s.refunded(ctx, view.ID)})
		}
		return nil
	}
	d := packetOf(view)
	if !contiguous(view.Claims) {
		// The shares of the missing positions are unknown to Redis, and a
		// new grab would take a position the ledger holds: leave it closed
		// and refund it at expiry. The escrow still holds every fen.
		s.cfg.Metrics.difference("rebuild_gap")
		s.cfg.Logger.Error("packet missing in Redis with gaps in its committed claims; it stays closed until expiry", "packet", view.ID)
		return s.led.Schedule(ctx, view.ID, view.ExpiresAt)
	}
	if err := s.storeCmd(ctx, s.rdb, d, StatusActive, view.Claims).Err(); err != nil {
		return err
	}
	if len(view.Claims) == 0 && now < view.CreatedAt+2*s.cfg.PendingGrace.Milliseconds() {
		rep.Opened = append(rep.Opened, d.Packet) // a create that stopped after its commit
	} else {
		s.cfg.Metrics.difference("rebuilt")
		s.cfg.Logger.Warn("packet was missing in Redis; rebuilt from the ledger", "packet", view.ID, "claims", len(view.Claims))
	}
	return s.led.Schedule(ctx, view.ID, view.ExpiresAt)
}

// contiguous reports whether claims (in seq order) hold positions 1..n.
func contiguous(claims []ledger.Claim) bool {
	for i, c := range claims {
		if c.Seq != i+1 {
			return false
		}
	}
	return true
}

// packetOf turns a ledger packet back into a draft, shares included.
func packetOf(v *ledger.PacketView) *Draft {
	return &Draft{Packet: Packet{
		ID: v.ID, Room: v.Room, Sender: User{ID: v.SenderID, Name: v.SenderName}, Kind: Kind(v.Kind),
		Total: v.Total, Count: v.Count, Greeting: v.Greeting,
		CreatedAt: v.CreatedAt, VisibleAt: v.VisibleAt, ExpiresAt: v.ExpiresAt,
		To: usersOf(v.To, v.ToNames), Password: v.Password, OpensAt: v.OpensAt,
	}, RainID: v.RainID, shares: v.Shares}
}

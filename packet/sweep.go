package packet

import (
	"context"
	"sync"
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
	// Opened lists packets this call made grabbable that their create left
	// unfinished, for the room to hear about.
	Opened []Packet
	// Credited counts claims paid (committed) that a crash had left unpaid.
	Credited int
	// Cancelled counts pending packets abandoned as never debited.
	Cancelled int
	// Settled counts packets finished and fully committed by this call.
	Settled int
}

// SweepHooks receive what a sweep did that the rooms should hear.
type SweepHooks struct {
	OnExpired func(Finished)
	OnOpened  func(Packet)
}

// Sweep settles the packets that are due: it closes and refunds expired
// packets, pays claims that a crash left unpaid, settles packets a crashed
// create left unfinished, and (with a ledger) lets finished packets expire
// from Redis. Any number of sweepers may run at once on any number of
// instances: each due packet is leased to one of them, and every step is
// idempotent, so money moves exactly once even when leases overlap.
//
// Packets are due by need: at expiry, after PendingGrace for a create, when
// emptied, and SettleGrace after a grab (which a settler normally makes
// moot) — never on a timer for every open packet.
func (s *Store) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	ids, err := s.claimDue(ctx)
	if err != nil {
		return rep, unavailable("sweep", err)
	}
	rep.Visited = len(ids)
	work := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(s.cfg.SweepWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				var one SweepReport
				if err := s.visit(ctx, id, &one); err != nil {
					// The lease runs out and a sweeper tries again.
					s.cfg.Logger.Warn("sweep: settling packet failed", "packet", id, "err", err)
				}
				mu.Lock()
				rep.add(one)
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return rep, nil
}

func (r *SweepReport) add(o SweepReport) {
	r.Expired = append(r.Expired, o.Expired...)
	r.Opened = append(r.Opened, o.Opened...)
	r.Credited += o.Credited
	r.Cancelled += o.Cancelled
	r.Settled += o.Settled
}

// visit moves one due packet forward as far as it can go.
func (s *Store) visit(ctx context.Context, id string, rep *SweepReport) error {
	if s.led != nil {
		return s.visitLedger(ctx, id, rep)
	}
	return s.visitRedis(ctx, id, rep)
}

// RunSweeper calls Sweep every interval until ctx ends, handing what each
// sweep did to hooks.
func (s *Store) RunSweeper(ctx context.Context, interval time.Duration, hooks SweepHooks) {
	every(ctx, interval, func() {
		for {
			rep, err := s.Sweep(ctx)
			if err != nil {
				s.cfg.Logger.Warn("sweep failed", "err", err)
				return
			}
			hooks.report(rep)
			if rep.Visited < s.cfg.SweepBatch {
				return
			}
		}
	})
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func (h SweepHooks) report(rep SweepReport) {
	for _, f := range rep.Expired {
		if h.OnExpired != nil {
			h.OnExpired(f)
		}
	}
	for _, p := range rep.Opened {
		if h.OnOpened != nil {
			h.OnOpened(p)
		}
	}
}

// RunSettler commits this instance's claims to the ledger until ctx ends,
// then commits what is still queued. Without a ledger it returns at once.
func (s *Store) RunSettler(ctx context.Context) {
	if s.set != nil {
		s.set.run(ctx)
	}
}

// claimDue leases the due packets to this sweeper.
func (s *Store) claimDue(ctx context.Context) ([]string, error) {
	now := s.cfg.Now().UnixMilli()
	if s.led != nil {
		return s.led.ClaimDue(ctx, now, s.cfg.SweepLease, s.cfg.SweepBatch)
	}
	cmds := make([]*redis.Cmd, dueBuckets)
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for b := range cmds {
			cmds[b] = s.lua.claimDue.Run(ctx, pipe, []string{s.k.dueBucket(b)}, now, s.cfg.SweepLease.Milliseconds(), s.cfg.SweepBatch)
		}
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cmds {
		got, err := c.StringSlice()
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

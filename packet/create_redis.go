package packet

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// openRedis opens drafts in Redis-only mode, one packet after another.
func (s *Store) openRedis(ctx context.Context, drafts []*Draft, idem *Idempotency) (*Opened, error) {
	if idem != nil {
		if replay, err := s.reserveKey(ctx, drafts[0].Sender.ID, idem); replay != nil || err != nil {
			return replay, err
		}
	}
	var opened []*Draft
	var err error
	for _, d := range drafts {
		var debited bool
		debited, err = s.openOne(ctx, d)
		if debited {
			// Debited: it opens, now or by the sweeper after PendingGrace.
			opened = append(opened, d)
		}
		if err != nil {
			break
		}
	}
	if idem == nil {
		if len(opened) == 0 {
			return nil, err
		}
		return &Opened{Drafts: opened}, nil
	}
	return s.keepResponse(ctx, drafts[0].Sender.ID, idem, opened, err)
}

// openOne creates one packet: pending, debited, active. It reports whether
// the sender was debited, even when a later step failed.
func (s *Store) openOne(ctx context.Context, d *Draft) (bool, error) {
	if err := s.createPending(ctx, d); err != nil {
		return false, err
	}
	if err := s.debit(ctx, &d.Packet); err != nil {
		return false, err
	}
	return true, s.activate(ctx, &d.Packet)
}

// reservationTTL is how long a key stays reserved by a request that has
// not finished.
const reservationTTL = 2 * time.Minute

// reserveKey claims an Idempotency-Key for this request. It returns a replay
// when the key holds a finished request with the same hash, and a refusal
// when the hash differs or the first request is still running.
func (s *Store) reserveKey(ctx context.Context, sender string, idem *Idempotency) (*Opened, error) {
	key := s.k.idem(sender, idem.Key)
	hash := hex.EncodeToString(idem.RequestHash)
	// The reservation outlives any request (CreateTimeout) but not by
	// much: a crashed request does not block its key for a day.
	ok, err := s.rdb.SetNX(ctx, key, hash+"|", reservationTTL).Result()
	if err != nil {
		return nil, unavailable("idempotency", err)
	}
	if ok {
		return nil, nil
	}
	prev, err := s.rdb.Get(ctx, key).Result()
	if err != nil && !isNil(err) {
		return nil, unavailable("idempotency", err)
	}
	prevHash, body, _ := bytes.Cut([]byte(prev), []byte("|"))
	switch {
	case string(prevHash) != hash:
		return nil, apierr.Refuse(ErrIdempotencyConflict, "Idempotency-Key %q was used for a different request", idem.Key)
	case len(body) == 0:
		return nil, apierr.Refuse(ErrIdempotencyConflict, "a request with Idempotency-Key %q is still being processed", idem.Key)
	}
	return &Opened{Body: body, Replayed: true}, nil
}

// keepResponse stores the response for what was opened, or frees the key
// when nothing was, so that a retry may try again.
func (s *Store) keepResponse(ctx context.Context, sender string, idem *Idempotency, opened []*Draft, openErr error) (*Opened, error) {
	key := s.k.idem(sender, idem.Key)
	if len(opened) == 0 {
		if err := s.rdb.Del(ctx, key).Err(); err != nil {
			s.cfg.Logger.Warn("freeing an idempotency key failed; it expires by itself", "key", idem.Key, "err", err)
		}
		return nil, openErr
	}
	body, err := idem.Respond(opened)
	if err != nil {
		return nil, err
	}
	value := hex.EncodeToString(idem.RequestHash) + "|" + string(body)
	if err := s.rdb.Set(ctx, key, value, idempotencyTTL).Err(); err != nil {
		s.cfg.Logger.Warn("storing an idempotency response failed", "key", idem.Key, "err", errors.Join(err, openErr))
	}
	return &Opened{Drafts: opened, Body: body}, nil
}

func (s *Store) createPending(ctx context.Context, d *Draft) error {
	due := d.CreatedAt + s.cfg.PendingGrace.Milliseconds()
	var created *redis.Cmd
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		pipe.Do(ctx, "ZADD", s.k.due(d.ID), due, d.ID)
		created = s.storeCmd(ctx, pipe, d, StatusPending, nil)
	})
	if err != nil {
		return unavailable("create", err)
	}
	// The id is fresh, so a pending packet under it is this call's own
	// (a retried command whose first reply was lost).
	if st, _ := created.Text(); st != "created" && st != string(StatusPending) {
		return apierr.Refuse(ErrUnavailable, "packet %s was %s before it was created", d.ID, st)
	}
	return nil
}

func (s *Store) debit(ctx context.Context, p *Packet) error {
	u := p.Sender.ID
	res, err := s.lua.debit.Run(ctx, s.rdb, []string{s.k.wallet(u), s.k.ledger(u), s.k.sent(u), s.k.years(u)},
		p.ID, p.Total, sentMember(p.CreatedAt, p.ID), yearOf(p.CreatedAt)).Text()
	if err != nil {
		// The packet stays pending; the sweeper settles it after PendingGrace.
		return unavailable("debit", err)
	}
	switch res {
	case "ok":
		return nil
	case "insufficient":
		if err := s.cancel(ctx, p.ID); err != nil {
			s.cfg.Logger.Warn("cancel after refused debit failed; the sweeper will settle it", "packet", p.ID, "err", err)
		}
		return apierr.Refuse(ErrInsufficientFunds, "the wallet holds less than %s", FormatYuan(p.Total))
	default: // "void": the sweeper settled this packet as never debited.
		return apierr.Refuse(ErrUnavailable, "creating packet %s took too long; nothing was debited", p.ID)
	}
}

func (s *Store) cancel(ctx context.Context, id string) error {
	return s.pipelined(ctx, func(pipe redis.Pipeliner) {
		s.lua.cancel.Run(ctx, pipe, s.k.packetKeys(id)[:2])
		pipe.ZRem(ctx, s.k.due(id), id)
	})
}

// activate opens a debited packet, lists it in its room and schedules the
// sweeper's look at it at expiry.
func (s *Store) activate(ctx context.Context, p *Packet) error {
	var st *redis.Cmd
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		st = s.lua.activate.Run(ctx, pipe, s.k.packetKeys(p.ID)[:1])
		s.indexOpen(ctx, pipe, p)
	})
	if err != nil {
		return unavailable("activate", err)
	}
	if status, _ := st.Text(); status == string(StatusCancelled) || status == "missing" {
		return apierr.Refuse(ErrUnavailable, "packet %s was %s", p.ID, status)
	}
	return nil
}

// indexOpen lists an open packet in its room and schedules the sweeper at
// its expiry (grabs schedule sooner visits as they need them).
func (s *Store) indexOpen(ctx context.Context, pipe redis.Pipeliner, p *Packet) {
	// Scores are times in ms, passed as integers: no float in this package.
	pipe.Do(ctx, "ZADD", s.k.due(p.ID), p.ExpiresAt, p.ID)
	pipe.Do(ctx, "ZADD", s.k.room(p.Room), p.CreatedAt, p.ID)
	pipe.ZRemRangeByRank(ctx, s.k.room(p.Room), 0, int64(-s.cfg.RoomHistory-1))
}

package packet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
)

// GrabResult is a successful grab.
type GrabResult struct {
	PacketID string `json:"packet_id"`
	Room     string `json:"room"`
	Amount   int64  `json:"amount"`
	// Remaining counts the shares left after this grab.
	Remaining int `json:"remaining"`
	// Seq is this grab's position, 1-based.
	Seq int `json:"seq"`
	// At is the Redis time of the grab, Unix ms.
	At int64 `json:"at"`
	// Emptied reports that this grab took the last share; DurationMs is then
	// the time from VisibleAt to now.
	Emptied    bool  `json:"emptied"`
	DurationMs int64 `json:"duration_ms"`
}

// Grab takes one share of packet id for user. The grab itself is one script
// on the packet's slot, and its claim is the truth. Without a ledger the
// share is then credited to the user's wallet by a second idempotent script
// on the user's slot; with one the claim goes to the settlement outbox in
// the same script, and this instance's settler commits it to the ledger
// (the sweeper does, should this instance die first). Either way, a failed
// second step leaves the grab standing and the sweeper pays it.
//
// Grabs of one packet that arrive while an earlier one is in flight are
// settled together in one script call (unless Config.DisableCoalescing): a
// hot packet then costs Redis a few commands per batch instead of per grab,
// with the same outcome for every user as if each had grabbed alone, in
// arrival order. Each batch's new grabs go to Config.OnGrabs. A grab of a
// packet this instance knows is empty is answered without Redis, as Redis
// would answer it (finished.go).
func (s *Store) Grab(ctx context.Context, id string, user User) (GrabResult, error) {
	return s.GrabWithPassword(ctx, id, user, "")
}

// GrabWithPassword is Grab carrying a phrase for a password packet ("" for
// none). The script compares it after NFC normalisation; a wrong one is
// refused with ErrWrongPassword and is no grab: the user may try again.
func (s *Store) GrabWithPassword(ctx context.Context, id string, user User, password string) (GrabResult, error) {
	if err := checkGrab(id, user); err != nil {
		return GrabResult{}, err
	}
	req := newGrabRequest(user, password)
	if o, ok := s.answerLocally(id, req); ok {
		return GrabResult{}, o.err
	}
	if s.cfg.DisableCoalescing {
		// Awaited, so the caller is answered at ctx's deadline: go-redis
		// bounds a read by its ReadTimeout, not by ctx. The call keeps
		// ctx, so it gives up soon after (a batch of one has no one else
		// to settle for).
		req.done = make(chan grabOutcome, 1)
		go func() { req.done <- s.settleBatch(ctx, id, []grabRequest{req})[0] }()
		return await(ctx, req.done)
	}
	return s.hot.grab(ctx, id, req)
}

func checkGrab(id string, user User) error {
	if id == "" || user.ID == "" {
		return apierr.Refuse(ErrInvalidRequest, "packet id and user are required")
	}
	if _, err := uuid.Parse(id); err != nil {
		return apierr.Refuse(ErrNotFound, "no packet %q", id)
	}
	return nil
}

type grabRequest struct {
	user User
	// password is the SHA-256 of the grab's normalised phrase, "" for none.
	password string
	done     chan grabOutcome
}

func newGrabRequest(user User, password string) grabRequest {
	return grabRequest{user: user, password: passwordHash(password)}
}

// newCallToken names one grab script call, so that the call, retried by
// go-redis after a lost reply, recognises the claims it made and answers as
// it did the first time. With the user it names one grab: a call holds a
// user's grab once.
func newCallToken() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

type grabOutcome struct {
	res GrabResult
	err error
}

// GrabBatch is what one grab script call granted on a packet, for its room
// to hear (Config.OnGrabs): a hot packet's room hears one event per batch,
// not one per winner.
type GrabBatch struct {
	PacketID string
	Room     string
	// Grabs are the shares this batch granted, in grab order.
	Grabs []Claim
	// Remaining counts the shares left after the batch.
	Remaining int
	// Emptied reports that the batch took the last share. DurationMs is
	// then the time from VisibleAt to that grab, and Luckiest the packet's
	// largest claim (nil if it could not be read).
	Emptied    bool
	DurationMs int64
	Luckiest   *Claim
}

// settleBatch settles every request: locally the ones the finished-packet
// cache can answer, the rest in one script call, whose winners it then pays
// and hands to Config.OnGrabs, all before anyone is answered. A user refused
// as already_grabbed by Redis is paid too (idempotently): the claim may be
// from a grab whose reply was lost, and its share is owed. A local answer
// pays nothing; the sweeper pays every claim Redis holds.
func (s *Store) settleBatch(ctx context.Context, id string, reqs []grabRequest) []grabOutcome {
	out := make([]grabOutcome, len(reqs))
	var ask []grabRequest
	var at []int
	for i, r := range reqs {
		if o, ok := s.answerLocally(id, r); ok {
			out[i] = o
			continue
		}
		ask, at = append(ask, r), append(at, i)
	}
	if len(ask) == 0 {
		return out
	}
	s.arm(ctx, id)
	got, b := s.grabBatch(ctx, id, "", ask)
	var pay []int
	for j, i := range at {
		out[i] = got[j]
		if out[i].res.Amount > 0 {
			pay = append(pay, i)
		}
	}
	if len(pay) > 0 {
		if s.led != nil {
			s.set.handOver(ctx, id, b.entry, reqs, out, pay)
		} else {
			s.creditWinners(ctx, id, reqs, out, pay)
		}
	}
	// No share left: whatever this batch was told, the packet is empty
	// for good (finished.go).
	var luckiest *Claim
	if emptied := b.duration >= 0; b.left == 0 && (emptied || s.cfg.FinishedClaims > 0) {
		luckiest = s.learn(ctx, id, emptied)
	}
	s.tellGrabs(ctx, id, b, reqs, out, luckiest)
	for i := range out {
		if out[i].err != nil {
			out[i].res = GrabResult{} // a refusal carries no result
		}
	}
	return out
}

// answerLocally answers r from the finished-packet cache, when it can.
func (s *Store) answerLocally(id string, r grabRequest) (grabOutcome, bool) {
	o, ok := s.done.answer(id, r, s.cfg.Now().UnixMilli())
	if ok {
		s.cfg.Metrics.answeredLocally(o.err)
	}
	return o, ok
}

// tellGrabs hands the batch's new grabs to Config.OnGrabs.
func (s *Store) tellGrabs(ctx context.Context, id string, b batchReply, reqs []grabRequest, out []grabOutcome, luckiest *Claim) {
	if s.cfg.OnGrabs == nil {
		return
	}
	ev := GrabBatch{PacketID: id, Room: b.room, Remaining: b.left, Luckiest: luckiest}
	for i, o := range out {
		if o.err != nil || o.res.Amount == 0 {
			continue
		}
		ev.Grabs = append(ev.Grabs, Claim{User: reqs[i].user, Amount: o.res.Amount, At: o.res.At, Seq: o.res.Seq})
		if o.res.Emptied {
			ev.Emptied, ev.DurationMs = true, o.res.DurationMs
		}
	}
	if len(ev.Grabs) > 0 {
		s.cfg.OnGrabs(ctx, ev)
	}
}

// creditWinners pays winners into their Redis wallets in one round trip.
func (s *Store) creditWinners(ctx context.Context, id string, reqs []grabRequest, out []grabOutcome, pay []int) {
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, i := range pay {
			s.creditCmd(ctx, pipe, reqs[i].user.ID, out[i].res)
		}
	})
	if err != nil {
		s.cfg.Logger.Warn("credit after grab failed; the sweeper will pay it", "packet", id, "grabs", len(pay), "err", err)
	}
}

// grabBatch runs the grab script for reqs (no credit) as the call named
// token, a new one when token is "". It returns each request's outcome and
// what the batch as a whole did.
func (s *Store) grabBatch(ctx context.Context, id, token string, reqs []grabRequest) ([]grabOutcome, batchReply) {
	out := make([]grabOutcome, len(reqs))
	var err error
	if token == "" {
		token, err = newCallToken()
	}
	var res []any
	if err == nil {
		res, err = s.runGrab(ctx, id, token, reqs)
	}
	var b batchReply
	var items []any
	if err == nil {
		b, items, err = parseBatchReply(id, res, len(reqs))
	}
	if err != nil {
		for i := range out {
			out[i].err = unavailable("grab", err)
		}
		return out, batchReply{duration: -1, left: -1}
	}
	for i := range reqs {
		out[i].res, out[i].err = parseGrab(id, b, items[i])
	}
	return out, b
}

// runGrab calls the grab script, followed on the same connection by WAIT
// when Config.WaitReplicas asks for it.
func (s *Store) runGrab(ctx context.Context, id, token string, reqs []grabRequest) ([]any, error) {
	outbox := "0"
	if s.led != nil {
		outbox = "1"
	}
	args := make([]any, 0, 2+3*len(reqs))
	args = append(args, outbox, token)
	for _, r := range reqs {
		args = append(args, r.user.ID, r.user.Name, r.password)
	}
	if s.cfg.WaitReplicas == 0 {
		return s.lua.grab.Run(ctx, s.rdb, s.k.packetKeys(id), args...).Slice()
	}
	// WAIT counts the writes made on its own connection: it must follow
	// the script on the packet's node, on one connection.
	node, err := s.nodeFor(ctx, s.k.meta(id))
	if err != nil {
		return nil, err
	}
	var grab, wait *redis.Cmd
	err = s.pipelinedOn(ctx, node, func(pipe redis.Pipeliner) {
		grab = s.lua.grab.Run(ctx, pipe, s.k.packetKeys(id), args...)
		wait = pipe.Do(ctx, "WAIT", s.cfg.WaitReplicas, s.cfg.WaitTimeout.Milliseconds())
	})
	if err != nil {
		return nil, err
	}
	if n, _ := wait.Int64(); n < int64(s.cfg.WaitReplicas) {
		return nil, fmt.Errorf("grab %s: %d of %d replicas confirmed within %v", id, n, s.cfg.WaitReplicas, s.cfg.WaitTimeout)
	}
	return grab.Slice()
}

// nodeFor is the client of the master that holds key: the cluster's node
// for its slot, or the one Redis.
func (s *Store) nodeFor(ctx context.Context, key string) (interface{ Pipeline() redis.Pipeliner }, error) {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, key)
	}
	return s.rdb, nil
}

// arm makes sure, before a grab, that the sweeper looks at packet id
// within SettleGrace, in case this instance dies between the grab and
// paying it. One packet is armed once per SettleGrace per instance, so a
// hot packet costs one schedule write per SettleGrace, not one per grab.
func (s *Store) arm(ctx context.Context, id string) {
	at, ok := s.armAt(id)
	if !ok {
		return
	}
	var err error
	if s.led != nil {
		err = s.led.ScheduleSooner(ctx, id, at)
	} else {
		err = s.rdb.Do(ctx, "ZADD", s.k.due(id), "XX", "LT", at, id).Err() // open packets only
	}
	if err != nil {
		s.cfg.Logger.Warn("scheduling the sweeper failed; it looks at the packet at expiry", "packet", id, "err", err)
	}
}

// armAt returns when the sweeper should look at id, and false when this
// instance already scheduled a visit that is still ahead.
func (s *Store) armAt(id string) (int64, bool) {
	now := s.cfg.Now().UnixMilli()
	s.armMu.Lock()
	defer s.armMu.Unlock()
	if until, ok := s.armed[id]; ok && until > now {
		return 0, false
	}
	if len(s.armed) > 10000 {
		for k, until := range s.armed {
			if until <= now {
				delete(s.armed, k)
			}
		}
	}
	at := now + s.cfg.SettleGrace.Milliseconds()
	s.armed[id] = at
	return at, true
}

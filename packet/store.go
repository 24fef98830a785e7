package packet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Config configures a Store. Zero fields take the defaults documented on
// each field.
type Config struct {
	// Prefix starts every key. Default "hb".
	Prefix string
	// Limits bound what may be created. Default DefaultLimits.
	Limits Limits
	// PendingGrace is how long a packet may stay 'pending' (created, sender
	// not yet confirmed debited) before the sweeper settles it either way.
	// It must exceed the longest a create request can take. Default 30 s.
	PendingGrace time.Duration
	// ReconcileEvery is how often the sweeper revisits an open packet to pay
	// any claim a crash left uncredited. Default 1 min.
	ReconcileEvery time.Duration
	// SweepLease is how long a sweeper owns a due packet before another may
	// take it over. Default 30 s.
	SweepLease time.Duration
	// SweepBatch is how many due packets one Sweep call takes. Default 100.
	SweepBatch int
	// HistoryLen is how many claims a wallet's history keeps. Default 100.
	HistoryLen int
	// RoomHistory is how many recent packets a room's index keeps. Default 200.
	RoomHistory int
	// Now is the clock for creation times. Grabs and expiry use Redis TIME.
	// Default time.Now.
	Now func() time.Time
	// Splitter divides lucky packets. Default NewSplitter().
	Splitter *Splitter
	// Logger receives repairs and failures of second steps. Default slog.Default().
	Logger *slog.Logger
	// CoalesceGrabs settles grabs of one packet that arrive while an earlier
	// grab of it is in flight in one script call. Default true; the zero
	// value of Config enables it (set DisableCoalescing to turn it off).
	CoalesceGrabs bool
	// DisableCoalescing turns CoalesceGrabs off (for comparison runs).
	DisableCoalescing bool
	// MaxBatch caps the grabs settled in one script call. Default 256.
	MaxBatch int
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "hb"
	}
	c.Limits = c.Limits.withDefaults()
	if c.PendingGrace <= 0 {
		c.PendingGrace = 30 * time.Second
	}
	if c.ReconcileEvery <= 0 {
		c.ReconcileEvery = time.Minute
	}
	if c.SweepLease <= 0 {
		c.SweepLease = 30 * time.Second
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = 100
	}
	if c.HistoryLen <= 0 {
		c.HistoryLen = 100
	}
	if c.RoomHistory <= 0 {
		c.RoomHistory = 200
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Splitter == nil {
		c.Splitter = NewSplitter()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.CoalesceGrabs = !c.DisableCoalescing
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	return c
}

// Store keeps packets and wallets in Redis. It is safe for concurrent use by
// any number of goroutines and instances: every change is one Lua script on
// one hash slot, and every multi-step operation is a chain of idempotent
// steps that the sweeper can finish after a crash.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	k   keys
	lua scripts
	hot *coalescer
}

// NewStore returns a Store on rdb (a client, a ring of one, or a cluster).
func NewStore(rdb redis.UniversalClient, cfg Config) *Store {
	cfg = cfg.withDefaults()
	s := &Store{rdb: rdb, cfg: cfg, k: keys{cfg.Prefix}, lua: loadScripts()}
	s.hot = newCoalescer(s)
	return s
}

// Limits returns the limits in force.
func (s *Store) Limits() Limits { return s.cfg.Limits }

// unavailable wraps a Redis failure with the unavailable code.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Fund adds amount fen of new money to user's wallet. A second Fund with
// the same non-empty ref adds nothing; an empty ref gets a fresh one. It reports
// whether money was added and the balance after.
func (s *Store) Fund(ctx context.Context, userID string, amount int64, ref string) (bool, int64, error) {
	if userID == "" {
		return false, 0, Refuse(ErrInvalidRequest, "user id is empty")
	}
	if amount <= 0 {
		return false, 0, Refuse(ErrInvalidAmount, "amount must be a positive number of fen, got %d", amount)
	}
	if ref == "" {
		// Every fund gets a ref, so a command retried after a lost reply
		// (go-redis retries on network errors) cannot add the money twice.
		id, err := uuid.NewV7()
		if err != nil {
			return false, 0, unavailable("fund", err)
		}
		ref = "auto:" + id.String()
	}
	res, err := s.lua.fund.Run(ctx, s.rdb, s.k.walletKeys(userID)[:2], amount, ref).Slice()
	if err != nil {
		return false, 0, unavailable("fund", err)
	}
	added, _ := res[0].(int64)
	balance, err := toInt64(res[1])
	if err != nil {
		return false, 0, fmt.Errorf("fund: %w", err)
	}
	return added == 1, balance, nil
}

// CreateRequest describes a packet to create.
type CreateRequest struct {
	Room     string
	Sender   User
	Kind     Kind
	Total    int64
	Count    int
	Greeting string
	// TTL is how long the packet stays open after VisibleAt. Zero means
	// Limits.DefaultTTL.
	TTL time.Duration
	// VisibleAt is when grabs open (rain schedules packets ahead). Zero means
	// now.
	VisibleAt time.Time
}

// Create validates req, splits the total, debits the sender and opens the
// packet. The steps are: index for the sweeper and store the packet as
// pending (one round trip), debit the sender once per packet id, then
// activate and index in the room. A crash between steps leaves a pending
// packet that the sweeper settles after PendingGrace: activated if the debit
// happened, cancelled (and the debit made impossible) if it did not.
func (s *Store) Create(ctx context.Context, req CreateRequest) (*Packet, error) {
	p, shares, err := s.prepare(req)
	if err != nil {
		return nil, err
	}
	if err := s.createPending(ctx, p, shares); err != nil {
		return nil, err
	}
	if err := s.debit(ctx, p); err != nil {
		return nil, err
	}
	if err := s.activate(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Store) prepare(req CreateRequest) (*Packet, []int64, error) {
	lim := s.cfg.Limits
	if req.Room == "" || req.Sender.ID == "" {
		return nil, nil, Refuse(ErrInvalidRequest, "room and sender are required")
	}
	if !ValidText(req.Greeting, lim.MaxGreeting) {
		return nil, nil, Refuse(ErrInvalidRequest, "greeting must be at most %d characters of text", lim.MaxGreeting)
	}
	if err := lim.Check(req.Kind, req.Total, req.Count); err != nil {
		return nil, nil, err
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = lim.DefaultTTL
	}
	if ttl < lim.MinTTL || ttl > lim.MaxTTL {
		return nil, nil, Refuse(ErrInvalidRequest, "ttl must be between %v and %v", lim.MinTTL, lim.MaxTTL)
	}
	shares, err := s.cfg.Splitter.Split(req.Kind, req.Total, req.Count, lim.MinShare, lim.MaxShare)
	if err != nil {
		return nil, nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, nil, unavailable("create", err)
	}
	now := s.cfg.Now()
	visible := req.VisibleAt
	if visible.IsZero() || visible.Before(now) {
		visible = now
	}
	p := &Packet{
		ID: id.String(), Room: req.Room, Sender: req.Sender, Kind: req.Kind,
		Total: req.Total, Count: req.Count, Greeting: req.Greeting,
		CreatedAt: now.UnixMilli(), VisibleAt: visible.UnixMilli(),
		ExpiresAt: visible.Add(ttl).UnixMilli(),
	}
	return p, shares, nil
}

func (s *Store) createPending(ctx context.Context, p *Packet, shares []int64) error {
	args := make([]any, 0, 11+len(shares))
	args = append(args, p.ID, p.Room, p.Sender.ID, p.Sender.Name, string(p.Kind), p.Total, p.Count,
		p.Greeting, p.CreatedAt, p.VisibleAt, p.ExpiresAt)
	for _, sh := range shares {
		args = append(args, sh)
	}
	due := p.CreatedAt + s.cfg.PendingGrace.Milliseconds()
	var created *redis.Cmd
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		pipe.Do(ctx, "ZADD", s.k.due(), due, p.ID)
		created = s.lua.create.Run(ctx, pipe, s.k.packetKeys(p.ID)[:2], args...)
	})
	if err != nil {
		return unavailable("create", err)
	}
	// The id is fresh, so a pending packet under it is this call's own
	// (a retried command whose first reply was lost).
	if st, _ := created.Text(); st != "created" && st != string(StatusPending) {
		return Refuse(ErrUnavailable, "packet %s was %s before it was created", p.ID, st)
	}
	return nil
}

func (s *Store) debit(ctx context.Context, p *Packet) error {
	res, err := s.lua.debit.Run(ctx, s.rdb, s.k.walletKeys(p.Sender.ID)[:2], p.ID, p.Total).Text()
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
		return Refuse(ErrInsufficientFunds, "the wallet holds less than %s", FormatYuan(p.Total))
	default: // "void": the sweeper settled this packet as never debited.
		return Refuse(ErrUnavailable, "creating packet %s took too long; nothing was debited", p.ID)
	}
}

func (s *Store) cancel(ctx context.Context, id string) error {
	return s.pipelined(ctx, func(pipe redis.Pipeliner) {
		s.lua.cancel.Run(ctx, pipe, s.k.packetKeys(id)[:2])
		pipe.ZRem(ctx, s.k.due(), id)
	})
}

// activate opens a debited packet, lists it in its room and schedules the
// sweeper's next look at it.
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
		return Refuse(ErrUnavailable, "packet %s was %s", p.ID, status)
	}
	return nil
}

// indexOpen lists an open packet in its room and sets when the sweeper looks
// at it next: at expiry, or sooner to pay claims a crash left unpaid.
func (s *Store) indexOpen(ctx context.Context, pipe redis.Pipeliner, p *Packet) {
	next := min(p.ExpiresAt, s.cfg.Now().Add(s.cfg.ReconcileEvery).UnixMilli())
	// Scores are times in ms, passed as integers: no float in this package.
	pipe.Do(ctx, "ZADD", s.k.due(), next, p.ID)
	pipe.Do(ctx, "ZADD", s.k.room(p.Room), p.CreatedAt, p.ID)
	pipe.ZRemRangeByRank(ctx, s.k.room(p.Room), 0, int64(-s.cfg.RoomHistory-1))
}

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

// Grab takes one share of packet id for user and pays it into the user's
// wallet. The grab itself is one script on the packet's slot; the credit is a
// second idempotent script on the user's slot. If the credit fails the grab
// still stands (the claim is the truth) and the sweeper pays it later.
//
// Grabs of one packet that arrive while an earlier one is in flight are
// settled together in one script call (Config.CoalesceGrabs): a hot packet
// then costs Redis a few commands per batch instead of per grab, with the
// same outcome for every user as if each had grabbed alone, in arrival order.
func (s *Store) Grab(ctx context.Context, id string, user User) (GrabResult, error) {
	if err := checkGrab(id, user); err != nil {
		return GrabResult{}, err
	}
	if !s.cfg.CoalesceGrabs {
		out := s.settleBatch(ctx, id, []grabRequest{{user: user}})
		return out[0].res, out[0].err
	}
	return s.hot.grab(ctx, id, user)
}

func checkGrab(id string, user User) error {
	if id == "" || user.ID == "" {
		return Refuse(ErrInvalidRequest, "packet id and user are required")
	}
	if _, err := uuid.Parse(id); err != nil {
		return Refuse(ErrNotFound, "no packet %q", id)
	}
	return nil
}

type grabRequest struct {
	user User
	done chan grabOutcome
}

type grabOutcome struct {
	res GrabResult
	err error
}

// settleBatch grabs for every request in one script call, then credits the
// winners in one pipelined round trip. A user refused as already_grabbed is
// credited too: when a grab's reply is lost and the client retries, the
// retry is refused but the first grab's share must still be paid now (the
// credit is idempotent, so an already paid claim costs one HSETNX).
func (s *Store) settleBatch(ctx context.Context, id string, reqs []grabRequest) []grabOutcome {
	out := s.grabBatch(ctx, id, reqs)
	var pay []int
	for i := range out {
		if out[i].res.Amount > 0 {
			pay = append(pay, i)
		}
	}
	if len(pay) == 0 {
		return out
	}
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, i := range pay {
			s.creditCmd(ctx, pipe, reqs[i].user.ID, out[i].res)
		}
	})
	if err != nil {
		s.cfg.Logger.Warn("credit after grab failed; the sweeper will pay it", "packet", id, "grabs", len(pay), "err", err)
	}
	for i := range out {
		if out[i].err != nil {
			out[i].res = GrabResult{} // a refusal carries no result
		}
	}
	return out
}

// grabBatch runs the grab script for reqs (no credit).
func (s *Store) grabBatch(ctx context.Context, id string, reqs []grabRequest) []grabOutcome {
	out := make([]grabOutcome, len(reqs))
	args := make([]any, 0, 2*len(reqs))
	for _, r := range reqs {
		args = append(args, r.user.ID, r.user.Name)
	}
	res, err := s.lua.grab.Run(ctx, s.rdb, s.k.packetKeys(id), args...).Slice()
	if err == nil && len(res) != 3+len(reqs) {
		err = fmt.Errorf("grab %s: reply has %d items for %d grabs", id, len(res), len(reqs))
	}
	if err != nil {
		for i := range out {
			out[i].err = unavailable("grab", err)
		}
		return out
	}
	room, _ := res[0].(string)
	at, dur := asInt(res[1]), asInt(res[2])
	for i := range reqs {
		out[i].res, out[i].err = parseGrab(id, room, at, dur, res[3+i])
	}
	return out
}

// grabRefusals maps the grab script's refusal codes to errors.
var grabRefusals = map[string]*Error{
	"not_found": ErrNotFound, "not_yet": ErrNotYet, "expired": ErrExpired,
	"already_grabbed": ErrAlreadyGrabbed, "sold_out": ErrSoldOut,
}

// parseGrab reads one user's item of the grab script's reply:
// "amount|remaining|seq", "already_grabbed|<claim>" or a refusal code. For
// already_grabbed with a claim, the result describes that claim so that it
// can be credited.
func parseGrab(id, room string, at, duration int64, item any) (GrabResult, error) {
	v, _ := item.(string)
	if e, ok := grabRefusals[v]; ok {
		return GrabResult{}, e
	}
	if claim, ok := strings.CutPrefix(v, "already_grabbed|"); ok {
		c, err := parseClaims(map[string]string{"": claim})
		if err != nil {
			return GrabResult{}, fmt.Errorf("grab %s: %w", id, err)
		}
		return GrabResult{PacketID: id, Room: room, Amount: c[0].Amount, Seq: c[0].Seq, At: c[0].At}, ErrAlreadyGrabbed
	}
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return GrabResult{}, fmt.Errorf("grab %s: unexpected reply %q", id, v)
	}
	amount, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return GrabResult{}, fmt.Errorf("grab %s: bad amount %q", id, parts[0])
	}
	g := GrabResult{PacketID: id, Room: room, Amount: amount, At: at}
	g.Remaining, _ = strconv.Atoi(parts[1])
	g.Seq, _ = strconv.Atoi(parts[2])
	if g.Remaining == 0 && duration >= 0 {
		g.Emptied, g.DurationMs = true, duration
	}
	return g, nil
}

// UserClaim is one entry of a user's claim history.
type UserClaim struct {
	PacketID string `json:"packet_id"`
	Room     string `json:"room"`
	Amount   int64  `json:"amount"`
	At       int64  `json:"at"`
}

func (s *Store) credit(ctx context.Context, userID string, g GrabResult) error {
	return s.creditCmd(ctx, s.rdb, userID, g).Err()
}

// grabOnly grabs without crediting: the first half of a grab, as a crash
// between the two steps would leave it. For tests of the repair.
func (s *Store) grabOnly(ctx context.Context, id string, user User) (GrabResult, error) {
	if err := checkGrab(id, user); err != nil {
		return GrabResult{}, err
	}
	out := s.grabBatch(ctx, id, []grabRequest{{user: user}})
	if out[0].err != nil {
		return GrabResult{}, out[0].err
	}
	return out[0].res, nil
}

func (s *Store) creditCmd(ctx context.Context, c redis.Scripter, userID string, g GrabResult) *redis.Cmd {
	entry, _ := json.Marshal(UserClaim{PacketID: g.PacketID, Room: g.Room, Amount: g.Amount, At: g.At})
	return s.lua.credit.Run(ctx, c, s.k.walletKeys(userID), g.PacketID, g.Amount, entry, s.cfg.HistoryLen)
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not an integer amount: %q", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("not an integer amount: %v", v)
}

// asInt reads a small integer (count, position, time) from a script reply.
func asInt(v any) int64 {
	n, _ := toInt64(v)
	return n
}

// isNil reports a missing key or field.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }

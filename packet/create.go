package packet

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/ledger"
)

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
	// RainID names the rain the packet falls in; "" for a lone packet.
	RainID string
	// To makes the packet exclusive to these user ids (1..MaxRecipients,
	// distinct); nil for anyone. Store.Address checks and names them.
	To []string
	// Password, when not "", is the phrase every grab must carry.
	Password string
	// OpensAt, when not zero, makes a countdown packet: grabs open then,
	// at most MaxCountdown ahead, and it expires TTL after.
	OpensAt time.Time
}

// Draft is a validated packet with its pre-split shares, not created yet.
type Draft struct {
	Packet
	RainID string
	shares []int64
}

// Idempotency makes an Open safe to retry. The first Open with Key stores
// what Respond returns for the packets it opened; a later Open with the same
// Key and RequestHash opens nothing and returns that stored response; with
// another RequestHash it is refused with ErrIdempotencyConflict. Keys are
// per sender and kept at least 24 h.
type Idempotency struct {
	Key         string
	RequestHash []byte
	Respond     func(opened []*Draft) ([]byte, error)
}

// Opened is what an Open did.
type Opened struct {
	// Drafts are the packets opened by this call (none on a replay).
	Drafts []*Draft
	// Body is the stored response: Respond's, now or on the first call.
	// Nil without Idempotency.
	Body []byte
	// Replayed reports that the key was seen before and nothing was opened.
	Replayed bool
}

// idempotencyTTL is how long an Idempotency-Key is remembered.
const idempotencyTTL = 24 * time.Hour

// Create validates req, splits the total, debits the sender and opens the
// packet: Draft then Open.
func (s *Store) Create(ctx context.Context, req CreateRequest) (*Packet, error) {
	d, err := s.Draft(req)
	if err != nil {
		return nil, err
	}
	if _, err := s.Open(ctx, []*Draft{d}, nil); err != nil {
		return nil, err
	}
	return &d.Packet, nil
}

// Open debits the drafts' sender (all drafts share one) and opens them.
//
// With a ledger, every debit and packet commits in PostgreSQL in one
// transaction before any share becomes grabbable in Redis, so no Redis
// failover can open a packet whose debit was lost; a crash after the commit
// leaves a packet the sweeper puts into Redis after PendingGrace.
//
// Without one, each packet is stored pending, the sender debited once per
// packet id, then activated; a crash between steps leaves a pending packet
// that the sweeper settles after PendingGrace: activated if the debit
// happened, cancelled (and the debit made impossible) if it did not. A
// refusal part way through a rain keeps the packets opened so far.
func (s *Store) Open(ctx context.Context, drafts []*Draft, idem *Idempotency) (*Opened, error) {
	if len(drafts) == 0 {
		return nil, apierr.Refuse(ErrInvalidRequest, "nothing to open")
	}
	for _, d := range drafts[1:] {
		if d.Sender.ID != drafts[0].Sender.ID {
			return nil, apierr.Refuse(ErrInvalidRequest, "one Open, one sender")
		}
	}
	if s.led != nil {
		return s.openLedger(ctx, drafts, idem)
	}
	return s.openRedis(ctx, drafts, idem)
}

// Draft validates req and splits its total.
func (s *Store) Draft(req CreateRequest) (*Draft, error) {
	lim := s.cfg.Limits
	if req.Room == "" || req.Sender.ID == "" {
		return nil, apierr.Refuse(ErrInvalidRequest, "room and sender are required")
	}
	if !ValidText(req.Greeting, lim.MaxGreeting) {
		return nil, apierr.Refuse(ErrInvalidRequest, "greeting must be at most %d characters of text", lim.MaxGreeting)
	}
	if err := lim.Check(req.Kind, req.Total, req.Count); err != nil {
		return nil, err
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = lim.DefaultTTL
	}
	if ttl < lim.MinTTL || ttl > lim.MaxTTL {
		return nil, apierr.Refuse(ErrInvalidRequest, "ttl must be between %v and %v", lim.MinTTL, lim.MaxTTL)
	}
	shares, err := s.cfg.Splitter.Split(req.Kind, req.Total, req.Count, lim.MinShare, lim.MaxShare)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, unavailable("create", err)
	}
	now := s.cfg.Now()
	p := Packet{ID: id.String(), Room: req.Room, Sender: req.Sender, Kind: req.Kind,
		Total: req.Total, Count: req.Count, Greeting: req.Greeting, CreatedAt: now.UnixMilli()}
	if err := draftKinds(req, &p, now); err != nil {
		return nil, err
	}
	visible := req.VisibleAt
	if p.OpensAt != 0 {
		visible = req.OpensAt
	}
	if visible.IsZero() || visible.Before(now) {
		visible = now
	}
	p.VisibleAt, p.ExpiresAt = visible.UnixMilli(), visible.Add(ttl).UnixMilli()
	if p.OpensAt != 0 {
		p.OpensAt = p.VisibleAt
	}
	return &Draft{Packet: p, RainID: req.RainID, shares: shares}, nil
}

func (s *Store) openLedger(ctx context.Context, drafts []*Draft, idem *Idempotency) (*Opened, error) {
	lps := make([]ledger.Packet, len(drafts))
	for i, d := range drafts {
		lps[i] = d.ledgerPacket(d.CreatedAt + s.cfg.PendingGrace.Milliseconds())
	}
	var li *ledger.Idempotency
	var body []byte
	if idem != nil {
		var err error
		if body, err = idem.Respond(drafts); err != nil {
			return nil, err
		}
		li = &ledger.Idempotency{Key: idem.Key, RequestHash: idem.RequestHash, Response: body}
	}
	replay, err := s.led.Open(ctx, lps, li)
	switch {
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return nil, apierr.Refuse(ErrInsufficientFunds, "the wallet holds less than %s", FormatYuan(sumTotals(drafts)))
	case errors.Is(err, ledger.ErrIdempotencyConflict):
		return nil, apierr.Refuse(ErrIdempotencyConflict, "Idempotency-Key %q was used for a different request", idem.Key)
	case err != nil:
		return nil, unavailable("open", err)
	case replay != nil:
		return &Opened{Body: replay, Replayed: true}, nil
	}
	err = s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, d := range drafts {
			s.storeCmd(ctx, pipe, d, StatusActive, nil)
		}
	})
	if err != nil {
		// Debited and recorded: the sweeper opens it after PendingGrace.
		return nil, unavailable("open", err)
	}
	return &Opened{Drafts: drafts, Body: body}, nil
}

func sumTotals(drafts []*Draft) int64 {
	var sum int64
	for _, d := range drafts {
		sum += d.Total
	}
	return sum
}

func (d *Draft) ledgerPacket(dueAt int64) ledger.Packet {
	return ledger.Packet{
		ID: d.ID, Room: d.Room, SenderID: d.Sender.ID, SenderName: d.Sender.Name, Kind: string(d.Kind),
		Greeting: d.Greeting, Total: d.Total, Count: d.Count, CreatedAt: d.CreatedAt,
		VisibleAt: d.VisibleAt, ExpiresAt: d.ExpiresAt, DueAt: dueAt, Shares: d.shares, RainID: d.RainID,
		To: userIDs(d.To), ToNames: userNames(d.To), Password: d.Password, OpensAt: d.OpensAt,
	}
}

// storeCmd queues create.lua for d with status and the claims a rebuild
// restores (nil for a new packet); shares are the ones not yet claimed.
func (s *Store) storeCmd(ctx context.Context, c redis.Scripter, d *Draft, status Status, claims []ledger.Claim) *redis.Cmd {
	shares := d.shares[len(claims):]
	var left int64
	for _, sh := range shares {
		left += sh
	}
	to, err := toJSON(d.To)
	if err != nil {
		return redis.NewCmdResult(nil, err)
	}
	args := make([]any, 0, 18+2*len(claims)+len(shares))
	args = append(args, d.ID, d.Room, d.Sender.ID, d.Sender.Name, string(d.Kind), d.Total, d.Count,
		d.Greeting, d.CreatedAt, d.VisibleAt, d.ExpiresAt, string(status), left, len(claims),
		to, d.Password, passwordHash(d.Password), d.OpensAt)
	for _, c := range claims {
		args = append(args, c.UserID, formatClaim(c.Seq, c.Amount, c.At, "", c.UserName))
	}
	for _, sh := range shares {
		left -= sh
		args = append(args, strconv.FormatInt(sh, 10)+":"+strconv.FormatInt(left, 10))
	}
	keys := s.k.packetKeys(d.ID)
	return s.lua.create.Run(ctx, c, []string{keys[0], keys[1], keys[2], s.k.to(d.ID)}, args...)
}

// formatClaim is a claim as the claims hash keeps it.
func formatClaim(seq int, amount, at int64, token, name string) string {
	return strconv.Itoa(seq) + "|" + strconv.FormatInt(amount, 10) + "|" + strconv.FormatInt(at, 10) + "|" + token + "|" + name
}

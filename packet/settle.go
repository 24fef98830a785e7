package packet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/redis/go-redis/v9"
)

// settler commits this instance's claims to the ledger, many per
// transaction, then removes them from their packets' outboxes. It is the
// fast path: the sweeper drains any outbox entry it leaves (a crash, a
// failed commit), so dropping work here never loses money.
//
// A claim on its way is shown in /me without writing anything per winner
// to Redis: from its hand-over until its commit, this instance's wallet
// reads find it in flight (see uncommitted). Only a claim whose commit is
// delayed (the queue is full, or the commit failed) gets a pending marker
// on its user's slot, written before it leaves the in-flight set, so that
// every instance's /me shows it until the sweeper commits it.
type settler struct {
	s      *Store
	queue  chan settleItem
	flight inflight
}

// settleItem is one grab batch's claims, recorded in the outbox as entry.
type settleItem struct {
	packetID, entry string
	claims          []ledger.Claim
	// room is the packet's room, for pending markers.
	room string
	// emptied reports that this batch took the packet's last share: the
	// sweeper should finish it now rather than at expiry.
	emptied bool
}

// pendingTTL bounds how long a pending marker outlives a settler that never
// removed it (the sweeper settles the claim in the meantime).
const pendingTTL = time.Hour

func newSettler(s *Store) *settler {
	return &settler{s: s, queue: make(chan settleItem, 4096), flight: inflight{byUser: map[string]map[string]UserClaim{}}}
}

// handOver queues the winners of a grab batch for the settler, and marks
// them in flight so that this instance's /me shows them at once. It runs
// before anyone is answered.
func (st *settler) handOver(ctx context.Context, id, entry string, reqs []grabRequest, out []grabOutcome, pay []int) {
	item := settleItem{packetID: id, entry: entry}
	for _, i := range pay {
		g, u := out[i].res, reqs[i].user
		item.room = g.Room
		item.emptied = item.emptied || g.Emptied
		item.claims = append(item.claims, ledger.Claim{PacketID: id, UserID: u.ID, UserName: u.Name, Seq: g.Seq, Amount: g.Amount, At: g.At})
	}
	st.flight.add(item.room, item.claims)
	select {
	case st.queue <- item:
	default:
		st.s.cfg.Logger.Warn("settler queue full; the sweeper commits these claims", "packet", id, "claims", len(item.claims))
		st.delay(ctx, []settleItem{item})
	}
}

// delay writes a pending marker for each claim of batch, whose commit is
// left to the sweeper, then takes them out of flight. The marker write is
// best effort: if it fails too, /me misses the claim until it commits.
func (st *settler) delay(ctx context.Context, batch []settleItem) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := st.s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, it := range batch {
			for _, c := range it.claims {
				key := st.s.k.pending(c.UserID)
				pipe.HSet(ctx, key, c.PacketID, pendingValue(c.Amount, c.At, it.room))
				pipe.PExpire(ctx, key, pendingTTL)
			}
		}
	})
	if err != nil {
		st.s.cfg.Logger.Warn("recording pending claims failed", "err", err)
	}
	for _, it := range batch {
		st.flight.remove(it.claims)
	}
}

func pendingValue(amount, at int64, room string) string {
	return strconv.FormatInt(amount, 10) + "|" + strconv.FormatInt(at, 10) + "|" + room
}

// inflight indexes by user the claims this instance's settler holds, from
// hand-over until they are committed or marked pending.
type inflight struct {
	mu     sync.Mutex
	byUser map[string]map[string]UserClaim // user id -> packet id -> claim
}

func (f *inflight) add(room string, claims []ledger.Claim) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range claims {
		m := f.byUser[c.UserID]
		if m == nil {
			m = map[string]UserClaim{}
			f.byUser[c.UserID] = m
		}
		m[c.PacketID] = UserClaim{PacketID: c.PacketID, Room: room, Amount: c.Amount, At: c.At, Pending: true}
	}
}

func (f *inflight) remove(claims []ledger.Claim) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range claims {
		if m := f.byUser[c.UserID]; m != nil {
			delete(m, c.PacketID)
			if len(m) == 0 {
				delete(f.byUser, c.UserID)
			}
		}
	}
}

// of returns a copy of user's claims in flight: packet id -> claim.
func (f *inflight) of(user string) map[string]UserClaim {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]UserClaim, len(f.byUser[user]))
	for id, c := range f.byUser[user] {
		out[id] = c
	}
	return out
}

// run commits queued claims with SettleWorkers transactions in flight
// until ctx ends, then commits what is still queued (within a few seconds)
// and returns.
func (st *settler) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range st.s.cfg.SettleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.work(ctx)
		}()
	}
	wg.Wait()
}

// work is one settlement worker. A commit is never cut short by ctx: claims
// a winner was told about must not be dropped on the way out.
func (st *settler) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			st.flush()
			return
		case it := <-st.queue:
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			st.commit(cctx, st.gather(it))
			cancel()
		}
	}
}

// gather takes it and whatever else is queued, up to SettleBatch claims.
func (st *settler) gather(it settleItem) []settleItem {
	batch, n := []settleItem{it}, len(it.claims)
	for n < st.s.cfg.SettleBatch {
		select {
		case more := <-st.queue:
			batch, n = append(batch, more), n+len(more.claims)
		default:
			return batch
		}
	}
	return batch
}

func (st *settler) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		select {
		case it := <-st.queue:
			st.commit(ctx, st.gather(it))
		default:
			return
		}
	}
}

// commit settles a batch in one ledger transaction and tidies Redis after.
// Claims it could not commit get pending markers; the sweeper commits them.
func (st *settler) commit(ctx context.Context, batch []settleItem) {
	var claims []ledger.Claim
	for _, it := range batch {
		claims = append(claims, it.claims...)
	}
	_, err := st.s.settleClaims(ctx, claims, true)
	if err != nil && !errors.Is(err, errRejected) {
		st.s.cfg.Logger.Warn("settling claims failed; the sweeper commits them", "claims", len(claims), "err", err)
		st.delay(ctx, batch)
		return
	}
	// A claim the ledger refused is recorded for every audit to report;
	// it is not pending, and leaves the in-flight set with the others.
	for _, it := range batch {
		st.flight.remove(it.claims)
	}
	entries := map[string][]string{}
	for _, it := range batch {
		if it.entry != "" {
			entries[it.packetID] = append(entries[it.packetID], it.entry)
		}
	}
	st.s.tidy(ctx, entries, nil)
	now := st.s.cfg.Now().UnixMilli()
	for _, it := range batch {
		if it.emptied {
			if err := st.s.led.ScheduleSooner(ctx, it.packetID, now); err != nil {
				st.s.cfg.Logger.Warn("scheduling an emptied packet failed; it settles at expiry", "packet", it.packetID, "err", err)
			}
		}
	}
}

// settleClaims commits claims to the ledger. A claim the ledger refuses
// (money that does not add up, such as a position a Redis failover handed
// out twice) is logged, counted and recorded in the ledger as refused, so
// that every audit reports it until an operator resolves it; only once it
// is recorded may its outbox entry go. errRejected says some were refused.
// With observe, each claim's settlement lag goes to the metrics: the paths
// that commit claims for the first time observe, the finish's replay of a
// whole claims hash does not.
func (s *Store) settleClaims(ctx context.Context, claims []ledger.Claim, observe bool) ([]ledger.Claim, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	committed, rejected, err := s.led.Settle(ctx, claims)
	if err != nil {
		return nil, err
	}
	if observe {
		now := s.cfg.Now().UnixMilli()
		for _, c := range committed {
			s.cfg.Metrics.settled(now - c.At)
		}
	}
	if len(rejected) == 0 {
		return committed, nil
	}
	for _, r := range rejected {
		s.cfg.Metrics.difference("claim_rejected")
		s.cfg.Logger.Error("ledger refused a claim", "packet", r.Claim.PacketID, "user", r.Claim.UserID,
			"amount", r.Claim.Amount, "seq", r.Claim.Seq, "reason", r.Reason)
	}
	if err := s.led.RecordRefused(ctx, rejected); err != nil {
		return nil, err
	}
	return committed, errRejected
}

// tidy removes committed outbox entries, and the pending markers of
// committed claims that may have one (the sweeper's: a claim it commits
// may be one whose settler wrote a marker; the settler's own never have).
func (s *Store) tidy(ctx context.Context, entries map[string][]string, committed []ledger.Claim) {
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for id, ids := range entries {
			pipe.XDel(ctx, s.k.outbox(id), ids...)
		}
		for _, c := range committed {
			pipe.HDel(ctx, s.k.pending(c.UserID), c.PacketID)
		}
	})
	if err != nil {
		s.cfg.Logger.Warn("tidying settled claims failed; the sweeper does it", "err", err)
	}
}

// drainOutbox commits every claim still in packet id's outbox and removes
// it there: the sweeper's repair of whatever the settlers left. An entry
// names a batch's positions ("/first", "/last"); the claims themselves are
// read from the claims hash, once per drain.
func (s *Store) drainOutbox(ctx context.Context, id string) (int, error) {
	total := 0
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.k.outbox(id), "-", "+", int64(s.cfg.SettleBatch)).Result()
		if err != nil || len(msgs) == 0 {
			return total, err
		}
		raw, err := s.rdb.HGetAll(ctx, s.k.claims(id)).Result()
		if err != nil {
			return total, err
		}
		all, err := parseClaims(raw)
		if err != nil {
			return total, err
		}
		var claims []ledger.Claim
		entries := map[string][]string{}
		for _, m := range msgs {
			got, err := outboxClaims(m.Values, all)
			if err != nil {
				return total, fmt.Errorf("outbox of %s, entry %s: %w", id, m.ID, err)
			}
			for _, c := range got {
				claims = append(claims, ledgerClaim(id, c))
			}
			entries[id] = append(entries[id], m.ID)
		}
		// A refused claim is recorded by settleClaims, for every audit to
		// report: not a reason to stop paying the others.
		committed, err := s.settleClaims(ctx, claims, true)
		if err != nil && !errors.Is(err, errRejected) {
			return total, err
		}
		total += len(committed)
		s.tidy(ctx, entries, committed)
	}
}

// outboxClaims reads an outbox entry: the first and last position of one
// grab batch's claims, which it picks from all (the packet's claims). An
// entry written before entries named positions holds the claims
// themselves, user id -> claim.
func outboxClaims(v map[string]any, all []Claim) ([]Claim, error) {
	if _, ok := v["/first"]; !ok {
		var out []Claim
		for user, raw := range v {
			c, err := parseClaim(user, asString(raw))
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	first, err1 := strconv.Atoi(asString(v["/first"]))
	last, err2 := strconv.Atoi(asString(v["/last"]))
	if err1 != nil || err2 != nil || first < 1 || last < first {
		return nil, fmt.Errorf("not a range of positions: %v", v)
	}
	var out []Claim
	for _, c := range all {
		if c.Seq >= first && c.Seq <= last {
			out = append(out, c)
		}
	}
	return out, nil
}

func ledgerClaim(id string, c Claim) ledger.Claim {
	return ledger.Claim{PacketID: id, UserID: c.User.ID, UserName: c.User.Name, Seq: c.Seq, Amount: c.Amount, At: c.At}
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// errRejected says the ledger refused some claims, now recorded as refused
// (see settleClaims).
var errRejected = errors.New("the ledger refused some claims")

// pendingClaims reads user's pending markers: packet id -> claim.
func (s *Store) pendingClaims(ctx context.Context, user string) (map[string]UserClaim, error) {
	raw, err := s.rdb.HGetAll(ctx, s.k.pending(user)).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]UserClaim, len(raw))
	for id, v := range raw {
		parts := strings.SplitN(v, "|", 3)
		if len(parts) != 3 {
			continue
		}
		amount, err1 := strconv.ParseInt(parts[0], 10, 64)
		at, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[id] = UserClaim{PacketID: id, Room: parts[2], Amount: amount, At: at, Pending: true}
	}
	return out, nil
}

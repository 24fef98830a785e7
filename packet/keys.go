package packet

import (
	"hash/fnv"
	"strconv"
)

// Key layout. Every key carries a hash tag so that each script touches the
// keys of one slot only and runs unchanged on Redis Cluster:
//
//	<prefix>:{p:<id>}:meta      hash   packet description, status, left_count, left_amount
//	<prefix>:{p:<id>}:shares    list   shares not yet grabbed, "amount:left_after" (after expiry: what was refunded)
//	<prefix>:{p:<id>}:claims    hash   user id -> "seq|amount|at_ms|token|name" (and "" -> not a claim, see create.lua)
//	<prefix>:{p:<id>}:outbox    stream grab batches not yet committed to the ledger, "/first", "/last" positions (ledger mode)
//	<prefix>:{p:<id>}:to        set    the user ids an exclusive packet is for
//	<prefix>:{u:<id>}:wallet    hash   balance, funded, sent_*, recv_*, refund_total (Redis-only mode)
//	<prefix>:{u:<id>}:ledger    hash   idempotency records: f:<ref>, d:<packet>, c:<packet>, r:<packet> (Redis-only mode)
//	<prefix>:{u:<id>}:history   list   latest claims, newest first, JSON (Redis-only mode)
//	<prefix>:{u:<id>}:sent      zset   "<created_at, 16 digits>:<packet id>", score 0: packets sent (Redis-only mode)
//	<prefix>:{u:<id>}:years     hash   "<year>:sent_total" etc: per-year totals (Redis-only mode)
//	<prefix>:{u:<id>}:pending   hash   packet id -> "amount|at|room", claims whose commit is delayed (ledger mode, with a TTL)
//	<prefix>:{u:<id>}:idem:<k>  string an Idempotency-Key's request hash and response (Redis-only mode, 24 h)
//	<prefix>:{u:<id>}:name      string the user's latest display name (30 days)
//	<prefix>:{r:<room>}:packets zset   packet id -> created_at ms (Redis-only mode)
//	<prefix>:{due:<n>}:packets  zset   packet id -> when the sweeper should look at it (Redis-only mode)
//
// The sweeper's index is spread over dueBuckets keys, so that on a cluster
// it lands on many slots instead of being one hot spot.
type keys struct{ prefix string }

// dueBuckets is how many keys the sweeper's index is spread over.
const dueBuckets = 16

func (k keys) meta(id string) string    { return k.prefix + ":{p:" + id + "}:meta" }
func (k keys) shares(id string) string  { return k.prefix + ":{p:" + id + "}:shares" }
func (k keys) claims(id string) string  { return k.prefix + ":{p:" + id + "}:claims" }
func (k keys) outbox(id string) string  { return k.prefix + ":{p:" + id + "}:outbox" }
func (k keys) to(id string) string      { return k.prefix + ":{p:" + id + "}:to" }
func (k keys) name(id string) string    { return k.prefix + ":{u:" + id + "}:name" }
func (k keys) wallet(id string) string  { return k.prefix + ":{u:" + id + "}:wallet" }
func (k keys) ledger(id string) string  { return k.prefix + ":{u:" + id + "}:ledger" }
func (k keys) history(id string) string { return k.prefix + ":{u:" + id + "}:history" }
func (k keys) pending(id string) string { return k.prefix + ":{u:" + id + "}:pending" }
func (k keys) sent(id string) string    { return k.prefix + ":{u:" + id + "}:sent" }
func (k keys) years(id string) string   { return k.prefix + ":{u:" + id + "}:years" }
func (k keys) idem(user, key string) string {
	return k.prefix + ":{u:" + user + "}:idem:" + key
}
func (k keys) room(room string) string { return k.prefix + ":{r:" + room + "}:packets" }

// due is the sweeper index bucket that packet id is kept in.
func (k keys) due(id string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return k.dueBucket(int(h.Sum32() % dueBuckets))
}

func (k keys) dueBucket(n int) string {
	return k.prefix + ":{due:" + strconv.Itoa(n) + "}:packets"
}

// packetKeys are the KEYS of the scripts that work on one packet.
func (k keys) packetKeys(id string) []string {
	return []string{k.meta(id), k.shares(id), k.claims(id), k.outbox(id), k.to(id)}
}

// walletKeys are the KEYS of the scripts that work on one wallet.
func (k keys) walletKeys(user string) []string {
	return []string{k.wallet(user), k.ledger(user), k.history(user)}
}

package packet

// Key layout. Every key carries a hash tag so that each script touches the
// keys of one slot only and runs unchanged on Redis Cluster:
//
//	<prefix>:{p:<id>}:meta      hash   packet description and status
//	<prefix>:{p:<id>}:shares    list   shares not yet grabbed (after expiry: what was refunded)
//	<prefix>:{p:<id>}:claims    hash   user id -> "seq|amount|at_ms|name"
//	<prefix>:{u:<id>}:wallet    hash   balance, funded, sent_*, recv_*, refund_total
//	<prefix>:{u:<id>}:ledger    hash   idempotency records: f:<ref>, d:<packet>, c:<packet>, r:<packet>
//	<prefix>:{u:<id>}:history   list   latest claims, newest first (JSON)
//	<prefix>:{r:<room>}:packets zset   packet id -> created_at ms
//	<prefix>:{sweep}:due        zset   packet id -> when the sweeper should look at it
type keys struct{ prefix string }

func (k keys) meta(id string) string    { return k.prefix + ":{p:" + id + "}:meta" }
func (k keys) shares(id string) string  { return k.prefix + ":{p:" + id + "}:shares" }
func (k keys) claims(id string) string  { return k.prefix + ":{p:" + id + "}:claims" }
func (k keys) wallet(id string) string  { return k.prefix + ":{u:" + id + "}:wallet" }
func (k keys) ledger(id string) string  { return k.prefix + ":{u:" + id + "}:ledger" }
func (k keys) history(id string) string { return k.prefix + ":{u:" + id + "}:history" }
func (k keys) room(room string) string  { return k.prefix + ":{r:" + room + "}:packets" }
func (k keys) due() string              { return k.prefix + ":{sweep}:due" }

// packetKeys are the KEYS of the scripts that work on one packet.
func (k keys) packetKeys(id string) []string {
	return []string{k.meta(id), k.shares(id), k.claims(id)}
}

// walletKeys are the KEYS of the scripts that work on one wallet.
func (k keys) walletKeys(user string) []string {
	return []string{k.wallet(user), k.ledger(user), k.history(user)}
}

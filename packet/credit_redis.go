package packet

import (
	"context"
	"encoding/json"

	"github.com/redis/go-redis/v9"
)

// UserClaim is one entry of a user's claim history.
type UserClaim struct {
	PacketID string `json:"packet_id"`
	Room     string `json:"room"`
	Amount   int64  `json:"amount"`
	At       int64  `json:"at"`
	// Pending reports a claim not committed to the ledger yet; its money is
	// not in the balance yet.
	Pending bool `json:"pending,omitempty"`
}

// creditCmd queues credit.lua: pay a claim into a Redis wallet once
// (Redis-only mode).
func (s *Store) creditCmd(ctx context.Context, c redis.Scripter, userID string, g GrabResult) *redis.Cmd {
	entry, _ := json.Marshal(UserClaim{PacketID: g.PacketID, Room: g.Room, Amount: g.Amount, At: g.At})
	keys := append(s.k.walletKeys(userID), s.k.years(userID))
	return s.lua.credit.Run(ctx, c, keys, g.PacketID, g.Amount, entry, s.cfg.HistoryLen, yearOf(g.At))
}

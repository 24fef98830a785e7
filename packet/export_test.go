package packet

import "context"

// grabOnly grabs without paying: the first half of a grab, as a crash
// between the two steps would leave it.
func (s *Store) grabOnly(ctx context.Context, id string, user User) (GrabResult, error) {
	if err := checkGrab(id, user); err != nil {
		return GrabResult{}, err
	}
	out, _ := s.grabBatch(ctx, id, "", []grabRequest{newGrabRequest(user, "")})
	return out[0].res, out[0].err
}

// credit is the second half of a Redis-only grab: pay g into user's wallet.
func (s *Store) credit(ctx context.Context, userID string, g GrabResult) error {
	return s.creditCmd(ctx, s.rdb, userID, g).Err()
}

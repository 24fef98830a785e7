package ledger

import "errors"

// Sentinel errors. Methods wrap them with %w; test with errors.Is.
var (
	// ErrInsufficientFunds: the sender's wallet holds less than Open would
	// debit. Nothing was recorded.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrIdempotencyConflict: the idempotency key (Open) or funding ref (Fund)
	// was already used for a different request. Nothing was recorded.
	ErrIdempotencyConflict = errors.New("idempotency key reused for a different request")
	// ErrNotFound: no packet with that id.
	ErrNotFound = errors.New("not found")
	// ErrNotSettled: the packet is not finished, or its escrow still holds
	// money (claims still to commit).
	ErrNotSettled = errors.New("packet not settled")
	// ErrInvalid: an argument the ledger refuses (empty id, non-positive
	// amount, malformed packet id or cursor, shares that do not add up...).
	ErrInvalid = errors.New("invalid argument")
)

// Reasons a claim is rejected by Settle (Rejection.Reason).
const (
	ReasonInvalid         = "invalid claim"
	ReasonUnknownPacket   = "unknown packet"
	ReasonExceedsEscrow   = "exceeds escrow"
	ReasonDiffers         = "differs from committed claim"
	ReasonSeqTaken        = "seq already taken"
	ReasonDuplicateInCall = "duplicate in batch"
)

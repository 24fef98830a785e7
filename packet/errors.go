package packet

import "github.com/hongbao-dev/hongbao/internal/apierr"

// Error is a refusal with a stable, documented code (see docs/protocol.md);
// its home is internal/apierr, shared with web's transport codes. Callers
// switch on the sentinel values below with errors.Is; the web layer maps the
// code to an HTTP status and to the wire error object.
type Error = apierr.Error

// The money codes this package returns. Each is a distinct sentinel so that
// a wrapped error ("%w: detail") still matches with errors.Is.
var (
	ErrInvalidRequest      = &Error{Code: "invalid_request", Message: "the request is malformed"}
	ErrInvalidAmount       = &Error{Code: "invalid_amount", Message: "the amount must be a positive whole number of fen"}
	ErrInvalidCount        = &Error{Code: "invalid_count", Message: "the number of shares is out of range"}
	ErrUnevenTotal         = &Error{Code: "uneven_total", Message: "an equal packet's total must divide evenly by its count"}
	ErrShareTooSmall       = &Error{Code: "share_too_small", Message: "every share must be at least the minimum share"}
	ErrShareTooLarge       = &Error{Code: "share_too_large", Message: "a share would exceed the maximum share"}
	ErrTotalTooLarge       = &Error{Code: "total_too_large", Message: "the total exceeds count × maximum share"}
	ErrNotFound            = &Error{Code: "not_found", Message: "no such packet"}
	ErrAlreadyGrabbed      = &Error{Code: "already_grabbed", Message: "you already opened this packet"}
	ErrSoldOut             = &Error{Code: "sold_out", Message: "all shares are taken"}
	ErrExpired             = &Error{Code: "expired", Message: "the packet has expired"}
	ErrNotYet              = &Error{Code: "not_yet", Message: "the packet is not open yet"}
	ErrNotForYou           = &Error{Code: "not_for_you", Message: "this packet is for someone else"}
	ErrWrongPassword       = &Error{Code: "wrong_password", Message: "that is not the packet's password"}
	ErrInsufficientFunds   = &Error{Code: "insufficient_funds", Message: "the wallet balance is too low"}
	ErrUnavailable         = &Error{Code: "unavailable", Message: "the store could not complete the request; try again"}
	ErrIdempotencyConflict = &Error{Code: "idempotency_conflict", Message: "this Idempotency-Key was used for a different request"}
)

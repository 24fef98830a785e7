package packet

import (
	"errors"
	"fmt"
)

// Error is a refusal with a stable, documented code (see docs/protocol.md).
// Callers switch on the sentinel values below with errors.Is; the web layer
// maps the code to an HTTP status and to the wire error object.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// The codes this package returns. Each is a distinct sentinel so that a
// wrapped error ("%w: detail") still matches with errors.Is.
var (
	ErrInvalidRequest      = &Error{"invalid_request", "the request is malformed"}
	ErrInvalidAmount       = &Error{"invalid_amount", "the amount must be a positive whole number of fen"}
	ErrInvalidCount        = &Error{"invalid_count", "the number of shares is out of range"}
	ErrUnevenTotal         = &Error{"uneven_total", "an equal packet's total must divide evenly by its count"}
	ErrShareTooSmall       = &Error{"share_too_small", "every share must be at least the minimum share"}
	ErrShareTooLarge       = &Error{"share_too_large", "a share would exceed the maximum share"}
	ErrTotalTooLarge       = &Error{"total_too_large", "the total exceeds count × maximum share"}
	ErrNotFound            = &Error{"not_found", "no such packet"}
	ErrAlreadyGrabbed      = &Error{"already_grabbed", "you already opened this packet"}
	ErrSoldOut             = &Error{"sold_out", "all shares are taken"}
	ErrExpired             = &Error{"expired", "the packet has expired"}
	ErrNotYet              = &Error{"not_yet", "the packet is not open yet"}
	ErrInsufficientFunds   = &Error{"insufficient_funds", "the wallet balance is too low"}
	ErrUnavailable         = &Error{"unavailable", "the store could not complete the request; try again"}
	ErrIdempotencyConflict = &Error{"idempotency_conflict", "this Idempotency-Key was used for a different request"}
)

// CodeOf returns the stable code of err, or "" when err carries none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// detailed is a coded error with a message specific to one request, such as
// which limit was hit. It unwraps to its sentinel.
type detailed struct {
	base *Error
	msg  string
}

func (d *detailed) Error() string { return d.base.Code + ": " + d.msg }
func (d *detailed) Unwrap() error { return d.base }

// Refuse returns an error that matches base with errors.Is and carries a
// request-specific message.
func Refuse(base *Error, format string, args ...any) error {
	return &detailed{base: base, msg: fmt.Sprintf(format, args...)}
}

// Describe returns the stable code and a human message for err: the
// request-specific message when there is one, else the sentinel's. Errors
// without a code describe as ("", err.Error()).
func Describe(err error) (code, message string) {
	var d *detailed
	if errors.As(err, &d) {
		return d.base.Code, d.msg
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Message
	}
	return "", err.Error()
}

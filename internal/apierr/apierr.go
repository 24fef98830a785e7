// Package apierr is the home of hongbao's coded errors: a refusal with a
// stable, documented code (docs/protocol.md) and a human message. packet
// defines the money codes, web the transport and auth codes; web maps every
// code to an HTTP status and to the wire error object.
package apierr

import (
	"errors"
	"fmt"
)

// Error is a refusal with a stable code. Callers switch on sentinel values
// with errors.Is, so a wrapped error ("%w: detail") still matches.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

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

// CodeOf returns the stable code of err, or "" when err carries none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
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

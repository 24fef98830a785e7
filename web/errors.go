package web

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// Codes that belong to the transport rather than to money. The money codes
// are packet's sentinels; docs/protocol.md lists them all.
var (
	ErrUnauthorized = &apierr.Error{Code: "unauthorized", Message: "a valid token is required"}
	ErrForbidden    = &apierr.Error{Code: "forbidden", Message: "not allowed"}
	ErrRateLimited  = &apierr.Error{Code: "rate_limited", Message: "too many requests; slow down"}
)

// ErrorBody is the wire form of every error.
type ErrorBody struct {
	Error ErrorObject `json:"error"`
}

// ErrorObject carries a stable code and a human message.
type ErrorObject struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statusOf maps stable codes to HTTP statuses.
var statusOf = map[string]int{
	"invalid_request":      http.StatusBadRequest,
	"invalid_amount":       http.StatusBadRequest,
	"invalid_count":        http.StatusBadRequest,
	"uneven_total":         http.StatusBadRequest,
	"share_too_small":      http.StatusBadRequest,
	"share_too_large":      http.StatusBadRequest,
	"total_too_large":      http.StatusBadRequest,
	"unauthorized":         http.StatusUnauthorized,
	"forbidden":            http.StatusForbidden,
	"not_for_you":          http.StatusForbidden,
	"wrong_password":       http.StatusForbidden,
	"not_found":            http.StatusNotFound,
	"already_grabbed":      http.StatusConflict,
	"sold_out":             http.StatusGone,
	"expired":              http.StatusGone,
	"not_yet":              http.StatusTooEarly,
	"insufficient_funds":   http.StatusConflict,
	"idempotency_conflict": http.StatusConflict,
	"rate_limited":         http.StatusTooManyRequests,
	"daily_limit":          http.StatusTooManyRequests,
	"room_rate_limited":    http.StatusTooManyRequests,
	"unavailable":          http.StatusServiceUnavailable,
}

// errorObject turns any error into its wire form. Errors without a code are
// internal: their text stays in the log, the client sees "unavailable".
func errorObject(err error) (int, ErrorObject) {
	code, msg := apierr.Describe(err)
	if code == "" {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return httpErrorObject(he)
		}
		return http.StatusServiceUnavailable, ErrorObject{Code: packet.ErrUnavailable.Code, Message: packet.ErrUnavailable.Message}
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusBadRequest
	}
	return status, ErrorObject{Code: code, Message: msg}
}

// httpErrorObject maps Echo's own errors (unknown route, wrong method, body
// too large) onto the stable codes.
func httpErrorObject(he *echo.HTTPError) (int, ErrorObject) {
	msg := http.StatusText(he.Code)
	switch he.Code {
	case http.StatusNotFound:
		return he.Code, ErrorObject{Code: "not_found", Message: msg}
	case http.StatusUnauthorized:
		return he.Code, ErrorObject{Code: "unauthorized", Message: msg}
	case http.StatusForbidden:
		return he.Code, ErrorObject{Code: "forbidden", Message: msg}
	case http.StatusTooManyRequests:
		return he.Code, ErrorObject{Code: "rate_limited", Message: msg}
	case http.StatusServiceUnavailable:
		return he.Code, ErrorObject{Code: "unavailable", Message: msg}
	}
	if he.Code >= 500 {
		return http.StatusServiceUnavailable, ErrorObject{Code: "unavailable", Message: packet.ErrUnavailable.Message}
	}
	return he.Code, ErrorObject{Code: "invalid_request", Message: msg}
}

// invalid returns an invalid_request error with a specific message.
func invalid(format string, args ...any) error {
	return apierr.Refuse(packet.ErrInvalidRequest, format, args...)
}

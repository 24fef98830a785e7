package web

import (
	"bytes"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/packet"
)

// kindsOf reads the exclusive, password and countdown fields of a create
// body into out; packet.Store.Draft checks how they combine and their limits.
func kindsOf(req packetRequest, out *packet.CreateRequest) error {
	if req.To != nil {
		if len(req.To) == 0 || len(req.To) > packet.MaxRecipients {
			return invalid("to must list 1 to %d user ids", packet.MaxRecipients)
		}
		for i, id := range req.To {
			if !validUserID(id) {
				return invalid("to[%d] is not a user id (1 to 128 of A-Z a-z 0-9 - _ . : @)", i)
			}
		}
		out.To = req.To
	}
	if req.Password != nil {
		if *req.Password == "" {
			return invalid("password must be 1 to %d characters of text", packet.MaxPassword)
		}
		out.Password = *req.Password
	}
	if req.OpensAt != "" {
		ms, err := strconv.ParseInt(string(req.OpensAt), 10, 64)
		if err != nil || ms <= 0 {
			return invalid("opens_at must be a time in Unix milliseconds, got %q", string(req.OpensAt))
		}
		out.OpensAt = time.UnixMilli(ms)
	}
	return nil
}

type grabRequest struct {
	Password string `json:"password"`
}

// grabPassword reads the optional body of a REST grab, {"password": "..."}.
// No body at all is a grab without a phrase.
func grabPassword(c echo.Context) (string, error) {
	raw, err := readBody(c)
	if err != nil || len(bytes.TrimSpace(raw)) == 0 {
		return "", err
	}
	var req grabRequest
	if err := decodeBytes(raw, &req); err != nil {
		return "", err
	}
	return req.Password, nil
}

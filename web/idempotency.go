package web

import (
	"crypto/sha256"

	"github.com/hongbao-dev/hongbao/packet"
	"github.com/labstack/echo/v4"
)

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 128

// idempotencyOf reads the Idempotency-Key header: nil when there is none.
// A key is 1..128 printable ASCII characters; it is remembered per sender
// for at least 24 h, with a hash of the route and body so that a reuse for
// another request is refused.
func idempotencyOf(c echo.Context, body []byte, respond func([]*packet.Draft) ([]byte, error)) (*packet.Idempotency, error) {
	key := c.Request().Header.Get("Idempotency-Key")
	if key == "" {
		return nil, nil
	}
	if len(key) > maxIdempotencyKey {
		return nil, invalid("Idempotency-Key must be at most %d characters", maxIdempotencyKey)
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return nil, invalid("Idempotency-Key must be printable ASCII without spaces")
		}
	}
	h := sha256.New()
	h.Write([]byte(c.Request().Method + " " + c.Path() + " " + c.Param("room") + "\n"))
	h.Write(body)
	return &packet.Idempotency{Key: key, RequestHash: h.Sum(nil), Respond: respond}, nil
}

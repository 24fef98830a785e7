package hub

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Inbound frames (RFC 6455 section 5.2) are parsed by the hub rather than
// by gorilla: gorilla can only wait for a peer's next frame by blocking a
// goroutine inside its reader, and an idle connection should have no
// goroutine at all (see reader.go). The rules, and the words of the
// protocol errors, are gorilla's, so a client gets the same answers: 1002
// for a broken frame, 1009 for a message over the read limit.

const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	maskBit = 0x80

	opContinuation = 0

	// maxControlPayload is the largest payload a control frame may carry.
	maxControlPayload = 125
)

// header is one inbound frame's header.
type header struct {
	fin bool
	op  int     // opcode: websocket.TextMessage, ..., or opContinuation
	n   int64   // payload length
	key [4]byte // masking key
}

func (h header) control() bool { return h.op >= websocket.CloseMessage }

// parseHeader parses the frame header at the start of b. hl is the
// header's length, or 0 when b does not hold all of it yet. problem is set
// when the first two bytes break the protocol (reported as soon as they
// are there, as gorilla does); inMessage tells whether a fragmented data
// message is under way, which decides whether a continuation is expected.
func parseHeader(b []byte, inMessage bool) (h header, hl int, problem string) {
	if len(b) < 2 {
		return h, 0, ""
	}
	h.fin = b[0]&finBit != 0
	h.op = int(b[0] & 0xf)
	n := int64(b[1] & 0x7f)
	var errs []string
	for _, r := range [...]struct {
		bit  byte
		name string
	}{{rsv1Bit, "RSV1 set"}, {rsv2Bit, "RSV2 set"}, {rsv3Bit, "RSV3 set"}} {
		if b[0]&r.bit != 0 {
			errs = append(errs, r.name)
		}
	}
	switch h.op {
	case websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage:
		if n > maxControlPayload {
			errs = append(errs, "len > 125 for control")
		}
		if !h.fin {
			errs = append(errs, "FIN not set on control")
		}
	case websocket.TextMessage, websocket.BinaryMessage:
		if inMessage {
			errs = append(errs, "data before FIN")
		}
	case opContinuation:
		if !inMessage {
			errs = append(errs, "continuation after FIN")
		}
	default:
		errs = append(errs, "bad opcode "+strconv.Itoa(h.op))
	}
	if b[1]&maskBit == 0 {
		errs = append(errs, "bad MASK")
	}
	if len(errs) > 0 {
		return h, 0, strings.Join(errs, ", ")
	}
	hl = 2
	switch n {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	hl += len(h.key)
	if len(b) < hl {
		return h, 0, ""
	}
	switch n {
	case 126:
		n = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		// The top bit must be 0; a length that reads as negative is
		// refused as too long by the caller, like any other over the limit.
		n = int64(binary.BigEndian.Uint64(b[2:]))
	}
	h.n = n
	copy(h.key[:], b[hl-len(h.key):hl])
	return h, hl, ""
}

// unmask unmasks a whole payload in place.
func unmask(key [4]byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// closePayload parses a peer's close frame payload as gorilla does: no
// code at all means CloseNoStatusReceived; a code a peer may not send, or
// a reason that is not UTF-8, is a protocol error.
func closePayload(p []byte) (code int, text, problem string) {
	if len(p) < 2 {
		return websocket.CloseNoStatusReceived, "", ""
	}
	code = int(binary.BigEndian.Uint16(p))
	if !validReceivedCloseCode(code) {
		return code, "", "bad close code " + strconv.Itoa(code)
	}
	text = string(p[2:])
	if !utf8.ValidString(text) {
		return code, "", "invalid utf8 payload in close frame"
	}
	return code, text, ""
}

// validReceivedCloseCode is gorilla's list of the codes a peer may send.
func validReceivedCloseCode(code int) bool {
	switch code {
	case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseProtocolError,
		websocket.CloseUnsupportedData, websocket.CloseInvalidFramePayloadData,
		websocket.ClosePolicyViolation, websocket.CloseMessageTooBig, websocket.CloseMandatoryExtension,
		websocket.CloseInternalServerErr, websocket.CloseServiceRestart, websocket.CloseTryAgainLater:
		return true
	}
	return code >= 3000 && code <= 4999
}

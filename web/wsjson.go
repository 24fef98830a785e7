package web

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The frames of a grab's round trip, a client's grab and its result, are
// the ones every grab pays for, so they are read and written by hand here
// rather than through encoding/json's reflection. Both produce exactly what
// encoding/json would (wsjson_test.go checks that, fuzzed): where a frame
// strays from the plain shape, they hand it to encoding/json.

// appendResult appends ev as encoding/json encodes a resultEvent.
func appendResult(b []byte, ev *resultEvent) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, ev.Type)
	b = append(b, `,"ref":`...)
	b = appendString(b, ev.Ref)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, ev.OK)
	if ev.PacketID != "" {
		b = append(b, `,"packet_id":`...)
		b = appendString(b, ev.PacketID)
	}
	if ev.Amount != nil {
		b = append(b, `,"amount":`...)
		b = strconv.AppendInt(b, *ev.Amount, 10)
	}
	if ev.Remaining != nil {
		b = append(b, `,"remaining":`...)
		b = strconv.AppendInt(b, int64(*ev.Remaining), 10)
	}
	if ev.Error != nil {
		b = append(b, `,"error":{"code":`...)
		b = appendString(b, ev.Error.Code)
		b = append(b, `,"message":`...)
		b = appendString(b, ev.Error.Message)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string, as encoding/json writes it. A
// string of printable ASCII that needs no escape (an id, a ref, a code) is
// copied as is; anything else goes through encoding/json, which escapes
// quotes, backslashes, control characters, <, >, &, U+2028, U+2029 and
// invalid UTF-8.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// A copy, so that s itself never escapes: the frames built
			// here live on the caller's stack.
			q, _ := json.Marshal(strings.Clone(s)) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// parseFlat decodes msg into m when msg is one flat JSON object whose keys
// are all clientMessage's own (exactly, in lower case) and whose values are
// strings without escapes: what every client sends. It reports false for
// anything else (which it leaves m unspecified for), and the caller then
// decodes msg with encoding/json, which sorts out the rest: case-folded
// keys, unknown fields, escapes, wrong types, bad JSON.
func parseFlat(msg []byte, m *clientMessage) bool {
	i := skipSpace(msg, 0)
	if i >= len(msg) || msg[i] != '{' {
		return false
	}
	i = skipSpace(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		return skipSpace(msg, i+1) == len(msg)
	}
	for {
		key, j, ok := plainString(msg, i)
		if !ok {
			return false
		}
		i = skipSpace(msg, j)
		if i >= len(msg) || msg[i] != ':' {
			return false
		}
		val, j, ok := plainString(msg, skipSpace(msg, i+1))
		if !ok {
			return false
		}
		var field *string
		switch string(key) {
		case "type":
			field = &m.Type
		case "ref":
			field = &m.Ref
		case "packet_id":
			field = &m.PacketID
		case "text":
			field = &m.Text
		case "password":
			field = &m.Password
		default:
			return false
		}
		switch string(val) { // the common types without an allocation
		case "grab":
			*field = "grab"
		case "chat":
			*field = "chat"
		case "ping":
			*field = "ping"
		default:
			*field = string(val)
		}
		i = skipSpace(msg, j)
		if i >= len(msg) {
			return false
		}
		switch msg[i] {
		case ',':
			i = skipSpace(msg, i+1)
		case '}':
			return skipSpace(msg, i+1) == len(msg)
		default:
			return false
		}
	}
}

// plainString reads the JSON string at msg[i:] when it holds no escape and
// no control character, returning its contents and the index after it.
func plainString(msg []byte, i int) ([]byte, int, bool) {
	if i >= len(msg) || msg[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(msg); j++ {
		switch c := msg[j]; {
		case c == '"':
			return msg[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(msg []byte, i int) int {
	for i < len(msg) {
		switch msg[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

package hub

import "encoding/binary"

// wire is one outgoing text frame as it goes on the socket: the WebSocket
// header and the payload, built once and never changed after, so one wire
// is shared by the queues of every member it goes to and written by many
// writers at once.
//
// The bytes are a server frame as RFC 6455 defines it for this hub: FIN set,
// opcode text, no mask (a server never masks), no extension bits (the hub's
// connections never negotiate compression: Upgrader.EnableCompression is
// false wherever hongbao upgrades), and the shortest length encoding.
type wire struct {
	b []byte
}

const (
	finText = 0x81 // FIN | opcode 1 (text)
	finPing = 0x89 // FIN | opcode 9 (ping)
)

// newWire frames payload, which it copies: the caller may reuse payload.
func newWire(payload []byte) *wire {
	n := len(payload)
	hdr := 2
	switch {
	case n > 0xFFFF:
		hdr = 10
	case n > 125:
		hdr = 4
	}
	b := make([]byte, hdr+n)
	b[0] = finText
	switch hdr {
	case 2:
		b[1] = byte(n)
	case 4:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	copy(b[hdr:], payload)
	return &wire{b: b}
}

// pingWire is an empty ping frame (a fresh slice: the hub keeps no mutable
// package state; pings are rare).
func pingWire() []byte { return []byte{finPing, 0} }

package hub

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawFrame builds a client frame byte by byte, so that tests can send what
// gorilla's client never would.
type rawFrame struct {
	op      int
	fin     bool
	payload []byte
	noMask  bool
	rsv     byte   // OR-ed into the first byte
	length  uint64 // announced length when > 0 (default: len(payload))
}

func (f rawFrame) bytes() []byte {
	b0 := byte(f.op) | f.rsv
	if f.fin {
		b0 |= finBit
	}
	n := uint64(len(f.payload))
	if f.length > 0 {
		n = f.length
	}
	out := []byte{b0, 0}
	switch {
	case n < 126:
		out[1] = byte(n)
	case n <= 0xffff:
		out[1] = 126
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out[1] = 127
		out = binary.BigEndian.AppendUint64(out, n)
	}
	p := bytes.Clone(f.payload)
	if !f.noMask {
		out[1] |= maskBit
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		out = append(out, key[:]...)
		unmask(key, p) // masking and unmasking are the same XOR
	}
	return append(out, p...)
}

func text(s string) rawFrame {
	return rawFrame{op: websocket.TextMessage, fin: true, payload: []byte(s)}
}

func closeFrame(code int, reason string) rawFrame {
	return rawFrame{op: websocket.CloseMessage, fin: true, payload: websocket.FormatCloseMessage(code, reason)}
}

// TestReaderFrames sends crafted frames, whole or a few bytes at a time,
// and checks what the handler got (the test handler republishes every
// message to the room, so the client reads it back) and how the server
// closed. The frames are the hub's own parsing: gorilla's reader is not
// involved on the server side.
func TestReaderFrames(t *testing.T) {
	big := strings.Repeat("x", 3*readBufSize)
	cases := []struct {
		name   string
		frames []rawFrame
		echoed []string
		code   int // the server's close code; 0: stays open
	}{
		{name: "one frame", frames: []rawFrame{text(`{"a":1}`)}, echoed: []string{`{"a":1}`}},
		{name: "two frames", frames: []rawFrame{text("one"), text("two")}, echoed: []string{"one", "two"}},
		{name: "empty message", frames: []rawFrame{text(""), text("after")}, echoed: []string{"after"}}, // "" republishes nothing
		{
			name: "fragments with a ping between",
			frames: []rawFrame{
				{op: websocket.TextMessage, payload: []byte("hel")},
				{op: websocket.PingMessage, fin: true, payload: []byte("p")},
				{op: opContinuation, payload: []byte("l")},
				{op: opContinuation, fin: true, payload: []byte("o")},
			},
			echoed: []string{"hello"},
		},
		{name: "larger than the read buffer", frames: []rawFrame{text(big), text("next")}, echoed: []string{big, "next"}},
		{name: "16-bit length", frames: []rawFrame{text(strings.Repeat("y", 200))}, echoed: []string{strings.Repeat("y", 200)}},
		{name: "binary", frames: []rawFrame{{op: websocket.BinaryMessage, fin: true, payload: []byte{1}}}, code: websocket.CloseUnsupportedData},
		{name: "unmasked", frames: []rawFrame{{op: websocket.TextMessage, fin: true, payload: []byte("a"), noMask: true}}, code: websocket.CloseProtocolError},
		{name: "reserved bit", frames: []rawFrame{{op: websocket.TextMessage, fin: true, payload: []byte("a"), rsv: rsv1Bit}}, code: websocket.CloseProtocolError},
		{name: "bad opcode", frames: []rawFrame{{op: 3, fin: true}}, code: websocket.CloseProtocolError},
		{name: "continuation first", frames: []rawFrame{{op: opContinuation, fin: true, payload: []byte("a")}}, code: websocket.CloseProtocolError},
		{
			name:   "data inside a message",
			frames: []rawFrame{{op: websocket.TextMessage, payload: []byte("a")}, text("b")},
			code:   websocket.CloseProtocolError,
		},
		{name: "long control frame", frames: []rawFrame{{op: websocket.PingMessage, fin: true, payload: make([]byte, 126)}}, code: websocket.CloseProtocolError},
		{name: "fragmented control frame", frames: []rawFrame{{op: websocket.PingMessage, payload: []byte("p")}}, code: websocket.CloseProtocolError},
		{
			name:   "over the limit in fragments",
			frames: []rawFrame{{op: websocket.TextMessage, payload: make([]byte, 10_000)}, {op: opContinuation, fin: true, payload: make([]byte, 10_000)}},
			code:   websocket.CloseMessageTooBig,
		},
		{name: "length with the top bit set", frames: []rawFrame{{op: websocket.TextMessage, fin: true, length: 1<<63 + 1}}, code: websocket.CloseMessageTooBig},
		{name: "close", frames: []rawFrame{closeFrame(websocket.CloseNormalClosure, "bye")}, code: websocket.CloseNormalClosure},
		{name: "close with a bad code", frames: []rawFrame{closeFrame(websocket.CloseNoStatusReceived+1000, "")}, code: websocket.CloseProtocolError},
		{name: "close with a bad reason", frames: []rawFrame{closeFrame(websocket.CloseNormalClosure, "\xff")}, code: websocket.CloseProtocolError},
	}
	cfg := quiet()
	cfg.ReadLimit = 16 << 10
	ts := startHub(t, cfg, NewMemoryBroker())
	for _, tc := range cases {
		for _, chunk := range []int{0, 3} {
			t.Run(tc.name+map[bool]string{true: " whole", false: " in pieces"}[chunk == 0], func(t *testing.T) {
				c := ts.dial(t, "room", "u")
				waitConns(t, ts.hub, 1)
				var wire []byte
				for _, f := range tc.frames {
					wire = append(wire, f.bytes()...)
				}
				writeChunks(t, c.conn, wire, chunk)
				for _, want := range tc.echoed {
					select {
					case got := <-c.frames:
						if string(got) != want {
							t.Fatalf("echoed %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), want, len(want))
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("%.40q not echoed (read err %v)", want, c.readErr())
					}
				}
				if tc.code == 0 {
					if err := c.readErr(); err != nil {
						t.Fatalf("connection ended: %v", err)
					}
					_ = c.conn.Close()
				} else if code := c.closeCode(t, 5*time.Second); code != tc.code {
					t.Fatalf("closed with %d (%v), want %d", code, c.err, tc.code)
				}
				waitConns(t, ts.hub, 0)
			})
		}
	}
}

// writeChunks writes b in pieces of n bytes (all at once if n is 0),
// pausing between them so that the server is likely to read a frame in
// pieces; the outcome must not depend on how it does.
func writeChunks(t *testing.T, conn *websocket.Conn, b []byte, n int) {
	t.Helper()
	nc := conn.NetConn()
	if n == 0 {
		n = len(b)
	}
	for len(b) > 0 {
		k := min(n, len(b))
		if _, err := nc.Write(b[:k]); err != nil {
			// The server may close mid-way after a broken frame.
			return
		}
		b = b[k:]
		if len(b) > 0 && len(b)%(16*n) < n {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestIdleConnectionsPark checks that idle connections wait in the poller,
// not in a goroutine each, that a frame wakes exactly its connection and
// that it parks again afterwards.
func TestIdleConnectionsPark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux's epoll")
	}
	ts := startHub(t, quiet(), NewMemoryBroker())
	const n = 20
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = ts.dial(t, "room", "u"+string(rune('a'+i)))
	}
	waitConns(t, ts.hub, n)
	allParked := func() bool {
		parkedN := 0
		ts.hub.eachClient(func(c *Client) {
			if c.rd.state.Load() == parked {
				parkedN++
			}
		})
		return parkedN == n
	}
	waitFor(t, 5*time.Second, "every connection parked", allParked)

	// The sender's reader lingers after a message, then parks; a frame
	// after that wakes a new reader, which must find the socket as usable
	// as ever.
	for i, msg := range []string{"hi", "again"} {
		if err := clients[3].conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			if f := c.next(t, 5*time.Second); string(f.Raw) != msg {
				t.Fatalf("got %s, want %s", f.Raw, msg)
			}
		}
		if got := ts.handler.msgs.Load(); got != int32(i+1) {
			t.Fatalf("handled %d messages, want %d", got, i+1)
		}
		waitFor(t, readLinger+5*time.Second, "every connection parked again", allParked)
	}
}

// TestParkedConnectionClosingEnds: a parked connection whose peer never
// answers the server's close frame is cut after closeGrace, and torn down,
// though no goroutine is blocked reading it to see the socket close.
func TestParkedConnectionClosingEnds(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	_ = ts.dialRaw(t, "room", "deaf", nil) // never reads, so never answers a close
	waitConns(t, ts.hub, 1)
	var c *Client
	ts.hub.eachClient(func(x *Client) { c = x })
	if runtime.GOOS == "linux" {
		waitFor(t, 5*time.Second, "the connection parked", func() bool { return c.rd.state.Load() == parked })
	}
	start := time.Now()
	c.Close(websocket.CloseNormalClosure, "bye")
	waitConns(t, ts.hub, 0)
	waitFor(t, 2*time.Second, "OnClose", func() bool { return ts.handler.closed.Load() == 1 })
	if d := time.Since(start); d < closeGrace {
		t.Fatalf("torn down after %v, before closeGrace gave the peer its chance", d)
	}
}

// FuzzParseHeader: any bytes parse without panicking; a header is reported
// whole only once all of it is there, and its first two bytes alone decide
// whether it breaks the protocol.
func FuzzParseHeader(f *testing.F) {
	f.Add(text("hello").bytes(), false)
	f.Add(rawFrame{op: opContinuation, fin: true, payload: make([]byte, 300)}.bytes(), true)
	f.Add(rawFrame{op: websocket.TextMessage, length: 1 << 40}.bytes(), false)
	f.Fuzz(func(t *testing.T, b []byte, inMessage bool) {
		h, hl, problem := parseHeader(b, inMessage)
		if hl > len(b) || (hl != 0 && (hl < 6 || hl > 14)) || (hl != 0 && problem != "") {
			t.Fatalf("hl %d of %d bytes, problem %q", hl, len(b), problem)
		}
		for k := 2; k < len(b) && k < 14; k++ {
			ph, phl, pproblem := parseHeader(b[:k], inMessage)
			if pproblem != problem {
				t.Fatalf("prefix %d: problem %q, whole: %q", k, pproblem, problem)
			}
			if hl != 0 && k < hl && phl != 0 {
				t.Fatalf("prefix %d of a %d-byte header parsed as %d bytes", k, hl, phl)
			}
			if hl != 0 && k >= hl && (phl != hl || ph != h) {
				t.Fatalf("prefix %d: %+v (%d), whole: %+v (%d)", k, ph, phl, h, hl)
			}
		}
	})
}

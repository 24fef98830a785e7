package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Read loops share message buffers: each message reaches the handler whole,
// whatever the size of the one before it in the same buffer.
func TestMessagesOfChangingSizeReachTheHandlerIntact(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	c := ts.dial(t, "room", "u1")
	waitConns(t, ts.hub, 1)
	var sent []string
	for i, n := range []int{3000, 1, 600, 2, 4000, 511, 512, 513, 0} {
		msg := `{"type":"echo","seq":` + string(rune('0'+i)) + `,"pad":"` + strings.Repeat(string(rune('a'+i)), n) + `"}`
		sent = append(sent, msg)
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// The test handler publishes each message back to the room, in order.
	for i, want := range sent {
		if f := c.next(t, 5*time.Second); string(f.Raw) != want {
			t.Fatalf("message %d came back as %.40s… (%d bytes), want %.40s… (%d bytes)", i, f.Raw, len(f.Raw), want, len(want))
		}
	}
}

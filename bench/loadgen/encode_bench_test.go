package loadgen

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// The cost of one broadcast, split the way the hub spends it: encoding the
// event once per room (JSON + websocket.PreparedMessage), then one write per
// member. BenchmarkWritePreparedLoopback is the per-delivery floor of any
// design that writes each frame with its own syscall: on loopback the
// sender's write also runs the receiver's TCP input path.

type benchUser struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type benchPacket struct {
	ID              string    `json:"id"`
	Room            string    `json:"room"`
	Sender          benchUser `json:"sender"`
	Kind            string    `json:"kind"`
	Total           int64     `json:"total"`
	Count           int       `json:"count"`
	Greeting        string    `json:"greeting"`
	CreatedAt       int64     `json:"created_at"`
	VisibleAt       int64     `json:"visible_at"`
	ExpiresAt       int64     `json:"expires_at"`
	Status          string    `json:"status"`
	RemainingCount  int       `json:"remaining_count"`
	RemainingAmount int64     `json:"remaining_amount"`
}

var samplePacket = struct {
	Type   string      `json:"type"`
	Packet benchPacket `json:"packet"`
}{"packet", benchPacket{
	ID: "0190f3c2-7a1e-7c3b-9d2e-4f5a6b7c8d9e", Room: "lobby", Sender: benchUser{"user-123", "Alice"},
	Kind: "lucky", Total: 1000, Count: 3, Greeting: "恭喜发财，大吉大利",
	CreatedAt: 1732500000000, VisibleAt: 1732500000000, ExpiresAt: 1732586400000,
	Status: "active", RemainingCount: 3, RemainingAmount: 1000,
}}

// BenchmarkEncodePacketEvent: once per broadcast per instance.
func BenchmarkEncodePacketEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		frame, err := json.Marshal(samplePacket)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := websocket.NewPreparedMessage(websocket.TextMessage, frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWritePreparedLoopback: once per delivery.
func BenchmarkWritePreparedLoopback(b *testing.B) {
	frame, _ := json.Marshal(samplePacket)
	pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	up := websocket.Upgrader{}
	got := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		got <- c
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	go func() {
		for {
			if _, _, err := client.NextReader(); err != nil {
				return
			}
		}
	}()
	server := <-got
	defer server.Close()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for b.Loop() {
		if err := server.WritePreparedMessage(pm); err != nil {
			b.Fatal(err)
		}
	}
}

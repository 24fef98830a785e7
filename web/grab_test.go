package web

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hongbao-dev/hongbao/packet"
)

// A room hears a packet's grabs as one grabbed event per grab batch, each
// naming its grabs, and one finished event with the luckiest; refused grabs
// are not heard of. Every winner appears exactly once, with the amount its
// result said. Coalesced, one packet's batches run one after another, so
// its events come in order, the finish last, and remaining counts down to
// 0; uncoalesced, grabs run side by side and their events may cross.
func TestGrabbedEventPerBatch(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			st := newStack(t, stackOptions{web: stackConfig(), serve: true, direct: direct})
			ctx := context.Background()
			alice, aliceTok := st.user(t, "alice", 10000)
			watcher, _, err := websocket.DefaultDialer.Dial(st.wsURL("r", aliceTok), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Close()
			readFrame(t, watcher, "welcome")
			const count, racers = 8, 20
			p, err := st.store.Create(ctx, packet.CreateRequest{Room: "r", Sender: alice, Kind: packet.Lucky, Total: 800, Count: count})
			if err != nil {
				t.Fatal(err)
			}
			won := map[string]int64{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range racers {
				u, _ := st.user(t, fmt.Sprintf("u%d", i), 0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					g, err := st.app.grab(ctx, u, p.ID, "")
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						won[u.ID] = g.Amount
					}
				}()
			}
			wg.Wait()
			if len(won) != count {
				t.Fatalf("%d winners, want %d", len(won), count)
			}
			heard := map[string]int64{}
			remainders := map[int]bool{}
			finished := false
			for !finished || len(heard) < count {
				var ev struct {
					Type      string `json:"type"`
					PacketID  string `json:"packet_id"`
					Remaining *int   `json:"remaining"`
					Reason    string `json:"reason"`
					Grabs     []struct {
						User   packet.User `json:"user"`
						Amount int64       `json:"amount"`
					} `json:"grabs"`
					Luckiest *luckiest `json:"luckiest"`
				}
				readInto(t, watcher, &ev)
				if ev.Type == "finished" {
					var best int64
					for _, a := range won {
						best = max(best, a)
					}
					if ev.Reason != "empty" || ev.Luckiest == nil || ev.Luckiest.Amount != best || won[ev.Luckiest.User.ID] != best {
						t.Fatalf("finished: %+v, luckiest %+v, want an amount of %d", ev, ev.Luckiest, best)
					}
					if finished || !direct && len(heard) != count {
						t.Fatalf("finished again, or after %d of %d grabs", len(heard), count)
					}
					finished = true
					continue
				}
				if ev.Type != "grabbed" {
					continue
				}
				if ev.PacketID != p.ID || ev.Remaining == nil || len(ev.Grabs) == 0 {
					t.Fatalf("grabbed event: %+v", ev)
				}
				for _, g := range ev.Grabs {
					if _, dup := heard[g.User.ID]; dup || won[g.User.ID] != g.Amount {
						t.Fatalf("grab of %s for %d: heard before %v, won %d", g.User.ID, g.Amount, dup, won[g.User.ID])
					}
					heard[g.User.ID] = g.Amount
				}
				if r := *ev.Remaining; remainders[r] || r < 0 || r >= count || !direct && r != count-len(heard) {
					t.Fatalf("remaining %d after %d grabs of %d (seen before: %v)", r, len(heard), count, remainders[r])
				}
				remainders[*ev.Remaining] = true
			}
			if !remainders[0] {
				t.Fatalf("no event said the packet is empty: %v", remainders)
			}
			st.auditClean(t)
		})
	}
}

// readFrame reads frames until one of type typ.
func readFrame(t *testing.T, c *websocket.Conn, typ string) {
	t.Helper()
	for {
		var ev struct {
			Type string `json:"type"`
		}
		readInto(t, c, &ev)
		if ev.Type == typ {
			return
		}
	}
}

func readInto(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
}

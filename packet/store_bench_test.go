package packet

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkGrab measures a grab (grab script + credit script) against real
// Redis, on one hot packet and spread over many packets. Run with -cpu to vary
// the number of concurrent grabbers.
func BenchmarkGrab(b *testing.B) {
	for _, packets := range []int{1, 100} {
		b.Run(fmt.Sprintf("packets=%d", packets), func(b *testing.B) {
			s, _ := newStore(b, Config{})
			ctx := context.Background()
			const count = 1000
			need := (b.N/count + 1) * 2 // shares for every grab, spread or not
			if need < packets {
				need = packets
			}
			fund(b, s, "sender", int64(need)*count)
			ids := make([]string, need)
			for i := range ids {
				ids[i] = mustCreate(b, s, CreateRequest{Room: "bench", Sender: User{"sender", "S"}, Kind: Equal, Total: count, Count: count}).ID
			}
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					// Hot: each packet takes `count` grabs in a row; spread: round robin over `packets`.
					pkt := int(i / count)
					if packets > 1 {
						pkt = int(i%int64(packets)) + packets*int(i/int64(packets*count))
					}
					if _, err := s.Grab(ctx, ids[pkt%len(ids)], User{ID: fmt.Sprint("u", i), Name: "u"}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

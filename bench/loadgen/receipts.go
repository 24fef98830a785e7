package loadgen

import (
	"slices"
	"strings"
	"sync"
)

// receipts records, for n clients, when each first got each event and how
// many more times it came.
type receipts struct {
	n      int
	mu     sync.Mutex
	events map[[2]string]*ScaleEvents
}

func newReceipts(n int) *receipts {
	return &receipts{n: n, events: map[[2]string]*ScaleEvents{}}
}

// add records client i's receipt of the typ event of packet id at now, and
// says whether it was the first.
func (r *receipts) add(typ, id string, i int, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]string{typ, id}
	e := r.events[k]
	if e == nil {
		e = &ScaleEvents{Type: typ, PacketID: id, RecvNs: make([]int64, r.n)}
		r.events[k] = e
	}
	if e.RecvNs[i] == 0 {
		e.RecvNs[i] = now
		return true
	}
	if e.Extra == nil {
		e.Extra = map[int]int{}
	}
	e.Extra[i]++
	return false
}

// snapshot copies what was recorded, sorted by type and packet.
func (r *receipts) snapshot() []ScaleEvents {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ScaleEvents, 0, len(r.events))
	for _, e := range r.events {
		x := *e
		x.RecvNs = slices.Clone(e.RecvNs)
		if e.Extra != nil {
			x.Extra = make(map[int]int, len(e.Extra))
			for k, c := range e.Extra {
				x.Extra[k] = c
			}
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b ScaleEvents) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.PacketID, b.PacketID)
	})
	return out
}

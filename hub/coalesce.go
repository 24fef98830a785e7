package hub

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"
)

// coalescer throttles "grabbed" frames in one large room. With thousands of
// local members, one frame per grab would mean grabs × members writes in the
// few seconds a packet lasts; what each viewer needs is the latest remaining
// count, a few times a second.
//
// Per packet it sends a progress frame on the first grab (leading edge), then
// at most one per coalesceWindow carrying the latest remaining count
// (trailing edge). A "finished" frame for the packet first flushes the latest
// pending count and then ends the packet's tracking, so viewers see the final
// remaining count and nothing stale can follow "finished".
//
// A room too small for that still switches a packet to progress frames when
// its grabbed frames come faster than burstLimit per coalesceWindow: a race
// for hundreds of shares in a room of a few hundred viewers (or a big room
// split over several instances, each seeing only its own members) would
// otherwise queue hundreds of frames per viewer within milliseconds and
// evict them as slow consumers.
type coalescer struct {
	send func(frame []byte) // local fan-out; called with mu held to keep progress frames ordered

	mu      sync.Mutex
	packets map[string]*coalesced // by raw packet_id JSON
	bursts  map[string]*burst     // grabbed frames sent one by one, per packet
}

// burst counts one packet's grabbed frames in the current window.
type burst struct {
	start time.Time
	n     int
}

// burstLimit is how many grabbed frames of one packet a room gets one by one
// per coalesceWindow before the packet switches to progress frames.
const burstLimit = 64

type coalesced struct {
	id        []byte // raw JSON, echoed as-is (string or number)
	remaining []byte // raw JSON of the latest remaining count
	pending   bool   // remaining changed since the last progress frame
	timer     *time.Timer
}

// Substrings that must be present for a frame to be worth parsing.
const (
	grabbedTag  = `"grabbed"`
	finishedTag = `"finished"`
)

// frameHead is the part of a frame the coalescer looks at.
type frameHead struct {
	Type      string          `json:"type"`
	PacketID  json.RawMessage `json:"packet_id"`
	Remaining json.RawMessage `json:"remaining"`
}

func newCoalescer(send func(frame []byte)) *coalescer {
	return &coalescer{send: send, packets: make(map[string]*coalesced), bursts: make(map[string]*burst)}
}

// absorb reports whether frame was taken over by the coalescer (so the caller
// must not deliver it). coalescing says whether the room is currently large
// enough for grabbed frames to be coalesced.
func (q *coalescer) absorb(frame []byte, coalescing bool) bool {
	// Cheap substring checks first so ordinary frames are never parsed.
	grab := bytes.Contains(frame, []byte(grabbedTag))
	fin := !grab && bytes.Contains(frame, []byte(finishedTag)) && q.tracking()
	if !grab && !fin {
		return false
	}
	var hd frameHead
	if err := json.Unmarshal(frame, &hd); err != nil || len(hd.PacketID) == 0 {
		return false
	}
	switch {
	case grab && hd.Type == "grabbed" && len(hd.Remaining) > 0:
		if !coalescing && !q.bursting(hd.PacketID) {
			return false
		}
		q.grabbed(hd.PacketID, hd.Remaining)
		return true
	case hd.Type == "finished":
		q.finished(hd.PacketID)
	}
	return false
}

// bursting counts a grabbed frame of packet id and reports whether the
// packet is already coalesced or has now gone past burstLimit in this window.
func (q *coalescer) bursting(id json.RawMessage) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := string(id)
	if q.packets[key] != nil {
		return true
	}
	now := time.Now()
	b := q.bursts[key]
	if b == nil || now.Sub(b.start) > coalesceWindow {
		if len(q.bursts) > 1024 {
			clear(q.bursts) // old windows of packets long finished
		}
		b = &burst{start: now}
		q.bursts[key] = b
	}
	b.n++
	return b.n > burstLimit
}

func (q *coalescer) tracking() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.packets) > 0
}

func (q *coalescer) grabbed(id, remaining json.RawMessage) {
	key := string(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.packets[key]; p != nil {
		p.remaining = append(p.remaining[:0], remaining...)
		p.pending = true
		return
	}
	p := &coalesced{id: bytes.Clone(id), remaining: bytes.Clone(remaining)}
	q.packets[key] = p
	q.send(p.progress())
	p.timer = time.AfterFunc(coalesceWindow, func() { q.flush(key, p) })
}

// flush is the trailing edge: send what changed during the window, or forget
// the packet if nothing did.
func (q *coalescer) flush(key string, p *coalesced) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.packets[key] != p {
		return // finished meanwhile
	}
	if !p.pending {
		delete(q.packets, key)
		return
	}
	p.pending = false
	q.send(p.progress())
	p.timer.Reset(coalesceWindow)
}

func (q *coalescer) finished(id json.RawMessage) {
	key := string(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.bursts, key)
	p := q.packets[key]
	if p == nil {
		return
	}
	p.timer.Stop()
	delete(q.packets, key)
	if p.pending {
		// Sent before absorb returns, hence before the caller delivers
		// "finished".
		q.send(p.progress())
	}
}

func (p *coalesced) progress() []byte {
	b := make([]byte, 0, 48+len(p.id)+len(p.remaining))
	b = append(b, `{"type":"progress","packet_id":`...)
	b = append(b, p.id...)
	b = append(b, `,"remaining":`...)
	b = append(b, p.remaining...)
	return append(b, '}')
}

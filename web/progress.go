package web

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/hongbao-dev/hongbao/hub"
)

// progressThrottle is one room's hub.Throttle: it turns a packet's "grabbed"
// frames into "progress" frames in a large room. With thousands of local
// members, one frame per grab would mean grabs × members writes in the few
// seconds a packet lasts; what each viewer needs is the latest remaining
// count, a few times a second.
//
// Per packet it sends at most one progress frame per progressWindow, at the
// end of each window in which the count changed (trailing edge only), with
// the latest remaining count. A "finished" frame for the packet replaces the
// progress frame still pending: it carries the final remaining count itself
// (docs/protocol.md), so the pending one is dropped and the packet's
// tracking ends; nothing stale can follow "finished". A packet emptied
// within one window, the common case of a hot packet, so costs each viewer
// no progress frame at all: the packet, finished, and a grabber's own
// result (which carries the count after its grab). There is no leading
// edge: its count would be stale within the window, and in a race nearly
// every viewer is also a grabber about to get its result.
//
// A room too small for that still switches a packet to progress frames when
// its grabbed frames come faster than burstLimit per progressWindow: a race
// for hundreds of shares in a room of a few hundred viewers (or a big room
// split over several instances, each seeing only its own members) would
// otherwise queue hundreds of frames per viewer within milliseconds and
// evict them as slow consumers.
type progressThrottle struct {
	above int                // local member count from which every grab becomes progress; ≤ 0: never by size
	send  func(frame []byte) // local fan-out; called with mu held to keep progress frames ordered

	mu      sync.Mutex
	packets map[string]*progressState // by raw packet_id JSON
	bursts  map[string]*burst         // grabbed frames sent one by one, per packet
}

// burst counts one packet's grabbed frames in the current window.
type burst struct {
	start time.Time
	n     int
}

// burstLimit is how many grabbed frames of one packet a room gets one by one
// per progressWindow before the packet switches to progress frames.
const burstLimit = 64

// progressWindow is the minimum spacing of progress frames per packet; it is
// part of the client-visible protocol, so it is not configurable.
const progressWindow = 200 * time.Millisecond

// progressState is one packet whose grabs are being sent as progress.
type progressState struct {
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

// frameHead is the part of a frame the throttle looks at.
type frameHead struct {
	Type      string          `json:"type"`
	PacketID  json.RawMessage `json:"packet_id"`
	Remaining json.RawMessage `json:"remaining"`
}

// DefaultProgressAbove is the local room size from which every grabbed frame
// becomes progress, unless configured otherwise.
const DefaultProgressAbove = 1000

// ProgressThrottles returns the hub's Config.NewThrottle for hongbao's
// frames: in a room of at least above local members (≤ 0: never by size),
// and for any packet grabbed faster than burstLimit per progressWindow, a
// packet's "grabbed" frames become "progress" frames (docs/protocol.md).
func ProgressThrottles(above int) hub.NewThrottleFunc {
	return func(_ string, send func(frame []byte)) hub.Throttle {
		return &progressThrottle{above: above, send: send, packets: make(map[string]*progressState), bursts: make(map[string]*burst)}
	}
}

// Take implements hub.Throttle.
func (q *progressThrottle) Take(frame []byte, members int) bool {
	return q.absorb(frame, q.above > 0 && members >= q.above)
}

// absorb reports whether frame was taken over (so the hub must not deliver
// it). large says whether the room is currently large enough for every
// grabbed frame to become progress.
func (q *progressThrottle) absorb(frame []byte, large bool) bool {
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
		if !large && !q.bursting(hd.PacketID) {
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
// packet already sends progress or has now gone past burstLimit in this window.
func (q *progressThrottle) bursting(id json.RawMessage) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := string(id)
	if q.packets[key] != nil {
		return true
	}
	now := time.Now()
	b := q.bursts[key]
	if b == nil || now.Sub(b.start) > progressWindow {
		if len(q.bursts) > 1024 {
			clear(q.bursts) // old windows of packets long finished
		}
		b = &burst{start: now}
		q.bursts[key] = b
	}
	b.n++
	return b.n > burstLimit
}

func (q *progressThrottle) tracking() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.packets) > 0
}

func (q *progressThrottle) grabbed(id, remaining json.RawMessage) {
	key := string(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.packets[key]; p != nil {
		p.remaining = append(p.remaining[:0], remaining...)
		p.pending = true
		return
	}
	p := &progressState{id: bytes.Clone(id), remaining: bytes.Clone(remaining), pending: true}
	q.packets[key] = p
	p.timer = time.AfterFunc(progressWindow, func() { q.flush(key, p) })
}

// flush is the trailing edge: send what changed during the window, or forget
// the packet if nothing did.
func (q *progressThrottle) flush(key string, p *progressState) {
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
	p.timer.Reset(progressWindow)
}

func (q *progressThrottle) finished(id json.RawMessage) {
	key := string(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.bursts, key)
	p := q.packets[key]
	if p == nil {
		return
	}
	// Under mu, so a trailing edge that is already due finds the packet
	// gone and sends nothing.
	p.timer.Stop()
	delete(q.packets, key)
}

func (p *progressState) progress() []byte {
	b := make([]byte, 0, 48+len(p.id)+len(p.remaining))
	b = append(b, `{"type":"progress","packet_id":`...)
	b = append(b, p.id...)
	b = append(b, `,"remaining":`...)
	b = append(b, p.remaining...)
	return append(b, '}')
}

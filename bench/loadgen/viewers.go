package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// runScaleViewers is one viewer process of a scale run (see scale.go): it
// waits for the dropper's go, connects cfg.Conns viewers numbered from
// cfg.FirstConn, records every event they get (and, in a rain, grabs each
// packet once), and stays connected until the dropper's release.
func runScaleViewers(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	b := barrier(cfg.Barrier)
	p.setPhase("waiting for go", 0)
	var st scaleStart
	err := await(ctx, cfg.Timeout, "the dropper's go in "+cfg.Barrier, func() (bool, error) { return b.get("go", &st) == nil, nil })
	if err != nil {
		return err
	}
	if st.Scenario != cfg.Scenario {
		return fmt.Errorf("the dropper runs %s, these viewers %s", st.Scenario, cfg.Scenario)
	}
	cfg.RunID, cfg.Room = st.RunID, st.Room
	n, np := cfg.Conns, st.Packets
	grab := cfg.Scenario == ScenarioScaleRain
	res.Params = map[string]any{"first": cfg.FirstConn, "packets": np, "room": st.Room}
	h := newScaleHandler(cfg, grab, p)
	v := &ScaleViewers{First: cfg.FirstConn, N: n, Instances: cfg.URLs}
	res.Viewers = v
	ready := fmt.Sprintf("ready-%d", cfg.FirstConn)

	p.setPhase("connect", 0)
	conns, err := connectAll(ctx, cfg, n, func(int) string { return cfg.Room }, h, p)
	if err != nil {
		_ = b.put(ready, scaleReady{First: cfg.FirstConn, N: n, Error: err.Error()})
		return err
	}
	defer closeAll(conns)
	if err := b.put(ready, scaleReady{First: cfg.FirstConn, N: n}); err != nil {
		return err
	}

	want := int64(n) * int64(np)
	complete := func() bool {
		return h.packets.Load() >= want && (!grab || h.results.Load() >= want && h.finished.Load() >= want)
	}
	p.setPhase("events", want)
	var last int64
	lastChange := time.Now()
	werr := await(ctx, cfg.Timeout, "events", func() (bool, error) {
		got := h.packets.Load() + h.results.Load() + h.finished.Load()
		p.done.Store(h.packets.Load())
		if got != last {
			last, lastChange = got, time.Now()
		}
		return complete() || b.has("end") && time.Since(lastChange) > viewerStall, nil
	})
	h.report(v)
	if err := b.put(fmt.Sprintf("done-%d", cfg.FirstConn), scaleReady{First: cfg.FirstConn, N: n}); err != nil {
		return err
	}
	// Stay connected until the dropper has read the servers and Redis.
	rerr := await(ctx, 2*time.Minute, "the dropper's release", func() (bool, error) { return b.has("release"), nil })
	if werr != nil {
		return werr
	}
	if !complete() {
		return fmt.Errorf("viewers %d..%d: %d of %d packet events, %d results, %d finished events arrived",
			cfg.FirstConn, cfg.FirstConn+n-1, h.packets.Load(), want, h.results.Load(), h.finished.Load())
	}
	return rerr
}

// scaleHandler records, per viewer, when each event first arrived and how
// often it came again; in a rain it grabs every packet on its first arrival.
type scaleHandler struct {
	first, urls int
	n           int
	grab        bool
	p           *progress

	recv    *receipts
	mu      sync.Mutex
	grabUs  [][]int32
	codes   []map[string]int
	toEmpty map[string]int64

	firstGrab, lastResult      atomic.Int64
	packets, finished, results atomic.Int64 // first receipts; results
}

func newScaleHandler(cfg *Config, grab bool, p *progress) *scaleHandler {
	h := &scaleHandler{first: cfg.FirstConn, urls: len(cfg.URLs), n: cfg.Conns, grab: grab, p: p,
		recv: newReceipts(cfg.Conns), toEmpty: map[string]int64{}}
	if grab {
		h.grabUs = make([][]int32, h.urls)
		h.codes = make([]map[string]int, h.urls)
		for i := range h.codes {
			h.codes[i] = map[string]int{}
		}
	}
	return h
}

// receipt records viewer i's receipt of an event and says whether it was
// the first.
func (h *scaleHandler) receipt(typ, id string, i int, now int64) bool {
	return h.recv.add(typ, id, i, now)
}

func (h *scaleHandler) onEvent(c *conn, ev *event, now int64) {
	switch ev.Type {
	case "packet":
		if ev.Packet == nil || !h.receipt("packet", ev.Packet.ID, c.idx, now) {
			return
		}
		h.packets.Add(1)
		h.p.delivered.Add(1)
		if h.grab {
			h.firstGrab.CompareAndSwap(0, time.Now().UnixNano())
			h.p.sent.Add(1)
			_ = c.grab(ev.Packet.ID) // a failed write shows as a missing result
		}
	case "finished":
		if !h.receipt("finished", ev.PacketID, c.idx, now) {
			return
		}
		h.finished.Add(1)
		if ev.Reason == "empty" && ev.DurationMs != nil {
			h.mu.Lock()
			if _, ok := h.toEmpty[ev.PacketID]; !ok {
				h.toEmpty[ev.PacketID] = *ev.DurationMs
			}
			h.mu.Unlock()
		}
	}
}

func (h *scaleHandler) onResult(c *conn, ev *event, lat time.Duration, now int64) {
	code := "ok"
	if !ev.OK {
		code = "error"
		if ev.Error != nil {
			code = ev.Error.Code
		}
	}
	inst := (h.first + c.idx) % h.urls
	h.mu.Lock()
	if h.grabUs != nil {
		h.grabUs[inst] = append(h.grabUs[inst], int32(min(lat.Microseconds(), 1<<31-1)))
		h.codes[inst][code]++
	}
	h.mu.Unlock()
	for {
		l := h.lastResult.Load()
		if now <= l || h.lastResult.CompareAndSwap(l, now) {
			break
		}
	}
	h.results.Add(1)
	h.p.results.Add(1)
	if ev.OK {
		h.p.ok.Add(1)
	}
}

func (h *scaleHandler) onBroadcast(*conn, int, int64) {}

// report copies what was recorded into v.
func (h *scaleHandler) report(v *ScaleViewers) {
	v.Events = h.recv.snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.grab {
		v.GrabUs = make([][]int32, len(h.grabUs))
		for i := range h.grabUs {
			v.GrabUs[i] = slices.Clone(h.grabUs[i])
		}
		v.GrabCodes = make([]map[string]int, len(h.codes))
		for i, c := range h.codes {
			v.GrabCodes[i] = make(map[string]int, len(c))
			for k, x := range c {
				v.GrabCodes[i][k] = x
			}
		}
		v.FirstGrabNs, v.LastResultNs = h.firstGrab.Load(), h.lastResult.Load()
		v.ToEmptyMs = make(map[string]int64, len(h.toEmpty))
		for k, x := range h.toEmpty {
			v.ToEmptyMs[k] = x
		}
	}
}

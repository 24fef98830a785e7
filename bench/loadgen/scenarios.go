package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// grabCounter is shared by the grab scenarios: it records every result and
// tells a phase when its last expected result has arrived.
type grabCounter struct {
	rec *recorder
	p   *progress

	mu    sync.Mutex
	phase *grabPhase
}

type grabPhase struct {
	need        int64
	got         atomic.Int64
	ok          atomic.Int64
	first, last atomic.Int64 // Unix ns of first grab sent, last result
	done        chan struct{}
}

func (g *grabCounter) begin(need int64) *grabPhase {
	ph := &grabPhase{need: need, done: make(chan struct{})}
	g.mu.Lock()
	g.phase = ph
	g.mu.Unlock()
	return ph
}

func (g *grabCounter) current() *grabPhase {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.phase
}

// send grabs packetID on c as part of the current phase.
func (g *grabCounter) send(c *conn, packetID string) {
	ph := g.current()
	if ph == nil {
		return
	}
	ph.first.CompareAndSwap(0, time.Now().UnixNano())
	g.p.sent.Add(1)
	if err := c.grab(packetID); err != nil {
		g.rec.add(-1, "send_failed")
		g.count(ph, false, time.Now().UnixNano())
	}
}

func (g *grabCounter) result(ev *event, latency time.Duration, now int64) {
	code := "ok"
	if !ev.OK {
		code = "error"
		if ev.Error != nil {
			code = ev.Error.Code
		}
	}
	g.rec.add(int64(latency), code)
	if ph := g.current(); ph != nil {
		g.count(ph, ev.OK, now)
	}
}

func (g *grabCounter) count(ph *grabPhase, ok bool, now int64) {
	g.p.results.Add(1)
	if ok {
		g.p.ok.Add(1)
		ph.ok.Add(1)
	}
	for {
		l := ph.last.Load()
		if now <= l || ph.last.CompareAndSwap(l, now) {
			break
		}
	}
	if ph.got.Add(1) == ph.need {
		close(ph.done)
	}
}

// wait waits for the phase's results, at most limit and at most 15 s without
// a new result; it reports a shortfall as an error.
func (ph *grabPhase) wait(ctx context.Context, limit time.Duration) error {
	const stall = 15 * time.Second
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := ph.got.Load(), time.Now()
	for {
		select {
		case <-ph.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if g := ph.got.Load(); g != last {
				last, lastChange = g, now
			}
			// A stall only counts once grabs have started (a rain's first
			// packet drops seconds after it is created).
			stalled := ph.first.Load() != 0 && now.Sub(lastChange) > stall
			if stalled || now.After(deadline) {
				return fmt.Errorf("only %d of %d grab results arrived (waited %v; %v without a new one)",
					last, ph.need, limit-deadline.Sub(now), now.Sub(lastChange).Round(time.Millisecond))
			}
		}
	}
}

func (ph *grabPhase) span() time.Duration {
	f, l := ph.first.Load(), ph.last.Load()
	if f == 0 || l < f {
		return 0
	}
	return time.Duration(l - f)
}

func (gs *GrabStats) clientCPU(d time.Duration) {
	if gs.Attempts > 0 {
		gs.ClientCPUPerGrabUs = float64(d.Microseconds()) / float64(gs.Attempts)
	}
}

func (g *grabCounter) stats(phase time.Duration) *GrabStats {
	lat, codes := g.rec.summary()
	gs := &GrabStats{Attempts: lat.Count, OK: codes["ok"], PhaseSec: phase.Seconds(), Latency: lat, Codes: codes}
	if phase > 0 {
		gs.OKPerSec = float64(gs.OK) / phase.Seconds()
		gs.AttemptsPerSec = float64(gs.Attempts) / phase.Seconds()
	}
	return gs
}

// ---------------------------------------------------------------- hot

// hot: every client is in one room and grabs each packet as its packet event
// arrives; a sender drops one packet of S shares, waits for all K results,
// and drops the next.
type hotHandler struct{ g *grabCounter }

func (h *hotHandler) onEvent(c *conn, ev *event, _ int64) {
	if ev.Type == "packet" && ev.Packet != nil {
		h.g.send(c, ev.Packet.ID)
	}
}
func (h *hotHandler) onResult(_ *conn, ev *event, lat time.Duration, now int64) {
	h.g.result(ev, lat, now)
}
func (h *hotHandler) onBroadcast(*conn, int, int64) {}

func runHot(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	k, s, rounds := cfg.Conns, cfg.Shares, cfg.Rounds
	total := int64(s) * 10
	res.Params = map[string]any{"racers": k, "shares": s, "rounds": rounds, "total_fen": total}
	snd, err := a.newSender(ctx, 0, total*int64(rounds))
	if err != nil {
		return err
	}
	g := &grabCounter{rec: newRecorder(), p: p}
	p.setPhase("connect", 0)
	conns, err := connectAll(ctx, cfg, k, func(int) string { return cfg.Room }, &hotHandler{g}, p)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	meter := &serverMeter{pids: cfg.PIDs}
	rm := newRedisMeter(cfg.RedisURL)
	meter.start()
	rm.start(ctx)
	p.setPhase("hot", int64(rounds))
	var phase time.Duration
	for r := range rounds {
		ph := g.begin(int64(k))
		if _, err := a.createPacket(ctx, snd, cfg.URLs[r%len(cfg.URLs)], cfg.Room, "lucky", total, s, fmt.Sprintf("hot %d", r)); err != nil {
			return err
		}
		if err := ph.wait(ctx, 60*time.Second); err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		phase += ph.span()
		p.done.Add(1)
	}
	gs := g.stats(phase)
	gs.clientCPU(meter.clientSince())
	res.Grabs = gs
	cpu, _ := meter.cpuSince()
	if len(cfg.PIDs) > 0 {
		res.Server = &ServerStats{PIDs: cfg.PIDs, CPUSec: cpu.Seconds()}
		if gs.OK > 0 {
			res.Server.CPUPerGrabUs = float64(cpu.Microseconds()) / float64(gs.Attempts)
		}
	}
	res.Redis = rm.stop(ctx, gs.OK)
	if want := rounds * min(k, s); gs.OK != want {
		return fmt.Errorf("hot: %d grabs succeeded, want %d (min(K,S) per round)", gs.OK, want)
	}
	return nil
}

// ---------------------------------------------------------------- spread

// spread: clients spread over many rooms; each wave drops P packets in every
// room; once every client has seen its room's packets, all of them grab
// every packet of their room at once.
type spreadHandler struct {
	g    *grabCounter
	mu   sync.Mutex
	seen [][]string // per client: packet ids of this wave
	got  atomic.Int64
}

func (h *spreadHandler) onEvent(c *conn, ev *event, _ int64) {
	if ev.Type == "packet" && ev.Packet != nil {
		h.mu.Lock()
		h.seen[c.idx] = append(h.seen[c.idx], ev.Packet.ID)
		h.mu.Unlock()
		h.got.Add(1)
	}
}
func (h *spreadHandler) onResult(_ *conn, ev *event, lat time.Duration, now int64) {
	h.g.result(ev, lat, now)
}
func (h *spreadHandler) onBroadcast(*conn, int, int64) {}

func runSpread(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	n, rooms, per, waves := cfg.Conns, min(cfg.Rooms, cfg.Conns), cfg.Packets, cfg.Rounds
	room := func(i int) string { return fmt.Sprintf("%s-%d", cfg.Room, i%rooms) }
	members := make([]int, rooms)
	for i := range n {
		members[i%rooms]++
	}
	shares := func(r int) int {
		if cfg.Shares > 0 {
			return cfg.Shares
		}
		return members[r]
	}
	var funds int64
	for r := range rooms {
		funds += int64(shares(r)) * 10 * int64(per*waves)
	}
	res.Params = map[string]any{"rooms": rooms, "packets_per_room_per_wave": per, "waves": waves, "shares": cfg.Shares}
	const senders = 8
	snd := make([]*sender, senders)
	for i := range snd {
		var err error
		if snd[i], err = a.newSender(ctx, i, funds/senders+int64(per*waves*1000)); err != nil {
			return err
		}
	}
	h := &spreadHandler{g: &grabCounter{rec: newRecorder(), p: p}, seen: make([][]string, n)}
	p.setPhase("connect", 0)
	conns, err := connectAll(ctx, cfg, n, room, h, p)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	meter := &serverMeter{pids: cfg.PIDs}
	rm := newRedisMeter(cfg.RedisURL)
	meter.start()
	rm.start(ctx)
	p.setPhase("spread", int64(waves))
	var phase time.Duration
	var grabPhase time.Duration
	for w := range waves {
		h.mu.Lock()
		for i := range h.seen {
			h.seen[i] = h.seen[i][:0]
		}
		h.mu.Unlock()
		h.got.Store(0)
		// Drop the wave's packets, 16 requests at a time.
		jobs := make(chan int)
		errs := make(chan error, 16)
		var wg sync.WaitGroup
		for wk := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					r := j % rooms
					_, err := a.createPacket(ctx, snd[wk%senders], cfg.URLs[j%len(cfg.URLs)], room(r), "lucky", int64(shares(r))*10, shares(r), fmt.Sprintf("spread %d", w))
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			}()
		}
		for j := range rooms * per {
			jobs <- j
		}
		close(jobs)
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
		}
		// Every client must have seen every packet of its room.
		deadline := time.Now().Add(60 * time.Second)
		for h.got.Load() < int64(n*per) {
			if time.Now().After(deadline) {
				return fmt.Errorf("wave %d: only %d of %d packet events arrived", w, h.got.Load(), n*per)
			}
			time.Sleep(5 * time.Millisecond)
		}
		ph := h.g.begin(int64(n * per))
		h.mu.Lock()
		ids := make([][]string, n)
		for i := range ids {
			ids[i] = append([]string(nil), h.seen[i]...)
		}
		h.mu.Unlock()
		start := time.Now()
		var sw sync.WaitGroup
		for i, c := range conns {
			sw.Add(1)
			go func() {
				defer sw.Done()
				for _, id := range ids[i] {
					h.g.send(c, id)
				}
			}()
		}
		sw.Wait()
		if err := ph.wait(ctx, 60*time.Second); err != nil {
			return fmt.Errorf("wave %d: %w", w, err)
		}
		grabPhase += time.Since(start)
		phase += ph.span()
		p.done.Add(1)
	}
	gs := h.g.stats(phase)
	gs.clientCPU(meter.clientSince())
	res.Grabs = gs
	cpu, _ := meter.cpuSince()
	if len(cfg.PIDs) > 0 {
		res.Server = &ServerStats{PIDs: cfg.PIDs, CPUSec: cpu.Seconds()}
		if gs.Attempts > 0 {
			res.Server.CPUPerGrabUs = float64(cpu.Microseconds()) / float64(gs.Attempts)
		}
	}
	res.Redis = rm.stop(ctx, gs.OK)
	if cfg.Shares == 0 && gs.OK != gs.Attempts {
		return fmt.Errorf("spread: %d of %d grabs succeeded; with a share per member every grab should", gs.OK, gs.Attempts)
	}
	return nil
}

// ---------------------------------------------------------------- rain

// rain: every client in one room; a rain of P packets × S shares over D
// seconds; each client grabs every packet as it drops.
type rainHandler struct {
	g        *grabCounter
	recv     *receipts // packet events, to check each arrives once
	packets  atomic.Int64
	mu       sync.Mutex
	finished map[string]int64 // packet id → duration_ms (-1: expired)
}

func (h *rainHandler) onEvent(c *conn, ev *event, now int64) {
	switch ev.Type {
	case "packet":
		if ev.Packet != nil && h.recv.add("packet", ev.Packet.ID, c.idx, now) {
			h.packets.Add(1)
			h.g.send(c, ev.Packet.ID)
		}
	case "finished":
		h.mu.Lock()
		if _, ok := h.finished[ev.PacketID]; !ok {
			d := int64(-1)
			if ev.Reason == "empty" && ev.DurationMs != nil {
				d = *ev.DurationMs
			}
			h.finished[ev.PacketID] = d
		}
		h.mu.Unlock()
	}
}
func (h *rainHandler) onResult(_ *conn, ev *event, lat time.Duration, now int64) {
	h.g.result(ev, lat, now)
}
func (h *rainHandler) onBroadcast(*conn, int, int64) {}

func runRain(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	n, np, s := cfg.Conns, cfg.Packets, cfg.Shares
	secs := max(1, int(cfg.Duration.Seconds()))
	per := int64(s) * 10
	res.Params = map[string]any{"packets": np, "shares": s, "duration_s": secs, "total_per_packet": per}
	snd, err := a.newSender(ctx, 0, per*int64(np))
	if err != nil {
		return err
	}
	h := &rainHandler{g: &grabCounter{rec: newRecorder(), p: p}, recv: newReceipts(n), finished: map[string]int64{}}
	p.setPhase("connect", 0)
	conns, err := connectAll(ctx, cfg, n, func(int) string { return cfg.Room }, h, p)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	meter := &serverMeter{pids: cfg.PIDs}
	rm := newRedisMeter(cfg.RedisURL)
	meter.start()
	rm.start(ctx)

	ph := h.g.begin(int64(n * np))
	var created struct {
		Rain struct {
			Packets []struct {
				ID        string `json:"id"`
				VisibleAt int64  `json:"visible_at"`
			} `json:"packets"`
		} `json:"rain"`
	}
	err = a.call(ctx, "POST", cfg.URLs[0]+"/api/v1/rooms/"+cfg.Room+"/rains", snd.token,
		map[string]any{"packets": np, "total_per_packet": per, "count_per_packet": s, "duration_seconds": secs, "greeting": "rain"},
		&created, http.StatusCreated)
	if err != nil {
		return err
	}
	var drops []ScaleDrop
	for _, pk := range created.Rain.Packets {
		drops = append(drops, ScaleDrop{ID: pk.ID, CreatedAtMs: pk.VisibleAt})
	}
	p.setPhase("rain", int64(np))
	stopTick := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopTick:
				return
			case <-t.C:
				h.mu.Lock()
				p.done.Store(int64(len(h.finished)))
				h.mu.Unlock()
			}
		}
	}()
	werr := ph.wait(ctx, time.Duration(secs)*time.Second+90*time.Second)
	// The finished events of the last packets trail their last results.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		k := len(h.finished)
		h.mu.Unlock()
		if k >= np || n < s {
			break
		}
	}
	close(stopTick)
	gs := h.g.stats(ph.span())
	gs.clientCPU(meter.clientSince())
	res.Grabs = gs
	cpu, _ := meter.cpuSince()
	if len(cfg.PIDs) > 0 {
		res.Server = &ServerStats{PIDs: cfg.PIDs, CPUSec: cpu.Seconds()}
		if gs.Attempts > 0 {
			res.Server.CPUPerGrabUs = float64(cpu.Microseconds()) / float64(gs.Attempts)
		}
	}
	res.Redis = rm.stop(ctx, gs.OK)
	rs := &RainStats{Packets: np, GrabsExpected: int64(n * np), GrabsAnswered: int64(gs.Attempts)}
	t := newTally(len(cfg.URLs), true)
	t.add(0, n, h.recv.snapshot(), "packet", drops, nil)
	t.finish()
	rs.PacketEvents = *t.total
	h.mu.Lock()
	var empties []int64
	for _, d := range h.finished {
		if d >= 0 {
			empties = append(empties, d*int64(time.Millisecond))
			rs.ToEmptyMs = append(rs.ToEmptyMs, d)
		}
	}
	h.mu.Unlock()
	rs.Emptied = len(empties)
	rs.ToEmpty = percentiles(empties)
	res.Rain = rs
	if err := rs.PacketEvents.check("rain packet events"); err != nil {
		return errors.Join(werr, err)
	}
	if werr != nil {
		return werr
	}
	if len(drops) != np {
		return fmt.Errorf("rain: the server made %d of %d packets", len(drops), np)
	}
	if n >= s && rs.Emptied != np {
		return fmt.Errorf("rain: %d of %d packets reported emptied", rs.Emptied, np)
	}
	return nil
}

// ---------------------------------------------------------------- fanout

// fanout: N idle clients in one room; a sender drops B packets (hongbao) or
// publishes B messages (Centrifugo) I apart; each delivery's latency is
// measured from just before the send to the client's receipt.
type fanoutHandler struct {
	mu        sync.Mutex
	rec       *recorder
	p         *progress
	sentAt    []atomic.Int64
	delivered []atomic.Int64
}

func (h *fanoutHandler) onEvent(*conn, *event, int64)                 {}
func (h *fanoutHandler) onResult(*conn, *event, time.Duration, int64) {}
func (h *fanoutHandler) onBroadcast(_ *conn, seq int, now int64) {
	if seq < 0 || seq >= len(h.sentAt) {
		return
	}
	if t := h.sentAt[seq].Load(); t > 0 {
		h.mu.Lock()
		rec := h.rec
		h.mu.Unlock()
		rec.add(now-t, "")
	}
	h.delivered[seq].Add(1)
	h.p.delivered.Add(1)
}

func runFanout(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	n, b := cfg.Conns, cfg.Packets
	intervals := cfg.Intervals
	if len(intervals) == 0 {
		intervals = []time.Duration{cfg.Interval}
	}
	var ims []int64
	for _, iv := range intervals {
		ims = append(ims, iv.Milliseconds())
	}
	res.Params = map[string]any{"broadcasts": b, "intervals_ms": ims, "settle_s": cfg.Settle.Seconds()}
	total := b * len(intervals)
	var snd *sender
	if cfg.Target == TargetHongbao {
		var err error
		if snd, err = a.newSender(ctx, 0, int64(total)+10); err != nil {
			return err
		}
	}
	// One more slot: a warm-up broadcast after connecting, not measured, so
	// the first measured broadcast does not pay for first-use paths (on
	// either target).
	h := &fanoutHandler{rec: newRecorder(), p: p, sentAt: make([]atomic.Int64, total+1), delivered: make([]atomic.Int64, total+1)}
	rssBefore := rssOf(cfg.PIDs)
	p.setPhase("connect", 0)
	conns, err := connectAll(ctx, cfg, n, func(int) string { return cfg.Room }, h, p)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	p.setPhase("settle", 0)
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	rssAfter := rssOf(cfg.PIDs)
	if _, err := fanoutPhase(ctx, cfg, a, p, h, snd, total, 1, time.Millisecond); err != nil {
		return fmt.Errorf("warm-up broadcast: %w", err)
	}
	res.Server = &ServerStats{PIDs: cfg.PIDs, RSSBefore: rssBefore, RSSAfter: rssAfter, RSSPerConn: float64(rssAfter-rssBefore) / float64(n)}
	if len(cfg.PIDs) == 0 {
		res.Server = nil
	}

	var failed error
	for k, iv := range intervals {
		h.mu.Lock()
		h.rec = newRecorder()
		h.mu.Unlock()
		d, err := fanoutPhase(ctx, cfg, a, p, h, snd, k*b, b, iv)
		res.Delivery = append(res.Delivery, d)
		if err != nil && failed == nil {
			failed = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if res.Server != nil && len(res.Delivery) > 0 {
		res.Server.CPUSec = res.Delivery[0].ServerCPUSec
		res.Server.CPUPerDeliveryUs = res.Delivery[0].CPUPerDeliveryUs
	}
	return failed
}

// fanoutPhase sends b broadcasts (sequence numbers from seq0) iv apart and
// waits for their deliveries.
func fanoutPhase(ctx context.Context, cfg *Config, a *api, p *progress, h *fanoutHandler, snd *sender, seq0, b int, iv time.Duration) (*DeliveryStats, error) {
	n := cfg.Conns
	meter := &serverMeter{pids: cfg.PIDs}
	startDelivered := p.delivered.Load()
	meter.start()
	p.setPhase(fmt.Sprintf("fanout %v", iv), int64(b))
	sendErr := make(chan error, b)
	paced(ctx, b, iv, func(i int) {
		seq := seq0 + i
		h.sentAt[seq].Store(time.Now().UnixNano())
		var err error
		if cfg.Target == TargetCentrifugo {
			err = a.publish(ctx, cfg.Room, seq)
		} else {
			_, err = a.createPacket(ctx, snd, cfg.URLs[0], cfg.Room, "equal", 1, 1, fmt.Sprintf("seq %d", seq))
		}
		if err != nil {
			sendErr <- err
		}
		p.done.Add(1)
	})
	close(sendErr)
	var err error
	for e := range sendErr {
		err = e
	}
	// Wait for the last deliveries: until all arrived, or nothing new for 3 s.
	want := int64(n) * int64(b)
	got := func() int64 { return p.delivered.Load() - startDelivered }
	last, lastChange := got(), time.Now()
	for got() < want && time.Since(lastChange) < 3*time.Second && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		if d := got(); d != last {
			last, lastChange = d, time.Now()
		}
	}
	cpu, _ := meter.cpuSince()
	ccpu := meter.clientSince()
	lat, _ := h.rec.summary()
	d := &DeliveryStats{Broadcasts: b, IntervalMs: iv.Milliseconds(), Expected: want, Delivered: got(), Latency: lat}
	d.Missing = want - d.Delivered
	if d.Delivered > 0 {
		d.ClientCPUPerDeliveryUs = float64(ccpu.Microseconds()) / float64(d.Delivered)
	}
	if len(cfg.PIDs) > 0 {
		d.ServerCPUSec = cpu.Seconds()
		if d.Delivered > 0 {
			d.CPUPerDeliveryUs = float64(cpu.Microseconds()) / float64(d.Delivered)
		}
	}
	if err == nil && d.Missing != 0 {
		err = fmt.Errorf("fanout every %v: %d of %d deliveries arrived (%d missing)", iv, d.Delivered, want, d.Missing)
	}
	return d, err
}

// paced calls f(0) at once and each later f(i) one every apart, each on its
// own goroutine (a slow call must not delay the next), until n are started
// or ctx ends, and returns once every call has.
func paced(ctx context.Context, n int, every time.Duration, f func(i int)) {
	t := time.NewTicker(every)
	defer t.Stop()
	var wg sync.WaitGroup
	for i := range n {
		if i > 0 {
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

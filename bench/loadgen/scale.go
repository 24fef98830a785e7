package loadgen

// Scale-out across load processes.
//
// One process holds at most 20 000 files here, so 100 000 viewers take
// several load processes. The scale scenarios run one dropper process and
// any number of viewer processes that meet in a barrier directory (a fresh
// one per run):
//
//  1. the dropper funds its sender, reads the servers' RSS, and writes "go"
//     (run id, room, scenario, packets); the viewer processes wait for it;
//  2. each viewer process connects its viewers, spread over every server,
//     and writes "ready-<first>";
//  3. once every viewer process is ready, the dropper lets the servers
//     settle, reads their RSS again, and drops: a packet every Interval (scale), or one rain that
//     every viewer grabs (scale-rain), reading each Redis master and each
//     server's CPU before;
//  4. it writes "end" (after the rain's last packet, for a rain); each viewer
//     process waits until it has every event it expects, or nothing new came
//     for viewerStall after "end", and writes "done-<first>", still
//     connected;
//  5. once every viewer process is done the dropper reads Redis and the
//     servers again, then Redis once more after a quiet window (its
//     background rate), and writes "release"; the viewers close; the dropper
//     runs the audit.
//
// Each process prints its own report; Merge joins them and judges the run:
// every event delivered exactly once, every grab answered.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// viewerStall is how long a viewer process waits for a late event once the
// dropper has said "end".
const viewerStall = 10 * time.Second

// ScaleDropper is the dropper's report: what it dropped, and the servers and
// Redis masters around it.
type ScaleDropper struct {
	RunID      string   `json:"run_id"`
	Room       string   `json:"room"`
	Procs      int      `json:"procs"`
	Viewers    int      `json:"viewers"` // as the viewer processes' ready files said
	Instances  []string `json:"instances"`
	PIDs       []int    `json:"pids"`
	IntervalMs int64    `json:"interval_ms"`
	Shares     int      `json:"shares,omitempty"`
	// ConnectSec is "go" to the last viewer process ready.
	ConnectSec float64     `json:"connect_s"`
	Drops      []ScaleDrop `json:"drops"`
	// RSS of each server (in PIDs' order) before anyone connected and after
	// every viewer connected and the servers settled.
	RSSBefore []int64 `json:"rss_before_bytes"`
	RSSAfter  []int64 `json:"rss_after_bytes"`
	// Each server's CPU from just before the first drop to every viewer
	// process done.
	ServerCPUSec []float64     `json:"server_cpu_s"`
	PhaseSec     float64       `json:"phase_s"`
	Masters      []MasterStats `json:"masters,omitempty"`
}

// ScaleDrop is one packet the dropper made. CreatedAtMs is the server's
// created_at (a rain packet: its visible_at), which delivery latency counts
// from; SentNs is just before the request, on the same clock.
type ScaleDrop struct {
	ID          string `json:"id"`
	CreatedAtMs int64  `json:"created_at_ms"`
	SentNs      int64  `json:"sent_ns"`
	Instance    int    `json:"instance"`
}

// MasterStats is one Redis master over the drop phase (CPUSec; the scripts;
// every command's calls and time) and over a quiet window after it with every
// viewer still connected (IdleCPUSec over IdleSec: presence and other
// background work). Merge fills the per-unit figures.
type MasterStats struct {
	Addr        string             `json:"addr"`
	CPUSec      float64            `json:"cpu_s"`
	ScriptCalls int64              `json:"script_calls"`
	ScriptUsec  int64              `json:"script_usec"`
	Commands    map[string]CmdStat `json:"commands,omitempty"`
	IdleCPUSec  float64            `json:"idle_cpu_s"`
	IdleSec     float64            `json:"idle_s"`

	CPUUsecPerDrop    float64 `json:"cpu_usec_per_drop,omitempty"`
	NetCPUUsecPerDrop float64 `json:"net_cpu_usec_per_drop,omitempty"` // less the quiet window's rate
	CPUUsecPerOKGrab  float64 `json:"cpu_usec_per_ok_grab,omitempty"`
}

// ScaleViewers is a viewer process's report: when each of its viewers got
// each event.
type ScaleViewers struct {
	First     int           `json:"first"`
	N         int           `json:"n"`
	Instances []string      `json:"instances"`
	Events    []ScaleEvents `json:"events"`
	// scale-rain: grab latencies (µs) and result codes by instance index, the
	// first grab sent and the last result (Unix ns), and each emptied
	// packet's time to empty (the finished event's duration_ms).
	GrabUs       [][]int32        `json:"grab_us,omitempty"`
	GrabCodes    []map[string]int `json:"grab_codes,omitempty"`
	FirstGrabNs  int64            `json:"first_grab_ns,omitempty"`
	LastResultNs int64            `json:"last_result_ns,omitempty"`
	ToEmptyMs    map[string]int64 `json:"to_empty_ms,omitempty"`
}

// ScaleEvents is one event (a packet's "packet" or "finished") as this
// process's viewers got it: RecvNs[i] is when viewer First+i first got it
// (Unix ns; 0: never), Extra[i] how many more times.
type ScaleEvents struct {
	Type     string      `json:"type"`
	PacketID string      `json:"packet_id"`
	RecvNs   []int64     `json:"recv_ns"`
	Extra    map[int]int `json:"extra,omitempty"`
}

// scaleStart is the "go" file.
type scaleStart struct {
	RunID    string `json:"run_id"`
	Room     string `json:"room"`
	Scenario string `json:"scenario"`
	Packets  int    `json:"packets"`
}

// scaleReady is a viewer process's "ready-" file.
type scaleReady struct {
	First int    `json:"first"`
	N     int    `json:"n"`
	Error string `json:"error,omitempty"`
}

// barrier is the directory the processes of one scale run meet in. Files
// appear whole (written aside, then renamed), so a reader never sees half.
type barrier string

func (b barrier) put(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(string(b), "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(string(b), name))
}

func (b barrier) get(name string, v any) error {
	data, err := os.ReadFile(filepath.Join(string(b), name))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func (b barrier) has(name string) bool {
	_, err := os.Stat(filepath.Join(string(b), name))
	return err == nil
}

// all reads every file whose name starts with prefix.
func (b barrier) all(prefix string) ([]scaleReady, error) {
	ents, err := os.ReadDir(string(b))
	if err != nil {
		return nil, err
	}
	var out []scaleReady
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		var r scaleReady
		if err := b.get(e.Name(), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// fresh makes sure the directory exists and holds nothing from an earlier
// run, whose "go" would start this run's viewers on the wrong room.
func (b barrier) fresh() error {
	if err := os.MkdirAll(string(b), 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(string(b))
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("barrier directory %s is not empty: use a fresh one per run", b)
	}
	return nil
}

// await polls cond until it holds, ctx ends or limit passes.
func await(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// ---------------------------------------------------------------- dropper

func runScaleDropper(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	b := barrier(cfg.Barrier)
	if err := b.fresh(); err != nil {
		return err
	}
	rain := cfg.Scenario == ScenarioScaleRain
	np := cfg.Packets
	per := int64(cfg.Shares) * 10
	fund := int64(np) // scale: one fen a packet
	res.Params = map[string]any{"packets": np, "interval_ms": cfg.Interval.Milliseconds(), "procs": cfg.Procs}
	if rain {
		fund = per * int64(np)
		res.Params = map[string]any{"packets": np, "shares": cfg.Shares, "duration_s": max(1, int(cfg.Duration.Seconds())), "total_per_packet": per, "procs": cfg.Procs}
	}
	snd, err := a.newSender(ctx, 0, fund)
	if err != nil {
		return err
	}
	d := &ScaleDropper{RunID: cfg.RunID, Room: cfg.Room, Procs: cfg.Procs, Instances: cfg.URLs, PIDs: cfg.PIDs, IntervalMs: cfg.Interval.Milliseconds()}
	if rain {
		d.Shares = cfg.Shares
	}
	res.Dropper = d
	masters, err := newMasterMeters(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer masters.close()
	d.RSSBefore = rssEach(cfg.PIDs)
	if err := b.put("go", scaleStart{RunID: cfg.RunID, Room: cfg.Room, Scenario: cfg.Scenario, Packets: np}); err != nil {
		return err
	}
	// Whatever happens next, the viewers are told to stop waiting.
	defer func() { _ = b.put("end", struct{}{}); _ = b.put("release", struct{}{}) }()

	began := time.Now()
	p.setPhase("viewers", int64(cfg.Procs))
	err = await(ctx, cfg.Timeout, fmt.Sprintf("%d viewer processes to connect", cfg.Procs), func() (bool, error) {
		rs, err := b.all("ready-")
		for _, r := range rs {
			if r.Error != "" {
				return false, fmt.Errorf("viewer process %d could not connect: %s", r.First, r.Error)
			}
		}
		p.done.Store(int64(len(rs)))
		return len(rs) >= cfg.Procs, err
	})
	if err != nil {
		return err
	}
	d.ConnectSec = time.Since(began).Seconds()
	rs, _ := b.all("ready-")
	for _, r := range rs {
		d.Viewers += r.N
	}
	p.target.Store(int64(d.Viewers))
	p.connected.Store(int64(d.Viewers))

	p.setPhase("settle", 0)
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	d.RSSAfter = rssEach(cfg.PIDs)

	before, _ := sampleAll(cfg.PIDs)
	m0 := masters.sample(ctx)
	start := time.Now()
	if rain {
		d.Drops, err = dropRain(ctx, cfg, a, p, snd)
	} else {
		d.Drops, err = dropEvery(ctx, cfg, a, p, snd)
	}
	_ = b.put("end", struct{}{})
	if err != nil {
		return err
	}
	p.setPhase("deliveries", int64(cfg.Procs))
	// A viewer process is done once it has every event or nothing new came
	// for viewerStall; a rain's grabs may trail its last packet by minutes.
	werr := await(ctx, 10*time.Minute, "every viewer process to be done", func() (bool, error) {
		ds, err := b.all("done-")
		p.done.Store(int64(len(ds)))
		return len(ds) >= cfg.Procs, err
	})
	m1 := masters.sample(ctx)
	after, _ := sampleAll(cfg.PIDs)
	d.PhaseSec = time.Since(start).Seconds()
	for i := range after {
		d.ServerCPUSec = append(d.ServerCPUSec, (after[i].cpu - before[i].cpu).Seconds())
	}
	// A quiet window as long as the settle, every viewer still connected:
	// Redis's background rate (presence and the like), which the drop
	// phase pays too.
	p.setPhase("quiet", 0)
	idleStart := time.Now()
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
	}
	idle1 := masters.sample(ctx)
	d.Masters = masters.stats(m0, m1, m1, idle1, time.Since(idleStart).Seconds())
	return werr
}

// dropEvery makes cfg.Packets one-fen packets, cfg.Interval apart, each
// through the next instance in turn.
func dropEvery(ctx context.Context, cfg *Config, a *api, p *progress, snd *sender) ([]ScaleDrop, error) {
	n := cfg.Packets
	drops := make([]ScaleDrop, n)
	errs := make([]error, n)
	p.setPhase(fmt.Sprintf("drop every %v", cfg.Interval), int64(n))
	t := time.NewTicker(cfg.Interval)
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.done.Add(1)
			inst := i % len(cfg.URLs)
			var out struct {
				Packet struct {
					ID        string `json:"id"`
					CreatedAt int64  `json:"created_at"`
				} `json:"packet"`
			}
			sent := time.Now().UnixNano()
			errs[i] = a.call(ctx, "POST", cfg.URLs[inst]+"/api/v1/rooms/"+url.PathEscape(cfg.Room)+"/packets", snd.token,
				map[string]any{"kind": "equal", "total": 1, "count": 1, "greeting": "drop " + strconv.Itoa(i)}, &out, http.StatusCreated)
			drops[i] = ScaleDrop{ID: out.Packet.ID, CreatedAtMs: out.Packet.CreatedAt, SentNs: sent, Instance: inst}
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return slices.DeleteFunc(drops, func(d ScaleDrop) bool { return d.ID == "" }), fmt.Errorf("drops: %w", err)
	}
	return drops, nil
}

// dropRain schedules one rain and returns once its last packet is visible.
func dropRain(ctx context.Context, cfg *Config, a *api, p *progress, snd *sender) ([]ScaleDrop, error) {
	per := int64(cfg.Shares) * 10
	var out struct {
		Rain struct {
			EndsAt  int64 `json:"ends_at"`
			Packets []struct {
				ID        string `json:"id"`
				VisibleAt int64  `json:"visible_at"`
			} `json:"packets"`
		} `json:"rain"`
	}
	sent := time.Now().UnixNano()
	err := a.call(ctx, "POST", cfg.URLs[0]+"/api/v1/rooms/"+url.PathEscape(cfg.Room)+"/rains", snd.token,
		map[string]any{"packets": cfg.Packets, "total_per_packet": per, "count_per_packet": cfg.Shares,
			"duration_seconds": max(1, int(cfg.Duration.Seconds())), "greeting": "rain"}, &out, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	var drops []ScaleDrop
	for _, pk := range out.Rain.Packets {
		drops = append(drops, ScaleDrop{ID: pk.ID, CreatedAtMs: pk.VisibleAt, SentNs: sent})
	}
	if len(drops) != cfg.Packets {
		return drops, fmt.Errorf("the rain has %d packets, asked %d", len(drops), cfg.Packets)
	}
	p.setPhase("rain", int64(len(drops)))
	last := time.UnixMilli(slices.MaxFunc(drops, func(x, y ScaleDrop) int { return int(x.CreatedAtMs - y.CreatedAtMs) }).CreatedAtMs)
	select {
	case <-time.After(time.Until(last)):
	case <-ctx.Done():
		return drops, ctx.Err()
	}
	return drops, nil
}

func rssEach(pids []int) []int64 {
	s, _ := sampleAll(pids)
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.rss
	}
	return out
}

// masterMeters reads INFO from every Redis master.
type masterMeters []*redisMeter

type masterSample struct {
	calls, usec int64
	cpu         float64
	cmds        map[string]CmdStat
	ok          bool
}

// CmdStat is one command's calls and time inside Redis (INFO commandstats).
type CmdStat struct {
	Calls int64 `json:"calls"`
	Usec  int64 `json:"usec"`
}

// commandStats reads every cmdstat_ line of INFO commandstats.
func commandStats(info string) map[string]CmdStat {
	out := map[string]CmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var c CmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				c.Calls = n
			case "usec":
				c.Usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = c
	}
	return out
}

// newMasterMeters takes a comma-separated list of redis:// URLs or
// host:port addresses.
func newMasterMeters(list string) (masterMeters, error) {
	var ms masterMeters
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "redis://" + u
		}
		m := newRedisMeter(u)
		if m.rdb == nil {
			return nil, fmt.Errorf("-redis %s: %s", u, m.errorMessage)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func (ms masterMeters) close() {
	for _, m := range ms {
		_ = m.rdb.Close()
	}
}

func (ms masterMeters) sample(ctx context.Context) []masterSample {
	out := make([]masterSample, len(ms))
	for i, m := range ms {
		c, u, cpu, err := m.read(ctx)
		out[i] = masterSample{calls: c, usec: u, cpu: cpu, ok: err == nil}
		if info, err := m.rdb.Info(ctx, "commandstats").Result(); err == nil {
			out[i].cmds = commandStats(info)
		}
	}
	return out
}

func (ms masterMeters) stats(m0, m1, idle0, idle1 []masterSample, idleSec float64) []MasterStats {
	var out []MasterStats
	for i, m := range ms {
		s := MasterStats{Addr: m.rdb.Options().Addr, IdleSec: idleSec}
		if m0[i].ok && m1[i].ok {
			s.CPUSec, s.ScriptCalls, s.ScriptUsec = m1[i].cpu-m0[i].cpu, m1[i].calls-m0[i].calls, m1[i].usec-m0[i].usec
			s.Commands = map[string]CmdStat{}
			for k, c := range m1[i].cmds {
				if d := (CmdStat{Calls: c.Calls - m0[i].cmds[k].Calls, Usec: c.Usec - m0[i].cmds[k].Usec}); d.Calls > 0 {
					s.Commands[k] = d
				}
			}
		}
		if idle0[i].ok && idle1[i].ok {
			s.IdleCPUSec = idle1[i].cpu - idle0[i].cpu
		}
		out = append(out, s)
	}
	return out
}

// ---------------------------------------------------------------- viewers

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

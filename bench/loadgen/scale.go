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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
	// Time inside commands (commandstats usec, the load tool's own INFO
	// left out) per drop: no cron, gossip or socket writes, so not noisy
	// where a broadcast costs far less than Redis's background.
	CmdUsecPerDrop   float64 `json:"cmd_usec_per_drop,omitempty"`
	CPUUsecPerOKGrab float64 `json:"cpu_usec_per_ok_grab,omitempty"`
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

// ---------------------------------------------------------------- dropper

// runScaleDropper is the dropper of a scale run: see the top of this file.
func runScaleDropper(ctx context.Context, cfg *Config, a *api, p *progress, res *Result) error {
	b := barrier(cfg.Barrier)
	if err := b.fresh(); err != nil {
		return err
	}
	rain := cfg.Scenario == ScenarioScaleRain
	per := int64(cfg.Shares) * 10
	fund := int64(cfg.Packets) // scale: one fen a packet
	res.Params = map[string]any{"packets": cfg.Packets, "interval_ms": cfg.Interval.Milliseconds(), "procs": cfg.Procs}
	d := &ScaleDropper{RunID: cfg.RunID, Room: cfg.Room, Procs: cfg.Procs, Instances: cfg.URLs, PIDs: cfg.PIDs, IntervalMs: cfg.Interval.Milliseconds()}
	if rain {
		fund = per * int64(cfg.Packets)
		res.Params = map[string]any{"packets": cfg.Packets, "shares": cfg.Shares, "duration_s": max(1, int(cfg.Duration.Seconds())), "total_per_packet": per, "procs": cfg.Procs}
		d.Shares = cfg.Shares
	}
	res.Dropper = d
	snd, err := a.newSender(ctx, 0, fund)
	if err != nil {
		return err
	}
	masters, err := newMasterMeters(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer masters.close()
	d.RSSBefore = rssEach(cfg.PIDs)
	if err := b.put("go", scaleStart{RunID: cfg.RunID, Room: cfg.Room, Scenario: cfg.Scenario, Packets: cfg.Packets}); err != nil {
		return err
	}
	// Whatever happens next, the viewers are told to stop waiting.
	defer func() { _ = b.put("end", struct{}{}); _ = b.put("release", struct{}{}) }()

	began := time.Now()
	if d.Viewers, err = awaitViewers(ctx, cfg, b, p); err != nil {
		return err
	}
	d.ConnectSec = time.Since(began).Seconds()
	p.setPhase("settle", 0)
	if err := pause(ctx, cfg.Settle); err != nil {
		return err
	}
	d.RSSAfter = rssEach(cfg.PIDs)
	return dropAndMeasure(ctx, cfg, a, p, b, snd, masters, d)
}

// awaitViewers waits for every viewer process's ready file and returns how
// many viewers they hold.
func awaitViewers(ctx context.Context, cfg *Config, b barrier, p *progress) (int, error) {
	p.setPhase("viewers", int64(cfg.Procs))
	var rs []scaleReady
	err := await(ctx, cfg.Timeout, fmt.Sprintf("%d viewer processes to connect", cfg.Procs), func() (bool, error) {
		var err error
		rs, err = b.all("ready-")
		for _, r := range rs {
			if r.Error != "" {
				return false, fmt.Errorf("viewer process %d could not connect: %s", r.First, r.Error)
			}
		}
		p.done.Store(int64(len(rs)))
		return len(rs) >= cfg.Procs, err
	})
	n := 0
	for _, r := range rs {
		n += r.N
	}
	p.target.Store(int64(n))
	p.connected.Store(int64(n))
	return n, err
}

// dropAndMeasure drops, waits for every viewer process to be done, and reads
// the servers' CPU and each Redis master around it, then Redis over a quiet
// window as long as the settle, every viewer still connected: Redis's
// background rate (presence and the like), which the drop phase pays too.
func dropAndMeasure(ctx context.Context, cfg *Config, a *api, p *progress, b barrier, snd *sender, masters masterMeters, d *ScaleDropper) error {
	before, _ := sampleAll(cfg.PIDs)
	m0 := masters.sample(ctx)
	start := time.Now()
	var err error
	if cfg.Scenario == ScenarioScaleRain {
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
	p.setPhase("quiet", 0)
	quiet := time.Now()
	_ = pause(ctx, cfg.Settle)
	d.Masters = masters.stats(m0, m1, m1, masters.sample(ctx), time.Since(quiet).Seconds())
	return werr
}

// pause waits d, or less if ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropEvery makes cfg.Packets one-fen packets, cfg.Interval apart, each
// through the next instance in turn.
func dropEvery(ctx context.Context, cfg *Config, a *api, p *progress, snd *sender) ([]ScaleDrop, error) {
	n := cfg.Packets
	drops := make([]ScaleDrop, n)
	errs := make([]error, n)
	p.setPhase(fmt.Sprintf("drop every %v", cfg.Interval), int64(n))
	paced(ctx, n, cfg.Interval, func(i int) {
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
	})
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
	return drops, pause(ctx, time.Until(last))
}

func rssEach(pids []int) []int64 {
	s, _ := sampleAll(pids)
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.rss
	}
	return out
}

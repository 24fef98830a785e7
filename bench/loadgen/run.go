package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Result is one run's figures. Sections that a scenario does not measure are
// nil.
type Result struct {
	Scenario string         `json:"scenario"`
	Target   string         `json:"target"`
	URLs     []string       `json:"urls"`
	Conns    int            `json:"conns"`
	Params   map[string]any `json:"params"`
	WallSec  float64        `json:"wall_s"`

	Grabs    *GrabStats       `json:"grabs,omitempty"`
	Delivery []*DeliveryStats `json:"delivery,omitempty"`
	Rain     *RainStats       `json:"rain,omitempty"`
	Server   *ServerStats     `json:"server,omitempty"`
	Redis    *RedisStats      `json:"redis,omitempty"`
	Audit    *Audit           `json:"audit,omitempty"`
	// Scale scenarios: a dropper's or a viewer process's own report, and
	// what Merge makes of them together.
	Dropper *ScaleDropper `json:"dropper,omitempty"`
	Viewers *ScaleViewers `json:"viewers,omitempty"`
	Scale   *ScaleStats   `json:"scale,omitempty"`
	// Disconnects counts connections that ended before the tool closed them
	// (evicted as slow consumers, refused, lost), by close code.
	Disconnects map[string]int `json:"disconnects"`
	Failures    []string       `json:"failures"`
}

// GrabStats: grabs answered in the grab phases (first grab sent → last
// result), and over the whole run.
type GrabStats struct {
	Attempts       int            `json:"attempts"`
	OK             int            `json:"ok"`
	PhaseSec       float64        `json:"phase_s"`
	OKPerSec       float64        `json:"ok_per_s"`
	AttemptsPerSec float64        `json:"attempts_per_s"`
	Latency        Percentiles    `json:"latency"`
	Codes          map[string]int `json:"codes"`
	// The load tool's own CPU over the grab phases' run, per answered grab.
	ClientCPUPerGrabUs float64 `json:"client_cpu_per_grab_us,omitempty"`
}

// DeliveryStats: fan-out broadcasts and their delivery to every client.
type DeliveryStats struct {
	Broadcasts int         `json:"broadcasts"`
	IntervalMs int64       `json:"interval_ms"`
	Expected   int64       `json:"expected"`
	Delivered  int64       `json:"delivered"`
	Missing    int64       `json:"missing"`
	Latency    Percentiles `json:"latency"`
	// Server CPU over this phase (send of the first broadcast → last delivery).
	ServerCPUSec     float64 `json:"server_cpu_s,omitempty"`
	CPUPerDeliveryUs float64 `json:"cpu_per_delivery_us,omitempty"`
	// The load tool's own CPU over the phase, per delivery.
	ClientCPUPerDeliveryUs float64 `json:"client_cpu_per_delivery_us,omitempty"`
}

// RainStats: time from each packet's visible_at to its last share
// (the finished event's duration_ms), every grab answered, and every
// packet event delivered to every client exactly once (latency from the
// packet's visible_at).
type RainStats struct {
	Packets       int           `json:"packets"`
	Emptied       int           `json:"emptied"`
	ToEmpty       Percentiles   `json:"time_to_empty"`
	ToEmptyMs     []int64       `json:"time_to_empty_ms"`
	GrabsExpected int64         `json:"grabs_expected"`
	GrabsAnswered int64         `json:"grabs_answered"`
	PacketEvents  ScaleDelivery `json:"packet_events"`
}

// ServerStats: the server processes' CPU over the measured phase and their
// resident memory before and after connecting.
type ServerStats struct {
	PIDs             []int   `json:"pids"`
	CPUSec           float64 `json:"cpu_s"`
	CPUPerDeliveryUs float64 `json:"cpu_per_delivery_us,omitempty"`
	CPUPerGrabUs     float64 `json:"cpu_per_grab_us,omitempty"`
	RSSBefore        int64   `json:"rss_before_bytes"`
	RSSAfter         int64   `json:"rss_after_bytes"`
	RSSPerConn       float64 `json:"rss_per_conn_bytes"`
}

// RedisStats: Redis work per successful grab over the grab phases, from INFO
// commandstats (time inside EVAL/EVALSHA, i.e. the scripts) and INFO cpu
// (the whole Redis process, networking included).
type RedisStats struct {
	ScriptCalls       int64   `json:"script_calls"`
	ScriptUsec        int64   `json:"script_usec"`
	ScriptUsecPerGrab float64 `json:"script_usec_per_grab"`
	CPUSec            float64 `json:"cpu_s"`
	CPUUsecPerGrab    float64 `json:"cpu_usec_per_grab"`
	CallsPerGrab      float64 `json:"script_calls_per_grab"`
}

// ErrAudit is returned when the money audit finds a problem.
var ErrAudit = errors.New("AUDIT FAILED: money is out of place")

// Run runs cfg's scenario, then the audit. It returns the result even when it
// also returns an error, so the caller can print what was measured.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := RaiseFileLimit(cfg.Conns + 64); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	p := newProgress(cfg.Progress)
	defer p.close()
	p.target.Store(int64(cfg.Conns))

	res := &Result{Scenario: cfg.Scenario, Target: cfg.Target, URLs: cfg.URLs, Conns: cfg.Conns, Params: map[string]any{}, Failures: []string{}}
	start := time.Now()
	a := newAPI(&cfg)
	var err error
	switch cfg.Scenario {
	case ScenarioHot:
		err = runHot(ctx, &cfg, a, p, res)
	case ScenarioSpread:
		err = runSpread(ctx, &cfg, a, p, res)
	case ScenarioRain:
		err = runRain(ctx, &cfg, a, p, res)
	case ScenarioFanout:
		err = runFanout(ctx, &cfg, a, p, res)
	case ScenarioScale, ScenarioScaleRain:
		if cfg.Role == RoleDropper {
			err = runScaleDropper(ctx, &cfg, a, p, res)
		} else {
			err = runScaleViewers(ctx, &cfg, a, p, res)
		}
	}
	res.WallSec = time.Since(start).Seconds()
	p.close()
	if err != nil {
		res.Failures = append(res.Failures, err.Error())
	}
	res.Disconnects = p.dropCounts()
	if n := p.dropped.Load(); n > 0 {
		derr := fmt.Errorf("%d connections were dropped before the end: %v", n, res.Disconnects)
		res.Failures = append(res.Failures, derr.Error())
		err = errors.Join(err, derr)
	}
	// Of a scale run's processes only the dropper audits, once every viewer
	// is done: an audit while others still grab would race them.
	if cfg.Target == TargetHongbao && !cfg.NoAudit && cfg.Role != RoleViewers {
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer acancel()
		au, aerr := a.audit(actx)
		res.Audit = au
		switch {
		case aerr != nil:
			aerr = fmt.Errorf("%w: the audit could not run: %v", ErrAudit, aerr)
			res.Failures = append(res.Failures, aerr.Error())
			err = errors.Join(err, aerr)
		case !au.OK || len(au.Problems) > 0:
			aerr = fmt.Errorf("%w: %s", ErrAudit, strings.Join(au.Problems, "; "))
			res.Failures = append(res.Failures, aerr.Error())
			err = errors.Join(err, aerr)
		}
	}
	return res, err
}

// serverMeter samples the server processes, and this process (the load
// client shares the machine's cores with them).
type serverMeter struct {
	pids   []int
	before []procSample
	self   procSample
}

func (m *serverMeter) start() {
	if len(m.pids) > 0 {
		m.before, _ = sampleAll(m.pids)
	}
	m.self, _ = readProc(os.Getpid())
}

// clientSince returns the CPU this load process used since start.
func (m *serverMeter) clientSince() time.Duration {
	now, err := readProc(os.Getpid())
	if err != nil {
		return 0
	}
	return now.cpu - m.self.cpu
}

// cpuSince returns the CPU the servers used since start.
func (m *serverMeter) cpuSince() (time.Duration, error) {
	if len(m.pids) == 0 {
		return 0, nil
	}
	after, err := sampleAll(m.pids)
	var d time.Duration
	for i := range after {
		d += after[i].cpu - m.before[i].cpu
	}
	return d, err
}

func rssOf(pids []int) int64 {
	s, _ := sampleAll(pids)
	var n int64
	for _, x := range s {
		n += x.rss
	}
	return n
}

// redisMeter reads INFO commandstats and INFO cpu before and after.
type redisMeter struct {
	rdb          *redis.Client
	calls, usec  int64
	cpu          float64
	started      bool
	errorMessage string
}

func newRedisMeter(url string) *redisMeter {
	if url == "" {
		return nil
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		return &redisMeter{errorMessage: err.Error()}
	}
	return &redisMeter{rdb: redis.NewClient(o)}
}

func (m *redisMeter) read(ctx context.Context) (calls, usec int64, cpu float64, err error) {
	info, err := m.rdb.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "cmdstat_evalsha:") || strings.HasPrefix(line, "cmdstat_eval:") {
			for _, kv := range strings.Split(line[strings.IndexByte(line, ':')+1:], ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls":
					calls += n
				case "usec":
					usec += n
				}
			}
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	return calls, usec, cpu, nil
}

func (m *redisMeter) start(ctx context.Context) {
	if m == nil || m.rdb == nil {
		return
	}
	var err error
	m.calls, m.usec, m.cpu, err = m.read(ctx)
	m.started = err == nil
}

func (m *redisMeter) stop(ctx context.Context, grabs int) *RedisStats {
	if m == nil || m.rdb == nil || !m.started {
		return nil
	}
	defer m.rdb.Close()
	calls, usec, cpu, err := m.read(ctx)
	if err != nil {
		return nil
	}
	rs := &RedisStats{ScriptCalls: calls - m.calls, ScriptUsec: usec - m.usec, CPUSec: cpu - m.cpu}
	if grabs > 0 {
		rs.ScriptUsecPerGrab = float64(rs.ScriptUsec) / float64(grabs)
		rs.CPUUsecPerGrab = rs.CPUSec * 1e6 / float64(grabs)
		rs.CallsPerGrab = float64(rs.ScriptCalls) / float64(grabs)
	}
	return rs
}

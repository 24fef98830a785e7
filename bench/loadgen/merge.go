package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ScaleStats is a scale run judged as a whole: the dropper's report joined
// with every viewer process's.
type ScaleStats struct {
	Procs      int     `json:"procs"` // viewer processes
	Viewers    int     `json:"viewers"`
	Drops      int     `json:"drops"`
	IntervalMs int64   `json:"interval_ms"`
	ConnectSec float64 `json:"connect_s"`
	PhaseSec   float64 `json:"phase_s"`
	// Delivery is the packet events: every viewer must get every drop once.
	// Latency is receive time − the packet's created_at (a rain packet: its
	// visible_at), on the one clock of the machine.
	Delivery ScaleDelivery `json:"delivery"`
	// Finished is the finished events of a rain's emptied packets.
	Finished  *ScaleDelivery  `json:"finished,omitempty"`
	Instances []InstanceStats `json:"instances"`
	Masters   []MasterStats   `json:"masters,omitempty"`
	// RSS over every instance: after − before, per viewer.
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
}

// ScaleDelivery counts one kind of event over viewers × packets.
type ScaleDelivery struct {
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	// Unexpected: receipts of packets the dropper did not make.
	Unexpected int64       `json:"unexpected"`
	Latency    Percentiles `json:"latency"`
}

// InstanceStats is one server instance of a scale run.
type InstanceStats struct {
	URL        string        `json:"url"`
	PID        int           `json:"pid,omitempty"`
	Viewers    int           `json:"viewers"`
	Delivery   ScaleDelivery `json:"delivery"`
	Grabs      *GrabStats    `json:"grabs,omitempty"`
	RSSBefore  int64         `json:"rss_before_bytes,omitempty"`
	RSSAfter   int64         `json:"rss_after_bytes,omitempty"`
	RSSPerConn float64       `json:"rss_per_conn_bytes,omitempty"`
	CPUSec     float64       `json:"cpu_s,omitempty"`
	// Server CPU per packet event delivered (scale) or per grab answered
	// (scale-rain), over the dropper's phase.
	CPUPerDeliveryUs float64 `json:"cpu_per_delivery_us,omitempty"`
	CPUPerGrabUs     float64 `json:"cpu_per_grab_us,omitempty"`
}

// ReadResults reads the JSON reports a load process printed with -json.
func ReadResults(paths []string) ([]*Result, error) {
	var out []*Result
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// Merge joins the reports of one scale run (one dropper, the viewer
// processes) and judges it: every packet event delivered to every viewer
// exactly once (a rain also: every finished event, every grab answered,
// every packet emptied), no connection dropped, every report present, the
// audit clean. It returns the merged result and, when the run failed, an
// error (wrapping ErrAudit for the audit). Reports that cannot belong to one
// run are an error with no result.
func Merge(rs []*Result) (*Result, error) {
	var d *Result
	var vs []*Result
	for _, r := range rs {
		switch {
		case r.Dropper != nil && d == nil:
			d = r
		case r.Dropper != nil:
			return nil, fmt.Errorf("merge: two dropper reports")
		case r.Viewers != nil:
			vs = append(vs, r)
		default:
			return nil, fmt.Errorf("merge: a %s report that is neither a dropper's nor a viewer process's", r.Scenario)
		}
	}
	if d == nil || len(vs) == 0 {
		return nil, fmt.Errorf("merge: want one dropper report and at least one viewer report, got %d and %d", len(rs)-len(vs), len(vs))
	}
	dr := d.Dropper
	slices.SortFunc(vs, func(a, b *Result) int { return a.Viewers.First - b.Viewers.First })
	for i, v := range vs {
		if v.Scenario != d.Scenario {
			return nil, fmt.Errorf("merge: a %s viewer report with a %s dropper", v.Scenario, d.Scenario)
		}
		if !slices.Equal(v.Viewers.Instances, dr.Instances) {
			return nil, fmt.Errorf("merge: viewers %d dialed %v, the dropper drove %v: give every process the same -url list", v.Viewers.First, v.Viewers.Instances, dr.Instances)
		}
		if i > 0 && vs[i-1].Viewers.First+vs[i-1].Viewers.N > v.Viewers.First {
			return nil, fmt.Errorf("merge: viewers %d.. and %d.. overlap: give each process its own -first", vs[i-1].Viewers.First, v.Viewers.First)
		}
	}

	rain := d.Scenario == ScenarioScaleRain
	out := &Result{Scenario: d.Scenario, Target: d.Target, URLs: dr.Instances, Params: map[string]any{}, Audit: d.Audit,
		Disconnects: map[string]int{}, Failures: []string{}}
	for k, x := range d.Params {
		out.Params[k] = x
	}
	var failures []error
	fail := func(err error) { failures = append(failures, err) }
	for _, r := range rs {
		out.WallSec = max(out.WallSec, r.WallSec)
		for k, n := range r.Disconnects {
			out.Disconnects[k] += n
		}
		who := "dropper"
		if r.Viewers != nil {
			who = fmt.Sprintf("viewers %d..%d", r.Viewers.First, r.Viewers.First+r.Viewers.N-1)
		}
		for _, f := range r.Failures {
			fail(fmt.Errorf("%s: %s", who, f))
		}
	}

	ninst := len(dr.Instances)
	st := &ScaleStats{Procs: len(vs), Drops: len(dr.Drops), IntervalMs: dr.IntervalMs, ConnectSec: dr.ConnectSec, PhaseSec: dr.PhaseSec,
		Instances: make([]InstanceStats, ninst), Masters: slices.Clone(dr.Masters)}
	out.Scale = st
	for i, u := range dr.Instances {
		st.Instances[i].URL = u
	}
	for _, v := range vs {
		st.Viewers += v.Viewers.N
		for j := range v.Viewers.N {
			st.Instances[(v.Viewers.First+j)%ninst].Viewers++
		}
	}
	out.Conns = st.Viewers
	if dr.Viewers != st.Viewers {
		fail(fmt.Errorf("reports for %d viewers, the dropper counted %d ready: a viewer report is missing", st.Viewers, dr.Viewers))
	}

	// The time to empty of each packet, from whichever process saw it.
	toEmpty := map[string]int64{}
	for _, v := range vs {
		for id, ms := range v.Viewers.ToEmptyMs {
			if _, ok := toEmpty[id]; !ok {
				toEmpty[id] = ms
			}
		}
	}
	packets := newTally(ninst, true)
	var finished *tally
	if rain {
		finished = newTally(ninst, false)
	}
	for _, v := range vs {
		vv := v.Viewers
		packets.add(vv.First, vv.N, vv.Events, "packet", dr.Drops, nil)
		if finished != nil {
			// Every emptied packet's finished event, at every viewer.
			finished.add(vv.First, vv.N, vv.Events, "finished", dr.Drops, func(x ScaleDrop) bool { _, ok := toEmpty[x.ID]; return ok })
		}
	}
	packets.finish()
	st.Delivery = *packets.total
	for i := range st.Instances {
		st.Instances[i].Delivery = packets.inst[i]
	}
	if err := packets.total.check("packet events"); err != nil {
		fail(err)
	}
	if finished != nil {
		finished.finish()
		st.Finished = finished.total
		if err := finished.total.check("finished events"); err != nil {
			fail(err)
		}
	}

	// Servers: RSS and CPU by instance (the dropper's -pids are in -url order).
	var rssDelta int64
	for i := range st.Instances {
		in := &st.Instances[i]
		if i < len(dr.PIDs) {
			in.PID = dr.PIDs[i]
		}
		if i < len(dr.RSSBefore) && i < len(dr.RSSAfter) {
			in.RSSBefore, in.RSSAfter = dr.RSSBefore[i], dr.RSSAfter[i]
			rssDelta += in.RSSAfter - in.RSSBefore
			if in.Viewers > 0 {
				in.RSSPerConn = float64(in.RSSAfter-in.RSSBefore) / float64(in.Viewers)
			}
		}
		if i < len(dr.ServerCPUSec) {
			in.CPUSec = dr.ServerCPUSec[i]
			if !rain && in.Delivery.Delivered > 0 {
				in.CPUPerDeliveryUs = in.CPUSec * 1e6 / float64(in.Delivery.Delivered)
			}
		}
	}
	if len(dr.RSSAfter) > 0 && st.Viewers > 0 {
		st.RSSPerConn = float64(rssDelta) / float64(st.Viewers)
	}

	if rain {
		mergeRain(out, vs, dr, toEmpty, fail)
	}
	for i := range st.Masters {
		m := &st.Masters[i]
		if n := len(dr.Drops); n > 0 && !rain {
			m.CPUUsecPerDrop = m.CPUSec * 1e6 / float64(n)
			var usec int64
			for name, c := range m.Commands {
				if name != "info" {
					usec += c.Usec
				}
			}
			m.CmdUsecPerDrop = float64(usec) / float64(n)
			if m.IdleSec > 0 {
				m.NetCPUUsecPerDrop = (m.CPUSec - m.IdleCPUSec/m.IdleSec*dr.PhaseSec) * 1e6 / float64(n)
			}
		}
		if rain && out.Grabs != nil && out.Grabs.OK > 0 {
			m.CPUUsecPerOKGrab = m.CPUSec * 1e6 / float64(out.Grabs.OK)
		}
	}

	if n := sumValues(out.Disconnects); n > 0 {
		fail(fmt.Errorf("%d connections were dropped before the end: %v", n, out.Disconnects))
	}
	var err error
	if a := out.Audit; a != nil && (!a.OK || len(a.Problems) > 0) {
		err = fmt.Errorf("%w: %s", ErrAudit, strings.Join(a.Problems, "; "))
	}
	for _, f := range failures {
		out.Failures = append(out.Failures, f.Error())
	}
	return out, errors.Join(append([]error{err}, failures...)...)
}

// mergeRain adds a scale-rain's grabs: overall and by instance, every grab
// answered, and each packet's time to empty.
func mergeRain(out *Result, vs []*Result, dr *ScaleDropper, toEmpty map[string]int64, fail func(error)) {
	st := out.Scale
	ninst := len(st.Instances)
	lat := make([][]int64, ninst)
	codes := make([]map[string]int, ninst)
	for i := range codes {
		codes[i] = map[string]int{}
	}
	var first, last int64
	for _, v := range vs {
		for i, us := range v.Viewers.GrabUs {
			if i >= ninst {
				break
			}
			for _, x := range us {
				lat[i] = append(lat[i], int64(x)*int64(time.Microsecond))
			}
		}
		for i, c := range v.Viewers.GrabCodes {
			if i >= ninst {
				break
			}
			for k, n := range c {
				codes[i][k] += n
			}
		}
		if f := v.Viewers.FirstGrabNs; f != 0 && (first == 0 || f < first) {
			first = f
		}
		last = max(last, v.Viewers.LastResultNs)
	}
	var phase time.Duration
	if first != 0 && last > first {
		phase = time.Duration(last - first)
	}
	grabStats := func(lat []int64, codes map[string]int) *GrabStats {
		p := percentiles(lat)
		gs := &GrabStats{Attempts: p.Count, OK: codes["ok"], PhaseSec: phase.Seconds(), Latency: p, Codes: codes}
		if phase > 0 {
			gs.OKPerSec = float64(gs.OK) / phase.Seconds()
			gs.AttemptsPerSec = float64(gs.Attempts) / phase.Seconds()
		}
		return gs
	}
	var all []int64
	allCodes := map[string]int{}
	for i := range st.Instances {
		in := &st.Instances[i]
		in.Grabs = grabStats(lat[i], codes[i])
		if in.Grabs.Attempts > 0 {
			in.CPUPerGrabUs = in.CPUSec * 1e6 / float64(in.Grabs.Attempts)
		}
		all = append(all, lat[i]...)
		for k, n := range codes[i] {
			allCodes[k] += n
		}
	}
	out.Grabs = grabStats(all, allCodes)
	np := len(dr.Drops)
	want := st.Viewers * np
	if out.Grabs.Attempts != want {
		fail(fmt.Errorf("grabs: %d of %d answered", out.Grabs.Attempts, want))
	}
	if okWant := np * min(dr.Shares, st.Viewers); out.Grabs.OK != okWant {
		fail(fmt.Errorf("grabs: %d succeeded, want %d (min(shares, viewers) per packet)", out.Grabs.OK, okWant))
	}
	rs := &RainStats{Packets: np}
	var empties []int64
	for _, x := range dr.Drops {
		if ms, ok := toEmpty[x.ID]; ok {
			empties = append(empties, ms*int64(time.Millisecond))
			rs.ToEmptyMs = append(rs.ToEmptyMs, ms)
		}
	}
	rs.Emptied = len(empties)
	rs.ToEmpty = percentiles(empties)
	rs.GrabsExpected, rs.GrabsAnswered = int64(want), int64(out.Grabs.Attempts)
	rs.PacketEvents = st.Delivery
	out.Rain = rs
	if st.Viewers >= dr.Shares && rs.Emptied != np {
		fail(fmt.Errorf("rain: %d of %d packets reported emptied", rs.Emptied, np))
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// tally counts viewers' receipts of one type of event against the drops:
// overall and by instance (viewer i of a process starting at first is on
// instance (first+i) % ninst), with delivery latencies when asked.
type tally struct {
	ninst int
	total *ScaleDelivery
	inst  []ScaleDelivery
	lat   [][]int64 // by instance; nil: not kept
}

func newTally(ninst int, latency bool) *tally {
	t := &tally{ninst: ninst, total: &ScaleDelivery{}, inst: make([]ScaleDelivery, ninst)}
	if latency {
		t.lat = make([][]int64, ninst)
	}
	return t
}

// add counts one process's viewers first..first+n-1. expect says which drops
// every viewer must have got (nil: all of them).
func (t *tally) add(first, n int, events []ScaleEvents, typ string, drops []ScaleDrop, expect func(ScaleDrop) bool) {
	byID := make(map[string]ScaleDrop, len(drops))
	for _, x := range drops {
		byID[x.ID] = x
		if expect != nil && !expect(x) {
			continue
		}
		t.total.Expected += int64(n)
		for j := range n {
			t.inst[(first+j)%t.ninst].Expected++
		}
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Type != typ {
			continue
		}
		drop, ok := byID[e.PacketID]
		if ok && expect != nil && !expect(drop) {
			continue
		}
		again := seen[e.PacketID] // the same event listed twice: every receipt is one too many
		seen[e.PacketID] = true
		for j, at := range e.RecvNs {
			if at == 0 || j >= n {
				continue
			}
			in := &t.inst[(first+j)%t.ninst]
			switch {
			case !ok:
				t.total.Unexpected++
				in.Unexpected++
			case again:
				t.total.Duplicates++
				in.Duplicates++
			default:
				t.total.Delivered++
				in.Delivered++
				if t.lat != nil {
					i := (first + j) % t.ninst
					t.lat[i] = append(t.lat[i], at-drop.CreatedAtMs*int64(time.Millisecond))
				}
			}
		}
		for j, extra := range e.Extra {
			if j < 0 || j >= n || extra <= 0 {
				continue
			}
			t.total.Duplicates += int64(extra)
			t.inst[(first+j)%t.ninst].Duplicates += int64(extra)
		}
	}
}

// finish computes what is missing and the latencies.
func (t *tally) finish() {
	var all []int64
	for i := range t.inst {
		in := &t.inst[i]
		in.Missing = in.Expected - in.Delivered
		if t.lat != nil {
			in.Latency = percentiles(t.lat[i])
			all = append(all, t.lat[i]...)
		}
	}
	t.total.Missing = t.total.Expected - t.total.Delivered
	t.total.Latency = percentiles(all)
}

// check fails a delivery that is not exactly once.
func (x *ScaleDelivery) check(what string) error {
	if x.Missing != 0 || x.Duplicates != 0 || x.Unexpected != 0 {
		return fmt.Errorf("%s: %d of %d delivered, %d missing, %d duplicates, %d of packets never dropped",
			what, x.Delivered, x.Expected, x.Missing, x.Duplicates, x.Unexpected)
	}
	return nil
}

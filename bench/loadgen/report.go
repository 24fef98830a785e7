package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable prints r for humans.
func WriteTable(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("scenario", "%s on %s (%s)", r.Scenario, r.Target, strings.Join(r.URLs, ", "))
	row("connections", "%d", r.Conns)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ps []string
	for _, k := range keys {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	row("parameters", "%s", strings.Join(ps, " "))
	row("wall time", "%.1fs", r.WallSec)
	if g := r.Grabs; g != nil {
		row("grabs", "%d answered, %d ok in %.2fs of grab phases", g.Attempts, g.OK, g.PhaseSec)
		row("grabs/s", "%.0f ok/s  (%.0f answered/s)", g.OKPerSec, g.AttemptsPerSec)
		row("grab latency", "%s", g.Latency)
		if g.ClientCPUPerGrabUs > 0 {
			row("load tool cpu/grab", "%.1fµs", g.ClientCPUPerGrabUs)
		}
		codes := make([]string, 0, len(g.Codes))
		for k := range g.Codes {
			codes = append(codes, k)
		}
		slices.Sort(codes)
		var cs []string
		for _, k := range codes {
			cs = append(cs, fmt.Sprintf("%s %d", k, g.Codes[k]))
		}
		row("results by code", "%s", strings.Join(cs, ", "))
	}
	if rn := r.Rain; rn != nil {
		row("rain packets", "%d emptied of %d", rn.Emptied, rn.Packets)
		row("time to empty", "%s", rn.ToEmpty)
		row("grabs answered", "%d of %d", rn.GrabsAnswered, rn.GrabsExpected)
		row("packet events", "%s", rn.PacketEvents)
	}
	if d := r.Dropper; d != nil {
		row("dropper", "%d drops to %d viewers in %d processes (ready after %.1fs), phase %.1fs", len(d.Drops), d.Viewers, d.Procs, d.ConnectSec, d.PhaseSec)
		for _, m := range d.Masters {
			row("  redis "+m.Addr, "%.3fs cpu (%.3fs over the %.1fs quiet window)", m.CPUSec, m.IdleCPUSec, m.IdleSec)
		}
	}
	if v := r.Viewers; v != nil {
		row("viewers", "%d..%d on %d instances: %d events recorded", v.First, v.First+v.N-1, len(v.Instances), len(v.Events))
	}
	if st := r.Scale; st != nil {
		writeScale(tw, row, st)
	}
	for _, d := range r.Delivery {
		row(fmt.Sprintf("every %dms", d.IntervalMs), "%d broadcasts: %d of %d delivered (%d missing)", d.Broadcasts, d.Delivered, d.Expected, d.Missing)
		row("  delivery latency", "%s", d.Latency)
		if d.CPUPerDeliveryUs > 0 {
			row("  server cpu/delivery", "%.1fµs (%.2fs)", d.CPUPerDeliveryUs, d.ServerCPUSec)
		}
		row("  load tool cpu/delivery", "%.1fµs", d.ClientCPUPerDeliveryUs)
	}
	if s := r.Server; s != nil {
		if s.CPUSec > 0 && len(r.Delivery) == 0 {
			row("server cpu", "%.2fs (pids %v)", s.CPUSec, s.PIDs)
		}
		if s.CPUPerGrabUs > 0 {
			row("server cpu/grab", "%.1fµs", s.CPUPerGrabUs)
		}
		if s.RSSAfter > 0 {
			row("server rss", "%.1f MiB → %.1f MiB: %.0f B (%.1f KiB) per connection",
				float64(s.RSSBefore)/(1<<20), float64(s.RSSAfter)/(1<<20), s.RSSPerConn, s.RSSPerConn/1024)
		}
	}
	if rd := r.Redis; rd != nil {
		row("redis per ok grab", "%.2fµs in scripts (%.2f calls), %.2fµs process cpu", rd.ScriptUsecPerGrab, rd.CallsPerGrab, rd.CPUUsecPerGrab)
	}
	if a := r.Audit; a != nil {
		verdict := "OK"
		if !a.OK || len(a.Problems) > 0 {
			verdict = "FAILED: " + strings.Join(a.Problems, "; ")
		}
		row("audit", "%s (funded %d fen, %d wallets, %d packets, %d claims)", verdict, a.Funded, a.Wallets, a.Packets, a.Claims)
	}
	if len(r.Disconnects) > 0 {
		row("DISCONNECTS", "%v", r.Disconnects)
	}
	for _, f := range r.Failures {
		row("FAILURE", "%s", f)
	}
	tw.Flush()
}

// writeScale prints a merged scale run: exactly once, then by instance and
// by Redis master.
func writeScale(tw *tabwriter.Writer, row func(k, format string, a ...any), st *ScaleStats) {
	row("scale", "%d viewers in %d processes, %d instances, %d drops; ready after %.1fs, phase %.1fs",
		st.Viewers, st.Procs, len(st.Instances), st.Drops, st.ConnectSec, st.PhaseSec)
	row("packet events", "%s", st.Delivery)
	row("  delivery latency", "%s", st.Delivery.Latency)
	if st.Finished != nil {
		row("finished events", "%s", *st.Finished)
	}
	if st.RSSPerConn != 0 {
		row("server rss", "%.0f B (%.1f KiB) per viewer over every instance", st.RSSPerConn, st.RSSPerConn/1024)
	}
	for _, in := range st.Instances {
		row("instance "+in.URL, "pid %d, %d viewers: %s", in.PID, in.Viewers, in.Delivery)
		row("  delivery latency", "%s", in.Delivery.Latency)
		if in.Grabs != nil {
			row("  grabs", "%d answered (%d ok): %s", in.Grabs.Attempts, in.Grabs.OK, in.Grabs.Latency)
		}
		if in.RSSAfter > 0 {
			row("  rss", "%.1f MiB → %.1f MiB: %.1f KiB per viewer", float64(in.RSSBefore)/(1<<20), float64(in.RSSAfter)/(1<<20), in.RSSPerConn/1024)
		}
		switch {
		case in.CPUPerDeliveryUs > 0:
			row("  cpu", "%.2fs: %.1fµs per delivery", in.CPUSec, in.CPUPerDeliveryUs)
		case in.CPUPerGrabUs > 0:
			row("  cpu", "%.2fs: %.1fµs per answered grab", in.CPUSec, in.CPUPerGrabUs)
		}
	}
	for _, m := range st.Masters {
		switch {
		case m.CPUUsecPerDrop > 0:
			row("redis "+m.Addr, "%.3fs cpu: %.0fµs per broadcast (%.0fµs less the quiet window's rate; %.0fµs inside commands)", m.CPUSec, m.CPUUsecPerDrop, m.NetCPUUsecPerDrop, m.CmdUsecPerDrop)
		case m.CPUUsecPerOKGrab > 0:
			row("redis "+m.Addr, "%.3fs cpu: %.2fµs per ok grab", m.CPUSec, m.CPUUsecPerOKGrab)
		default:
			row("redis "+m.Addr, "%.3fs cpu", m.CPUSec)
		}
		if m.IdleSec > 0 {
			row("  background", "%.0fµs cpu a second (quiet window of %.1fs)", m.IdleCPUSec/m.IdleSec*1e6, m.IdleSec)
		}
		if len(m.Commands) > 0 {
			row("  top commands", "%s", topCommands(m.Commands, 6))
		}
	}
}

// topCommands lists the k commands Redis spent most time in.
func topCommands(cmds map[string]CmdStat, k int) string {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmds[b].Usec - cmds[a].Usec; c != 0 {
			return int(c)
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, n := range names[:min(k, len(names))] {
		out = append(out, fmt.Sprintf("%s %d calls %dµs", n, cmds[n].Calls, cmds[n].Usec))
	}
	return strings.Join(out, ", ")
}

func (x ScaleDelivery) String() string {
	s := fmt.Sprintf("%d of %d delivered, %d missing, %d duplicates", x.Delivered, x.Expected, x.Missing, x.Duplicates)
	if x.Unexpected > 0 {
		s += fmt.Sprintf(", %d of packets never dropped", x.Unexpected)
	}
	return s
}

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
		row("load tool cpu/grab", "%.1fµs", g.ClientCPUPerGrabUs)
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

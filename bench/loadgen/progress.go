package loadgen

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress is the live line on the terminal: counters the scenarios bump
// and a ticker that prints them.
type progress struct {
	w                                       io.Writer
	tty                                     bool
	start                                   time.Time
	phase                                   atomic.Pointer[string]
	target                                  atomic.Int64 // connections wanted
	total                                   atomic.Int64 // units of the current phase (rounds, broadcasts, packets)
	done                                    atomic.Int64
	connected, sent, results, ok, delivered atomic.Int64

	dropMu  sync.Mutex
	drops   map[string]int // connections the server closed or lost, by close code
	dropped atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now(), stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	p.setPhase("starting", 0)
	if w != nil {
		p.wg.Add(1)
		go p.loop()
	}
	return p
}

// drop records a connection that ended without the tool closing it.
func (p *progress) drop(code string) {
	p.dropMu.Lock()
	if p.drops == nil {
		p.drops = map[string]int{}
	}
	p.drops[code]++
	p.dropMu.Unlock()
	p.dropped.Add(1)
}

func (p *progress) dropCounts() map[string]int {
	p.dropMu.Lock()
	defer p.dropMu.Unlock()
	out := map[string]int{}
	for k, v := range p.drops {
		out[k] = v
	}
	return out
}

func (p *progress) setPhase(name string, total int64) {
	p.phase.Store(&name)
	p.total.Store(total)
	p.done.Store(0)
}

func (p *progress) loop() {
	defer p.wg.Done()
	every := 500 * time.Millisecond
	if !p.tty {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastRes, lastDel int64
	last := time.Now()
	for {
		select {
		case <-p.stop:
			if p.tty {
				fmt.Fprint(p.w, "\r\033[K")
			}
			return
		case now := <-t.C:
			res, del := p.results.Load(), p.delivered.Load()
			dt := now.Sub(last).Seconds()
			line := fmt.Sprintf("[%5.1fs] %-10s %s conns %d/%d  grabs %d→%d ok %d (%.0f/s)  deliveries %d (%.0f/s)  dropped %d",
				now.Sub(p.start).Seconds(), *p.phase.Load(), p.bar(), p.connected.Load(), p.target.Load(),
				p.sent.Load(), res, p.ok.Load(), float64(res-lastRes)/dt, del, float64(del-lastDel)/dt, p.dropped.Load())
			lastRes, lastDel, last = res, del, now
			if p.tty {
				fmt.Fprint(p.w, "\r\033[K"+line)
			} else {
				fmt.Fprintln(p.w, line)
			}
		}
	}
}

// bar draws the current phase's completion.
func (p *progress) bar() string {
	total, done := p.total.Load(), p.done.Load()
	if total <= 0 {
		return "          "
	}
	const width = 20
	filled := int(min(done, total) * width / total)
	b := make([]byte, 0, width+16)
	b = append(b, '[')
	for i := range width {
		if i < filled {
			b = append(b, '#')
		} else {
			b = append(b, '.')
		}
	}
	b = append(b, ']')
	return fmt.Sprintf("%s %d/%d", b, done, total)
}

func (p *progress) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
}

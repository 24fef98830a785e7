package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Percentiles summarises a latency sample, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func (p Percentiles) String() string {
	if p.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max), p.Count)
}

func ms(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
}

// recorder collects latencies (ns) and result codes from many goroutines.
type recorder struct {
	mu    sync.Mutex
	ns    []int64
	codes map[string]int
}

func newRecorder() *recorder { return &recorder{codes: map[string]int{}} }

func (r *recorder) add(d int64, code string) {
	r.mu.Lock()
	if d >= 0 {
		r.ns = append(r.ns, d)
	}
	if code != "" {
		r.codes[code]++
	}
	r.mu.Unlock()
}

func (r *recorder) summary() (Percentiles, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	codes := make(map[string]int, len(r.codes))
	for k, v := range r.codes {
		codes[k] = v
	}
	return percentiles(r.ns), codes
}

func percentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i]) / 1e6
	}
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	return Percentiles{Count: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: float64(s[len(s)-1]) / 1e6, Mean: sum / float64(len(s)) / 1e6}
}

// procSample is one reading of a process's CPU time and resident memory.
type procSample struct {
	cpu time.Duration // utime + stime
	rss int64         // bytes
}

// clkTck is the kernel's USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

func readProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration(ut+st) * time.Second / clkTck
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			s.rss = kb * 1024
		}
	}
	return s, sc.Err()
}

// sampleAll reads every pid; failures leave zero samples and are returned.
func sampleAll(pids []int) ([]procSample, error) {
	out := make([]procSample, len(pids))
	var firstErr error
	for i, p := range pids {
		s, err := readProc(p)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out[i] = s
	}
	return out, firstErr
}

// RaiseFileLimit makes sure this process may hold need open files. Go already
// raises the soft limit to the hard one at start-up; beyond the hard limit only
// a privileged process can go, and the OS usually refuses.
func RaiseFileLimit(need int) (limit uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur >= uint64(need) {
		return rl.Cur, nil
	}
	want := rl
	want.Cur = uint64(need)
	if want.Max < want.Cur {
		want.Max = want.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Take what the hard limit allows and report the refusal.
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		return rl.Cur, fmt.Errorf("the OS refused to raise the open-file limit to %d (hard limit %d): %w; "+
			"one load process holds at most %d connections here: lower -n (or raise the hard limit: ulimit -Hn, LimitNOFILE)",
			need, rl.Max, err, int(rl.Max)-64)
	}
	return want.Cur, nil
}

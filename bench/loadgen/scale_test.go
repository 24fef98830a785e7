package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// TestScale is bench/run.sh's scale section in small: three instances on a
// three-master Redis Cluster, a dropper and two viewer processes (real load
// processes, built from bench/load) meeting at a barrier, then -merge's
// judgement, for both the drops and the rain. It then feeds Merge doctored
// reports, which must fail it.
//
// 3 × 100 viewers by default; HONGBAO_LONG_TESTS=1 runs the 3 × 3 000.
func TestScale(t *testing.T) {
	perInstance := 100
	if os.Getenv("HONGBAO_LONG_TESTS") == "1" {
		perInstance = 3000
	}
	const instances, procs = 3, 2
	viewers := instances * perInstance

	rdb := redistest.NewCluster(t)
	var mu sync.Mutex
	var masters []string
	err := rdb.ForEachMaster(context.Background(), func(_ context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, m.Options().Addr)
		return nil
	})
	if err != nil || len(masters) != redistest.ClusterMasters {
		t.Fatalf("masters %v: %v", masters, err)
	}
	seeds := strings.Join(rdb.Options().Addrs, ",")
	hb := buildServer(t)
	load := goBuild(t, "load", "github.com/hongbao-dev/hongbao/bench/load", raceEnabled)
	var urls, pids []string
	for range instances {
		base, pid := runServer(t, hb, seeds)
		urls = append(urls, base)
		pids = append(pids, strconv.Itoa(pid))
	}

	cases := []struct {
		scenario string
		args     []string
		check    func(t *testing.T, r *Result)
	}{
		{ScenarioScale, []string{"-packets", "3", "-interval", "200ms"}, func(t *testing.T, r *Result) {
			for _, m := range r.Scale.Masters {
				if m.CPUUsecPerDrop <= 0 {
					t.Errorf("master %s: no Redis CPU per broadcast: %+v", m.Addr, m)
				}
			}
			for _, in := range r.Scale.Instances {
				if in.Delivery.Latency.Count != perInstance*3 {
					t.Errorf("instance %s: %+v", in.URL, in)
				}
			}
		}},
		{ScenarioScaleRain, []string{"-packets", "2", "-shares", "50", "-duration", "1s"}, func(t *testing.T, r *Result) {
			if r.Grabs == nil || r.Grabs.Attempts != viewers*2 || r.Grabs.OK != 100 || r.Rain == nil || r.Rain.Emptied != 2 {
				t.Errorf("rain: grabs %+v, rain %+v", r.Grabs, r.Rain)
			}
			if f := r.Scale.Finished; f == nil || f.Delivered != int64(viewers*2) || f.Missing != 0 {
				t.Errorf("finished events: %+v", f)
			}
			for _, in := range r.Scale.Instances {
				if in.Grabs == nil || in.Grabs.Attempts != perInstance*2 {
					t.Errorf("instance %s: grabs %+v", in.URL, in.Grabs)
				}
			}
			for _, m := range r.Scale.Masters {
				if m.CPUUsecPerOKGrab <= 0 {
					t.Errorf("master %s: no Redis CPU per ok grab: %+v", m.Addr, m)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			common := []string{"-scenario", tc.scenario, "-barrier", filepath.Join(dir, "barrier"), "-url", strings.Join(urls, ","),
				"-secret", testSecret, "-timeout", "2m", "-q", "-json"}
			runs := [][]string{append([]string{"-role", "dropper", "-procs", strconv.Itoa(procs), "-admin-token", testAdmin,
				"-pids", strings.Join(pids, ","), "-redis", strings.Join(masters, ","), "-settle", "200ms"}, tc.args...)}
			for k := range procs {
				runs = append(runs, []string{"-role", "viewers", "-n", strconv.Itoa(viewers / procs), "-first", strconv.Itoa(k * viewers / procs),
					"-source-ips", fmt.Sprintf("127.0.0.%d", 10+k)})
			}
			files := runLoads(t, load, dir, common, runs)
			rs, err := ReadResults(files)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Merge(rs)
			if err != nil {
				t.Fatalf("merge: %v", err)
			}
			st := r.Scale
			want := int64(viewers) * int64(st.Drops)
			if st.Viewers != viewers || st.Procs != procs || st.Delivery.Delivered != want || st.Delivery.Missing != 0 || st.Delivery.Duplicates != 0 {
				t.Fatalf("delivery: %d viewers in %d processes, %+v; want %d delivered", st.Viewers, st.Procs, st.Delivery, want)
			}
			if st.Delivery.Latency.Count != int(want) || st.Delivery.Latency.Max <= 0 {
				t.Errorf("latency: %+v", st.Delivery.Latency)
			}
			if len(st.Instances) != instances || len(st.Masters) != redistest.ClusterMasters {
				t.Fatalf("%d instances, %d masters", len(st.Instances), len(st.Masters))
			}
			// CPU is counted in clock ticks (10 ms): a small run may see none.
			for i, in := range st.Instances {
				if in.Viewers != perInstance || in.RSSAfter <= 0 || strconv.Itoa(in.PID) != pids[i] {
					t.Errorf("instance %s: %+v", in.URL, in)
				}
			}
			if r.Audit == nil || !r.Audit.OK {
				t.Errorf("audit: %+v", r.Audit)
			}
			tc.check(t, r)
			var out bytes.Buffer
			WriteTable(&out, r)
			t.Logf("merged:\n%s", out.String())

			doctored(t, files)
		})
	}
}

// runLoads runs one load process per args (common flags first) at once, each
// printing its report to a file in dir, and returns the files once all have
// exited successfully.
func runLoads(t *testing.T, bin, dir string, common []string, runs [][]string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	files := make([]string, len(runs))
	errs := make([]error, len(runs))
	stderr := make([]bytes.Buffer, len(runs))
	var wg sync.WaitGroup
	for i, args := range runs {
		files[i] = filepath.Join(dir, fmt.Sprintf("report-%d.json", i))
		out, err := os.Create(files[i])
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd := exec.CommandContext(ctx, bin, append(append([]string{}, common...), args...)...)
		cmd.Stdout, cmd.Stderr = out, &stderr[i]
		cmd.Env = append(os.Environ(), "HONGBAO_SECRET=", "HONGBAO_ADMIN_TOKEN=")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cmd.Wait()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("load %v: %v\n%s", runs[i], err, stderr[i].String())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return files
}

// doctored feeds Merge the run's reports with one receipt missing, one
// duplicated, a foreign packet, and one viewer report left out: each must fail
// the merge.
func doctored(t *testing.T, files []string) {
	t.Helper()
	// Each doctor changes the reports (dropper, viewers, viewers) and says
	// what the merge must then report.
	cases := []struct {
		name   string
		doctor func(rs []*Result) (doctored []*Result, want string)
	}{
		{"missing", func(rs []*Result) ([]*Result, string) {
			v := rs[1].Viewers
			for i := range v.Events {
				if v.Events[i].Type == "packet" {
					v.Events[i].RecvNs[3] = 0
					break
				}
			}
			return rs, " 1 missing, 0 duplicates"
		}},
		{"duplicate", func(rs []*Result) ([]*Result, string) {
			rs[2].Viewers.Events[0].Extra = map[int]int{5: 1}
			return rs, " 0 missing, 1 duplicates"
		}},
		{"listed twice", func(rs []*Result) ([]*Result, string) {
			v := rs[2].Viewers
			v.Events = append(v.Events, v.Events[0])
			return rs, fmt.Sprintf(" 0 missing, %d duplicates", v.N)
		}},
		{"foreign packet", func(rs []*Result) ([]*Result, string) {
			v := rs[1].Viewers
			e := v.Events[0]
			e.PacketID = "not-a-drop"
			v.Events = append(v.Events, e)
			return rs, fmt.Sprintf("0 duplicates, %d of packets never dropped", v.N)
		}},
		{"report left out", func(rs []*Result) ([]*Result, string) {
			return rs[:2], "a viewer report is missing"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := ReadResults(files)
			if err != nil {
				t.Fatal(err)
			}
			rs, want := tc.doctor(rs)
			r, err := Merge(rs)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("merge of a doctored report: %v; want an error saying %q", err, want)
			}
			if r == nil || len(r.Failures) == 0 {
				t.Fatalf("no failures in the merged result: %+v", r)
			}
		})
	}
}

// TestMergeRefuses: reports that cannot be one run are refused outright.
func TestMergeRefuses(t *testing.T) {
	d := &Result{Scenario: ScenarioScale, Dropper: &ScaleDropper{Instances: []string{"http://a"}}}
	v := func(first, n int, inst ...string) *Result {
		return &Result{Scenario: ScenarioScale, Viewers: &ScaleViewers{First: first, N: n, Instances: inst}}
	}
	for name, rs := range map[string][]*Result{
		"no dropper":      {v(0, 1, "http://a")},
		"two droppers":    {d, d, v(0, 1, "http://a")},
		"no viewers":      {d},
		"other instances": {d, v(0, 1, "http://b")},
		"overlap":         {d, v(0, 10, "http://a"), v(5, 10, "http://a")},
		"other scenario":  {d, {Scenario: ScenarioScaleRain, Viewers: &ScaleViewers{N: 1, Instances: []string{"http://a"}}}},
	} {
		if r, err := Merge(rs); err == nil || r != nil {
			t.Errorf("%s: merged (%v)", name, err)
		}
	}
	// And a clean one passes: the doctored cases above fail for their doctoring.
	d.Dropper.Drops = []ScaleDrop{{ID: "p", CreatedAtMs: 1}}
	d.Dropper.Viewers = 2
	ok := v(0, 2, "http://a")
	ok.Viewers.Events = []ScaleEvents{{Type: "packet", PacketID: "p", RecvNs: []int64{2e6, 3e6}}}
	r, err := Merge([]*Result{d, ok})
	if err != nil || r.Scale.Delivery.Delivered != 2 || r.Scale.Delivery.Latency.Max != 2 {
		t.Fatalf("clean merge: %v %+v", err, r)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

// TestReceipts: a viewer's first receipt of an event counts, a repeat is
// counted as one more.
func TestReceipts(t *testing.T) {
	r := newReceipts(2)
	for _, step := range []struct {
		typ, id string
		i       int
		first   bool
	}{
		{"packet", "a", 0, true},
		{"packet", "a", 1, true},
		{"packet", "a", 0, false},
		{"finished", "a", 0, true},
		{"packet", "a", 0, false},
		{"packet", "b", 1, true},
	} {
		if got := r.add(step.typ, step.id, step.i, 7); got != step.first {
			t.Errorf("%+v: first %v", step, got)
		}
	}
	got := fmt.Sprint(r.snapshot())
	want := "[{finished a [7 0] map[]} {packet a [7 7] map[0:2]} {packet b [0 7] map[]}]"
	if got != want {
		t.Fatalf("snapshot %s, want %s", got, want)
	}
}

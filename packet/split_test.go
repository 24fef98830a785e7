package packet

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func checkSplit(t *testing.T, shares []int64, total int64, count int, lo, hi int64) {
	t.Helper()
	if len(shares) != count {
		t.Fatalf("got %d shares, want %d", len(shares), count)
	}
	var sum int64
	for i, s := range shares {
		if s < lo || s > hi {
			t.Fatalf("share %d = %d outside [%d, %d] (total %d, count %d)", i, s, lo, hi, total, count)
		}
		sum += s
	}
	if sum != total {
		t.Fatalf("shares sum to %d, want %d", sum, total)
	}
}

// Property: for random valid (total, count, bounds) every split sums exactly
// to the total and every share is within bounds.
func TestSplitProperty(t *testing.T) {
	sp := NewSplitterSeed([32]byte{1})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		count := 1 + rng.IntN(1000)
		lo := int64(1 + rng.IntN(3))
		hi := lo + int64(rng.IntN(20000))
		total := int64(count)*lo + rng.Int64N(int64(count)*(hi-lo)+1)
		shares, err := sp.Split(Lucky, total, count, lo, hi)
		if err != nil {
			t.Fatalf("Split(%d, %d, %d, %d): %v", total, count, lo, hi, err)
		}
		checkSplit(t, shares, total, count, lo, hi)
	}
}

func TestSplitEqual(t *testing.T) {
	shares, err := NewSplitter().Split(Equal, 1000, 4, 1, 20000)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shares {
		if s != 250 {
			t.Fatalf("equal share %d, want 250", s)
		}
	}
	if _, err := NewSplitter().Split(Equal, 1000, 3, 1, 20000); !errors.Is(err, ErrUnevenTotal) {
		t.Fatalf("want uneven_total, got %v", err)
	}
}

func TestSplitRefusesImpossible(t *testing.T) {
	sp := NewSplitter()
	for _, c := range []struct {
		total  int64
		count  int
		lo, hi int64
	}{{2, 3, 1, 10}, {31, 3, 1, 10}, {10, 0, 1, 10}, {10, 1, 0, 10}} {
		if _, err := sp.Split(Lucky, c.total, c.count, c.lo, c.hi); err == nil {
			t.Errorf("Split(%+v) succeeded", c)
		}
	}
}

// The bounds are tight at both ends: total = count × max forces every share
// to max, total = count × min every share to min.
func TestSplitTightBounds(t *testing.T) {
	sp := NewSplitter()
	shares, _ := sp.Split(Lucky, 5*20000, 5, 1, 20000)
	checkSplit(t, shares, 100000, 5, 20000, 20000)
	shares, _ = sp.Split(Lucky, 7, 7, 1, 20000)
	checkSplit(t, shares, 7, 7, 1, 1)
}

// No grab position is favoured: the mean share at each position equals the
// overall mean within a tolerance derived from the observed variance.
//
// For N independent splits, the mean at one position has standard error
// σ/√N. With k positions tested, a bound of z·σ/√N with z = 4.5 makes a false
// alarm across all positions less likely than k × 7e-6 (two-sided normal
// tail), under 1e-4 here: a failure means real bias, not bad luck.
func TestSplitNoPositionAdvantage(t *testing.T) {
	const (
		splits = 100000
		total  = 1000
		count  = 10
		z      = 4.5
	)
	sp := NewSplitterSeed([32]byte{7})
	var sum, sumSq [count]float64 // statistics over fen, not money handling
	for i := 0; i < splits; i++ {
		shares, err := sp.Split(Lucky, total, count, 1, 20000)
		if err != nil {
			t.Fatal(err)
		}
		for p, s := range shares {
			sum[p] += float64(s)
			sumSq[p] += float64(s) * float64(s)
		}
	}
	want := float64(total) / count
	for p := 0; p < count; p++ {
		mean := sum[p] / splits
		variance := sumSq[p]/splits - mean*mean
		stderr := math.Sqrt(variance / splits)
		if math.Abs(mean-want) > z*stderr {
			t.Errorf("position %d: mean share %.3f, want %.3f ± %.3f (σ=%.2f)", p, mean, want, z*stderr, math.Sqrt(variance))
		}
	}
}

// Without the shuffle, the double-mean method gives positions different
// spreads; the test above would still pass on means alone, so also check the
// spread is the same at every position (equal variance within 5%).
func TestSplitSameSpreadEveryPosition(t *testing.T) {
	const splits, total, count = 100000, 1000, 10
	sp := NewSplitterSeed([32]byte{9})
	var sum, sumSq [count]float64
	for i := 0; i < splits; i++ {
		shares, _ := sp.Split(Lucky, total, count, 1, 20000)
		for p, s := range shares {
			sum[p] += float64(s)
			sumSq[p] += float64(s) * float64(s)
		}
	}
	var vars [count]float64
	var avg float64
	for p := range vars {
		m := sum[p] / splits
		vars[p] = sumSq[p]/splits - m*m
		avg += vars[p] / count
	}
	for p, v := range vars {
		if math.Abs(v-avg)/avg > 0.05 {
			t.Errorf("position %d: variance %.1f vs average %.1f", p, v, avg)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add(int64(1000), 3, int64(1), int64(20000), uint64(1))
	f.Add(int64(20000000), 1000, int64(1), int64(20000), uint64(2))
	f.Add(int64(7), 7, int64(1), int64(20000), uint64(3))
	f.Fuzz(func(t *testing.T, total int64, count int, lo, hi int64, seed uint64) {
		if count < 1 || count > 5000 || lo < 1 || hi < lo || hi > 1<<40 || total < 0 || total > 1<<50 {
			t.Skip()
		}
		var s [32]byte
		for i := 0; i < 8; i++ {
			s[i] = byte(seed >> (8 * i))
		}
		shares, err := NewSplitterSeed(s).Split(Lucky, total, count, lo, hi)
		if total < int64(count)*lo || total > int64(count)*hi {
			if err == nil {
				t.Fatalf("impossible split (%d, %d, %d, %d) accepted", total, count, lo, hi)
			}
			return
		}
		if err != nil {
			t.Fatalf("Split(%d, %d, %d, %d): %v", total, count, lo, hi, err)
		}
		checkSplit(t, shares, total, count, lo, hi)
	})
}

func BenchmarkSplitLucky(b *testing.B) {
	sp := NewSplitter()
	b.Run("count=100", func(b *testing.B) {
		for b.Loop() {
			_, _ = sp.Split(Lucky, 100*500, 100, 1, 20000)
		}
	})
	b.Run("count=1000", func(b *testing.B) {
		for b.Loop() {
			_, _ = sp.Split(Lucky, 1000*500, 1000, 1, 20000)
		}
	})
}

package sketch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// kllRankError is the documented bound for DefaultKLLK.
const kllRankError = 0.0165

type dataset struct {
	name string
	data []float64
}

// distributions returns n values from each test distribution, the same on
// every run.
func distributions(n int) []dataset {
	rng := rand.New(rand.NewPCG(1, 2))
	gens := []struct {
		name string
		f    func() float64
	}{
		{"uniform", rng.Float64},
		{"normal", rng.NormFloat64},
		// Pareto with alpha 1.1: a handful of values dwarf the rest.
		{"heavy-tailed", func() float64 { return math.Pow(1-rng.Float64(), -1/1.1) }},
		{"duplicates", func() float64 { return float64(rng.IntN(10)) }},
		{"one-value", func() float64 { return 42 }},
	}
	out := make([]dataset, len(gens))
	for i, g := range gens {
		xs := make([]float64, n)
		for j := range xs {
			xs[j] = g.f()
		}
		out[i] = dataset{g.name, xs}
	}
	return out
}

// exactRanks gives, for v, the fraction of sorted below v and at most v.
func exactRanks(sorted []float64, v float64) (lo, hi float64) {
	n := float64(len(sorted))
	below := sort.SearchFloat64s(sorted, v)
	atMost := sort.Search(len(sorted), func(i int) bool { return sorted[i] > v })
	return float64(below) / n, float64(atMost) / n
}

// checkKLL asserts every quantile and CDF answer of s is within eps of the
// exact answer on data, and returns the largest error seen.
func checkKLL(t *testing.T, name string, s *KLL, data []float64, eps float64) float64 {
	t.Helper()
	sorted := slices.Clone(data)
	slices.Sort(sorted)
	if s.Count() != int64(len(data)) || s.Min() != sorted[0] || s.Max() != sorted[len(sorted)-1] {
		t.Fatalf("%s: count/min/max %d/%g/%g, want %d/%g/%g", name, s.Count(), s.Min(), s.Max(),
			len(data), sorted[0], sorted[len(sorted)-1])
	}
	view := s.Sorted()
	worst := 0.0
	for i := 0; i <= 1000; i++ {
		q := float64(i) / 1000
		v := view.Quantile(q)
		// With ties the true rank of v is an interval; q must fall near it.
		lo, hi := exactRanks(sorted, v)
		e := max(lo-q, q-hi, 0)
		worst = max(worst, e)
		if e > eps {
			t.Errorf("%s: Quantile(%.3f)=%g has true rank [%.4f, %.4f], error %.4f > %.4f", name, q, v, lo, hi, e, eps)
			return worst
		}
		// The CDF at an exact quantile of the data.
		x := sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
		_, exact := exactRanks(sorted, x)
		e = math.Abs(view.CDF(x) - exact)
		worst = max(worst, e)
		if e > eps {
			t.Errorf("%s: CDF(%g)=%.4f, exact %.4f, error %.4f > %.4f", name, x, view.CDF(x), exact, e, eps)
			return worst
		}
	}
	return worst
}

func TestKLLRankErrorOnAMillionValues(t *testing.T) {
	for _, d := range distributions(1_000_000) {
		name, data := d.name, d.data
		s := NewKLL(DefaultKLLK)
		for _, x := range data {
			s.Update(x)
		}
		worst := checkKLL(t, name, s, data, kllRankError)
		blob, _ := s.MarshalBinary()
		t.Logf("%-12s max rank error %.4f%%, %d bytes", name, 100*worst, len(blob))
	}
}

// TestKLLUpdateAllKeepsTheBound adds a million values a batch at a time,
// in batches of uneven sizes (level 0 then sorts by radix, or by
// comparison below radixMin): the error bound holds as for Update, NaN and
// ±Inf are left out, and the sketch stays within its size.
func TestKLLUpdateAllKeepsTheBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, d := range distributions(1_000_000) {
		name, data := d.name, d.data
		s := NewKLL(DefaultKLLK)
		for i := 0; i < len(data); {
			n := min(len(data)-i, []int{1, 7, 100, 512, 3000}[rng.IntN(5)])
			batch := append(slices.Clone(data[i:i+n]), math.NaN(), math.Inf(-1))
			s.UpdateAll(batch)
			i += n
		}
		worst := checkKLL(t, name, s, data, kllRankError)
		if s.size >= s.maxSize {
			t.Errorf("%s: %d values held, the sketch's size is %d", name, s.size, s.maxSize)
		}
		t.Logf("%-12s max rank error %.4f%% (UpdateAll)", name, 100*worst)
	}
}

func TestKLLMergeOfPartsMatchesWhole(t *testing.T) {
	for _, d := range distributions(400_000) {
		name, data := d.name, d.data
		parts := make([]*KLL, 7)
		for i := range parts {
			parts[i] = NewKLL(DefaultKLLK)
		}
		// Uneven, interleaved parts: merging must not care how data was split.
		for i, x := range data {
			parts[(i*i)%len(parts)].Update(x)
		}
		merged := NewKLL(DefaultKLLK)
		for _, p := range parts {
			if err := merged.Merge(p); err != nil {
				t.Fatal(err)
			}
		}
		worst := checkKLL(t, name, merged, data, kllRankError)
		t.Logf("%-12s merged max rank error %.4f%%", name, 100*worst)
	}
	if err := NewKLL(100).Merge(NewKLL(200)); err == nil {
		t.Error("merging sketches with different k succeeded")
	}
}

func TestKLLSmallAndEmpty(t *testing.T) {
	s := NewKLL(DefaultKLLK)
	if !math.IsNaN(s.Quantile(0.5)) || s.CDF(1) != 0 || !math.IsNaN(s.Min()) {
		t.Error("an empty sketch should answer NaN quantiles and a zero CDF")
	}
	for _, x := range []float64{5, 1, 4, 2, 3, math.NaN(), math.Inf(1)} {
		s.Update(x)
	}
	if s.Count() != 5 {
		t.Errorf("count %d, want 5 (NaN and Inf are not counted)", s.Count())
	}
	// Below capacity the sketch is exact.
	for q, want := range map[float64]float64{0: 1, 0.2: 1, 0.21: 2, 0.5: 3, 0.8: 4, 1: 5} {
		if got := s.Quantile(q); got != want {
			t.Errorf("Quantile(%g)=%g, want %g", q, got, want)
		}
	}
	for x, want := range map[float64]int64{0.5: 0, 1: 1, 2.5: 2, 5: 5, 9: 5} {
		if got := s.Rank(x); got != want {
			t.Errorf("Rank(%g)=%d, want %d", x, got, want)
		}
	}
}

func TestKLLRoundTripIsExactAndDeterministic(t *testing.T) {
	data := distributions(200_000)[1].data
	a, b := NewKLL(DefaultKLLK), NewKLL(DefaultKLLK)
	for _, x := range data[:100_000] {
		a.Update(x)
		b.Update(x)
	}
	blobA, _ := a.MarshalBinary()
	blobB, _ := b.MarshalBinary()
	if !bytes.Equal(blobA, blobB) {
		t.Fatal("the same input gave different sketches")
	}
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var decoded KLL
	if err := json.Unmarshal(js, &decoded); err != nil {
		t.Fatal(err)
	}
	// The decoded sketch must continue exactly as the original: same coins.
	for _, x := range data[100_000:] {
		a.Update(x)
		decoded.Update(x)
	}
	blobA, _ = a.MarshalBinary()
	blobD, _ := decoded.MarshalBinary()
	if !bytes.Equal(blobA, blobD) {
		t.Fatal("a decoded sketch diverged from the original on the same input")
	}
}

func TestKLLRejectsCorruptInput(t *testing.T) {
	s := NewKLL(DefaultKLLK)
	for i := range 1000 {
		s.Update(float64(i))
	}
	good, _ := s.MarshalBinary()
	for name, data := range map[string][]byte{
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 1),
		"wrong tag": append([]byte{tagTopK}, good[1:]...),
		"count":     append([]byte{tagKLL, formatVersion, good[2], good[3], 0x7f}, good[6:]...),
	} {
		var d KLL
		if err := d.UnmarshalBinary(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// UpdateN of each distinct value with its count sketches the same data as
// Update of every value: within the same rank error, count, min and max
// exact.
func TestKLLUpdateNMatchesRepeatedUpdates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var data []float64
	counts := map[float64]int64{}
	for range 300_000 {
		x := math.Round(rng.NormFloat64()*40) / 4 // a few hundred distinct values
		data = append(data, x)
		counts[x]++
	}
	s := NewKLL(DefaultKLLK)
	for _, x := range slices.Sorted(maps.Keys(counts)) {
		s.UpdateN(x, counts[x])
	}
	s.UpdateN(1, 0)
	s.UpdateN(math.NaN(), 3)
	worst := checkKLL(t, "updateN", s, data, kllRankError)
	t.Logf("max rank error %.4f%%", 100*worst)

	one := NewKLL(DefaultKLLK)
	one.UpdateN(7, 1<<40)
	if one.Count() != 1<<40 || one.Quantile(0.5) != 7 || one.Min() != 7 {
		t.Fatalf("a value 2^40 times: count %d, median %g", one.Count(), one.Quantile(0.5))
	}
}

func TestMomentsAddNAndTopKAddN(t *testing.T) {
	var a, b Moments
	ta, tb := NewTopK(8), NewTopK(8)
	for i, x := range []float64{3, -1.5, 2e6, 0.25} {
		n := int64(i*7 + 1)
		b.AddN(x, n)
		tb.AddN(fmt.Sprint(x), n)
		for range n {
			a.Add(x)
			ta.Add(fmt.Sprint(x))
		}
	}
	if a.Count() != b.Count() || math.Abs(a.Mean()-b.Mean()) > 1e-9*math.Abs(a.Mean()) ||
		math.Abs(a.Variance()-b.Variance()) > 1e-9*a.Variance() {
		t.Fatalf("AddN: count %d mean %g var %g; Add: %d %g %g", b.Count(), b.Mean(), b.Variance(), a.Count(), a.Mean(), a.Variance())
	}
	if !slices.Equal(ta.Top(8), tb.Top(8)) || ta.Count() != tb.Count() {
		t.Fatalf("TopK AddN %v, Add %v", tb.Top(8), ta.Top(8))
	}
}

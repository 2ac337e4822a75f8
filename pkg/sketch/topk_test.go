package sketch

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// zipfStream draws n values from a Zipf distribution over many values, so a
// few are heavy hitters and a long tail forces evictions.
func zipfStream(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	z := rand.NewZipf(rng, 1.2, 1, 100_000)
	out := make([]string, n)
	for i := range out {
		out[i] = "v" + strconv.FormatUint(z.Uint64(), 10)
	}
	return out
}

// checkTopK asserts the documented guarantees of s against the exact counts.
func checkTopK(t *testing.T, s *TopK, exact map[string]int64) {
	t.Helper()
	n := s.Count()
	bound := 2 * n / int64(s.Capacity())
	if s.MaxError() > bound {
		t.Errorf("max error %d above 2N/capacity = %d", s.MaxError(), bound)
	}
	tracked := map[string]Counter{}
	for _, c := range s.Top(0) {
		tracked[c.Value] = c
		truth := exact[c.Value]
		if c.Count < truth || c.Count-c.Error > truth {
			t.Errorf("%s: count %d error %d does not bracket the true count %d", c.Value, c.Count, c.Error, truth)
		}
		if c.Error != s.MaxError() {
			t.Errorf("%s: error %d, max error %d", c.Value, c.Error, s.MaxError())
		}
	}
	heavy := 0
	for v, truth := range exact {
		_, ok := tracked[v]
		if truth > bound {
			heavy++
			if !ok {
				t.Errorf("heavy hitter %s (%d > 2N/capacity = %d) is not tracked", v, truth, bound)
			}
		}
		if !ok && truth > s.MaxError() {
			t.Errorf("untracked %s occurred %d times, above the max error %d", v, truth, s.MaxError())
		}
	}
	if heavy == 0 {
		t.Fatal("the stream has no heavy hitters; the test proves nothing")
	}
}

func TestTopKFindsHeavyHitters(t *testing.T) {
	stream := zipfStream(500_000, 1)
	s := NewTopK(100)
	exact := map[string]int64{}
	for _, v := range stream {
		s.Add(v)
		exact[v]++
	}
	if s.Count() != int64(len(stream)) || s.Len() > 100 || s.Exact() {
		t.Fatalf("count %d len %d exact %v", s.Count(), s.Len(), s.Exact())
	}
	checkTopK(t, s, exact)
	// The top ten of a Zipf stream (v0 most frequent) are far apart: their
	// order must be right.
	for i, c := range s.Top(10) {
		if c.Value != "v"+strconv.Itoa(i) {
			t.Errorf("rank %d is %s, want v%d", i+1, c.Value, i)
		}
	}
}

func TestTopKIsExactBelowCapacity(t *testing.T) {
	s := NewTopK(10)
	for i := range 100 {
		s.Add(strconv.Itoa(i % 4))
	}
	got := s.Top(0)
	if !s.Exact() || len(got) != 4 || s.MaxError() != 0 {
		t.Fatalf("top %v exact %v", got, s.Exact())
	}
	for _, c := range got {
		if c.Count != 25 || c.Error != 0 {
			t.Errorf("%+v, want count 25 error 0", c)
		}
	}
	if got[0].Value != "0" || got[3].Value != "3" {
		t.Errorf("ties should order by value: %v", got)
	}
}

func TestTopKMergeKeepsBounds(t *testing.T) {
	parts := make([]*TopK, 5)
	exact := map[string]int64{}
	for i := range parts {
		parts[i] = NewTopK(100)
		// Each part has its own skew, so heavy hitters differ between parts.
		for _, v := range zipfStream(100_000, uint64(i+10)) {
			v = v + "-" + strconv.Itoa(i%2)
			parts[i].Add(v)
			exact[v]++
		}
	}
	merged := NewTopK(100)
	for _, p := range parts {
		merged.Merge(p)
	}
	if merged.Count() != 500_000 {
		t.Fatalf("merged count %d", merged.Count())
	}
	checkTopK(t, merged, exact)
}

func TestTopKRoundTripContinuesIdentically(t *testing.T) {
	stream := zipfStream(50_000, 3)
	a := NewTopK(50)
	for _, v := range stream[:25_000] {
		a.Add(v)
	}
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var d TopK
	if err := json.Unmarshal(js, &d); err != nil {
		t.Fatal(err)
	}
	c := a.Clone()
	for _, v := range stream[25_000:] {
		a.Add(v)
		d.Add(v)
		c.Add(v)
	}
	ba, _ := a.MarshalBinary()
	bd, _ := d.MarshalBinary()
	bc, _ := c.MarshalBinary()
	if !bytes.Equal(ba, bd) || !bytes.Equal(ba, bc) {
		t.Fatal("a decoded or cloned summary evicted differently from the original")
	}
	good := ba
	for name, data := range map[string][]byte{
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"capacity":  append([]byte{tagTopK, formatVersion, 1}, good[3:]...),
		// A huge capacity with a truncated body must fail, not panic.
		"huge": {tagTopK, formatVersion, 0xd2, 0xb8, 0x7f, 0, 0, 5},
	} {
		var bad TopK
		if err := bad.UnmarshalBinary(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestMomentsMatchTwoPassAndMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	data := make([]float64, 100_000)
	for i := range data {
		data[i] = 1e6 + rng.NormFloat64()*3 // a large offset tests numerical stability
	}
	var whole Moments
	parts := make([]Moments, 3)
	for i, x := range data {
		whole.Add(x)
		parts[i%7%3].Add(x)
	}
	whole.Add(math.NaN())
	var sum float64
	for _, x := range data {
		sum += x
	}
	mean := sum / float64(len(data))
	var ss float64
	for _, x := range data {
		ss += (x - mean) * (x - mean)
	}
	var merged Moments
	for i := range parts {
		merged.Merge(&parts[i])
	}
	// A batch at a time, NaN and ±Inf left out.
	var batched Moments
	for i := 0; i < len(data); i += 300 {
		batched.AddAll(append(data[i:min(i+300, len(data)):min(i+300, len(data))], math.Inf(1), math.NaN()))
	}
	// Values whose sum overflows: added one by one, the mean stays finite.
	var huge, hugeOneByOne Moments
	huge.AddAll([]float64{1e308, 1.5e308, -1e308})
	for _, x := range []float64{1e308, 1.5e308, -1e308} {
		hugeOneByOne.Add(x)
	}
	if huge.Mean() != hugeOneByOne.Mean() || math.IsNaN(huge.Mean()) {
		t.Errorf("mean of huge values %g by AddAll, %g by Add", huge.Mean(), hugeOneByOne.Mean())
	}
	for name, m := range map[string]*Moments{"streamed": &whole, "merged": &merged, "batched": &batched} {
		if m.Count() != int64(len(data)) {
			t.Errorf("%s: count %d", name, m.Count())
		}
		if math.Abs(m.Mean()-mean)/mean > 1e-12 {
			t.Errorf("%s: mean %.12g, want %.12g", name, m.Mean(), mean)
		}
		if v := ss / float64(len(data)-1); math.Abs(m.SampleVariance()-v)/v > 1e-9 {
			t.Errorf("%s: sample variance %.12g, want %.12g", name, m.SampleVariance(), v)
		}
		if v := ss / float64(len(data)); math.Abs(m.Variance()-v)/v > 1e-9 {
			t.Errorf("%s: variance %.12g, want %.12g", name, m.Variance(), v)
		}
	}
	if merged.Min() != whole.Min() || merged.Max() != whole.Max() {
		t.Error("merged min/max differ")
	}
	js, err := json.Marshal(&merged)
	if err != nil {
		t.Fatal(err)
	}
	var d Moments
	if err := json.Unmarshal(js, &d); err != nil || d != merged {
		t.Fatalf("JSON round trip: %v, %+v != %+v", err, d, merged)
	}
	bin, _ := merged.MarshalBinary()
	var db Moments
	if err := db.UnmarshalBinary(bin); err != nil || db != merged {
		t.Fatalf("binary round trip: %v", err)
	}
	var empty Moments
	if !math.IsNaN(empty.Mean()) || !math.IsNaN(empty.SampleVariance()) {
		t.Error("empty moments should be NaN")
	}
}

package sketch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestSortFloatsSortsLikeSlicesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	var scratch []uint64
	for _, n := range []int{0, 1, 7, radixMin - 1, radixMin, 1000, 5000} {
		for name, gen := range map[string]func() float64{
			"normal": rng.NormFloat64,
			"few":    func() float64 { return float64(rng.IntN(10) - 5) },
			"narrow": func() float64 { return 20000 + rng.Float64()*150000 },
			"close":  func() float64 { return 1 + float64(rng.IntN(1000))*1e-12 },
			"extremes": func() float64 {
				return []float64{0, math.Copysign(0, -1), -1e-300, 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64}[rng.IntN(7)]
			},
			"increasing": func() float64 { return float64(n) },
		} {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = gen()
			}
			want := slices.Clone(xs)
			slices.Sort(want)
			scratch = sortFloats(xs, scratch)
			// -0 and +0 are equal: == compares them as equal too.
			if !slices.Equal(xs, want) {
				t.Fatalf("%s, n=%d: sorted to %v, want %v", name, n, xs[:min(n, 20)], want[:min(n, 20)])
			}
		}
	}
}

// BenchmarkSortFloats sorts fresh random numbers every time, as a
// compaction does (sorting the same ones again lets the branch predictor
// learn them and flatters a comparison sort), with sortFloats and with
// slices.Sort in the same run: speedup is how many times faster sortFloats is.
func BenchmarkSortFloats(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	pool := make([]float64, 1<<22)
	for i := range pool {
		pool[i] = rng.NormFloat64()
	}
	for _, n := range []int{512, 4096} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			buf := make([]float64, n)
			var scratch []uint64
			var radix, comparison time.Duration
			i := 0
			for b.Loop() {
				copy(buf, pool[i:])
				start := time.Now()
				scratch = sortFloats(buf, scratch)
				radix += time.Since(start)

				copy(buf, pool[i+n:])
				start = time.Now()
				slices.Sort(buf)
				comparison += time.Since(start)
				i = (i + 2*n) & (len(pool) - 1)
			}
			values := float64(b.N * n)
			b.ReportMetric(float64(radix.Nanoseconds())/values, "ns/value")
			b.ReportMetric(float64(comparison.Nanoseconds())/values, "slices.Sort-ns/value")
			b.ReportMetric(comparison.Seconds()/radix.Seconds(), "speedup")
			b.ReportMetric(0, "ns/op")
		})
	}
}

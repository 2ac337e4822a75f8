package drift

import (
	"math"
	"math/rand/v2"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6472696674)) }

func normal(n int, seed uint64, mean, sd float64) []float64 {
	r := newRand(seed)
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = mean + sd*r.NormFloat64()
	}
	return xs
}

func uniform(n int, seed uint64, lo, hi float64) []float64 {
	r := newRand(seed)
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = lo + (hi-lo)*r.Float64()
	}
	return xs
}

func exponential(n int, seed uint64) []float64 {
	r := newRand(seed)
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = r.ExpFloat64()
	}
	return xs
}

func lognormal(n int, seed uint64) []float64 {
	xs := normal(n, seed, 0, 0.5)
	for i, x := range xs {
		xs[i] = math.Exp(x)
	}
	return xs
}

// pareto is heavy-tailed: x ≥ 1, shape alpha.
func pareto(n int, seed uint64, alpha float64) []float64 {
	r := newRand(seed)
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = math.Pow(1-r.Float64(), -1/alpha)
	}
	return xs
}

// discrete draws integers 0..k−1, the low ones more often, shifted by
// shift positions of weight (so shift changes the distribution).
func discrete(n int, seed uint64, k, shift int) []float64 {
	r := newRand(seed)
	xs := make([]float64, n)
	for i := range xs {
		v := min(r.IntN(k)+r.IntN(k), 2*k-2) / 2
		xs[i] = float64((v + shift*r.IntN(2)) % k)
	}
	return xs
}

// zipfCounts counts n draws over k categories with Zipf-like weights.
func zipfCounts(k int, seed uint64, n int) []float64 {
	r := newRand(seed)
	w := make([]float64, k)
	var total float64
	for i := range w {
		w[i] = 1 / float64(i+1)
		total += w[i]
	}
	counts := make([]float64, k)
	for range n {
		u := r.Float64() * total
		i := 0
		for ; i < k-1 && u > w[i]; i++ {
			u -= w[i]
		}
		counts[i]++
	}
	return counts
}

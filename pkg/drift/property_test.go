package drift

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/gyreml/gyre/pkg/sketch"
)

// randomSample draws a sample of a random kind and size (1 to 300), from
// continuous to all ties, so the properties are checked on awkward input.
func randomSample(seed uint64) []float64 {
	r := newRand(seed)
	n := 1 + r.IntN(300)
	switch r.IntN(5) {
	case 0:
		return normal(n, seed, r.NormFloat64(), 0.1+r.Float64()*3)
	case 1:
		return uniform(n, seed, -5, 5)
	case 2:
		return discrete(n, seed, 1+r.IntN(6), r.IntN(3))
	case 3:
		return pareto(n, seed, 1.1)
	default:
		xs := make([]float64, n) // a single repeated value
		for i := range xs {
			xs[i] = 42
		}
		return xs
	}
}

// TestNumericProperties: symmetry, zero on identical samples, and bounds,
// on 300 random pairs.
func TestNumericProperties(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		a, b := randomSample(2*seed), randomSample(2*seed+1)
		checkNumericProperties(t, a, b)
	}
}

func checkNumericProperties(t *testing.T, a, b []float64) {
	t.Helper()
	for _, m := range []KSMethod{KSAuto, KSExact, KSAsymp} {
		ab, ba := KS(a, b, m), KS(b, a, m)
		if ab.D != ba.D || math.Abs(ab.PValue-ba.PValue) > 1e-12 {
			t.Fatalf("KS (%s) not symmetric: %+v vs %+v (n %d, %d)", m, ab, ba, len(a), len(b))
		}
		// With one value a side, round(n1·n2/(n1+n2)) is 0 and the
		// asymptotic p-value is NaN, as in scipy.
		single := len(a) == 1 && len(b) == 1 && ab.Method == KSAsymp
		if !(ab.D >= 0 && ab.D <= 1 && (single || ab.PValue >= 0 && ab.PValue <= 1)) {
			t.Fatalf("KS (%s) out of bounds: %+v", m, ab)
		}
		if aa := KS(a, a, m); aa.D != 0 || (aa.PValue != 1 && !(len(a) == 1 && aa.Method == KSAsymp)) {
			t.Fatalf("KS (%s) of a sample with itself = %+v", m, aa)
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range append(append([]float64{}, a...), b...) {
		lo, hi = min(lo, x), max(hi, x)
	}
	w := Wasserstein(a, b)
	if w2 := Wasserstein(b, a); math.Abs(w-w2) > 1e-12*max(1, w) {
		t.Fatalf("Wasserstein not symmetric: %g vs %g", w, w2)
	}
	if !(w >= 0 && w <= (hi-lo)*(1+1e-12)) {
		t.Fatalf("Wasserstein %g outside [0, %g]", w, hi-lo)
	}
	if Wasserstein(a, a) != 0 {
		t.Fatal("Wasserstein of a sample with itself is not 0")
	}
	shifted := make([]float64, len(a))
	for i, x := range a {
		shifted[i] = x + 2.5
	}
	if w := Wasserstein(a, shifted); math.Abs(w-2.5) > 1e-9 {
		t.Fatalf("Wasserstein of a shift by 2.5 = %g", w)
	}
	edges := Edges(a, DefaultPSIBins)
	p := PSI(a, b, edges)
	if p2 := PSI(b, a, edges); !(p >= 0) || math.Abs(p-p2) > 1e-12*max(1, p) {
		t.Fatalf("PSI %g, reversed %g: want equal and ≥ 0", p, p2)
	}
	if PSI(a, a, edges) != 0 {
		t.Fatal("PSI of a sample with itself is not 0")
	}

	// The sketch forms, on sketches of the same samples.
	sa, sb := kll(a), kll(b)
	ks, ks2 := SketchKS(sa, sb), SketchKS(sb, sa)
	single := len(a) == 1 && len(b) == 1
	if ks.D != ks2.D || !(ks.D >= 0 && ks.D <= 1 && (single || ks.PValue >= 0 && ks.PValue <= 1)) {
		t.Fatalf("SketchKS %+v, reversed %+v", ks, ks2)
	}
	if s := CompareNumeric(sa, sa, nil); s.KS != 0 || (s.KSPValue != 1 && len(a) > 1) || s.Wasserstein != 0 || s.PSI != 0 {
		t.Fatalf("a sketch against itself scored %+v", s)
	}
}

func kll(xs []float64) *sketch.KLL {
	s := sketch.NewKLL(sketch.DefaultKLLK)
	for _, x := range xs {
		s.Update(x)
	}
	return s
}

// TestCategoricalProperties: symmetry, zero on proportional counts, and
// bounds, on 300 random pairs of count vectors (with zero cells).
func TestCategoricalProperties(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		r := newRand(seed)
		k := 1 + r.IntN(12)
		p, q := make([]float64, k), make([]float64, k)
		for i := range p {
			if r.IntN(4) > 0 {
				p[i] = float64(r.IntN(200))
			}
			if r.IntN(4) > 0 {
				q[i] = float64(r.IntN(200))
			}
		}
		p[0]++
		q[k-1]++
		pq, qp := ChiSquare(p, q), ChiSquare(q, p)
		if math.Abs(pq.Stat-qp.Stat) > 1e-9*max(1, pq.Stat) || math.Abs(pq.PValue-qp.PValue) > 1e-12 || pq.DoF != qp.DoF {
			t.Fatalf("chi-square not symmetric: %+v vs %+v", pq, qp)
		}
		if !(pq.Stat >= 0 && pq.PValue >= 0 && pq.PValue <= 1) {
			t.Fatalf("chi-square out of bounds: %+v", pq)
		}
		double := make([]float64, k)
		for i := range p {
			double[i] = 2 * p[i]
		}
		if pp := ChiSquare(p, double); pp.DoF != 1 && (math.Abs(pp.Stat) > 1e-9 || math.Abs(pp.PValue-1) > 1e-9) {
			t.Fatalf("chi-square of proportional counts = %+v", pp)
		}
		js := JensenShannon(p, q)
		if js != JensenShannon(q, p) || !(js >= 0 && js <= math.Sqrt(math.Ln2)+1e-15) {
			t.Fatalf("JS %g: want symmetric, in [0, √ln2]", js)
		}
		if d := JensenShannon(p, double); d > 1e-7 {
			t.Fatalf("JS of proportional weights = %g", d)
		}
	}
}

// FuzzNumeric checks the numeric properties on arbitrary samples. The seeds
// run with go test; explore with go test ./pkg/drift -fuzz FuzzNumeric.
func FuzzNumeric(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(4))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, uint8(1))
	f.Add([]byte("a sample of bytes read as sixteen-bit values"), uint8(10))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		// Two-byte values: small integers give plenty of ties.
		var xs []float64
		for i := 0; i+1 < len(data); i += 2 {
			xs = append(xs, float64(binary.LittleEndian.Uint16(data[i:]))/16)
		}
		k := int(split)
		// Exact KS costs O(n1·n2·D) in the worst case: keep samples small.
		if len(xs) < 2 || len(xs) > 2000 || k < 1 || k >= len(xs) {
			return
		}
		checkNumericProperties(t, xs[:k], xs[k:])
	})
}

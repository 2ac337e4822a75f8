package drift

import (
	"math"

	"github.com/gyreml/gyre/pkg/sketch"
)

// KSMethod chooses how KS computes the p-value, as scipy.stats.ks_2samp's
// method argument does.
type KSMethod int

const (
	// KSAuto is exact when neither sample has more than KSExactMaxN
	// values, asymptotic otherwise (scipy's method='auto').
	KSAuto KSMethod = iota
	// KSExact counts lattice paths (Hodges 1958, in Viehmann's stable
	// recursion). It falls back to KSAsymp when lcm(n1, n2) is too large
	// or the count does not give a probability, as scipy does.
	KSExact
	// KSAsymp uses the distribution of the one-sample statistic at
	// n = round(n1·n2/(n1+n2)) (scipy's method='asymp', kstwo.sf).
	KSAsymp
)

// KSExactMaxN is the largest sample for which KSAuto is exact (scipy's
// MAX_AUTO_N).
const KSExactMaxN = 10_000

func (m KSMethod) String() string {
	switch m {
	case KSAuto:
		return "auto"
	case KSExact:
		return "exact"
	case KSAsymp:
		return "asymp"
	}
	return "unknown"
}

// KSResult is a two-sample, two-sided Kolmogorov-Smirnov test.
type KSResult struct {
	// D is sup_x |F1(x) − F2(x)|, in [0, 1].
	D float64
	// PValue is the probability of a D at least this large when both
	// samples come from one continuous distribution.
	PValue float64
	// Method is the one the p-value came from: KSExact or KSAsymp.
	Method KSMethod
}

// KS is the two-sample Kolmogorov-Smirnov test of a against b, matching
// scipy.stats.ks_2samp(a, b, method=...) (two-sided) in D and p-value.
// With KSExact, D is rounded to the nearest multiple of 1/lcm(n1, n2), as
// scipy returns it. An empty sample gives NaN. Samples must not hold NaN.
func KS(a, b []float64, method KSMethod) KSResult {
	if len(a) == 0 || len(b) == 0 {
		return KSResult{D: math.NaN(), PValue: math.NaN(), Method: method}
	}
	d := ksStatistic(sampleCDF(a), sampleCDF(b))
	n1, n2 := int64(len(a)), int64(len(b))
	g := gcd(n1, n2)
	n1g, n2g := n1/g, n2/g
	switch method {
	case KSAuto:
		method = KSAsymp
		if max(n1, n2) <= KSExactMaxN {
			method = KSExact
		}
	case KSExact:
		if float64(n1g) >= float64(math.MaxInt32)/float64(n2g) {
			method = KSAsymp
		}
	}
	if method == KSExact {
		if dr, p, ok := ksExact(n1, n2, g, d); ok {
			return KSResult{D: dr, PValue: clip01(p), Method: KSExact}
		}
		method = KSAsymp
	}
	return KSResult{D: d, PValue: KSPValue(d, n1, n2), Method: KSAsymp}
}

// KSPValue is the asymptotic two-sided p-value of a two-sample statistic d
// from samples of n1 and n2 values: scipy's kstwo.sf(d, round(n1·n2/(n1+n2))),
// the ks_2samp p-value with method='asymp'. NaN when a count is 0, or
// when both are 1 (the rounded n is 0), as in scipy.
func KSPValue(d float64, n1, n2 int64) float64 {
	if n1 <= 0 || n2 <= 0 {
		return math.NaN()
	}
	m, n := float64(max(n1, n2)), float64(min(n1, n2))
	en := math.RoundToEven(m * n / (m + n))
	if en < 1 {
		return math.NaN()
	}
	return kolmogorovSF(int64(en), d)
}

// SketchKS is the Kolmogorov-Smirnov statistic between the CDFs two KLL
// sketches estimate (the sup of |F1 − F2| is taken over the union of their
// retained values, where the step functions change), with the asymptotic
// p-value (KSPValue) at the sketches' counts. D is within ε1 + ε2 of the
// samples' exact D, where εi is sketch i's normalised rank error
// (KLLRankError). NaN when a sketch is empty.
func SketchKS(ref, cur *sketch.KLL) KSResult {
	return viewKS(ref.Sorted(), cur.Sorted())
}

func viewKS(ref, cur *sketch.SortedView) KSResult {
	if ref.Count() == 0 || cur.Count() == 0 {
		return KSResult{D: math.NaN(), PValue: math.NaN(), Method: KSAsymp}
	}
	d := ksStatistic(viewCDF(ref), viewCDF(cur))
	return KSResult{D: d, PValue: KSPValue(d, ref.Count(), cur.Count()), Method: KSAsymp}
}

// ksStatistic is the two-sided D as ks_2samp computes it: the larger of
// max(F1 − F2) and max(F2 − F1), both evaluated at every point of either
// sample.
func ksStatistic(a, b stepCDF) float64 {
	var lo, hi float64
	walk(a, b, func(_, fa, fb float64) {
		d := fa - fb
		lo, hi = min(lo, d), max(hi, d)
	})
	minS := clip01(-lo)
	if minS > hi {
		return minS
	}
	return hi
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ksExact is scipy's _attempt_exact_2kssamp for the two-sided test: D is
// rounded to h/lcm, and the p-value is the share of lattice paths from
// (0, 0) to (n1, n2) that leave the band |x/n1 − y/n2| < h/lcm. ok is false
// when the computation does not give a probability.
func ksExact(n1, n2, g int64, d float64) (dr, p float64, ok bool) {
	lcm := (n1 / g) * n2
	h := int64(math.RoundToEven(d * float64(lcm)))
	dr = float64(h) / float64(lcm)
	if h == 0 {
		return dr, 1, true
	}
	if n1 == n2 {
		p = probOutsideSquare(n1, h)
	} else {
		p = probOutsideBand(n1, n2, g, h)
	}
	if !(p >= 0 && p <= 1) {
		return dr, p, false
	}
	return dr, p, true
}

// probOutsideSquare is P(D_{n,n} ≥ h/n):
//
//	2·(C(2n, n−h) − C(2n, n−2h) + C(2n, n−3h) − ...) / C(2n, n)
//
// with each term divided by C(2n, n) first and the sum nested Horner-like,
// so nothing large is subtracted (scipy's _compute_prob_outside_square).
func probOutsideSquare(n, h int64) float64 {
	var P float64
	for k := n / h; k >= 0; k-- {
		p1 := 1.0
		for j := range h {
			p1 = float64(n-k*h-j) * p1 / float64(n+k*h+j+1)
		}
		P = p1 * (1 - P)
	}
	return 2 * P
}

// probOutsideBand is the share of monotone lattice paths from (0, 0) to
// (m, n) that do not stay strictly inside |n·x − m·y|/g < h: scipy's
// _compute_outer_prob_inside_method, which runs the recursion on 1 − p
// (Viehmann 2021) over one sliding column, so it neither overflows nor
// cancels.
func probOutsideBand(m, n, g, h int64) float64 {
	if m < n {
		m, n = n, m
	}
	mg, ng := m/g, n/g
	minj, maxj := int64(0), min(ceilDiv(h, mg), n+1)
	curlen := maxj - minj
	lenA := min(2*maxj+2, n+1)
	A := make([]float64, lenA)
	for i := range A {
		A[i] = 1
	}
	for i := minj; i < maxj; i++ {
		A[i] = 0
	}
	for i := int64(1); i <= m; i++ {
		lastminj, lastlen := minj, curlen
		minj = min(max(floorDiv(ng*i-h, mg)+1, 0), n)
		maxj = min(ceilDiv(ng*i+h, mg), n+1)
		if maxj <= minj {
			return 1
		}
		val := 1.0
		if minj == 0 {
			val = 0
		}
		fi := float64(i)
		for jj := range maxj - minj {
			j := jj + minj
			val = (A[jj+minj-lastminj]*fi + val*float64(j)) / (fi + float64(j))
			A[jj] = val
		}
		curlen = maxj - minj
		if lastlen > curlen {
			for k := maxj - minj; k < min(maxj-minj+lastlen-curlen, lenA); k++ {
				A[k] = 1
			}
		}
	}
	return A[maxj-minj-1]
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

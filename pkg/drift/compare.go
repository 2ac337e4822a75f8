package drift

import (
	"math"
	"slices"

	"github.com/gyreml/gyre/pkg/sketch"
)

// NumericScores is the drift of one numeric feature: a window's sketch
// against the reference's.
type NumericScores struct {
	PSI float64 // SketchPSI over the reference's quantile bins
	// KS is the Kolmogorov-Smirnov D between the sketches (SketchKS),
	// within KSErrorBound of the exact D.
	KS float64
	// KSPValue is the asymptotic p-value of KS at the sketches' counts.
	// On large windows it is smaller than the sketches' error justifies
	// (see the package documentation): do not alert on it alone.
	KSPValue float64
	// KSPValueUpper is the asymptotic p-value at max(KS − KSErrorBound, 0):
	// since the exact D is at least that, it bounds the exact test's
	// p-value from above (with the rank error's confidence). Alerting when
	// it is below α rejects only where the exact test would.
	KSPValueUpper float64
	// Wasserstein is ∫|F_ref − F_cur| dx (SketchWasserstein), within
	// WassersteinErrorBound of the exact distance, in the feature's unit.
	Wasserstein float64
	// Chi2, Chi2PValue and Chi2DoF are the chi-square test of homogeneity
	// (ChiSquare) and JS the Jensen-Shannon distance over the PSI bins,
	// with each bin's count read from the sketch's ranks. Like KSPValue,
	// Chi2PValue on large windows reflects sketch noise as much as drift.
	Chi2       float64
	Chi2PValue float64
	Chi2DoF    int
	JS         float64
	// RefCount and CurCount are the values each sketch summarises.
	RefCount, CurCount int64
}

// CompareNumeric scores a window's KLL sketch cur against the reference
// sketch ref: PSI over edges (SketchEdges(ref, DefaultPSIBins) when nil;
// compute them once per reference and pass them in), the KS statistic and
// its asymptotic p-value (and that p-value's upper bound), the
// Wasserstein distance, and chi-square and Jensen-Shannon over the PSI
// bins. Each sketch is sorted once. Scores are NaN (Chi2DoF −1) when a
// sketch is empty.
func CompareNumeric(ref, cur *sketch.KLL, edges []float64) NumericScores {
	rv, cv := ref.Sorted(), cur.Sorted()
	s := NumericScores{RefCount: ref.Count(), CurCount: cur.Count()}
	if s.RefCount == 0 || s.CurCount == 0 {
		nan := math.NaN()
		s.PSI, s.KS, s.KSPValue, s.KSPValueUpper, s.Wasserstein = nan, nan, nan, nan, nan
		s.Chi2, s.Chi2PValue, s.Chi2DoF, s.JS = nan, nan, -1, nan
		return s
	}
	if edges == nil {
		edges = viewEdges(rv, DefaultPSIBins)
	}
	ks := viewKS(rv, cv)
	s.KS, s.KSPValue = ks.D, ks.PValue
	s.KSPValueUpper = KSPValue(max(ks.D-KSErrorBound(ref, cur), 0), s.RefCount, s.CurCount)
	s.Wasserstein = viewWasserstein(rv, cv)
	rc, cc := viewCounts(rv, edges), viewCounts(cv, edges)
	s.PSI = psi(shares(rc, float64(s.RefCount)), shares(cc, float64(s.CurCount)))
	chi := ChiSquare(rc, cc)
	s.Chi2, s.Chi2PValue, s.Chi2DoF = chi.Stat, chi.PValue, chi.DoF
	s.JS = JensenShannon(rc, cc)
	return s
}

// KLLRankError is ε, the normalised rank error of a KLL sketch with
// accuracy parameter k, with 99% confidence for all queries at once:
// Apache DataSketches' fit 2.446/k^0.9433, which at k = 200
// (sketch.DefaultKLLK) is the 1.65% pkg/sketch states. Every estimated CDF
// value is then within ε of the true one. A sketch of fewer than k values
// has not compacted yet and is exact.
func KLLRankError(k int) float64 { return 2.446 / math.Pow(float64(k), 0.9433) }

// KSErrorBound bounds |SketchKS(ref, cur).D − D_exact|: each estimated CDF
// is within its sketch's ε of the true one everywhere, so the sup of their
// difference moves by at most ε_ref + ε_cur.
func KSErrorBound(ref, cur *sketch.KLL) float64 {
	return KLLRankError(ref.K()) + KLLRankError(cur.K())
}

// WassersteinErrorBound bounds |SketchWasserstein(ref, cur) − W_exact|:
// the distance moves by at most ∫|F̂ − F| per side, and a sketch's F̂
// differs from F by at most ε, and only between its exact min and max.
func WassersteinErrorBound(ref, cur *sketch.KLL) float64 {
	b := 0.0
	for _, s := range []*sketch.KLL{ref, cur} {
		if s.Count() > 0 {
			b += KLLRankError(s.K()) * (s.Max() - s.Min())
		}
	}
	return b
}

// Categories counts a categorical feature's rows by value.
type Categories struct {
	// Counts holds the rows of each listed value. A listed value with a
	// zero count is known to be absent.
	Counts map[string]int64
	// Other is the rows whose value is not listed: what a top-k sketch
	// does not track. 0 means Counts is complete, so an unlisted value
	// occurred 0 times.
	Other int64
}

// Total is the number of rows.
func (c Categories) Total() int64 {
	t := c.Other
	for _, n := range c.Counts {
		t += n
	}
	return t
}

// CategoriesFromTopK reads a top-k sketch (a reference profile's
// categorical column): each tracked value with its guaranteed count
// (Count − Error), the rest of the rows in Other. While the sketch is
// exact (at most its capacity of distinct values ever seen) Other is 0 and
// the counts are the true ones. This is how pkg/profile.JensenShannon
// reads it.
func CategoriesFromTopK(t *sketch.TopK) Categories {
	c := Categories{Counts: make(map[string]int64, t.Len())}
	var known int64
	for _, e := range t.Top(0) {
		if g := e.Count - e.Error; g > 0 {
			c.Counts[e.Value] = g
			known += g
		}
	}
	c.Other = t.Count() - known
	return c
}

// CategoricalScores is the drift of one categorical feature.
type CategoricalScores struct {
	Chi2       float64 // chi-square statistic of homogeneity (ChiSquare)
	Chi2PValue float64
	Chi2DoF    int
	JS         float64 // Jensen-Shannon distance, natural log (JensenShannon)
	PSI        float64 // PSI with one bin per outcome, shares floored at PSIEpsilon
	// RefCount and CurCount are the rows on each side.
	RefCount, CurCount int64
}

// CompareCategorical scores a window's category counts cur against the
// reference's ref. The outcomes are the listed values of both sides, in
// sorted order, plus one "other" outcome, with one rule: a value listed on
// one side only, while the other side has unlisted rows (Other > 0), is
// folded into "other" on its side too, since the other side's count of it
// is unknown. So when both sides are complete (a reference top-k that is
// exact, and a window's exact counts) the scores are the exact ones on the
// full table, and otherwise they are exact on a coarser partition that both
// sides can count. Scores are NaN when a side has no rows.
func CompareCategorical(ref, cur Categories) CategoricalScores {
	r, c := alignCategories(ref, cur)
	var rn, cn int64
	for i := range r {
		rn += int64(r[i])
		cn += int64(c[i])
	}
	s := CategoricalScores{RefCount: rn, CurCount: cn}
	if rn == 0 || cn == 0 {
		nan := math.NaN()
		s.Chi2, s.Chi2PValue, s.Chi2DoF, s.JS, s.PSI = nan, nan, -1, nan, nan
		return s
	}
	chi := ChiSquare(r, c)
	s.Chi2, s.Chi2PValue, s.Chi2DoF = chi.Stat, chi.PValue, chi.DoF
	s.JS = JensenShannon(r, c)
	p, q := make([]float64, len(r)), make([]float64, len(c))
	for i := range r {
		p[i], q[i] = r[i]/float64(rn), c[i]/float64(cn)
	}
	s.PSI = psi(p, q)
	return s
}

// alignCategories lays both sides out over the same outcomes (see
// CompareCategorical): sorted values, then "other" when either side has any.
func alignCategories(ref, cur Categories) (r, c []float64) {
	values := make([]string, 0, len(ref.Counts)+len(cur.Counts))
	for v := range ref.Counts {
		values = append(values, v)
	}
	for v := range cur.Counts {
		if _, ok := ref.Counts[v]; !ok {
			values = append(values, v)
		}
	}
	slices.Sort(values) // a fixed order makes the float sums reproducible
	rOther, cOther := ref.Other, cur.Other
	for _, v := range values {
		rc, inRef := ref.Counts[v]
		cc, inCur := cur.Counts[v]
		switch {
		case !inCur && cur.Other > 0:
			rOther += rc
		case !inRef && ref.Other > 0:
			cOther += cc
		default:
			r, c = append(r, float64(rc)), append(c, float64(cc))
		}
	}
	if rOther > 0 || cOther > 0 {
		r, c = append(r, float64(rOther)), append(c, float64(cOther))
	}
	return r, c
}

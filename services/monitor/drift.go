package monitor

import (
	"math"

	"github.com/gyreml/gyre/pkg/drift"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/sketch"
)

// Feature kinds, as the inference log carries inputs.
const (
	kindNumeric     = "numeric"
	kindCategorical = "categorical"
)

// methodScore is one drift method's score of a window against a reference.
type methodScore struct {
	method string
	score  float64
	// pValue is NaN for methods that are not tests.
	pValue float64
}

// numericScores scores a window's values against the reference's with every
// method that applies to numbers:
//
//   - psi: population stability index over the reference's 10 quantile bins;
//   - ks: the two-sample Kolmogorov-Smirnov D, with its asymptotic p-value;
//   - wasserstein: the earth mover's distance in units of the reference's
//     standard deviation (refStd), so one threshold suits any feature;
//   - chi2 and js: on the same bins as psi, see binnedScores.
//
// Both sides are KLL sketches; pkg/drift bounds their error.
func numericScores(ref, cur *sketch.KLL, refStd float64) []methodScore {
	if ref == nil || cur == nil || ref.Count() == 0 || cur.Count() == 0 {
		return nil
	}
	edges := drift.SketchEdges(ref, drift.DefaultPSIBins)
	sc := drift.CompareNumeric(ref, cur, edges)
	w := sc.Wasserstein
	if refStd > 0 && !math.IsNaN(refStd) {
		w /= refStd
	}
	out := []methodScore{
		{method: pipeline.DriftPSI, score: sc.PSI, pValue: math.NaN()},
		{method: pipeline.DriftKS, score: sc.KS, pValue: sc.KSPValue},
		{method: pipeline.DriftWasserstein, score: w, pValue: math.NaN()},
	}
	return append(out, binnedScores(binShares(ref.Sorted(), edges), binShares(cur.Sorted(), edges), float64(ref.Count()), float64(cur.Count()))...)
}

// binnedScores are chi2 and js of a numeric feature over the PSI bins,
// given as each side's shares of nRef and nCur values.
func binnedScores(ref, cur []float64, nRef, nCur float64) []methodScore {
	chi := drift.ChiSquare(scale(ref, nRef), scale(cur, nCur))
	return []methodScore{
		{method: pipeline.DriftChi2, score: effectSize(chi.Stat, chi.DoF, nRef, nCur), pValue: chi.PValue},
		{method: pipeline.DriftJS, score: drift.JensenShannon(ref, cur), pValue: math.NaN()},
	}
}

// categoricalScores scores a window's category counts against the
// reference's: psi on the category shares, chi2 (the test of homogeneity of
// the two count vectors) and js (the Jensen-Shannon distance, natural log,
// as scipy.spatial.distance.jensenshannon), over the values both sides can
// count (drift.CompareCategorical).
func categoricalScores(ref, cur *sketch.TopK) []methodScore {
	if ref == nil || cur == nil || ref.Count() == 0 || cur.Count() == 0 {
		return nil
	}
	sc := drift.CompareCategorical(drift.CategoriesFromTopK(ref), drift.CategoriesFromTopK(cur))
	return []methodScore{
		{method: pipeline.DriftPSI, score: sc.PSI, pValue: math.NaN()},
		{method: pipeline.DriftChi2, score: effectSize(sc.Chi2, sc.Chi2DoF, float64(sc.RefCount), float64(sc.CurCount)), pValue: sc.Chi2PValue},
		{method: pipeline.DriftJS, score: sc.JS, pValue: math.NaN()},
	}
}

// effectSize is chi2's score: Cohen's w, √(χ²/n_eff) with
// n_eff = nRef·nCur/(nRef+nCur), less the part a finite sample shows with
// no change at all (χ² then averages its degrees of freedom):
// √(max(0, χ² − dof)/n_eff). Unlike χ² it does not grow with the traffic,
// so one threshold holds for small and large windows (0.1 is a small
// effect, 0.3 medium, 0.5 large); the test's p-value is kept beside it.
func effectSize(chi2 float64, dof int, nRef, nCur float64) float64 {
	neff := nRef * nCur / (nRef + nCur)
	if neff <= 0 || math.IsNaN(chi2) || dof < 0 {
		return math.NaN()
	}
	return math.Sqrt(max(0, chi2-float64(dof)) / neff)
}

// binShares is each PSI bin's share of a sketch's values.
func binShares(v *sketch.SortedView, edges []float64) []float64 {
	n := float64(v.Count())
	shares := make([]float64, len(edges)+1)
	var prev int64
	for i, e := range edges {
		r := v.Rank(e)
		shares[i] = float64(r-prev) / n
		prev = r
	}
	shares[len(edges)] = float64(v.Count()-prev) / n
	return shares
}

func scale(xs []float64, by float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * by
	}
	return out
}

// sketchStd estimates the standard deviation of a sketch's values from its
// retained values and their weights.
func sketchStd(s *sketch.KLL) float64 {
	v := s.Sorted()
	xs, cum := v.Values()
	n := float64(v.Count())
	if n < 2 {
		return math.NaN()
	}
	var mean float64
	var prev int64
	for i, x := range xs {
		mean += x * float64(cum[i]-prev)
		prev = cum[i]
	}
	mean /= n
	var ss float64
	prev = 0
	for i, x := range xs {
		d := x - mean
		ss += d * d * float64(cum[i]-prev)
		prev = cum[i]
	}
	return math.Sqrt(ss / (n - 1))
}

// alertMethod is the method whose score the drift rule reads for a feature
// of this kind, and its threshold: the pipeline's method where it applies,
// else its counterpart (ks -> chi2, both tests; wasserstein -> js, both
// distances) at that method's default threshold.
func alertMethod(kind string, m pipeline.Monitoring) (string, float64) {
	method, threshold := m.Drift.Method, m.Drift.Threshold
	if kind == kindCategorical {
		switch method {
		case pipeline.DriftKS:
			method = pipeline.DriftChi2
			threshold = pipeline.DefaultDriftThresholds[method]
		case pipeline.DriftWasserstein:
			method = pipeline.DriftJS
			threshold = pipeline.DefaultDriftThresholds[method]
		}
	}
	return method, threshold
}

// referenceColumn is a profile column as the window sketches see it: its
// KLL sketch and standard deviation (numeric, timestamp) or its top-k
// (categorical, bool). ok is false when the column is missing or of the
// other kind.
func referenceColumn(p *profile.Profile, feature, kind string) (kll *sketch.KLL, std float64, topk *sketch.TopK, ok bool) {
	c := p.Column(feature)
	if c == nil {
		return nil, 0, nil, false
	}
	switch {
	case kind == kindNumeric && (c.Kind == profile.Numeric || c.Kind == profile.Timestamp) && c.Sketches.Quantiles != nil:
		std = math.NaN()
		if c.Std != nil {
			std = *c.Std
		} else if c.Sketches.Moments != nil && c.Sketches.Moments.Count() > 1 {
			std = math.Sqrt(c.Sketches.Moments.SampleVariance())
		}
		return c.Sketches.Quantiles, std, nil, true
	case kind == kindCategorical && (c.Kind == profile.Categorical || c.Kind == profile.Bool) && c.Sketches.TopK != nil:
		return nil, 0, c.Sketches.TopK, true
	}
	return nil, 0, nil, false
}

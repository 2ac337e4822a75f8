package drift

import (
	"math"

	"github.com/gyreml/gyre/pkg/sketch"
)

// Wasserstein is the first Wasserstein (earth mover's) distance between
// the empirical distributions of u and v, ∫|F_u − F_v| dx, matching
// scipy.stats.wasserstein_distance(u, v). It is in the data's unit. An
// empty sample gives NaN. Samples must not hold NaN.
func Wasserstein(u, v []float64) float64 {
	if len(u) == 0 || len(v) == 0 {
		return math.NaN()
	}
	return stepWasserstein(sampleCDF(u), sampleCDF(v))
}

// SketchWasserstein is ∫|F1 − F2| dx between the CDFs two KLL sketches
// estimate, over the union of their retained values. It is within
// ε1·(max1 − min1) + ε2·(max2 − min2) of the samples' exact distance,
// where εi is sketch i's normalised rank error (KLLRankError) and
// [mini, maxi] its exact range. NaN when a sketch is empty.
func SketchWasserstein(ref, cur *sketch.KLL) float64 {
	return viewWasserstein(ref.Sorted(), cur.Sorted())
}

func viewWasserstein(ref, cur *sketch.SortedView) float64 {
	if ref.Count() == 0 || cur.Count() == 0 {
		return math.NaN()
	}
	return stepWasserstein(viewCDF(ref), viewCDF(cur))
}

// stepWasserstein integrates |F_a − F_b| exactly: both are constant
// between consecutive points of the union of their steps.
func stepWasserstein(a, b stepCDF) float64 {
	var sum, prev, diff float64
	first := true
	walk(a, b, func(x, fa, fb float64) {
		if !first {
			sum += diff * (x - prev)
		}
		first = false
		prev, diff = x, math.Abs(fa-fb)
	})
	return sum
}

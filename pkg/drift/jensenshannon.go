package drift

import "math"

// JensenShannon is the Jensen-Shannon distance between two discrete
// distributions given as weights over the same outcomes (each normalised
// to sum 1 here), matching scipy.spatial.distance.jensenshannon(p, q):
//
//	sqrt((KL(p‖m) + KL(q‖m)) / 2),  m = (p + q)/2,  natural logarithms
//
// so it lies in [0, √ln2 ≈ 0.833]. pkg/profile.JSDivergence is the base-2
// divergence, without the square root: JSDivergence = JensenShannon² / ln 2.
// NaN when the lengths differ, a weight is negative or NaN, or a side
// weighs nothing.
func JensenShannon(p, q []float64) float64 {
	if len(p) != len(q) {
		return math.NaN()
	}
	var sp, sq float64
	for i := range p {
		if !(p[i] >= 0 && q[i] >= 0) {
			return math.NaN()
		}
		sp += p[i]
		sq += q[i]
	}
	if sp == 0 || sq == 0 || math.IsInf(sp, 0) || math.IsInf(sq, 0) {
		return math.NaN()
	}
	var js float64
	for i := range p {
		pi, qi := p[i]/sp, q[i]/sq
		m := (pi + qi) / 2
		js += relEntr(pi, m) + relEntr(qi, m)
	}
	return math.Sqrt(max(js/2, 0)) // rounding can leave a tiny negative for equal inputs
}

// relEntr is scipy.special.rel_entr(x, y) for y > 0: x·ln(x/y), 0 at x = 0.
func relEntr(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(x/y)
}

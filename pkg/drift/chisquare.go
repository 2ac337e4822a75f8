package drift

import "math"

// ChiSquareResult is a chi-square test of homogeneity.
type ChiSquareResult struct {
	// Stat is Pearson's Σ (observed − expected)² / expected over the 2×k
	// table, with Yates' continuity correction when DoF is 1.
	Stat float64
	// PValue is P(χ²_DoF ≥ Stat).
	PValue float64
	// DoF is k − 1, for the k outcomes either side has rows of.
	DoF int
}

// ChiSquare tests whether two count vectors over the same outcomes come
// from one distribution: scipy.stats.chi2_contingency([ref, cur]) on the
// 2×k table (correction=True, so a 2×2 table gets Yates' correction).
// Outcomes neither side has rows of are dropped first (scipy rejects a
// table with an all-zero column, since its expected counts are 0); with one
// outcome left the statistic is 0 and the p-value 1, as in scipy. Counts
// may be weights (non-integral). NaN when the lengths differ, a count is
// negative or NaN, or a side has no rows.
func ChiSquare(ref, cur []float64) ChiSquareResult {
	bad := ChiSquareResult{Stat: math.NaN(), PValue: math.NaN(), DoF: -1}
	if len(ref) != len(cur) {
		return bad
	}
	var r, c []float64 // the kept columns
	var sr, sc float64
	for i := range ref {
		if !(ref[i] >= 0 && cur[i] >= 0) {
			return bad
		}
		if ref[i] == 0 && cur[i] == 0 {
			continue
		}
		r, c = append(r, ref[i]), append(c, cur[i])
		sr += ref[i]
		sc += cur[i]
	}
	if sr == 0 || sc == 0 {
		return bad
	}
	dof := len(r) - 1
	if dof == 0 {
		return ChiSquareResult{Stat: 0, PValue: 1, DoF: 0}
	}
	total := sr + sc
	var stat float64
	for i := range r {
		col := r[i] + c[i]
		// scipy's expected_freq: the outer product of the margins / total.
		for _, oe := range [2][2]float64{{r[i], sr * col / total}, {c[i], sc * col / total}} {
			o, e := oe[0], oe[1]
			if dof == 1 { // Yates: move each count up to 0.5 toward its expectation
				o += math.Copysign(min(0.5, math.Abs(e-o)), e-o)
			}
			stat += (o - e) * (o - e) / e
		}
	}
	return ChiSquareResult{Stat: stat, PValue: ChiSquareSF(stat, float64(dof)), DoF: dof}
}

// ChiSquareSF is the chi-square survival function P(χ²_dof ≥ x)
// (scipy.stats.chi2.sf): the regularised upper incomplete gamma function
// Q(dof/2, x/2).
func ChiSquareSF(x, dof float64) float64 {
	if math.IsNaN(x) || !(dof > 0) {
		return math.NaN()
	}
	if x <= 0 {
		return 1
	}
	return gammaQ(dof/2, x/2)
}

// gammaQ is the regularised upper incomplete gamma function
// Q(a, x) = Γ(a, x)/Γ(a), for a > 0 and x ≥ 0: 1 − the power series of P
// below x = a + 1, Legendre's continued fraction (modified Lentz) above it,
// as in Numerical Recipes §6.2. The common factor x^a·e^−x/Γ(a) comes from
// gammaPrefactor, which keeps its relative error near 1e-15 even where
// a·ln x and ln Γ(a) are large and nearly cancel.
func gammaQ(a, x float64) float64 {
	switch {
	case math.IsNaN(a) || math.IsNaN(x) || a <= 0 || x < 0:
		return math.NaN()
	case x == 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	if x < a+1 {
		return clip01(1 - gammaPSeries(a, x))
	}
	return clip01(gammaQFraction(a, x))
}

// gammaMaxIter bounds the series and the fraction; both need O(√a)
// iterations near x = a, far fewer elsewhere.
const gammaMaxIter = 100_000

// gammaPSeries is P(a, x) = x^a·e^−x/Γ(a+1) · Σ_n x^n / ((a+1)···(a+n)).
func gammaPSeries(a, x float64) float64 {
	term := 1 / a
	sum := term
	ap := a
	for range gammaMaxIter {
		ap++
		term *= x / ap
		sum += term
		if math.Abs(term) < math.Abs(sum)*0x1p-53 {
			break
		}
	}
	return sum * gammaPrefactor(a, x)
}

// gammaQFraction is Q(a, x) = x^a·e^−x/Γ(a) · 1/(x+1−a− 1·(1−a)/(x+3−a− ...)).
func gammaQFraction(a, x float64) float64 {
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i <= gammaMaxIter; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 0x1p-53 {
			break
		}
	}
	return h * gammaPrefactor(a, x)
}

// gammaPrefactor is x^a·e^−x/Γ(a), computed as
//
//	exp(a·(log1p(t) − t) + ½·ln(a/2π) − stirlerr(a)),  t = (x − a)/a
//
// (Stirling's formula with its remainder kept apart, after Loader's dbinom
// method): the large parts of a·ln x − x and ln Γ(a) cancel analytically
// instead of in floating point.
func gammaPrefactor(a, x float64) float64 {
	if a < 1 { // small a: nothing large to cancel
		lg, _ := math.Lgamma(a)
		return math.Exp(a*math.Log(x) - x - lg)
	}
	t := (x - a) / a
	return math.Exp(a*log1pMinus(t) + 0.5*math.Log(a/(2*math.Pi)) - stirlerr(a))
}

// log1pMinus is log(1+t) − t, by its series where they nearly cancel.
func log1pMinus(t float64) float64 {
	if math.Abs(t) >= 0.1 {
		return math.Log1p(t) - t
	}
	// −t²/2 + t³/3 − t⁴/4 + ...
	var s float64
	p := -t * t
	for k := 2; k < 60; k++ {
		term := p / float64(k)
		s += term
		if math.Abs(term) < math.Abs(s)*0x1p-53 {
			break
		}
		p *= -t
	}
	return s
}

// stirlerr is ln Γ(a) − ((a − ½)·ln a − a + ½·ln 2π), the remainder of
// Stirling's formula.
func stirlerr(a float64) float64 {
	if a < 10 {
		lg, _ := math.Lgamma(a)
		return lg - ((a-0.5)*math.Log(a) - a + 0.5*math.Log(2*math.Pi))
	}
	// 1/12a − 1/360a³ + 1/1260a⁵ − 1/1680a⁷ + 1/1188a⁹ − 691/360360a¹¹
	r := 1 / a
	r2 := r * r
	return r * (1.0/12 - r2*(1.0/360-r2*(1.0/1260-r2*(1.0/1680-r2*(1.0/1188-r2*691.0/360360)))))
}

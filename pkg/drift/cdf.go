package drift

import (
	"slices"

	"github.com/gyreml/gyre/pkg/sketch"
)

// stepCDF is an empirical CDF: F(x) = cum[i]/n for x in [x[i], x[i+1]),
// 0 below x[0]. A sample gives its exact ECDF, a KLL sketch its estimate.
type stepCDF struct {
	x   []float64 // distinct, ascending
	cum []int64   // number of values ≤ x[i]; the last is n
	n   int64
}

// sampleCDF is the ECDF of xs (sorted in a copy; xs is not changed).
func sampleCDF(xs []float64) stepCDF {
	s := slices.Clone(xs)
	slices.Sort(s)
	c := stepCDF{n: int64(len(s))}
	for i, x := range s {
		if k := len(c.x); k > 0 && c.x[k-1] == x {
			c.cum[k-1] = int64(i + 1)
			continue
		}
		c.x = append(c.x, x)
		c.cum = append(c.cum, int64(i+1))
	}
	return c
}

// viewCDF is the CDF a KLL sketch estimates: its retained values with
// their cumulative weights (SortedView.Rank between them).
func viewCDF(v *sketch.SortedView) stepCDF {
	x, cum := v.Values()
	return stepCDF{x: x, cum: cum, n: v.Count()}
}

// walk calls f at every point of the union of a's and b's steps, in
// ascending order, with both CDFs there.
func walk(a, b stepCDF, f func(x, fa, fb float64)) {
	na, nb := float64(a.n), float64(b.n)
	var i, j int
	var ca, cb int64
	for i < len(a.x) || j < len(b.x) {
		var x float64
		switch {
		case j == len(b.x) || (i < len(a.x) && a.x[i] < b.x[j]):
			x = a.x[i]
		default:
			x = b.x[j]
		}
		if i < len(a.x) && a.x[i] == x {
			ca = a.cum[i]
			i++
		}
		if j < len(b.x) && b.x[j] == x {
			cb = b.cum[j]
			j++
		}
		f(x, float64(ca)/na, float64(cb)/nb)
	}
}

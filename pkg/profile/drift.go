package profile

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/gyreml/gyre/pkg/sketch"
)

// Drift methods.
const (
	MethodPSI = "psi" // numeric and timestamp columns
	MethodJS  = "js"  // categorical and bool columns
)

// PSI defaults.
const (
	DefaultPSIBins = 10
	// PSIEpsilon is the smallest share a bin counts with, so an empty bin
	// gives a large but finite term instead of an infinite one.
	PSIEpsilon = 1e-4
)

// ColumnDrift is one column's drift between a reference and a current
// profile. Method is empty when no score could be computed; Note says why.
type ColumnDrift struct {
	Column string  `json:"column"`
	Method string  `json:"method,omitempty"`
	Score  float64 `json:"score"`
	Note   string  `json:"note,omitempty"`
}

// Compare scores every column: PSI (DefaultPSIBins) for numeric and
// timestamp columns, Jensen-Shannon for categorical and bool ones. Columns
// come in the reference's order, then those only the current profile has;
// a column missing on one side, of another kind, or without values gets a
// Note instead of a score.
func Compare(ref, cur *Profile) []ColumnDrift {
	out := make([]ColumnDrift, 0, len(ref.Columns))
	for _, rc := range ref.Columns {
		d := ColumnDrift{Column: rc.Name}
		cc := cur.Column(rc.Name)
		switch {
		case cc == nil:
			d.Note = "missing from the current profile"
		case cc.Kind != rc.Kind:
			d.Note = fmt.Sprintf("kind changed from %s to %s", rc.Kind, cc.Kind)
		default:
			var err error
			if rc.Kind.ordered() {
				d.Method = MethodPSI
				d.Score, err = PSI(rc, cc, DefaultPSIBins)
			} else {
				d.Method = MethodJS
				d.Score, err = JensenShannon(rc, cc)
			}
			if err != nil {
				d.Method, d.Score, d.Note = "", 0, err.Error()
			}
		}
		out = append(out, d)
	}
	for _, cc := range cur.Columns {
		if ref.Column(cc.Name) == nil {
			out = append(out, ColumnDrift{Column: cc.Name, Note: "missing from the reference profile"})
		}
	}
	return out
}

// PSI is the population stability index of cur against ref, for numeric and
// timestamp columns:
//
//	PSI = Σ_i (q_i − p_i) · ln(q_i / p_i)
//
// over the bins cut by Edges(ref, bins) (bins ≤ 0 means DefaultPSIBins),
// where p_i and q_i are the shares of ref's and cur's values in bin i, read
// from their quantile sketches' CDFs, and a share below PSIEpsilon counts
// as PSIEpsilon. ExactPSI is the same formula on raw samples.
func PSI(ref, cur *ColumnProfile, bins int) (float64, error) {
	rv, err := orderedView(ref, "reference")
	if err != nil {
		return 0, err
	}
	cv, err := orderedView(cur, "current")
	if err != nil {
		return 0, err
	}
	if ref.Kind != cur.Kind {
		return 0, fmt.Errorf("psi: column %q is %s in the reference and %s in the current profile", ref.Name, ref.Kind, cur.Kind)
	}
	edges := viewEdges(rv, bins)
	return psi(viewShares(rv, edges), viewShares(cv, edges)), nil
}

// Edges returns the cut points of ref's equal-frequency bins for PSI: the
// reference's estimated quantiles at 1/bins, 2/bins, ... (bins ≤ 0 means
// DefaultPSIBins), with repeats dropped, so a column with heavy ties gets
// fewer bins. The bins are (-∞, e0], (e0, e1], ..., (e_last, +∞): one more
// than there are edges. Nil when ref has no values or is not numeric or
// timestamp.
func Edges(ref *ColumnProfile, bins int) []float64 {
	v, err := orderedView(ref, "reference")
	if err != nil {
		return nil
	}
	return viewEdges(v, bins)
}

// ExactPSI is PSI computed on raw samples with the given edges (as Edges
// returns them: ascending, bins right-closed, open at both ends). It is
// NaN when a sample is empty. Samples must not hold NaN.
func ExactPSI(refSample, curSample []float64, edges []float64) float64 {
	if len(refSample) == 0 || len(curSample) == 0 {
		return math.NaN()
	}
	return psi(sampleShares(refSample, edges), sampleShares(curSample, edges))
}

func psi(p, q []float64) float64 {
	var s float64
	for i := range p {
		pi, qi := max(p[i], PSIEpsilon), max(q[i], PSIEpsilon)
		s += (qi - pi) * math.Log(qi/pi)
	}
	return s
}

func orderedView(c *ColumnProfile, side string) (*sketch.SortedView, error) {
	switch {
	case !c.Kind.ordered():
		return nil, fmt.Errorf("psi: %s column %q is %s, want numeric or timestamp", side, c.Name, c.Kind)
	case c.Sketches.Quantiles == nil:
		return nil, fmt.Errorf("psi: %s column %q has no quantile sketch", side, c.Name)
	case c.Sketches.Quantiles.Count() == 0:
		return nil, fmt.Errorf("psi: %s column %q has no values", side, c.Name)
	}
	return c.Sketches.Quantiles.Sorted(), nil
}

func viewEdges(v *sketch.SortedView, bins int) []float64 {
	if bins <= 0 {
		bins = DefaultPSIBins
	}
	edges := make([]float64, 0, bins-1)
	for i := 1; i < bins; i++ {
		e := v.Quantile(float64(i) / float64(bins))
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	return edges
}

// viewShares is each bin's share of the sketch's values, from its ranks.
func viewShares(v *sketch.SortedView, edges []float64) []float64 {
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

func sampleShares(xs []float64, edges []float64) []float64 {
	counts := make([]float64, len(edges)+1)
	for _, x := range xs {
		// The first edge ≥ x closes x's bin.
		counts[sort.SearchFloat64s(edges, x)]++
	}
	for i := range counts {
		counts[i] /= float64(len(xs))
	}
	return counts
}

// JensenShannon is the Jensen-Shannon divergence (base 2, so in [0, 1]: 0
// for identical distributions, 1 for disjoint ones) between the value
// distributions of two categorical or bool columns. The distributions are
// over the values either side's top-k sketch tracks, plus one "other"
// bucket holding the rest of each side's rows. A tracked value weighs its
// guaranteed count (Count − Error); the difference goes to "other". While a
// column never had more than TopKCapacity distinct values it is exact.
// Note scipy.spatial.distance.jensenshannon returns the square root of this.
func JensenShannon(ref, cur *ColumnProfile) (float64, error) {
	for _, c := range []struct {
		side string
		col  *ColumnProfile
	}{{"reference", ref}, {"current", cur}} {
		switch {
		case c.col.Kind != Categorical && c.col.Kind != Bool:
			return 0, fmt.Errorf("js: %s column %q is %s, want categorical or bool", c.side, c.col.Name, c.col.Kind)
		case c.col.Sketches.TopK == nil:
			return 0, fmt.Errorf("js: %s column %q has no top-k sketch", c.side, c.col.Name)
		case c.col.Sketches.TopK.Count() == 0:
			return 0, fmt.Errorf("js: %s column %q has no values", c.side, c.col.Name)
		}
	}
	if ref.Kind != cur.Kind {
		return 0, fmt.Errorf("js: column %q is %s in the reference and %s in the current profile", ref.Name, ref.Kind, cur.Kind)
	}
	rt, ct := ref.Sketches.TopK, cur.Sketches.TopK
	var values []string
	for _, c := range rt.Top(0) {
		values = append(values, c.Value)
	}
	for _, c := range ct.Top(0) {
		if _, ok := rt.Get(c.Value); !ok {
			values = append(values, c.Value)
		}
	}
	slices.Sort(values) // a fixed order makes the float sum reproducible
	return JSDivergence(topKDistribution(rt, values), topKDistribution(ct, values)), nil
}

// topKDistribution is the guaranteed count of each value, then "other".
func topKDistribution(t *sketch.TopK, values []string) []float64 {
	d := make([]float64, len(values)+1)
	var known int64
	for i, v := range values {
		if c, ok := t.Get(v); ok {
			d[i] = float64(c.Count - c.Error)
			known += c.Count - c.Error
		}
	}
	d[len(values)] = float64(t.Count() - known)
	return d
}

// JSDivergence is the base-2 Jensen-Shannon divergence of two discrete
// distributions given as weights over the same outcomes (each normalised
// to sum 1 here). It is NaN when the lengths differ, a weight is negative,
// or a side weighs nothing.
func JSDivergence(p, q []float64) float64 {
	if len(p) != len(q) {
		return math.NaN()
	}
	var sp, sq float64
	for i := range p {
		if p[i] < 0 || q[i] < 0 {
			return math.NaN()
		}
		sp += p[i]
		sq += q[i]
	}
	if sp == 0 || sq == 0 {
		return math.NaN()
	}
	var s float64
	for i := range p {
		pi, qi := p[i]/sp, q[i]/sq
		m := (pi + qi) / 2
		if pi > 0 {
			s += pi * math.Log2(pi/m)
		}
		if qi > 0 {
			s += qi * math.Log2(qi/m)
		}
	}
	return min(max(s/2, 0), 1)
}

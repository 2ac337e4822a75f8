package drift

import (
	"math"
	"slices"
	"sort"

	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/sketch"
)

// PSI conventions are pkg/profile's, so a score here and a profile
// comparison's score mean the same thing.
const (
	// DefaultPSIBins is the number of reference-quantile bins.
	DefaultPSIBins = profile.DefaultPSIBins
	// PSIEpsilon is the smallest share a bin counts with: a share below it
	// (an empty bin, typically) counts as PSIEpsilon, so the term is large
	// but finite. Shares are not renormalised after the floor.
	PSIEpsilon = profile.PSIEpsilon
)

// PSI is the population stability index of cur against ref on raw samples,
//
//	PSI = Σ_i (q_i − p_i) · ln(q_i / p_i)
//
// where p_i and q_i are the shares of ref's and cur's values in bin i, each
// raised to PSIEpsilon if below it. The bins are (−∞, e0], (e0, e1], ...,
// (e_last, +∞) for ascending edges (as Edges returns them): a value lands
// in the bin of the first edge ≥ it, numpy's searchsorted(edges, x,
// side='left'). It equals profile.ExactPSI. NaN when a sample is empty.
// Samples must not hold NaN.
func PSI(ref, cur, edges []float64) float64 {
	if len(ref) == 0 || len(cur) == 0 {
		return math.NaN()
	}
	return psi(sampleShares(ref, edges), sampleShares(cur, edges))
}

// Edges returns the PSI bin edges of a reference sample: its quantiles at
// 1/bins, 2/bins, ..., (bins−1)/bins (bins ≤ 0 means DefaultPSIBins), where
// the q-quantile is the smallest value whose rank reaches q·n (numpy's
// quantile method 'inverted_cdf'), with repeats dropped, so heavy ties give
// fewer bins. SketchEdges and profile.Edges apply the same rule to a KLL
// sketch's estimated ranks. Nil for an empty sample.
func Edges(ref []float64, bins int) []float64 {
	if len(ref) == 0 {
		return nil
	}
	if bins <= 0 {
		bins = DefaultPSIBins
	}
	s := slices.Clone(ref)
	slices.Sort(s)
	n := float64(len(s))
	edges := make([]float64, 0, bins-1)
	for i := 1; i < bins; i++ {
		target := float64(i) / float64(bins) * n
		j := sort.Search(len(s), func(j int) bool { return float64(j+1) >= target })
		if e := s[min(j, len(s)-1)]; len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	return edges
}

// SketchEdges is Edges on the ranks a KLL sketch estimates: the reference
// sketch's quantiles (profile.Edges on a column with this sketch). Nil
// for an empty sketch.
func SketchEdges(ref *sketch.KLL, bins int) []float64 {
	return viewEdges(ref.Sorted(), bins)
}

func viewEdges(v *sketch.SortedView, bins int) []float64 {
	if v.Count() == 0 {
		return nil
	}
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

// SketchPSI is PSI with each bin's shares read from the sketches'
// estimated ranks at the edges (profile.PSI on columns with these
// sketches). NaN when a sketch is empty.
func SketchPSI(ref, cur *sketch.KLL, edges []float64) float64 {
	return viewPSI(ref.Sorted(), cur.Sorted(), edges)
}

func viewPSI(ref, cur *sketch.SortedView, edges []float64) float64 {
	if ref.Count() == 0 || cur.Count() == 0 {
		return math.NaN()
	}
	return psi(viewShares(ref, edges), viewShares(cur, edges))
}

// psi sums the PSI terms of two share vectors, flooring shares at
// PSIEpsilon.
func psi(p, q []float64) float64 {
	var s float64
	for i := range p {
		pi, qi := max(p[i], PSIEpsilon), max(q[i], PSIEpsilon)
		s += (qi - pi) * math.Log(qi/pi)
	}
	return s
}

// BinCounts counts xs in the PSI bins of edges (see PSI), for a chi-square
// test or Jensen-Shannon distance over them.
func BinCounts(xs, edges []float64) []float64 {
	counts := make([]float64, len(edges)+1)
	for _, x := range xs {
		counts[sort.SearchFloat64s(edges, x)]++ // the first edge ≥ x closes x's bin
	}
	return counts
}

func sampleShares(xs, edges []float64) []float64 {
	return shares(BinCounts(xs, edges), float64(len(xs)))
}

// viewCounts is each bin's count of a sketch's values, the difference of
// its estimated ranks at the bin's edges (whole numbers summing to Count).
func viewCounts(v *sketch.SortedView, edges []float64) []float64 {
	counts := make([]float64, len(edges)+1)
	var prev int64
	for i, e := range edges {
		r := v.Rank(e)
		counts[i] = float64(r - prev)
		prev = r
	}
	counts[len(edges)] = float64(v.Count() - prev)
	return counts
}

func viewShares(v *sketch.SortedView, edges []float64) []float64 {
	return shares(viewCounts(v, edges), float64(v.Count()))
}

func shares(counts []float64, n float64) []float64 {
	s := make([]float64, len(counts))
	for i, c := range counts {
		s[i] = c / n
	}
	return s
}

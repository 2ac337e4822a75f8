package drift

import (
	"math"
	"strconv"
	"testing"

	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/sketch"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestKSKnownValues(t *testing.T) {
	// Disjoint samples of 3: D = 1, and 2 of the C(6,3) = 20 orderings
	// are this extreme.
	r := KS([]float64{1, 2, 3}, []float64{4, 5, 6}, KSExact)
	if r.D != 1 || !near(r.PValue, 0.1, 1e-15) || r.Method != KSExact {
		t.Errorf("KS disjoint 3 vs 3 = %+v, want D 1, p 0.1, exact", r)
	}
	// Interleaved samples: D = 1/3 at x = 1 (F1 = 1/3, F2 = 0).
	r = KS([]float64{1, 3, 5}, []float64{2, 4, 6}, KSExact)
	if !near(r.D, 1.0/3, 1e-15) || r.PValue != 1 {
		t.Errorf("KS interleaved = %+v, want D 1/3, p 1", r)
	}
	if r := KS(nil, []float64{1}, KSAuto); !math.IsNaN(r.D) || !math.IsNaN(r.PValue) {
		t.Errorf("KS with an empty sample = %+v, want NaN", r)
	}
}

func TestKSMethodChoice(t *testing.T) {
	small, big := normal(KSExactMaxN, 1, 0, 1), normal(KSExactMaxN+1, 2, 0, 1)
	if m := KS(small, small[:100], KSAuto).Method; m != KSExact {
		t.Errorf("auto with %d values used %s, want exact", KSExactMaxN, m)
	}
	if m := KS(big, small[:100], KSAuto).Method; m != KSAsymp {
		t.Errorf("auto with %d values used %s, want asymp", KSExactMaxN+1, m)
	}
	// lcm(50000, 49999) ≈ 2.5e9 does not fit an int32: scipy switches to
	// asymp, and so do we.
	a, b := normal(50000, 3, 0, 1), normal(49999, 4, 0, 1)
	if m := KS(a, b, KSExact).Method; m != KSAsymp {
		t.Errorf("exact with lcm beyond int32 used %s, want asymp", m)
	}
}

func TestKSPValueEdgeCases(t *testing.T) {
	if p := KSPValue(0, 100, 100); p != 1 {
		t.Errorf("KSPValue(D=0) = %g, want 1", p)
	}
	if p := KSPValue(1, 100, 100); p != 0 {
		t.Errorf("KSPValue(D=1) = %g, want 0", p)
	}
	if p := KSPValue(0.1, 0, 100); !math.IsNaN(p) {
		t.Errorf("KSPValue with no values = %g, want NaN", p)
	}
	// Far in the tail the p-value is 0, not a negative rounding error.
	if p := KSPValue(0.05, 1_000_000, 1_000_000); p != 0 {
		t.Errorf("KSPValue(0.05, 1e6, 1e6) = %g, want 0", p)
	}
}

func TestWassersteinKnownValues(t *testing.T) {
	// A shift by c moves every unit of mass by c.
	if w := Wasserstein([]float64{0, 1, 3}, []float64{5, 6, 8}); !near(w, 5, 1e-15) {
		t.Errorf("Wasserstein of a shift by 5 = %g", w)
	}
	// Half the mass moves from 0 to 1.
	if w := Wasserstein([]float64{0, 0}, []float64{0, 1}); !near(w, 0.5, 1e-15) {
		t.Errorf("Wasserstein = %g, want 0.5", w)
	}
	if w := Wasserstein(nil, []float64{1}); !math.IsNaN(w) {
		t.Errorf("Wasserstein with an empty sample = %g, want NaN", w)
	}
}

func TestChiSquareSFClosedForms(t *testing.T) {
	for _, x := range []float64{1e-8, 1e-3, 0.1, 0.5, 1, 2, 5, 10, 30, 100, 500, 1400} {
		for _, c := range []struct {
			dof  float64
			want float64
		}{
			{1, math.Erfc(math.Sqrt(x / 2))},
			{2, math.Exp(-x / 2)},
			{4, math.Exp(-x/2) * (1 + x/2)},
			{6, math.Exp(-x/2) * (1 + x/2 + x*x/8)},
		} {
			got := ChiSquareSF(x, c.dof)
			if c.want == 0 {
				if got != 0 {
					t.Errorf("ChiSquareSF(%g, %g) = %g, want 0", x, c.dof, got)
				}
				continue
			}
			if rel := math.Abs(got-c.want) / c.want; rel > 1e-12 {
				t.Errorf("ChiSquareSF(%g, %g) = %.17g, want %.17g (relative error %.2g)", x, c.dof, got, c.want, rel)
			}
		}
	}
	if p := ChiSquareSF(0, 3); p != 1 {
		t.Errorf("ChiSquareSF(0, 3) = %g, want 1", p)
	}
	if p := ChiSquareSF(1, 0); !math.IsNaN(p) {
		t.Errorf("ChiSquareSF with 0 degrees of freedom = %g, want NaN", p)
	}
}

func TestChiSquareEdgeCases(t *testing.T) {
	if r := ChiSquare([]float64{10}, []float64{20}); r.Stat != 0 || r.PValue != 1 || r.DoF != 0 {
		t.Errorf("one outcome = %+v, want 0, 1, 0 degrees of freedom", r)
	}
	if r := ChiSquare([]float64{10, 0}, []float64{20, 0}); r.DoF != 0 {
		t.Errorf("an outcome empty on both sides should be dropped: %+v", r)
	}
	for _, c := range [][2][]float64{
		{{1, 2}, {1}},
		{{1, -2}, {1, 2}},
		{{0, 0}, {1, 2}},
		{{math.NaN(), 1}, {1, 2}},
	} {
		if r := ChiSquare(c[0], c[1]); !math.IsNaN(r.Stat) || !math.IsNaN(r.PValue) {
			t.Errorf("ChiSquare(%v, %v) = %+v, want NaN", c[0], c[1], r)
		}
	}
}

func TestJensenShannonAndProfileDivergence(t *testing.T) {
	p, q := []float64{120, 80, 45, 0}, []float64{100, 95, 0, 35}
	js := JensenShannon(p, q)
	if div := profile.JSDivergence(p, q); !near(js*js/math.Ln2, div, 1e-14) {
		t.Errorf("JS distance² / ln 2 = %.15g, profile.JSDivergence = %.15g", js*js/math.Ln2, div)
	}
	if d := JensenShannon([]float64{1, 0}, []float64{0, 1}); !near(d, math.Sqrt(math.Ln2), 1e-15) {
		t.Errorf("JS of disjoint distributions = %g, want √ln2", d)
	}
	if d := JensenShannon([]float64{1, 2}, []float64{2, 4}); d != 0 {
		t.Errorf("JS of proportional weights = %g, want 0", d)
	}
	for _, c := range [][2][]float64{{{1}, {1, 2}}, {{0, 0}, {1, 2}}, {{-1, 2}, {1, 2}}} {
		if d := JensenShannon(c[0], c[1]); !math.IsNaN(d) {
			t.Errorf("JensenShannon(%v, %v) = %g, want NaN", c[0], c[1], d)
		}
	}
}

// numericColumn profiles xs as pkg/profile does for a reference.
func numericColumn(xs []float64) *profile.ColumnProfile {
	p := profile.NewProfiler([]profile.ColumnSpec{{Name: "x", Kind: profile.Numeric}})
	row := make([]string, 1)
	for _, x := range xs {
		row[0] = strconv.FormatFloat(x, 'g', -1, 64)
		p.Observe(row, nil)
	}
	return p.Profile().Columns[0]
}

// TestPSIIsProfilePSI: the same bins, epsilon and shares as pkg/profile,
// exact and from sketches.
func TestPSIIsProfilePSI(t *testing.T) {
	refSample, curSample := normal(50_000, 5, 0, 1), normal(40_000, 6, 0.3, 1.2)
	ref, cur := numericColumn(refSample), numericColumn(curSample)
	for _, bins := range []int{0, 5, 10, 20} {
		edges := profile.Edges(ref, bins)
		if got := SketchEdges(ref.Sketches.Quantiles, bins); !slicesEqual(got, edges) {
			t.Fatalf("bins %d: SketchEdges = %v, profile.Edges = %v", bins, got, edges)
		}
		want, err := profile.PSI(ref, cur, bins)
		if err != nil {
			t.Fatal(err)
		}
		if got := SketchPSI(ref.Sketches.Quantiles, cur.Sketches.Quantiles, edges); got != want {
			t.Errorf("bins %d: SketchPSI = %.15g, profile.PSI = %.15g", bins, got, want)
		}
		if got, want := PSI(refSample, curSample, edges), profile.ExactPSI(refSample, curSample, edges); got != want {
			t.Errorf("bins %d: PSI = %.15g, profile.ExactPSI = %.15g", bins, got, want)
		}
	}
}

func TestEdgesRule(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 8, 7, 10, 9}
	// Quantiles at 0.25, 0.5, 0.75 of 1..10: the smallest values whose
	// rank reaches 2.5, 5 and 7.5.
	if got := Edges(xs, 4); !slicesEqual(got, []float64{3, 5, 8}) {
		t.Errorf("Edges = %v, want [3 5 8]", got)
	}
	if got := Edges([]float64{1, 1, 1, 1, 2}, 4); !slicesEqual(got, []float64{1}) {
		t.Errorf("Edges with ties = %v, want [1]", got)
	}
	if Edges(nil, 10) != nil {
		t.Error("Edges of an empty sample should be nil")
	}
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCompareCategoricalCompleteIsExact(t *testing.T) {
	ref := Categories{Counts: map[string]int64{"a": 120, "b": 80, "c": 45, "d": 0}}
	cur := Categories{Counts: map[string]int64{"a": 100, "b": 95, "e": 35}}
	s := CompareCategorical(ref, cur)
	// Outcomes a b c d e; d is empty on both sides.
	r, c := []float64{120, 80, 45, 0, 0}, []float64{100, 95, 0, 0, 35}
	chi := ChiSquare(r, c)
	if s.Chi2 != chi.Stat || s.Chi2PValue != chi.PValue || s.Chi2DoF != 3 {
		t.Errorf("CompareCategorical chi2 = %g, %g, %d; want %+v with 3 dof", s.Chi2, s.Chi2PValue, s.Chi2DoF, chi)
	}
	if js := JensenShannon(r, c); s.JS != js {
		t.Errorf("CompareCategorical JS = %g, want %g", s.JS, js)
	}
	if s.RefCount != 245 || s.CurCount != 230 {
		t.Errorf("counts %d, %d; want 245, 230", s.RefCount, s.CurCount)
	}
	if s.PSI <= 0 {
		t.Errorf("PSI = %g, want > 0", s.PSI)
	}
	same := CompareCategorical(ref, ref)
	if same.Chi2 != 0 || same.Chi2PValue != 1 || same.JS != 0 || same.PSI != 0 {
		t.Errorf("a distribution against itself = %+v, want zeros and p 1", same)
	}
}

func TestCompareCategoricalFoldsIntoOther(t *testing.T) {
	// The reference tracks a and b; 30 of its rows are other values.
	ref := Categories{Counts: map[string]int64{"a": 50, "b": 20}, Other: 30}
	// The window is exact: z is not tracked by the reference, so its count
	// there is unknown and z joins "other".
	cur := Categories{Counts: map[string]int64{"a": 40, "b": 25, "z": 15, "q": 5}}
	r, c := alignCategories(ref, cur)
	if !slicesEqual(r, []float64{50, 20, 30}) || !slicesEqual(c, []float64{40, 25, 20}) {
		t.Errorf("aligned %v vs %v, want [50 20 30] vs [40 25 20]", r, c)
	}
	// Symmetric: a value the window does not list while the window has
	// unlisted rows folds on the reference side.
	r, c = alignCategories(Categories{Counts: map[string]int64{"a": 5, "b": 5}}, Categories{Counts: map[string]int64{"a": 3}, Other: 4})
	if !slicesEqual(r, []float64{5, 5}) || !slicesEqual(c, []float64{3, 4}) {
		t.Errorf("aligned %v vs %v, want [5 5] vs [3 4]", r, c)
	}
	if s := CompareCategorical(Categories{}, cur); !math.IsNaN(s.Chi2) || !math.IsNaN(s.JS) {
		t.Errorf("an empty reference gives %+v, want NaN", s)
	}
}

func TestCategoriesFromTopK(t *testing.T) {
	exact := sketch.NewTopK(8)
	for i, n := range []int{50, 30, 20} {
		for range n {
			exact.Add(string(rune('a' + i)))
		}
	}
	c := CategoriesFromTopK(exact)
	if c.Other != 0 || c.Counts["a"] != 50 || c.Counts["b"] != 30 || c.Counts["c"] != 20 || c.Total() != 100 {
		t.Errorf("exact top-k read as %+v", c)
	}
	// Past its capacity the sketch keeps lower bounds; the rest is Other.
	small := sketch.NewTopK(4)
	for i := range 1000 {
		small.Add(strconv.Itoa(i % 10))
	}
	c = CategoriesFromTopK(small)
	if c.Total() != 1000 || c.Other == 0 {
		t.Errorf("inexact top-k read as %+v, want total 1000 with some Other", c)
	}
}

func TestCompareNumericEmptyAndDefaults(t *testing.T) {
	ref, cur := sketch.NewKLL(sketch.DefaultKLLK), sketch.NewKLL(sketch.DefaultKLLK)
	s := CompareNumeric(ref, cur, nil)
	if !math.IsNaN(s.PSI) || !math.IsNaN(s.KS) || !math.IsNaN(s.KSPValue) || !math.IsNaN(s.Wasserstein) {
		t.Errorf("empty sketches give %+v, want NaN", s)
	}
	for _, x := range normal(5000, 7, 0, 1) {
		ref.Update(x)
	}
	for _, x := range normal(5000, 8, 1, 1) {
		cur.Update(x)
	}
	got, want := CompareNumeric(ref, cur, nil), CompareNumeric(ref, cur, SketchEdges(ref, DefaultPSIBins))
	if got != want {
		t.Errorf("nil edges gave %+v, default edges %+v", got, want)
	}
	if got.RefCount != 5000 || got.KS < 0.3 || got.KSPValue > 1e-10 || got.Wasserstein < 0.8 || got.PSI < 0.5 {
		t.Errorf("a shift by one standard deviation scored %+v", got)
	}
}

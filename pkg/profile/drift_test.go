package profile

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// numericProfile profiles xs as one numeric column "x".
func numericProfile(xs []float64) *ColumnProfile {
	p := NewProfiler([]ColumnSpec{{"x", Numeric}})
	row := make([]string, 1)
	for _, x := range xs {
		row[0] = strconv.FormatFloat(x, 'g', -1, 64)
		p.Observe(row, nil)
	}
	return p.Profile().Columns[0]
}

func categoricalProfile(kind ColumnKind, vs []string) *ColumnProfile {
	p := NewProfiler([]ColumnSpec{{"c", kind}})
	for _, v := range vs {
		p.Observe([]string{v}, nil)
	}
	return p.Profile().Columns[0]
}

func normalSample(n int, seed uint64, mean float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 5))
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = mean + rng.NormFloat64()
	}
	return xs
}

func TestExactPSIFormula(t *testing.T) {
	// Bins (-inf, 2], (2, 4], (4, inf): ref shares .5 .5 0, cur 0 .5 .5.
	got := ExactPSI([]float64{1, 2, 3, 4}, []float64{3, 4, 5, 6}, []float64{2, 4})
	want := 2 * (0.5 - PSIEpsilon) * math.Log(0.5/PSIEpsilon)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("ExactPSI = %.12f, want %.12f", got, want)
	}
	if !math.IsNaN(ExactPSI(nil, []float64{1}, nil)) {
		t.Error("an empty sample should give NaN")
	}
}

func TestPSIIdenticalDistributionsIsNearZero(t *testing.T) {
	ref := numericProfile(normalSample(100_000, 1, 0))
	if got, err := PSI(ref, ref, 10); err != nil || got != 0 {
		t.Errorf("PSI of a profile with itself = %g, %v; want 0", got, err)
	}
	cur := numericProfile(normalSample(100_000, 2, 0))
	got, err := PSI(ref, cur, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Sampling noise alone: about (bins-1)/n per side, far below 0.1.
	if got > 0.002 {
		t.Errorf("PSI of two samples of one distribution = %g", got)
	}
}

// psiTolerance bounds |PSI from sketches − PSI on raw samples| with the same
// edges: 0.01 + 5% of the exact value. Each bin's share from the sketches is
// off by at most twice the rank error; where the current distribution
// leaves a bin nearly empty that error moves ln(q/p) a lot, so large PSIs
// carry a relative error. Thresholds (0.1 to 0.25) sit in the absolute part.
func psiTolerance(exact float64) float64 { return 0.01 + 0.05*exact }

func TestPSIMatchesExactOnShiftedNormal(t *testing.T) {
	refSample := normalSample(200_000, 3, 0)
	ref := numericProfile(refSample)
	for _, shift := range []float64{0.1, 0.25, 0.5, 1, 2} {
		curSample := normalSample(200_000, 4, shift)
		cur := numericProfile(curSample)
		edges := Edges(ref, 10)
		if len(edges) != 9 {
			t.Fatalf("%d edges, want 9", len(edges))
		}
		exact := ExactPSI(refSample, curSample, edges)
		got, err := PSI(ref, cur, 10)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("shift %.2f: PSI %.5f, exact %.5f, difference %.5f", shift, got, exact, got-exact)
		if math.Abs(got-exact) > psiTolerance(exact) {
			t.Errorf("shift %.2f: PSI %.5f, exact on the samples %.5f", shift, got, exact)
		}
	}
}

func TestEdgesDropRepeats(t *testing.T) {
	xs := make([]float64, 10_000)
	for i := range xs {
		xs[i] = float64(i % 3) // three values, a third each
	}
	// Deciles 1-3 are 0, 4-6 are 1, 7-9 are 2.
	edges := Edges(numericProfile(xs), 10)
	if len(edges) != 3 || edges[0] != 0 || edges[1] != 1 || edges[2] != 2 {
		t.Errorf("edges %v, want [0 1 2]", edges)
	}
	if Edges(numericProfile(nil), 10) != nil {
		t.Error("an empty column should have no edges")
	}
	// One value: one edge, and PSI against anything else is large but finite.
	one := numericProfile([]float64{5, 5, 5})
	if e := Edges(one, 10); len(e) != 1 || e[0] != 5 {
		t.Errorf("edges of a constant column %v", e)
	}
	if got, err := PSI(one, numericProfile([]float64{6, 7}), 10); err != nil || math.IsInf(got, 0) || got < 1 {
		t.Errorf("PSI constant vs disjoint = %g, %v", got, err)
	}
}

func TestPSIRefusesWhatItCannotScore(t *testing.T) {
	num := numericProfile([]float64{1, 2, 3})
	empty := numericProfile(nil)
	cat := categoricalProfile(Categorical, []string{"a"})
	for name, tc := range map[string]struct {
		ref, cur *ColumnProfile
		want     string
	}{
		"categorical": {num, cat, "want numeric or timestamp"},
		"empty":       {num, empty, "has no values"},
	} {
		if _, err := PSI(tc.ref, tc.cur, 10); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestJensenShannon(t *testing.T) {
	abc := categoricalProfile(Categorical, strings.Split("a a a b b c", " "))
	if got, err := JensenShannon(abc, abc); err != nil || got != 0 {
		t.Errorf("identical: %g, %v", got, err)
	}
	xyz := categoricalProfile(Categorical, strings.Split("x y z z", " "))
	if got, _ := JensenShannon(abc, xyz); math.Abs(got-1) > 1e-12 {
		t.Errorf("disjoint: %g, want 1", got)
	}
	// Exact below the top-k capacity: the divergence of the true frequencies.
	other := categoricalProfile(Categorical, strings.Split("a b b b c d", " "))
	got, err := JensenShannon(abc, other)
	want := JSDivergence([]float64{3, 2, 1, 0}, []float64{1, 3, 1, 1})
	if err != nil || math.Abs(got-want) > 1e-12 || got <= 0 || got >= 1 {
		t.Errorf("JS = %g, %v; want %g", got, err, want)
	}
	// The same number by hand: m = (p+q)/2 over a, b, c, d.
	p, q := []float64{3. / 6, 2. / 6, 1. / 6, 0}, []float64{1. / 6, 3. / 6, 1. / 6, 1. / 6}
	var byHand float64
	for i := range p {
		m := (p[i] + q[i]) / 2
		if p[i] > 0 {
			byHand += p[i] * math.Log2(p[i]/m) / 2
		}
		byHand += q[i] * math.Log2(q[i]/m) / 2
	}
	if math.Abs(want-byHand) > 1e-12 {
		t.Errorf("JSDivergence = %g, by hand %g", want, byHand)
	}
	yes := categoricalProfile(Bool, strings.Split("true true false", " "))
	no := categoricalProfile(Bool, strings.Split("false false false", " "))
	if got, err := JensenShannon(yes, no); err != nil || got <= 0 || got >= 1 {
		t.Errorf("bool JS %g, %v", got, err)
	}
	if _, err := JensenShannon(abc, yes); err == nil {
		t.Error("categorical against bool scored")
	}
	if _, err := JensenShannon(abc, numericProfile([]float64{1})); err == nil {
		t.Error("categorical against numeric scored")
	}
}

func TestJensenShannonOnHighCardinality(t *testing.T) {
	// Far more values than counters: a few heavy hitters plus a long tail.
	gen := func(seed uint64, heavy string) []string {
		rng := rand.New(rand.NewPCG(seed, 1))
		vs := make([]string, 100_000)
		for i := range vs {
			if rng.IntN(4) == 0 {
				vs[i] = heavy + strconv.Itoa(rng.IntN(5))
			} else {
				vs[i] = "id-" + strconv.Itoa(rng.IntN(1_000_000))
			}
		}
		return vs
	}
	ref := categoricalProfile(Categorical, gen(1, "h"))
	same := categoricalProfile(Categorical, gen(2, "h"))
	moved := categoricalProfile(Categorical, gen(3, "g"))
	if ref.Sketches.TopK.Exact() {
		t.Fatal("the sketch should have purged")
	}
	s, err := JensenShannon(ref, same)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := JensenShannon(ref, moved)
	t.Logf("JS same distribution %.4f, heavy hitters replaced %.4f", s, d)
	// Exact JS for "heavy hitters replaced" is 0.25 (a quarter of the mass
	// moves to new values; the id tail is almost disjoint either way).
	if s > 0.01 || d < 0.2 || d > 1 {
		t.Errorf("JS same %g (want ≈0), moved %g (want ≈0.25)", s, d)
	}
}

func TestCompare(t *testing.T) {
	refP := NewProfiler([]ColumnSpec{{"n", Numeric}, {"c", Categorical}, {"gone", Numeric}, {"k", Numeric}, {"empty", Numeric}})
	curP := NewProfiler([]ColumnSpec{{"c", Categorical}, {"n", Numeric}, {"k", Categorical}, {"new", Bool}, {"empty", Numeric}})
	for i := range 1000 {
		v := strconv.Itoa(i % 10)
		refP.Observe([]string{v, v, v, v, ""}, []bool{false, false, false, false, true})
		curP.Observe([]string{v, strconv.Itoa(i%10 + 5), v, "true", ""}, []bool{false, false, false, false, true})
	}
	got := Compare(refP.Profile(), curP.Profile())
	byCol := map[string]ColumnDrift{}
	var order []string
	for _, d := range got {
		byCol[d.Column] = d
		order = append(order, d.Column)
	}
	if strings.Join(order, ",") != "n,c,gone,k,empty,new" {
		t.Errorf("order %v", order)
	}
	if d := byCol["n"]; d.Method != MethodPSI || d.Score < 1 || d.Note != "" {
		t.Errorf("n (shifted by 5): %+v", d)
	}
	if d := byCol["c"]; d.Method != MethodJS || d.Score != 0 || d.Note != "" {
		t.Errorf("c (unchanged): %+v", d)
	}
	for col, note := range map[string]string{
		"gone":  "missing from the current",
		"k":     "kind changed from numeric to categorical",
		"empty": "has no values",
		"new":   "missing from the reference",
	} {
		if d := byCol[col]; d.Method != "" || !strings.Contains(d.Note, note) {
			t.Errorf("%s: %+v, want note %q", col, d, note)
		}
	}
}

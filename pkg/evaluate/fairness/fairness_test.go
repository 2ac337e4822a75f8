package fairness

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// rows builds an Input from per-group (truth, decision) lists.
func rows(groups ...any) Input {
	var in Input
	for i := 0; i < len(groups); i += 3 {
		g, ys, ps := groups[i].(string), groups[i+1].([]int), groups[i+2].([]int)
		for j := range ys {
			in.Y = append(in.Y, ys[j])
			in.Pred = append(in.Pred, ps[j])
			in.Groups = append(in.Groups, g)
		}
	}
	return in
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func mustEvaluate(t *testing.T, in Input, opt Options) *Report {
	t.Helper()
	r, err := Evaluate("sex", in, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTwoGroupsByHand(t *testing.T) {
	in := rows(
		"b", []int{1, 1, 0, 0, 0}, []int{1, 1, 1, 0, 0}, // SR .6, TPR 1, FPR 1/3, precision 2/3
		"a", []int{1, 1, 0, 0}, []int{1, 0, 1, 0}, // SR .5, TPR .5, FPR .5, precision .5
	)
	r := mustEvaluate(t, in, Options{MinGroupSize: 1})
	if len(r.Groups) != 2 || r.Groups[0].Value != "a" || r.Groups[1].Value != "b" {
		t.Fatalf("groups = %+v, want a then b", r.Groups)
	}
	a, b := r.Groups[0], r.Groups[1]
	if a.Size != 4 || b.Size != 5 || a.Positives != 2 || b.Positives != 2 {
		t.Errorf("sizes/positives = %d/%d %d/%d, want 4/2 5/2", a.Size, a.Positives, b.Size, b.Positives)
	}
	near(t, "a.SelectionRate", a.SelectionRate, 0.5)
	near(t, "a.TPR", a.TPR, 0.5)
	near(t, "a.FPR", a.FPR, 0.5)
	near(t, "a.Precision", a.Precision, 0.5)
	near(t, "b.SelectionRate", b.SelectionRate, 0.6)
	near(t, "b.TPR", b.TPR, 1)
	near(t, "b.FPR", b.FPR, 1.0/3)
	near(t, "b.Precision", b.Precision, 2.0/3)
	near(t, "dp difference", r.DemographicParityDifference.Value, 0.1)
	near(t, "dp ratio", r.DemographicParityRatio.Value, 0.5/0.6)
	near(t, "equal opportunity", r.EqualOpportunityDifference.Value, 0.5)
	near(t, "equalized odds", r.EqualizedOddsDifference.Value, 0.5) // TPR diff .5 > FPR diff 1/6
	if r.Note != "" {
		t.Errorf("note = %q, want none", r.Note)
	}
	v := r.Values()
	if len(v) != 4 || v[NameEqualizedOddsDifference] != r.EqualizedOddsDifference.Value ||
		v[NameDemographicParityRatio] != r.DemographicParityRatio.Value {
		t.Errorf("Values() = %v", v)
	}
}

func TestThreeGroupsByHand(t *testing.T) {
	in := rows(
		"x", []int{1, 0, 0, 0}, []int{1, 1, 1, 0}, // SR .75, TPR 1, FPR 2/3
		"y", []int{1, 1, 0, 0}, []int{0, 1, 0, 0}, // SR .25, TPR .5, FPR 0
		"z", []int{1, 0}, []int{1, 0}, // SR .5, TPR 1, FPR 0
	)
	r := mustEvaluate(t, in, Options{MinGroupSize: 1})
	near(t, "dp difference", r.DemographicParityDifference.Value, 0.5)
	near(t, "dp ratio", r.DemographicParityRatio.Value, 1.0/3)
	near(t, "equal opportunity", r.EqualOpportunityDifference.Value, 0.5)
	near(t, "equalized odds", r.EqualizedOddsDifference.Value, 2.0/3) // the FPR difference wins
}

func TestTooSmallGroupReportedNotCompared(t *testing.T) {
	in := rows(
		"x", []int{1, 0, 0, 0}, []int{1, 1, 1, 0},
		"y", []int{1, 1, 0, 0}, []int{0, 1, 0, 0},
		"tiny", []int{1, 0}, []int{0, 0}, // SR 0: would make the ratio 0
	)
	r := mustEvaluate(t, in, Options{MinGroupSize: 3})
	var tiny Group
	for _, g := range r.Groups {
		if g.Value == "tiny" {
			tiny = g
		} else if g.TooSmall {
			t.Errorf("group %s marked too small", g.Value)
		}
	}
	if !tiny.TooSmall || tiny.Size != 2 {
		t.Fatalf("tiny = %+v, want reported as too small with 2 rows", tiny)
	}
	near(t, "dp ratio", r.DemographicParityRatio.Value, 0.25/0.75)
	near(t, "dp difference", r.DemographicParityDifference.Value, 0.5)
	if !strings.Contains(r.Note, "tiny") {
		t.Errorf("note %q does not name the small group", r.Note)
	}
}

func TestGroupWithoutPositives(t *testing.T) {
	in := rows(
		"x", []int{1, 0, 0, 0}, []int{1, 1, 1, 0}, // TPR 1, FPR 2/3
		"y", []int{1, 1, 0, 0}, []int{0, 1, 0, 0}, // TPR .5, FPR 0
		"none", []int{0, 0, 0}, []int{0, 0, 0}, // no positives, no positive decisions
	)
	r := mustEvaluate(t, in, Options{MinGroupSize: 1})
	none := r.Groups[0]
	if none.Value != "none" || !slices.Equal(none.Undefined, []string{RateTPR, RatePrecision}) {
		t.Fatalf("group %+v, want none with tpr and precision undefined", none)
	}
	// Counted as 0 (fairlearn's way) the TPR difference would be 1.
	near(t, "equal opportunity", r.EqualOpportunityDifference.Value, 0.5)
	near(t, "equalized odds", r.EqualizedOddsDifference.Value, 2.0/3)
	near(t, "dp difference", r.DemographicParityDifference.Value, 0.75)
	near(t, "dp ratio", r.DemographicParityRatio.Value, 0)
}

func TestFewerThanTwoGroups(t *testing.T) {
	for name, tc := range map[string]struct {
		in  Input
		opt Options
	}{
		"one group":       {rows("x", []int{1, 0}, []int{1, 1}), Options{MinGroupSize: 1}},
		"one large group": {rows("x", []int{1, 0, 1}, []int{1, 1, 0}, "y", []int{1}, []int{1}), Options{MinGroupSize: 2}},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustEvaluate(t, tc.in, tc.opt)
			if r.DemographicParityDifference != nil || r.DemographicParityRatio != nil ||
				r.EqualOpportunityDifference != nil || r.EqualizedOddsDifference != nil {
				t.Errorf("differences set: %+v", r)
			}
			if !strings.Contains(r.Note, "no differences") {
				t.Errorf("note = %q", r.Note)
			}
			if v := r.Values(); len(v) != 0 {
				t.Errorf("Values() = %v, want empty", v)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

func TestOnlyOneGroupHasPositives(t *testing.T) {
	in := rows(
		"x", []int{1, 0, 0}, []int{1, 1, 0},
		"y", []int{0, 0, 0}, []int{0, 1, 0},
	)
	r := mustEvaluate(t, in, Options{MinGroupSize: 1})
	if r.EqualOpportunityDifference != nil || r.EqualizedOddsDifference != nil {
		t.Errorf("TPR-based differences set with one group having positives")
	}
	if r.DemographicParityDifference == nil || !strings.Contains(r.Note, "equal opportunity") {
		t.Errorf("dp = %v, note = %q", r.DemographicParityDifference, r.Note)
	}
	if _, ok := r.Values()[NameEqualOpportunityDifference]; ok {
		t.Errorf("Values() has an undefined difference")
	}
}

func TestMissingValuesFormAGroup(t *testing.T) {
	in := rows("", []int{1, 0}, []int{1, 0}, "f", []int{1, 0}, []int{0, 0})
	r := mustEvaluate(t, in, Options{MinGroupSize: 1})
	if r.Groups[0].Value != MissingGroup || r.Groups[0].Size != 2 {
		t.Errorf("groups = %+v, want %s first", r.Groups, MissingGroup)
	}
	near(t, "dp difference", r.DemographicParityDifference.Value, 0.5)
}

func TestBadInput(t *testing.T) {
	good := rows("x", []int{1, 0}, []int{1, 0})
	for name, tc := range map[string]struct {
		attr string
		in   Input
		opt  Options
		want string
	}{
		"no attribute":     {"", good, Options{}, "attribute"},
		"no rows":          {"sex", Input{}, Options{}, "no rows"},
		"lengths":          {"sex", Input{Y: []int{1, 0}, Pred: []int{1}, Groups: []string{"a", "b"}}, Options{}, "lengths differ"},
		"truth not binary": {"sex", Input{Y: []int{2}, Pred: []int{1}, Groups: []string{"a"}}, Options{}, "row 0"},
		"pred not binary":  {"sex", Input{Y: []int{1}, Pred: []int{-1}, Groups: []string{"a"}}, Options{}, "row 0"},
		"confidence":       {"sex", good, Options{Confidence: 1}, "confidence"},
		"negative":         {"sex", good, Options{Bootstrap: -1}, "negative"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Evaluate(tc.attr, tc.in, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// reference recomputes the point statistics row by row with maps, apart from
// Evaluate's confusion-matrix code path.
func reference(in Input, minSize int) map[string]float64 {
	n := map[string]float64{}
	sel := map[string]float64{}
	pos := map[string]float64{}
	neg := map[string]float64{}
	hit := map[string]float64{}      // sum of y*pred
	falsePos := map[string]float64{} // sum of (1-y)*pred
	for i := range in.Y {
		g := in.Groups[i]
		if g == "" {
			g = MissingGroup
		}
		y, p := float64(in.Y[i]), float64(in.Pred[i])
		n[g]++
		sel[g] += p
		pos[g] += y
		neg[g] += 1 - y
		hit[g] += y * p
		falsePos[g] += (1 - y) * p
	}
	var srs, tprs, fprs []float64
	for g := range n {
		if n[g] < float64(minSize) {
			continue
		}
		srs = append(srs, sel[g]/n[g])
		if pos[g] > 0 {
			tprs = append(tprs, hit[g]/pos[g])
		}
		if neg[g] > 0 {
			fprs = append(fprs, falsePos[g]/neg[g])
		}
	}
	spread := func(v []float64) float64 {
		if len(v) < 2 {
			return math.NaN()
		}
		slices.Sort(v)
		return v[len(v)-1] - v[0]
	}
	out := map[string]float64{}
	if len(srs) < 2 {
		return out
	}
	slices.Sort(srs)
	out[NameDemographicParityDifference] = spread(srs)
	if srs[len(srs)-1] > 0 {
		out[NameDemographicParityRatio] = srs[0] / srs[len(srs)-1]
	}
	if d := spread(tprs); !math.IsNaN(d) {
		out[NameEqualOpportunityDifference] = d
		if f := spread(fprs); !math.IsNaN(f) {
			out[NameEqualizedOddsDifference] = math.Max(d, f)
		}
	}
	return out
}

func TestMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	complete := 0
	for trial := range 200 {
		var in Input
		groups := 1 + rng.IntN(5)
		for g := range groups {
			size := 1 + rng.IntN(60)
			base, sel := rng.Float64(), rng.Float64()
			if rng.IntN(5) == 0 {
				base = 0 // a group without positives
			}
			if rng.IntN(8) == 0 {
				sel = 0 // a group without positive decisions
			}
			name := fmt.Sprint("g", g)
			if g == 0 && rng.IntN(3) == 0 {
				name = ""
			}
			for range size {
				in.Y = append(in.Y, b2i(rng.Float64() < base))
				in.Pred = append(in.Pred, b2i(rng.Float64() < sel))
				in.Groups = append(in.Groups, name)
			}
		}
		minSize := 1 + rng.IntN(30)
		r, err := Evaluate("a", in, Options{MinGroupSize: minSize, Bootstrap: 50, Seed: uint64(trial)})
		if err != nil {
			t.Fatal(err)
		}
		got, want := r.Values(), reference(in, minSize)
		if len(want) == 4 {
			complete++
		}
		if len(got) != len(want) {
			t.Fatalf("trial %d: values %v, reference %v", trial, got, want)
		}
		for k, w := range want {
			if math.Abs(got[k]-w) > 1e-12 {
				t.Errorf("trial %d: %s = %v, reference %v", trial, k, got[k], w)
			}
		}
	}
	if complete < 50 {
		t.Errorf("only %d of 200 trials had all four differences defined", complete)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// synthetic is a holdout where group "b" is selected less often than "a".
func synthetic(n int, seed uint64) Input {
	rng := rand.New(rand.NewPCG(seed, 9))
	in := Input{Y: make([]int, n), Pred: make([]int, n), Groups: make([]string, n)}
	for i := range n {
		g, sel := "a", 0.5
		if rng.IntN(3) == 0 {
			g, sel = "b", 0.4
		}
		y := b2i(rng.Float64() < 0.3)
		p := y
		if rng.Float64() < 0.4 {
			p = b2i(rng.Float64() < sel)
		}
		in.Y[i], in.Pred[i], in.Groups[i] = y, p, g
	}
	return in
}

func TestIntervalsDeterministic(t *testing.T) {
	in := synthetic(3000, 1)
	opt := Options{Bootstrap: 200, Seed: 42}
	first := mustEvaluate(t, in, opt)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	again := mustEvaluate(t, in, opt)
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Errorf("same seed, different report:\n%s\n%s", a, b)
	}
	opt.Seed = 43
	other := mustEvaluate(t, in, opt)
	if *other.DemographicParityDifference == *first.DemographicParityDifference {
		t.Errorf("seeds 42 and 43 gave the same interval %+v", *other.DemographicParityDifference)
	}
}

func TestIntervalOnLargeSample(t *testing.T) {
	in := synthetic(30000, 2)
	r := mustEvaluate(t, in, Options{Seed: 7})
	for name, d := range map[string]*Difference{
		"dp difference": r.DemographicParityDifference, "dp ratio": r.DemographicParityRatio,
		"equal opportunity": r.EqualOpportunityDifference, "equalized odds": r.EqualizedOddsDifference,
	} {
		if d == nil || !(d.Low <= d.Value && d.Value <= d.High && d.Low < d.High) || d.Resamples != 1000 {
			t.Errorf("%s = %+v, want Low <= Value <= High over 1000 resamples", name, d)
		}
	}
	// The bootstrap width of a difference of two proportions should match the
	// normal approximation, 2*1.96*sqrt(p1(1-p1)/n1 + p2(1-p2)/n2).
	a, b := r.Groups[0], r.Groups[1]
	se := math.Sqrt(a.SelectionRate*(1-a.SelectionRate)/float64(a.Size) + b.SelectionRate*(1-b.SelectionRate)/float64(b.Size))
	width := r.DemographicParityDifference.High - r.DemographicParityDifference.Low
	if ratio := width / (2 * 1.959964 * se); ratio < 0.85 || ratio > 1.15 {
		t.Errorf("interval width %v is %.2f times the normal approximation's", width, ratio)
	}
}

func TestReportJSON(t *testing.T) {
	r := mustEvaluate(t, synthetic(500, 3), Options{Bootstrap: 20})
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.DemographicParityDifference.Value != r.DemographicParityDifference.Value || len(back.Groups) != 2 {
		t.Errorf("round trip lost data: %s", raw)
	}
}

// BenchmarkEvaluate is 1e5 rows in 3 groups with 1000 resamples.
func BenchmarkEvaluate(b *testing.B) {
	in := synthetic(100_000, 4)
	for i := range in.Groups {
		if i%10 == 0 {
			in.Groups[i] = "c"
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Evaluate("sex", in, Options{Bootstrap: 1000}); err != nil {
			b.Fatal(err)
		}
	}
}

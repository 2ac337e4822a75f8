package drift

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// python is the interpreter the scipy equivalence test runs. CI installs
// python3-sklearn, which pulls in python3-scipy and python3-numpy.
const python = "/usr/bin/python3"

// requireScipy skips the test when python lacks scipy or numpy.
func requireScipy(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import scipy, numpy").CombinedOutput(); err != nil {
		t.Skipf("scipy equivalence test needs %s with scipy and numpy (apt-get install python3-scipy): %v: %s", python, err, out)
	}
}

type ksCase struct {
	Name string    `json:"name"`
	A    []float64 `json:"a"`
	B    []float64 `json:"b"`
}

type pairCase struct {
	Name string    `json:"name"`
	U    []float64 `json:"u"`
	V    []float64 `json:"v"`
}

type psiCase struct {
	Name  string    `json:"name"`
	Ref   []float64 `json:"ref"`
	Cur   []float64 `json:"cur"`
	Bins  int       `json:"bins"`
	Edges []float64 `json:"edges"` // Go's Edges(Ref, Bins), so both sides bin alike
}

type countCase struct {
	Name string    `json:"name"`
	Ref  []float64 `json:"ref"`
	Cur  []float64 `json:"cur"`
}

type distCase struct {
	Name string    `json:"name"`
	P    []float64 `json:"p"`
	Q    []float64 `json:"q"`
}

type kstwoCase struct {
	N int64   `json:"n"`
	X float64 `json:"x"`
}

type chi2sfCase struct {
	X   float64 `json:"x"`
	DoF float64 `json:"dof"`
}

type scipyCases struct {
	PSIEpsilon  float64      `json:"psiEpsilon"`
	KS          []ksCase     `json:"ks"`
	Wasserstein []pairCase   `json:"wasserstein"`
	PSI         []psiCase    `json:"psi"`
	Chi2        []countCase  `json:"chi2"`
	JS          []distCase   `json:"js"`
	KSTwo       []kstwoCase  `json:"kstwo"`
	Chi2SF      []chi2sfCase `json:"chi2sf"`
}

type scipyKS struct {
	D float64 `json:"d"`
	P float64 `json:"p"`
}

type scipyResults struct {
	Version string               `json:"scipy"`
	KS      []map[string]scipyKS `json:"ks"`
	W       []float64            `json:"wasserstein"`
	PSI     []struct {
		Edges []float64 `json:"edges"`
		PSI   float64   `json:"psi"`
	} `json:"psi"`
	Chi2 []struct {
		Stat float64 `json:"stat"`
		P    float64 `json:"p"`
		DoF  int     `json:"dof"`
	} `json:"chi2"`
	JS     []float64 `json:"js"`
	KSTwo  []float64 `json:"kstwo"`
	Chi2SF []float64 `json:"chi2sf"`
}

func buildScipyCases() scipyCases {
	c := scipyCases{PSIEpsilon: PSIEpsilon}
	ks := func(name string, a, b []float64) { c.KS = append(c.KS, ksCase{name, a, b}) }
	ks("small normal 5 vs shifted 7", normal(5, 1, 0, 1), normal(7, 2, 1, 1))
	ks("normal 30 vs 30", normal(30, 3, 0, 1), normal(30, 4, 0.3, 1))
	ks("normal 100 vs shifted 73", normal(100, 5, 0, 1), normal(73, 6, 0.5, 1))
	ks("uniform 1000 vs 800", uniform(1000, 7, 0, 1), uniform(800, 8, 0.05, 1.05))
	ks("discrete 5 values, 200 vs 150", discrete(200, 9, 5, 0), discrete(150, 10, 5, 1))
	ks("heavy ties 3 values, 5000 vs 3000", discrete(5000, 11, 3, 0), discrete(3000, 12, 3, 2))
	ks("normal 2000 vs 2000 shifted 0.1", normal(2000, 13, 0, 1), normal(2000, 14, 0.1, 1))
	ks("exponential 500 vs lognormal 600", exponential(500, 15), lognormal(600, 16))
	ks("one value vs three", []float64{0.5}, []float64{0.1, 0.7, 0.9})
	same := normal(400, 17, 0, 1)
	ks("identical samples", same, same)
	ks("normal 20000 vs 15000 shifted 0.02 (auto: asymp)", normal(20000, 18, 0, 1), normal(15000, 19, 0.02, 1))
	ks("normal 12000 vs 12000 shifted 0.05", normal(12000, 20, 0, 1), normal(12000, 21, 0.05, 1))
	ks("normal 9000 vs 10000 same distribution", normal(9000, 22, 0, 1), normal(10000, 23, 0, 1))

	w := func(name string, u, v []float64) { c.Wasserstein = append(c.Wasserstein, pairCase{name, u, v}) }
	w("normal vs shifted", normal(3000, 30, 0, 1), normal(2000, 31, 0.5, 1))
	w("uniform vs normal, large scale", uniform(5000, 32, -1000, 1000), normal(4000, 33, 0, 500))
	w("heavy ties", discrete(1000, 34, 4, 0), discrete(700, 35, 4, 1))
	w("small", []float64{0, 1, 3}, []float64{5, 6, 8})
	w("identical", same, same)

	p := func(name string, ref, cur []float64, bins int) {
		c.PSI = append(c.PSI, psiCase{name, ref, cur, bins, Edges(ref, bins)})
	}
	p("normal vs shifted 0.25", normal(10000, 40, 0, 1), normal(8000, 41, 0.25, 1), 10)
	p("normal vs shifted 2 (empty bins)", normal(10000, 42, 0, 1), normal(10000, 43, 2, 1), 10)
	p("uniform vs uniform", uniform(7777, 44, 0, 1), uniform(5000, 45, 0, 1), 10)
	p("heavy ties (edges deduplicated)", discrete(5000, 46, 4, 0), discrete(4000, 47, 4, 1), 10)
	p("normal vs exponential, 20 bins", normal(3333, 48, 1, 1), exponential(3000, 49), 20)
	p("small sample, 5 bins", normal(37, 50, 0, 1), normal(23, 51, 0.5, 1), 5)

	k := func(name string, ref, cur []float64) {
		c.Chi2 = append(c.Chi2, countCase{name, ref, cur})
		c.JS = append(c.JS, distCase{name, ref, cur})
	}
	k("2x5", []float64{120, 80, 45, 30, 25}, []float64{100, 95, 50, 20, 35})
	k("zero cells", []float64{50, 0, 30, 20}, []float64{0, 40, 35, 25})
	k("category absent on both sides", []float64{50, 0, 30}, []float64{45, 0, 40})
	k("2x2 Yates", []float64{30, 10}, []float64{20, 25})
	k("2x2 Yates, differences under 0.5", []float64{10, 10}, []float64{10, 11})
	k("2x2 equal", []float64{7, 3}, []float64{14, 6})
	k("large counts, small drift", []float64{500000, 300000, 200000}, []float64{498000, 303000, 199000})
	k("300 categories", zipfCounts(300, 60, 100000), zipfCounts(300, 61, 50000))
	k("weights", []float64{0.5, 1.25, 3}, []float64{2, 0.75, 1})
	c.JS = append(c.JS,
		distCase{"probabilities with zeros", []float64{0.5, 0.5, 0, 0}, []float64{0, 0.25, 0.25, 0.5}},
		distCase{"disjoint", []float64{1, 0}, []float64{0, 1}},
		distCase{"identical", []float64{0.2, 0.3, 0.5}, []float64{2, 3, 5}})

	// kstwo.sf over every regime of the algorithm (see kolmogorovSF). The
	// one-sided sum (2.2 ≤ n·x² < 370) takes scipy seconds a call for n in
	// the hundreds of thousands, so there only a few points are checked.
	for _, n := range []int64{1, 2, 3, 5, 10, 20, 50, 100, 140, 141, 200, 1000, 5000, 10000, 50000, 50001, 100000, 100001, 500000, 1000000, 1000001, 3000000} {
		nf := float64(n)
		xs := []float64{0.3 / nf, 0.6 / nf, 0.9 / nf, 1 / nf, 1.5 / nf, 2.5 / nf, 0.2, 0.45, 0.5, 0.7, 1 - 1.5/nf, 1 - 0.5/nf}
		for _, nxx := range []float64{0.3, 0.5, 0.75, 1, 1.5, 2, 2.2, 2.5, 3, 4, 4.5, 8, 17, 20, 100, 300, 400} {
			slowSum := n > 50000 && n <= 1000000 && nxx >= 2.2 && nxx < 370
			if slowSum && !((n == 500000 || n == 50001) && (nxx == 2.2 || nxx == 20)) && !(n == 100000 && nxx == 2.2) {
				continue
			}
			xs = append(xs, math.Sqrt(nxx/nf))
		}
		for _, x := range xs {
			if x > 0 && x < 1 {
				c.KSTwo = append(c.KSTwo, kstwoCase{n, x})
			}
		}
	}
	for _, dof := range []float64{1, 2, 3, 5, 10, 50, 100, 299, 1000, 10000} {
		for _, r := range []float64{1e-3, 0.01, 0.1, 0.5, 0.9, 1, 1.1, 2, 5, 10} {
			c.Chi2SF = append(c.Chi2SF, chi2sfCase{dof * r, dof})
		}
	}
	return c
}

// TestMatchesScipy runs scipy and numpy on the same data and holds every
// statistic to 1e-6: absolute for D, p-values, PSI and JS, relative to
// max(1, |value|) for the unbounded Wasserstein distance and chi-square
// statistic.
func TestMatchesScipy(t *testing.T) {
	requireScipy(t)
	cases := buildScipyCases()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "cases.json"), filepath.Join(dir, "scipy.json")
	data, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(python, filepath.Join("testdata", "scipy_drift.py"), in, out).CombinedOutput(); err != nil {
		t.Fatalf("scipy_drift.py: %v\n%s", err, b)
	}
	data, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var want scipyResults
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	t.Logf("scipy %s", want.Version)

	worst := map[string]float64{}
	check := func(stat, name string, got, exp float64, relative bool) {
		t.Helper()
		diff := math.Abs(got - exp)
		tol := 1e-6
		if relative {
			diff /= max(1, math.Abs(exp))
		}
		if math.IsNaN(got) != math.IsNaN(exp) || diff > tol {
			t.Errorf("%s %s: got %.15g, scipy %.15g", stat, name, got, exp)
		}
		if !math.IsNaN(diff) {
			worst[stat] = max(worst[stat], diff)
		}
	}

	for i, c := range cases.KS {
		for _, m := range []KSMethod{KSExact, KSAsymp, KSAuto} {
			got, exp := KS(c.A, c.B, m), want.KS[i][m.String()]
			name := fmt.Sprintf("%s (%s)", c.Name, m)
			check("KS D", name, got.D, exp.D, false)
			check("KS p", name, got.PValue, exp.P, false)
		}
	}
	for i, c := range cases.Wasserstein {
		check("Wasserstein", c.Name, Wasserstein(c.U, c.V), want.W[i], true)
	}
	for i, c := range cases.PSI {
		if fmt.Sprint(c.Edges) != fmt.Sprint(want.PSI[i].Edges) {
			t.Errorf("Edges %s: got %v, numpy inverted_cdf %v", c.Name, c.Edges, want.PSI[i].Edges)
		}
		check("PSI", c.Name, PSI(c.Ref, c.Cur, c.Edges), want.PSI[i].PSI, false)
	}
	for i, c := range cases.Chi2 {
		got, exp := ChiSquare(c.Ref, c.Cur), want.Chi2[i]
		check("chi2 stat", c.Name, got.Stat, exp.Stat, true)
		check("chi2 p", c.Name, got.PValue, exp.P, false)
		if got.DoF != exp.DoF {
			t.Errorf("chi2 dof %s: got %d, scipy %d", c.Name, got.DoF, exp.DoF)
		}
	}
	for i, c := range cases.JS {
		check("JS", c.Name, JensenShannon(c.P, c.Q), want.JS[i], false)
	}
	for i, c := range cases.KSTwo {
		check("kstwo.sf", fmt.Sprintf("n=%d x=%g", c.N, c.X), kolmogorovSF(c.N, c.X), want.KSTwo[i], false)
	}
	for i, c := range cases.Chi2SF {
		got, exp := ChiSquareSF(c.X, c.DoF), want.Chi2SF[i]
		check("chi2.sf", fmt.Sprintf("x=%g dof=%g", c.X, c.DoF), got, exp, false)
		if exp > 1e-300 {
			worst["chi2.sf relative"] = max(worst["chi2.sf relative"], math.Abs(got-exp)/exp)
		}
	}
	for stat, d := range worst {
		t.Logf("largest difference from scipy, %s: %.3g", stat, d)
	}
}

package drift

import (
	"fmt"
	"math"
	"testing"

	"github.com/gyreml/gyre/pkg/sketch"
)

// TestSketchErrorBounds compares the sketch values with the exact ones on
// the same samples, with pkg/profile's k, and holds them to the stated
// bounds: |ΔD| ≤ KSErrorBound, |ΔW| ≤ WassersteinErrorBound,
// |ΔPSI| ≤ 0.01 + 5% of the exact PSI (pkg/profile's tolerance), and
// |ΔJS| ≤ 0.02 over the PSI bins. The samples are large enough that the
// sketches compact many times.
func TestSketchErrorBounds(t *testing.T) {
	const nRef, nCur = 200_000, 100_000
	type pair struct {
		name     string
		ref, cur []float64
		merged   bool // build cur from four merged part-sketches
	}
	pairs := []pair{
		{"normal vs same normal", normal(nRef, 100, 0, 1), normal(nCur, 101, 0, 1), false},
		{"normal vs shifted 0.1", normal(nRef, 102, 0, 1), normal(nCur, 103, 0.1, 1), false},
		{"normal vs shifted 0.5, wider", normal(nRef, 104, 0, 1), normal(nCur, 105, 0.5, 1.5), true},
		{"uniform vs uniform shifted", uniform(nRef, 106, 0, 1), uniform(nCur, 107, 0.05, 1.05), false},
		{"pareto(1.1) vs pareto(1.5): heavy tails", pareto(nRef, 108, 1.1), pareto(nCur, 109, 1.5), false},
		{"exponential vs lognormal", exponential(nRef, 110), lognormal(nCur, 111), true},
		{"ten values vs shifted weights (ties)", discrete(nRef, 112, 10, 0), discrete(nCur, 113, 10, 2), false},
		{"large scale normal", scale(normal(nRef, 114, 0, 1), 1e4), scale(normal(nCur, 115, 0.2, 1), 1e4), false},
	}
	var worstD, worstW float64 // observed error / bound
	for _, p := range pairs {
		ref := kll(p.ref)
		cur := kll(p.cur)
		if p.merged {
			cur = sketch.NewKLL(sketch.DefaultKLLK)
			for i := range 4 {
				if err := cur.Merge(kll(p.cur[i*nCur/4 : (i+1)*nCur/4])); err != nil {
					t.Fatal(err)
				}
			}
		}
		edges := SketchEdges(ref, DefaultPSIBins)
		got := CompareNumeric(ref, cur, edges)
		exactKS := KS(p.ref, p.cur, KSAsymp)
		exactW := Wasserstein(p.ref, p.cur)
		exactPSI := PSI(p.ref, p.cur, edges)
		exactJS := JensenShannon(BinCounts(p.ref, edges), BinCounts(p.cur, edges))
		exactChi2 := ChiSquare(BinCounts(p.ref, edges), BinCounts(p.cur, edges))

		dErr, dBound := math.Abs(got.KS-exactKS.D), KSErrorBound(ref, cur)
		wErr, wBound := math.Abs(got.Wasserstein-exactW), WassersteinErrorBound(ref, cur)
		psiErr, psiBound := math.Abs(got.PSI-exactPSI), 0.01+0.05*exactPSI
		if dErr > dBound {
			t.Errorf("%s: KS D sketch %.5f, exact %.5f: error %.5f over the bound %.5f", p.name, got.KS, exactKS.D, dErr, dBound)
		}
		if wErr > wBound {
			t.Errorf("%s: Wasserstein sketch %.6g, exact %.6g: error %.3g over the bound %.3g", p.name, got.Wasserstein, exactW, wErr, wBound)
		}
		if psiErr > psiBound {
			t.Errorf("%s: PSI sketch %.5f, exact %.5f: error %.5f over the tolerance %.5f", p.name, got.PSI, exactPSI, psiErr, psiBound)
		}
		worstD, worstW = max(worstD, dErr/dBound), max(worstW, wErr/wBound)
		// The upper bound holds where the bound on D does.
		if got.KSPValueUpper < exactKS.PValue {
			t.Errorf("%s: KSPValueUpper %.3g below the exact p-value %.3g", p.name, got.KSPValueUpper, exactKS.PValue)
		}
		// JS over the bins has no useful worst-case bound either; 0.02 is
		// what these tests hold it to.
		if e := math.Abs(got.JS - exactJS); e > 0.02 {
			t.Errorf("%s: JS over the PSI bins sketch %.4f, exact %.4f: error %.4f over 0.02", p.name, got.JS, exactJS, e)
		}
		t.Logf("%-40s JS %.4f (exact %.4f)  chi2 %.4g (exact %.4g)", p.name, got.JS, exactJS, got.Chi2, exactChi2.Stat)
		t.Logf("%-40s D %.4f (exact %.4f, err %.4f)  W %.4g (err %.1e, %.1f%% of bound)  PSI %.4f (exact %.4f)  p %.3g, upper %.3g (exact asymp %.3g)",
			p.name, got.KS, exactKS.D, dErr, got.Wasserstein, wErr, 100*wErr/wBound, got.PSI, exactPSI, got.KSPValue, got.KSPValueUpper, exactKS.PValue)
	}
	t.Logf("worst error as a share of the bound: KS %.0f%%, Wasserstein %.1f%%", 100*worstD, 100*worstW)
}

// TestSmallSketchesAreExact: a sketch of fewer than k values has not
// compacted and holds every value, so the sketch scores are the exact ones.
func TestSmallSketchesAreExact(t *testing.T) {
	a, b := normal(sketch.DefaultKLLK-1, 120, 0, 1), normal(150, 121, 0.3, 1)
	got := CompareNumeric(kll(a), kll(b), Edges(a, DefaultPSIBins))
	ks := KS(a, b, KSAsymp)
	if got.KS != ks.D || got.KSPValue != ks.PValue {
		t.Errorf("sketch KS %g, p %g; exact %g, p %g", got.KS, got.KSPValue, ks.D, ks.PValue)
	}
	if w := Wasserstein(a, b); math.Abs(got.Wasserstein-w) > 1e-12 {
		t.Errorf("sketch Wasserstein %.15g, exact %.15g", got.Wasserstein, w)
	}
	edges := Edges(a, DefaultPSIBins)
	if p := PSI(a, b, edges); got.PSI != p {
		t.Errorf("sketch PSI %.15g, exact %.15g", got.PSI, p)
	}
	ra, rb := BinCounts(a, edges), BinCounts(b, edges)
	if chi := ChiSquare(ra, rb); got.Chi2 != chi.Stat || got.Chi2PValue != chi.PValue || got.Chi2DoF != chi.DoF {
		t.Errorf("sketch chi2 %g, p %g, dof %d; exact %+v", got.Chi2, got.Chi2PValue, got.Chi2DoF, chi)
	}
	if js := JensenShannon(ra, rb); got.JS != js {
		t.Errorf("sketch JS %.15g, exact %.15g", got.JS, js)
	}
}

func TestKLLRankError(t *testing.T) {
	if e := KLLRankError(sketch.DefaultKLLK); math.Abs(e-0.0165) > 0.0002 {
		t.Errorf("KLLRankError(200) = %g, want about 1.65%%", e)
	}
	if KLLRankError(400) >= KLLRankError(200) {
		t.Error("a larger k should have a smaller error")
	}
}

func scale(xs []float64, c float64) []float64 {
	for i := range xs {
		xs[i] *= c
	}
	return xs
}

func ExampleCompareNumeric() {
	ref, cur := sketch.NewKLL(sketch.DefaultKLLK), sketch.NewKLL(sketch.DefaultKLLK)
	for i := range 1000 {
		ref.Update(float64(i))
		cur.Update(float64(i) + 100) // the window is shifted by 100
	}
	edges := SketchEdges(ref, DefaultPSIBins) // once per reference
	s := CompareNumeric(ref, cur, edges)
	fmt.Printf("KS %.2f, p %.1e, Wasserstein %.0f, PSI %.2f\n", s.KS, s.KSPValue, s.Wasserstein, s.PSI)
	// Output: KS 0.10, p 3.7e-05, Wasserstein 100, PSI 0.76
}

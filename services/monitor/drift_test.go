package monitor

// Unit tests of the scoring, metrics and signing pieces; monitor_test.go
// runs the service on real servers.

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/drift"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/sketch"
)

func kllOf(xs []float64) *sketch.KLL {
	k := sketch.NewKLL(sketch.DefaultKLLK)
	for _, x := range xs {
		k.Update(x)
	}
	return k
}

func normal(rng *rand.Rand, n int, mean float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + rng.NormFloat64()
	}
	return out
}

func byMethod(scores []methodScore) map[string]methodScore {
	m := map[string]methodScore{}
	for _, s := range scores {
		m[s.method] = s
	}
	return m
}

func TestNumericScoresSeparateNoDriftFromDrift(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := normal(rng, 50_000, 0)
	same := normal(rng, 5_000, 0)
	shifted := normal(rng, 5_000, 1)
	refK := kllOf(ref)
	calm := byMethod(numericScores(refK, kllOf(same), 1))
	moved := byMethod(numericScores(refK, kllOf(shifted), 1))
	if len(calm) != 5 || len(moved) != 5 {
		t.Fatalf("methods: %v / %v", calm, moved)
	}
	for _, m := range pipeline.DriftMethods {
		thr := pipeline.DefaultDriftThresholds[m]
		if calm[m].score >= thr*0.8 {
			t.Errorf("%s on the same distribution = %.4f, want below %.3f", m, calm[m].score, thr*0.8)
		}
		if moved[m].score <= thr {
			t.Errorf("%s on a 1σ shift = %.4f, want above %.3f", m, moved[m].score, thr)
		}
	}
	// The sketch scores follow the exact ones (pkg/drift bounds them).
	exactKS := drift.KS(ref, shifted, drift.KSAsymp)
	if d := math.Abs(moved["ks"].score - exactKS.D); d > drift.KSErrorBound(refK, kllOf(shifted)) {
		t.Errorf("sketch KS %.4f vs exact %.4f", moved["ks"].score, exactKS.D)
	}
	if w := drift.Wasserstein(ref, shifted); math.Abs(moved["wasserstein"].score-w) > drift.WassersteinErrorBound(refK, kllOf(shifted)) {
		t.Errorf("sketch Wasserstein %.4f vs exact %.4f (σ = 1)", moved["wasserstein"].score, w)
	}
	if calm["ks"].pValue < 0.01 || moved["ks"].pValue > 1e-10 || math.IsNaN(moved["chi2"].pValue) || !math.IsNaN(moved["psi"].pValue) {
		t.Errorf("p-values: calm ks %v, moved ks %v, chi2 %v, psi %v", calm["ks"].pValue, moved["ks"].pValue, moved["chi2"].pValue, moved["psi"].pValue)
	}
	// Wasserstein is in units of the reference's σ.
	w2 := byMethod(numericScores(refK, kllOf(shifted), 2))["wasserstein"].score
	if math.Abs(w2-moved["wasserstein"].score/2) > 1e-12 {
		t.Errorf("wasserstein with σ 2 = %v, want half of %v", w2, moved["wasserstein"].score)
	}
	if numericScores(refK, sketch.NewKLL(sketch.DefaultKLLK), 1) != nil {
		t.Error("an empty window got scores")
	}
}

func topKOf(values map[string]int) *sketch.TopK {
	t := sketch.NewTopK(topKCapacity)
	for v, n := range values {
		for range n {
			t.Add(v)
		}
	}
	return t
}

func TestCategoricalScores(t *testing.T) {
	ref := topKOf(map[string]int{"basic": 600, "pro": 300, "team": 100})
	same := byMethod(categoricalScores(ref, topKOf(map[string]int{"basic": 300, "pro": 150, "team": 50})))
	if same["psi"].score > 1e-9 || same["js"].score > 1e-9 || same["chi2"].score > 1e-9 || same["chi2"].pValue < 0.99 {
		t.Fatalf("identical shares: %v", same)
	}
	// A new category and a shifted mix.
	moved := byMethod(categoricalScores(ref, topKOf(map[string]int{"basic": 100, "pro": 300, "team": 50, "enterprise": 50})))
	for _, m := range []string{"psi", "chi2", "js"} {
		if moved[m].score <= pipeline.DefaultDriftThresholds[m] {
			t.Errorf("%s on a shifted mix = %v", m, moved[m].score)
		}
	}
	if moved["chi2"].pValue > 1e-6 {
		t.Errorf("chi2 p-value = %v", moved["chi2"].pValue)
	}
	// chi2's score is an effect size: the same shift on 10x the rows scores the same.
	big := byMethod(categoricalScores(ref, topKOf(map[string]int{"basic": 1000, "pro": 3000, "team": 500, "enterprise": 500})))
	if math.Abs(big["chi2"].score-moved["chi2"].score) > 0.05 || big["chi2"].pValue > moved["chi2"].pValue {
		t.Errorf("chi2 effect size %v on 10x rows vs %v", big["chi2"].score, moved["chi2"].score)
	}
}

func TestAlertMethodFallsBackForCategoricalFeatures(t *testing.T) {
	for _, c := range []struct {
		kind, method, want string
		threshold, wantT   float64
	}{
		{kindNumeric, "ks", "ks", 0.15, 0.15},
		{kindNumeric, "chi2", "chi2", 0.3, 0.3},
		{kindCategorical, "psi", "psi", 0.25, 0.25},
		{kindCategorical, "ks", "chi2", 0.15, pipeline.DefaultDriftThresholds["chi2"]},
		{kindCategorical, "wasserstein", "js", 0.5, pipeline.DefaultDriftThresholds["js"]},
	} {
		m, thr := alertMethod(c.kind, pipeline.Monitoring{Drift: pipeline.Drift{Method: c.method, Threshold: c.threshold}})
		if m != c.want || thr != c.wantT {
			t.Errorf("%s %s: %s %v, want %s %v", c.kind, c.method, m, thr, c.want, c.wantT)
		}
	}
}

func TestWindowStartIsAlignedOnTheEpoch(t *testing.T) {
	at := time.Date(2026, 3, 4, 10, 17, 42, 5, time.FixedZone("x", 3600))
	if got := windowStart(at, 15*time.Minute); !got.Equal(time.Date(2026, 3, 4, 9, 15, 0, 0, time.UTC)) {
		t.Fatalf("15m window of %v starts %v", at, got)
	}
	if got := windowStart(at, 2*time.Second); !got.Equal(time.Date(2026, 3, 4, 9, 17, 42, 0, time.UTC)) {
		t.Fatalf("2s window of %v starts %v", at, got)
	}
}

func str(s string) *string   { return &s }
func num(x float64) *float64 { return &x }

func TestLiveMetrics(t *testing.T) {
	// Binary: the positive class is learned from the predictions.
	var rows []labelledRow
	for i := range 100 {
		p := float64(i%10) / 10
		label := map[bool]string{true: "churn", false: "stay"}[p >= 0.5]
		truth := label
		if i%5 == 0 { // 20% wrong
			truth = map[string]string{"churn": "stay", "stay": "churn"}[label]
		}
		rows = append(rows, labelledRow{label: label, value: p, probs: []float64{1 - p, p}, trueLabel: str(truth),
			groups: map[string]string{"sex": []string{"f", "m"}[i%2]}})
	}
	n, m := liveMetrics(rows, []string{"sex", "zip"}, 10)
	if n != 100 || math.Abs(m["accuracy"]-0.8) > 1e-12 || m["auc"] <= 0.5 || m["log_loss"] <= 0 || m["f1"] == 0 {
		t.Fatalf("binary: n %d, %v", n, m)
	}
	if _, ok := m["fairness.sex.demographic_parity_difference"]; !ok {
		t.Fatalf("no fairness for sex: %v", m)
	}
	if _, ok := m["fairness.zip.demographic_parity_difference"]; ok {
		t.Fatal("fairness for an attribute the inputs did not carry")
	}
	// Regression.
	reg := []labelledRow{{value: 1, trueValue: num(1)}, {value: 2, trueValue: num(3)}, {value: 3, trueValue: num(3)}, {value: 5}}
	n, m = liveMetrics(reg, nil, 10)
	if n != 3 || math.Abs(m["rmse"]-math.Sqrt(1.0/3)) > 1e-12 || math.Abs(m["mae"]-1.0/3) > 1e-12 {
		t.Fatalf("regression: n %d, %v", n, m)
	}
	// Multiclass: accuracy only.
	mc := []labelledRow{{label: "a", probs: []float64{.6, .3, .1}, trueLabel: str("a")}, {label: "b", probs: []float64{.2, .7, .1}, trueLabel: str("c")}}
	if n, m = liveMetrics(mc, nil, 10); n != 2 || m["accuracy"] != 0.5 || len(m) != 1 {
		t.Fatalf("multiclass: n %d, %v", n, m)
	}
}

func TestCheckValue(t *testing.T) {
	perf := map[string]metricValue{"accuracy": {value: 0.7}, "auc": {value: 0.9}}
	for _, c := range []struct {
		expr       string
		value, thr float64
	}{
		{"accuracy >= 0.8", 0.7, 0.8},
		{" auc>0.85 ", 0.9, 0.85},
		{"metrics.auc > 0.5 && accuracy > 0.5", 0.9, 0},
		{"rmse < 3", 0, 3},
	} {
		if v, thr := checkValue(c.expr, perf); v != c.value || thr != c.thr {
			t.Errorf("%q: %v %v, want %v %v", c.expr, v, thr, c.value, c.thr)
		}
	}
}

func TestSignatureAndBackoff(t *testing.T) {
	body := []byte(`{"event":"alert.fired"}`)
	sig := Sign([]byte("k"), body)
	// printf '%s' '{"event":"alert.fired"}' | openssl dgst -sha256 -hmac k
	if sig != "sha256=4f9c0754cfcba4b64ed5fab021a42b258299878fe665fe65f63c3f668b442b73" || !VerifySignature([]byte("k"), body, sig) {
		t.Fatalf("signature %q", sig)
	}
	if VerifySignature([]byte("k"), []byte(`{"event":"alert.resolved"}`), sig) || VerifySignature([]byte("k2"), body, sig) {
		t.Fatal("a signature verified another body or key")
	}
	s := &Service{cfg: Config{RetryBackoff: time.Second, MaxBackoff: 10 * time.Second}}
	var got []time.Duration
	for a := 1; a <= 6; a++ {
		got = append(got, s.backoff(a))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
}

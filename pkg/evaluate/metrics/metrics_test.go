package metrics

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

const tolerance = 1e-9

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > tolerance*max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g, scikit-learn says %.17g", name, got, want)
	}
}

func nearSlice(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s has %d points, scikit-learn has %d", name, len(got), len(want))
		return
	}
	for i := range got {
		near(t, fmt.Sprintf("%s[%d]", name, i), got[i], want[i])
	}
}

type binaryCase struct {
	name      string
	y         []int
	p         []float64
	threshold float64
	bins      int
}

func genBinary(rng *rand.Rand, n int, posRate float64, score func(label int) float64) ([]int, []float64) {
	y := make([]int, n)
	p := make([]float64, n)
	for i := range n {
		if rng.Float64() < posRate {
			y[i] = 1
		}
		p[i] = score(y[i])
	}
	// Both classes, whatever the draw.
	y[0], y[1] = 0, 1
	return y, p
}

func binaryCases() []binaryCase {
	rng := rand.New(rand.NewPCG(1, 2))
	clamp := func(v float64) float64 { return min(max(v, 0), 1) }
	informative := func(label int) float64 { return clamp(0.35 + 0.3*float64(label) + 0.25*rng.NormFloat64()) }

	var cases []binaryCase
	y, p := genBinary(rng, 500, 0.4, informative)
	cases = append(cases, binaryCase{"random", y, p, 0.5, 10})

	// Scores on a 0.1 grid: many ties, and values sitting exactly on calibration bin edges.
	y, p = genBinary(rng, 300, 0.5, func(label int) float64 {
		return math.Round(informative(label)*10) / 10
	})
	cases = append(cases, binaryCase{"ties", y, p, 0.5, 10})

	y, p = genBinary(rng, 200, 0.5, func(label int) float64 {
		return float64(label)*0.6 + 0.4*rng.Float64()
	})
	p[0], p[1] = 0, 1 // exercise log-loss clipping
	cases = append(cases, binaryCase{"perfect", y, p, 0.5, 10})

	inv := make([]float64, len(p))
	for i := range p {
		inv[i] = 1 - p[i]
	}
	cases = append(cases, binaryCase{"inverted", y, inv, 0.5, 10})

	y, p = genBinary(rng, 2000, 0.02, informative)
	cases = append(cases, binaryCase{"imbalanced", y, p, 0.3, 5})

	y, p = genBinary(rng, 400, 0.5, func(int) float64 { return rng.Float64() })
	cases = append(cases, binaryCase{"uninformative", y, p, 0.5, 7})

	cases = append(cases, binaryCase{"all predicted negative", []int{0, 1, 0, 1, 1}, []float64{0.1, 0.2, 0.3, 0.2, 0.4}, 0.9, 3})
	cases = append(cases, binaryCase{"constant score", []int{0, 1, 1, 0, 1}, []float64{0.5, 0.5, 0.5, 0.5, 0.5}, 0.5, 10})
	cases = append(cases, binaryCase{"two rows", []int{1, 0}, []float64{0.7, 0.2}, 0.5, 1})
	return cases
}

func TestBinaryMatchesSklearn(t *testing.T) {
	cases := binaryCases()
	in := make([]sklearnCase, len(cases))
	for i, c := range cases {
		in[i] = sklearnCase{Kind: "binary", Y: c.y, P: c.p, Threshold: c.threshold, Bins: c.bins}
	}
	want := runSklearn(t, in)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := EvaluateBinary(c.y, c.p, c.threshold, c.bins)
			if err != nil {
				t.Fatal(err)
			}
			w := want[i]
			near(t, "accuracy", got.Accuracy, w.Accuracy)
			near(t, "precision", got.Precision, w.Precision)
			near(t, "recall", got.Recall, w.Recall)
			near(t, "f1", got.F1, w.F1)
			near(t, "roc auc", got.ROCAUC, w.Auc)
			near(t, "pr auc", got.PRAUC, w.PRAuc)
			near(t, "log loss", got.LogLoss, w.LogLoss)
			near(t, "brier", got.Brier, w.Brier)
			near(t, "ece", got.ECE, w.ECE)
			for r := range 2 {
				for p := range 2 {
					if got.Confusion[r][p] != w.Confusion[r][p] {
						t.Errorf("confusion = %v, scikit-learn says %v", got.Confusion, w.Confusion)
					}
				}
			}

			var fpr, tpr, rocThr []float64
			for _, pt := range got.ROC {
				fpr, tpr, rocThr = append(fpr, pt.FPR), append(tpr, pt.TPR), append(rocThr, pt.Threshold)
			}
			nearSlice(t, "roc fpr", fpr, w.ROC[0])
			nearSlice(t, "roc tpr", tpr, w.ROC[1])
			nearSlice(t, "roc threshold", rocThr, w.ROC[2])

			var prec, rec, prThr []float64
			for _, pt := range got.PR {
				prec, rec, prThr = append(prec, pt.Precision), append(rec, pt.Recall), append(prThr, pt.Threshold)
			}
			nearSlice(t, "pr precision", prec, w.PR[0])
			nearSlice(t, "pr recall", rec, w.PR[1])
			// scikit-learn gives no threshold for the closing (recall 0, precision 1) point.
			nearSlice(t, "pr threshold", prThr[:len(prThr)-1], w.PR[2])

			var meanPred, fracPos, count []float64
			for _, b := range got.Calibration {
				meanPred, fracPos, count = append(meanPred, b.MeanPredicted), append(fracPos, b.FractionPositive), append(count, float64(b.Count))
			}
			nearSlice(t, "calibration mean predicted", meanPred, w.Calibration[0])
			nearSlice(t, "calibration fraction positive", fracPos, w.Calibration[1])
			nearSlice(t, "calibration count", count, w.Calibration[2])
		})
	}
}

type multiclassCase struct {
	name  string
	y     []int
	probs [][]float64
}

func multiclassCases() []multiclassCase {
	rng := rand.New(rand.NewPCG(3, 4))
	gen := func(n, k int, quantize bool) ([]int, [][]float64) {
		y := make([]int, n)
		probs := make([][]float64, n)
		for i := range n {
			y[i] = i % k // every class present
			row := make([]float64, k)
			var sum float64
			for c := range row {
				row[c] = rng.ExpFloat64()
				if c == y[i] {
					row[c] += 1.5 * rng.Float64()
				}
				if quantize {
					row[c] = math.Ceil(row[c] * 2)
				}
				sum += row[c]
			}
			for c := range row {
				row[c] /= sum
			}
			probs[i] = row
		}
		return y, probs
	}
	var cases []multiclassCase
	y, probs := gen(400, 3, false)
	cases = append(cases, multiclassCase{"random 3 classes", y, probs})
	y, probs = gen(500, 5, true)
	cases = append(cases, multiclassCase{"ties 5 classes", y, probs})
	cases = append(cases, multiclassCase{"class never predicted", []int{0, 1, 2, 0, 1, 2}, [][]float64{
		{0.6, 0.3, 0.1}, {0.2, 0.7, 0.1}, {0.4, 0.4, 0.2}, {0.5, 0.5, 0}, {0, 1, 0}, {0.3, 0.6, 0.1},
	}})
	return cases
}

func TestMulticlassMatchesSklearn(t *testing.T) {
	cases := multiclassCases()
	in := make([]sklearnCase, len(cases))
	for i, c := range cases {
		in[i] = sklearnCase{Kind: "multiclass", Y: c.y, Probs: c.probs}
	}
	want := runSklearn(t, in)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			classes := make([]string, len(c.probs[0]))
			for k := range classes {
				classes[k] = fmt.Sprintf("c%d", k)
			}
			got, err := EvaluateMulticlass(c.y, c.probs, classes)
			if err != nil {
				t.Fatal(err)
			}
			w := want[i]
			near(t, "accuracy", got.Accuracy, w.Accuracy)
			near(t, "macro precision", got.MacroPrecision, w.MacroPrecision)
			near(t, "macro recall", got.MacroRecall, w.MacroRecall)
			near(t, "macro f1", got.MacroF1, w.MacroF1)
			near(t, "log loss", got.LogLoss, w.LogLoss)
			near(t, "roc auc ovr", got.ROCAUCOvR, w.Auc)
			for k, pc := range got.PerClass {
				if pc.Class != classes[k] {
					t.Errorf("per class %d is %q, want %q", k, pc.Class, classes[k])
				}
				near(t, pc.Class+" precision", pc.Precision, w.PerClass[0][k])
				near(t, pc.Class+" recall", pc.Recall, w.PerClass[1][k])
				near(t, pc.Class+" f1", pc.F1, w.PerClass[2][k])
				near(t, pc.Class+" support", float64(pc.Support), w.PerClass[3][k])
			}
			if fmt.Sprint(got.Confusion) != fmt.Sprint(w.Confusion) {
				t.Errorf("confusion = %v, scikit-learn says %v", got.Confusion, w.Confusion)
			}
		})
	}
}

func TestRegressionMatchesSklearn(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type regressionCase struct {
		name    string
		y, pred []float64
	}
	random := func(n int, scale float64) ([]float64, []float64) {
		y := make([]float64, n)
		pred := make([]float64, n)
		for i := range n {
			y[i] = scale * rng.NormFloat64()
			pred[i] = y[i] + 0.3*scale*rng.NormFloat64()
		}
		return y, pred
	}
	var cases []regressionCase
	y, pred := random(500, 10)
	cases = append(cases, regressionCase{"random", y, pred})
	y, pred = random(300, 1e6)
	cases = append(cases, regressionCase{"large scale", y, pred})
	cases = append(cases,
		regressionCase{"zero targets", []float64{1, 0, 2.4, 7}, []float64{1.2, 0.1, 2.4, 8}},
		regressionCase{"worse than the mean", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}},
		regressionCase{"constant target predicted exactly", []float64{2, 2, 2}, []float64{2, 2, 2}},
		regressionCase{"constant target missed", []float64{2, 2, 2}, []float64{2, 3, 2}},
	)
	in := make([]sklearnCase, len(cases))
	for i, c := range cases {
		in[i] = sklearnCase{Kind: "regression", Y: c.y, Pred: c.pred}
	}
	want := runSklearn(t, in)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := EvaluateRegression(c.y, c.pred)
			if err != nil {
				t.Fatal(err)
			}
			w := want[i]
			near(t, "rmse", got.RMSE, w.RMSE)
			near(t, "mae", got.MAE, w.MAE)
			near(t, "r2", got.R2, w.R2)
			near(t, "mape", got.MAPE, w.MAPE)
		})
	}
}

func TestBadInput(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name       string
		run        func() error
		want       string
		degenerate bool
	}{
		{"binary one class only", func() error {
			_, err := EvaluateBinary([]int{1, 1, 1}, []float64{0.2, 0.5, 0.9}, 0.5, 10)
			return err
		}, "degenerate holdout: only class 1", true},
		{"binary negatives only", func() error {
			_, err := EvaluateBinary([]int{0, 0}, []float64{0.2, 0.5}, 0.5, 10)
			return err
		}, "degenerate holdout: only class 0", true},
		{"binary length mismatch", func() error {
			_, err := EvaluateBinary([]int{0, 1}, []float64{0.2}, 0.5, 10)
			return err
		}, "2 labels but 1 predictions", false},
		{"binary empty", func() error {
			_, err := EvaluateBinary(nil, nil, 0.5, 10)
			return err
		}, "empty holdout", false},
		{"binary NaN probability", func() error {
			_, err := EvaluateBinary([]int{0, 1}, []float64{0.2, nan}, 0.5, 10)
			return err
		}, "row 1: probability NaN is not in [0, 1]", false},
		{"binary probability above 1", func() error {
			_, err := EvaluateBinary([]int{0, 1}, []float64{0.2, 1.5}, 0.5, 10)
			return err
		}, "row 1: probability 1.5", false},
		{"binary label 2", func() error {
			_, err := EvaluateBinary([]int{0, 2}, []float64{0.2, 0.5}, 0.5, 10)
			return err
		}, "row 1: label 2 is not 0 or 1", false},
		{"binary no bins", func() error {
			_, err := EvaluateBinary([]int{0, 1}, []float64{0.2, 0.5}, 0.5, 0)
			return err
		}, "0 calibration bins", false},
		{"multiclass class missing", func() error {
			_, err := EvaluateMulticlass([]int{0, 1}, [][]float64{{0.5, 0.3, 0.2}, {0.1, 0.8, 0.1}}, []string{"a", "b", "c"})
			return err
		}, `degenerate holdout: no sample of class "c"`, true},
		{"multiclass row not summing to 1", func() error {
			_, err := EvaluateMulticlass([]int{0, 1}, [][]float64{{0.5, 0.5}, {0.5, 0.4}}, []string{"a", "b"})
			return err
		}, "row 1: probabilities sum to 0.9", false},
		{"multiclass ragged row", func() error {
			_, err := EvaluateMulticlass([]int{0, 1}, [][]float64{{0.5, 0.5}, {1}}, []string{"a", "b"})
			return err
		}, "row 1 has 1 probabilities for 2 classes", false},
		{"multiclass NaN", func() error {
			_, err := EvaluateMulticlass([]int{0, 1}, [][]float64{{nan, 0.5}, {0.5, 0.5}}, []string{"a", "b"})
			return err
		}, "row 0: probability NaN", false},
		{"multiclass label out of range", func() error {
			_, err := EvaluateMulticlass([]int{0, 3}, [][]float64{{0.5, 0.5}, {0.5, 0.5}}, []string{"a", "b"})
			return err
		}, "row 1: label 3", false},
		{"multiclass one class", func() error {
			_, err := EvaluateMulticlass([]int{0}, [][]float64{{1}}, []string{"a"})
			return err
		}, "1 classes, want at least 2", false},
		{"regression one sample", func() error {
			_, err := EvaluateRegression([]float64{1}, []float64{1})
			return err
		}, "at least two samples", false},
		{"regression length mismatch", func() error {
			_, err := EvaluateRegression([]float64{1, 2}, []float64{1})
			return err
		}, "2 targets but 1 predictions", false},
		{"regression NaN", func() error {
			_, err := EvaluateRegression([]float64{1, 2}, []float64{1, nan})
			return err
		}, "row 1: target 2 or prediction NaN is not finite", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if errors.Is(err, ErrDegenerate) != tt.degenerate {
				t.Errorf("errors.Is(%v, ErrDegenerate) = %v, want %v", err, !tt.degenerate, tt.degenerate)
			}
		})
	}
}

func TestValuesNameEveryScalar(t *testing.T) {
	b, err := EvaluateBinary([]int{0, 1, 1, 0}, []float64{0.1, 0.8, 0.4, 0.3}, 0.5, 10)
	if err != nil {
		t.Fatal(err)
	}
	v := b.Values()
	if v["auc"] != b.ROCAUC || v["pr_auc"] != b.PRAUC || v["log_loss"] != b.LogLoss || v["ece"] != b.ECE || v["tp"] != 1 || v["fn"] != 1 {
		t.Errorf("binary values %v do not match %+v", v, b)
	}
	m, err := EvaluateMulticlass([]int{0, 1, 2}, [][]float64{{0.7, 0.2, 0.1}, {0.2, 0.5, 0.3}, {0.3, 0.3, 0.4}}, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	mv := m.Values()
	if mv["auc"] != m.ROCAUCOvR || mv["f1"] != m.MacroF1 || mv["macro_recall"] != m.MacroRecall || mv["accuracy"] != 1 {
		t.Errorf("multiclass values %v do not match %+v", mv, m)
	}
	r, err := EvaluateRegression([]float64{1, 2, 3}, []float64{1, 2, 4})
	if err != nil {
		t.Fatal(err)
	}
	if rv := r.Values(); rv["r2"] != r.R2 || rv["rmse"] != r.RMSE || rv["mae"] != r.MAE || rv["mape"] != r.MAPE {
		t.Errorf("regression values %v do not match %+v", rv, r)
	}
}

func BenchmarkEvaluateBinary1M(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	y, p := genBinary(rng, 1_000_000, 0.3, func(label int) float64 {
		return min(max(0.35+0.3*float64(label)+0.25*rng.NormFloat64(), 0), 1)
	})
	b.ResetTimer()
	for b.Loop() {
		if _, err := EvaluateBinary(y, p, 0.5, 10); err != nil {
			b.Fatal(err)
		}
	}
}

package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// CalibrationBin is one non-empty bin [Lower, Upper] of a uniform calibration curve.
type CalibrationBin struct {
	Lower            float64 `json:"lower"`
	Upper            float64 `json:"upper"`
	MeanPredicted    float64 `json:"mean_predicted"`
	FractionPositive float64 `json:"fraction_positive"`
	Count            int64   `json:"count"`
}

// Binary is the quality of a binary classifier on a holdout.
type Binary struct {
	Threshold float64 `json:"threshold"`
	Accuracy  float64 `json:"accuracy"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	ROCAUC    float64 `json:"roc_auc"`
	// PRAUC is average precision: sum of (R_k - R_{k-1}) * P_k over thresholds.
	PRAUC   float64 `json:"pr_auc"`
	LogLoss float64 `json:"log_loss"`
	Brier   float64 `json:"brier"`
	ECE     float64 `json:"ece"`
	// Confusion is indexed [true][predicted]: {{TN, FP}, {FN, TP}}.
	Confusion   [2][2]int64      `json:"confusion"`
	ROC         []CurvePoint     `json:"roc"`
	PR          []PRPoint        `json:"pr"`
	Calibration []CalibrationBin `json:"calibration"`
}

// EvaluateBinary measures predictions p (probability of class 1) against labels y in {0, 1},
// predicting 1 when p >= threshold, with a calibration curve of bins uniform bins on [0, 1].
func EvaluateBinary(y []int, p []float64, threshold float64, bins int) (*Binary, error) {
	if len(y) != len(p) {
		return nil, fmt.Errorf("binary metrics: %d labels but %d predictions", len(y), len(p))
	}
	if len(y) == 0 {
		return nil, errors.New("binary metrics: empty holdout")
	}
	if bins < 1 {
		return nil, fmt.Errorf("binary metrics: %d calibration bins, want at least 1", bins)
	}
	if math.IsNaN(threshold) {
		return nil, errors.New("binary metrics: threshold is NaN")
	}
	var count [2]int64
	for i := range y {
		if y[i] != 0 && y[i] != 1 {
			return nil, fmt.Errorf("binary metrics: row %d: label %d is not 0 or 1", i, y[i])
		}
		if err := checkProb(p[i], i); err != nil {
			return nil, fmt.Errorf("binary metrics: %w", err)
		}
		count[y[i]]++
	}
	for class, c := range count {
		if c == 0 {
			return nil, fmt.Errorf("binary metrics: %w: only class %d", ErrDegenerate, 1-class)
		}
	}

	n := float64(len(y))
	b := &Binary{Threshold: threshold}
	var logLoss, brier float64
	for i, label := range y {
		pred := 0
		if p[i] >= threshold {
			pred = 1
		}
		b.Confusion[label][pred]++

		// Clip, then renormalize the pair (1-q, q), exactly as log_loss does.
		q := min(max(p[i], eps), 1-eps)
		own := q
		if label == 0 {
			own = 1 - q
		}
		logLoss -= math.Log(own / ((1 - q) + q))
		d := float64(label) - p[i]
		brier += d * d
	}
	b.LogLoss = logLoss / n
	b.Brier = brier / n
	tn, fp, fn, tp := b.Confusion[0][0], b.Confusion[0][1], b.Confusion[1][0], b.Confusion[1][1]
	b.Accuracy = float64(tp+tn) / n
	b.Precision, b.Recall, b.F1 = prf(tp, fp, fn)

	curve := newClfCurve(func(i int) bool { return y[i] == 1 }, func(i int) float64 { return p[i] }, len(y))
	b.ROCAUC = curve.rocAUC()
	b.PRAUC = curve.averagePrecision()
	b.ROC = curve.roc()
	b.PR = curve.pr()
	b.Calibration, b.ECE = calibration(y, p, bins)
	return b, nil
}

// calibration bins p uniformly like calibration_curve(strategy="uniform"): a value on an inner
// edge falls in the lower bin.
func calibration(y []int, p []float64, bins int) ([]CalibrationBin, float64) {
	// Edges as numpy.linspace(0, 1, bins+1) computes them.
	step := 1 / float64(bins)
	edges := make([]float64, bins+1)
	for i := range edges {
		edges[i] = float64(i) * step
	}
	edges[bins] = 1
	inner := edges[1:bins]

	sumP := make([]float64, bins)
	sumY := make([]float64, bins)
	cnt := make([]int64, bins)
	for i := range p {
		k := sort.SearchFloat64s(inner, p[i])
		sumP[k] += p[i]
		sumY[k] += float64(y[i])
		cnt[k]++
	}
	var out []CalibrationBin
	var ece float64
	n := float64(len(p))
	for k := range bins {
		if cnt[k] == 0 {
			continue
		}
		c := float64(cnt[k])
		bin := CalibrationBin{
			Lower: edges[k], Upper: edges[k+1],
			MeanPredicted: sumP[k] / c, FractionPositive: sumY[k] / c, Count: cnt[k],
		}
		ece += c / n * math.Abs(bin.FractionPositive-bin.MeanPredicted)
		out = append(out, bin)
	}
	return out, ece
}

// Values names the scalar metrics for CEL gates (metrics.auc >= 0.8).
func (b *Binary) Values() map[string]float64 {
	return map[string]float64{
		"accuracy":  b.Accuracy,
		"precision": b.Precision,
		"recall":    b.Recall,
		"f1":        b.F1,
		"auc":       b.ROCAUC,
		"pr_auc":    b.PRAUC,
		"log_loss":  b.LogLoss,
		"brier":     b.Brier,
		"ece":       b.ECE,
		"tn":        float64(b.Confusion[0][0]),
		"fp":        float64(b.Confusion[0][1]),
		"fn":        float64(b.Confusion[1][0]),
		"tp":        float64(b.Confusion[1][1]),
	}
}

package metrics

import (
	"errors"
	"fmt"
	"math"
)

// ClassMetrics is one class's precision, recall and F1 against the rest.
type ClassMetrics struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int64   `json:"support"`
}

// Multiclass is the quality of a multiclass classifier on a holdout.
type Multiclass struct {
	Accuracy       float64        `json:"accuracy"`
	MacroPrecision float64        `json:"macro_precision"`
	MacroRecall    float64        `json:"macro_recall"`
	MacroF1        float64        `json:"macro_f1"`
	LogLoss        float64        `json:"log_loss"`
	ROCAUCOvR      float64        `json:"roc_auc_ovr"`
	PerClass       []ClassMetrics `json:"per_class"`
	// Confusion is indexed [true][predicted] in the order of the classes.
	Confusion [][]int64 `json:"confusion"`
}

// EvaluateMulticlass measures probs (one row per sample, one column per class, rows summing to
// 1) against class indexes y. ROCAUCOvR is the unweighted mean of each class's AUC against the
// rest, roc_auc_score(multi_class="ovr", average="macro"); every class must appear in y.
func EvaluateMulticlass(y []int, probs [][]float64, classes []string) (*Multiclass, error) {
	k := len(classes)
	if k < 2 {
		return nil, fmt.Errorf("multiclass metrics: %d classes, want at least 2", k)
	}
	if len(y) != len(probs) {
		return nil, fmt.Errorf("multiclass metrics: %d labels but %d prediction rows", len(y), len(probs))
	}
	if len(y) == 0 {
		return nil, errors.New("multiclass metrics: empty holdout")
	}
	support := make([]int64, k)
	for i, row := range probs {
		if y[i] < 0 || y[i] >= k {
			return nil, fmt.Errorf("multiclass metrics: row %d: label %d is not a class index below %d", i, y[i], k)
		}
		if len(row) != k {
			return nil, fmt.Errorf("multiclass metrics: row %d has %d probabilities for %d classes", i, len(row), k)
		}
		var sum float64
		for _, v := range row {
			if err := checkProb(v, i); err != nil {
				return nil, fmt.Errorf("multiclass metrics: %w", err)
			}
			sum += v
		}
		// Same tolerance as scikit-learn's np.allclose check in roc_auc_score.
		if math.Abs(sum-1) > 1e-8+1e-5 {
			return nil, fmt.Errorf("multiclass metrics: row %d: probabilities sum to %v, want 1", i, sum)
		}
		support[y[i]]++
	}
	for c, s := range support {
		if s == 0 {
			return nil, fmt.Errorf("multiclass metrics: %w: no sample of class %q", ErrDegenerate, classes[c])
		}
	}

	n := float64(len(y))
	m := &Multiclass{Confusion: make([][]int64, k)}
	for c := range m.Confusion {
		m.Confusion[c] = make([]int64, k)
	}
	var correct int64
	var logLoss float64
	for i, row := range probs {
		pred := 0
		for c, v := range row {
			if v > row[pred] {
				pred = c
			}
		}
		m.Confusion[y[i]][pred]++
		if pred == y[i] {
			correct++
		}
		// Clip each probability, then renormalize the row, as log_loss does.
		var sum float64
		for _, v := range row {
			sum += min(max(v, eps), 1-eps)
		}
		logLoss -= math.Log(min(max(row[y[i]], eps), 1-eps) / sum)
	}
	m.Accuracy = float64(correct) / n
	m.LogLoss = logLoss / n

	for c := range k {
		var predicted int64
		for t := range k {
			predicted += m.Confusion[t][c]
		}
		tp := m.Confusion[c][c]
		cm := ClassMetrics{Class: classes[c], Support: support[c]}
		cm.Precision, cm.Recall, cm.F1 = prf(tp, predicted-tp, support[c]-tp)
		m.PerClass = append(m.PerClass, cm)
		m.MacroPrecision += cm.Precision / float64(k)
		m.MacroRecall += cm.Recall / float64(k)
		m.MacroF1 += cm.F1 / float64(k)

		curve := newClfCurve(func(i int) bool { return y[i] == c }, func(i int) float64 { return probs[i][c] }, len(y))
		m.ROCAUCOvR += curve.rocAUC() / float64(k)
	}
	return m, nil
}

// Values names the scalar metrics for CEL gates; precision, recall and f1 are the macro
// averages so a gate reads the same for binary and multiclass models.
func (m *Multiclass) Values() map[string]float64 {
	return map[string]float64{
		"accuracy":        m.Accuracy,
		"precision":       m.MacroPrecision,
		"recall":          m.MacroRecall,
		"f1":              m.MacroF1,
		"macro_precision": m.MacroPrecision,
		"macro_recall":    m.MacroRecall,
		"macro_f1":        m.MacroF1,
		"auc":             m.ROCAUCOvR,
		"log_loss":        m.LogLoss,
	}
}

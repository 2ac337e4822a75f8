package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrDegenerate marks a holdout whose labels cannot support the metric (one class only).
var ErrDegenerate = errors.New("degenerate holdout")

// eps is numpy's float64 machine epsilon, scikit-learn's clipping and division guard.
const eps = 2.220446049250313e-16

// CurvePoint is one point of a ROC curve: predicting positive when score >= Threshold.
type CurvePoint struct {
	FPR       float64 `json:"fpr"`
	TPR       float64 `json:"tpr"`
	Threshold float64 `json:"threshold"`
}

// PRPoint is one point of a precision-recall curve: predicting positive when score >= Threshold.
type PRPoint struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	Threshold float64 `json:"threshold"`
}

// clfCurve holds cumulative true and false positives at each distinct score, highest score
// first (scikit-learn's _binary_clf_curve).
type clfCurve struct {
	fps, tps   []int64
	thresholds []float64
}

type scored struct {
	score float64
	pos   bool
}

func newClfCurve(pos func(i int) bool, score func(i int) float64, n int) clfCurve {
	rows := make([]scored, n)
	for i := range rows {
		rows[i] = scored{score: score(i), pos: pos(i)}
	}
	slices.SortFunc(rows, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	var c clfCurve
	var tp, fp int64
	for i, r := range rows {
		if r.pos {
			tp++
		} else {
			fp++
		}
		if i == n-1 || rows[i+1].score != r.score {
			c.tps = append(c.tps, tp)
			c.fps = append(c.fps, fp)
			c.thresholds = append(c.thresholds, r.score)
		}
	}
	return c
}

// rocAUC is the trapezoid under the ROC curve over distinct thresholds, in integer arithmetic
// so ties and large holdouts add no rounding.
func (c clfCurve) rocAUC() float64 {
	last := len(c.tps) - 1
	p, n := c.tps[last], c.fps[last]
	var area2, prevFP, prevTP int64
	for i := range c.tps {
		area2 += (c.fps[i] - prevFP) * (c.tps[i] + prevTP)
		prevFP, prevTP = c.fps[i], c.tps[i]
	}
	return float64(area2) / (2 * float64(p) * float64(n))
}

// roc returns the curve with collinear intermediate points dropped, starting at (0, 0) like
// roc_curve(drop_intermediate=True).
func (c clfCurve) roc() []CurvePoint {
	m := len(c.tps)
	p, n := float64(c.tps[m-1]), float64(c.fps[m-1])
	out := []CurvePoint{{FPR: 0, TPR: 0, Threshold: c.thresholds[0] + 1}}
	for i := range m {
		if m > 2 && i > 0 && i < m-1 &&
			c.fps[i+1]-2*c.fps[i]+c.fps[i-1] == 0 && c.tps[i+1]-2*c.tps[i]+c.tps[i-1] == 0 {
			continue
		}
		out = append(out, CurvePoint{FPR: float64(c.fps[i]) / n, TPR: float64(c.tps[i]) / p, Threshold: c.thresholds[i]})
	}
	return out
}

// averagePrecision is sum over thresholds of (R_k - R_{k-1}) * P_k.
func (c clfCurve) averagePrecision() float64 {
	p := float64(c.tps[len(c.tps)-1])
	var ap float64
	var prevTP int64
	for i := range c.tps {
		if c.tps[i] != prevTP {
			ap += float64(c.tps[i]-prevTP) / p * (float64(c.tps[i]) / float64(c.tps[i]+c.fps[i]))
		}
		prevTP = c.tps[i]
	}
	return ap
}

// pr returns the precision-recall curve in precision_recall_curve's order: recall decreasing,
// ending at (recall 0, precision 1).
func (c clfCurve) pr() []PRPoint {
	m := len(c.tps)
	p := float64(c.tps[m-1])
	out := make([]PRPoint, 0, m+1)
	for i := m - 1; i >= 0; i-- {
		out = append(out, PRPoint{
			Precision: float64(c.tps[i]) / float64(c.tps[i]+c.fps[i]),
			Recall:    float64(c.tps[i]) / p,
			Threshold: c.thresholds[i],
		})
	}
	return append(out, PRPoint{Precision: 1, Recall: 0, Threshold: c.thresholds[0] + 1})
}

// checkProb rejects what no probability can be.
func checkProb(v float64, row int) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("row %d: probability %v is not in [0, 1]", row, v)
	}
	return nil
}

// prf is precision, recall and F1 with zero_division=0.
func prf(tp, fp, fn int64) (precision, recall, f1 float64) {
	if tp+fp > 0 {
		precision = float64(tp) / float64(tp+fp)
	}
	if tp+fn > 0 {
		recall = float64(tp) / float64(tp+fn)
	}
	if precision+recall > 0 {
		f1 = 2 * precision * recall / (precision + recall)
	}
	return precision, recall, f1
}

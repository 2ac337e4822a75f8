package metrics

import (
	"errors"
	"fmt"
	"math"
)

// Regression is the quality of a regression model on a holdout.
type Regression struct {
	RMSE float64 `json:"rmse"`
	MAE  float64 `json:"mae"`
	R2   float64 `json:"r2"`
	MAPE float64 `json:"mape"`
}

// EvaluateRegression measures predictions pred against targets y. R2 follows r2_score: 1 when a
// constant target is predicted exactly, 0 when it is not. It needs at least two samples.
func EvaluateRegression(y, pred []float64) (*Regression, error) {
	if len(y) != len(pred) {
		return nil, fmt.Errorf("regression metrics: %d targets but %d predictions", len(y), len(pred))
	}
	if len(y) < 2 {
		return nil, errors.New("regression metrics: R2 needs at least two samples")
	}
	var sumY float64
	for i := range y {
		if math.IsNaN(y[i]) || math.IsInf(y[i], 0) || math.IsNaN(pred[i]) || math.IsInf(pred[i], 0) {
			return nil, fmt.Errorf("regression metrics: row %d: target %v or prediction %v is not finite", i, y[i], pred[i])
		}
		sumY += y[i]
	}
	n := float64(len(y))
	mean := sumY / n
	var sse, sae, sape, sst float64
	for i := range y {
		d := y[i] - pred[i]
		sse += d * d
		sae += math.Abs(d)
		sape += math.Abs(d) / max(math.Abs(y[i]), eps)
		dm := y[i] - mean
		sst += dm * dm
	}
	r := &Regression{RMSE: math.Sqrt(sse / n), MAE: sae / n, MAPE: sape / n}
	switch {
	case sst != 0:
		r.R2 = 1 - sse/sst
	case sse == 0:
		r.R2 = 1
	}
	return r, nil
}

// Values names the scalar metrics for CEL gates.
func (r *Regression) Values() map[string]float64 {
	return map[string]float64{"rmse": r.RMSE, "mae": r.MAE, "r2": r.R2, "mape": r.MAPE}
}

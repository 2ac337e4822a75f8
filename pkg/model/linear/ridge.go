package linear

import (
	"context"
	"fmt"
	"math"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/internal/parallel"
	"github.com/gyreml/gyre/pkg/model/table"
	"github.com/gyreml/gyre/pkg/model/train"
)

type linearTrainer struct{}

func (linearTrainer) Name() string { return NameLinear }

// Train solves the normal equations of
//
//	f = Σ_i (y_i - w·z_i - b)² + l2 · ||w||²   (intercept b not penalised)
//
// by Cholesky factorisation.
func (linearTrainer) Train(ctx context.Context, t *table.Table, trainRows, validRows []int, target string, inputs []model.Input, params map[string]any, _ uint64) (model.Model, map[string]float64, error) {
	p := train.NewParams(params)
	l2 := p.Float("l2", 1, 0, math.Inf(1))
	maxCategories := p.Int("maxCategories", 100, 1, 100_000)
	if err := p.Check(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLinear, err)
	}
	s, err := prepare(t, trainRows, validRows, target, inputs, maxCategories)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLinear, err)
	}
	if s.target.Kind != model.Numeric {
		return nil, nil, fmt.Errorf("%s: the target %q is categorical; linear regression needs a numeric target", NameLinear, target)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	d := s.enc.encodeTable(t, s.train)
	y := make([]float64, len(s.train))
	for r, i := range s.train {
		y[r] = s.target.F[i]
	}
	a, b := normalEquations(d, y, s.enc.dim, l2)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := solveCholesky(a, b); err != nil {
		return nil, nil, fmt.Errorf("%s: %w; set l2 above 0", NameLinear, err)
	}
	dim := s.enc.dim
	m, err := newModel(file{Task: model.Regression, Inputs: s.inputs, Features: s.features,
		Weights: [][]float64{b[:dim:dim]}, Intercepts: []float64{b[dim]}})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLinear, err)
	}
	metrics := map[string]float64{}
	metrics["train_rmse"], _ = regressionMetrics(m, t, s.train, s.target)
	if len(s.valid) > 0 {
		metrics["valid_rmse"], metrics["valid_r2"] = regressionMetrics(m, t, s.valid, s.target)
	}
	return m, metrics, nil
}

// normalEquations builds (XᵀX + l2·I') and Xᵀy for the design with an
// intercept column last (I' leaves the intercept unpenalised), as one
// row-major D×D matrix and a vector, D = dim + 1.
func normalEquations(d *design, y []float64, dim int, l2 float64) (a, b []float64) {
	D := dim + 1
	acc := make([]float64, D*D+D)
	parallel.Sum(d.n, rowChunk, acc, func(lo, hi int, part []float64) {
		slots := make([]int, 0, d.nn+d.nc+1)
		vals := make([]float64, 0, d.nn+d.nc+1)
		for r := lo; r < hi; r++ {
			slots, vals = slots[:0], vals[:0]
			for k, x := range d.dense[r*d.nn : (r+1)*d.nn] {
				slots, vals = append(slots, k), append(vals, x)
			}
			for _, c := range d.cats[r*d.nc : (r+1)*d.nc] {
				if c >= 0 {
					slots, vals = append(slots, int(c)), append(vals, 1)
				}
			}
			slots, vals = append(slots, dim), append(vals, 1)
			// Upper triangle only: slots are ascending (numeric, then
			// categorical blocks in order, then the intercept).
			for p, sp := range slots {
				row := part[sp*D:]
				vp := vals[p]
				for q := p; q < len(slots); q++ {
					row[slots[q]] += vp * vals[q]
				}
				part[D*D+sp] += vp * y[r]
			}
		}
	})
	a, b = acc[:D*D], acc[D*D:]
	for p := range D {
		for q := p + 1; q < D; q++ {
			a[q*D+p] = a[p*D+q]
		}
	}
	for k := range dim {
		a[k*D+k] += l2
	}
	return a, b
}

// solveCholesky solves A x = b in place (x in b) for a symmetric positive
// definite row-major A, which it overwrites with its Cholesky factor.
func solveCholesky(a, b []float64) error {
	n := len(b)
	for j := range n {
		sum := a[j*n+j]
		for k := range j {
			sum -= a[j*n+k] * a[j*n+k]
		}
		if !(sum > 0) {
			return fmt.Errorf("the normal equations are singular (weight %d is not determined by the data)", j)
		}
		ljj := math.Sqrt(sum)
		a[j*n+j] = ljj
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := range j {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / ljj
		}
	}
	// L z = b, then Lᵀ x = z.
	for i := range n {
		s := b[i]
		for k := range i {
			s -= a[i*n+k] * b[k]
		}
		b[i] = s / a[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for k := i + 1; k < n; k++ {
			s -= a[k*n+i] * b[k]
		}
		b[i] = s / a[i*n+i]
	}
	return nil
}

// regressionMetrics are the root mean squared error and R² of m over rows.
func regressionMetrics(m *Model, t *table.Table, rows []int, target *table.Column) (rmse, r2 float64) {
	mr, err := t.ModelRows(m.f.Inputs, rows)
	if err != nil {
		return math.NaN(), math.NaN()
	}
	out := make([]model.Prediction, len(mr))
	if err := m.Predict(mr, out); err != nil {
		return math.NaN(), math.NaN()
	}
	var mean float64
	for _, i := range rows {
		mean += target.F[i]
	}
	mean /= float64(len(rows))
	var sse, sst float64
	for r, i := range rows {
		e := target.F[i] - out[r].Value
		sse += e * e
		sst += (target.F[i] - mean) * (target.F[i] - mean)
	}
	rmse = math.Sqrt(sse / float64(len(rows)))
	if sst == 0 {
		return rmse, 0 // a constant target: no variance to explain
	}
	return rmse, 1 - sse/sst
}

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

// Trainer names, as pipelines give them.
const (
	NameLogistic = "builtin/logistic"
	NameLinear   = "builtin/linear"
)

// maxClasses bounds a classification target: more distinct values than this
// is a regression target or an id, not classes.
const maxClasses = 1000

// rowChunk is how many rows each partial sum covers. Fixed, so sums do not
// depend on the number of cores.
const rowChunk = 4096

func init() {
	model.RegisterFormat(FormatLogistic, load)
	model.RegisterFormat(FormatLinear, load)
	train.Register(Logistic)
	train.Register(Linear)
}

// Logistic is logistic regression with an L2 penalty, fitted by L-BFGS:
// binary (sigmoid) for two classes, multinomial (softmax) for more.
var Logistic train.Trainer = logisticTrainer{}

// Linear is linear least-squares regression with an L2 penalty (ridge),
// solved in closed form.
var Linear train.Trainer = linearTrainer{}

type logisticTrainer struct{}

func (logisticTrainer) Name() string { return NameLogistic }

// setup is what both trainers do first: resolve the inputs, drop rows with
// a missing target, and fit the preprocessing on the train rows.
type setup struct {
	inputs       []model.Input
	target       *table.Column
	train, valid []int
	features     []Feature
	enc          *encoder
}

func prepare(t *table.Table, trainRows, validRows []int, target string, inputs []model.Input, maxCategories int) (*setup, error) {
	tc, ok := t.Column(target)
	if !ok {
		return nil, fmt.Errorf("no target column %q", target)
	}
	inputs, err := t.ResolveInputs(target, inputs)
	if err != nil {
		return nil, err
	}
	s := &setup{inputs: inputs, target: tc, train: labelled(tc, trainRows), valid: labelled(tc, validRows)}
	if len(s.train) == 0 {
		return nil, fmt.Errorf("no train rows with a value of the target %q", target)
	}
	s.features = fitFeatures(t, s.train, inputs, maxCategories)
	if s.enc, err = newEncoder(s.features); err != nil {
		return nil, err
	}
	return s, nil
}

// labelled is the rows whose target is not missing.
func labelled(c *table.Column, rows []int) []int {
	out := make([]int, 0, len(rows))
	for _, i := range rows {
		if !c.Null[i] {
			out = append(out, i)
		}
	}
	return out
}

func (logisticTrainer) Train(ctx context.Context, t *table.Table, trainRows, validRows []int, target string, inputs []model.Input, params map[string]any, _ uint64) (model.Model, map[string]float64, error) {
	p := train.NewParams(params)
	l2 := p.Float("l2", 1, 0, math.Inf(1))
	maxIter := p.Int("maxIter", 100, 1, 1_000_000)
	tol := p.Float("tol", 1e-6, 0, 1)
	maxCategories := p.Int("maxCategories", 100, 1, 100_000)
	if err := p.Check(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLogistic, err)
	}
	s, err := prepare(t, trainRows, validRows, target, inputs, maxCategories)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLogistic, err)
	}
	classes := s.target.Classes(s.train)
	switch {
	case len(classes) < 2:
		return nil, nil, fmt.Errorf("%s: the target %q has %d class in the train rows, want at least 2", NameLogistic, target, len(classes))
	case len(classes) > maxClasses:
		return nil, nil, fmt.Errorf("%s: the target %q has %d classes, at most %d: is it a regression target?", NameLogistic, target, len(classes), maxClasses)
	}
	task, outputs := model.Binary, 1
	if len(classes) > 2 {
		task, outputs = model.Multiclass, len(classes)
	}
	d := s.enc.encodeTable(t, s.train)
	y := classIndexes(s.target, s.train, classes)

	obj := &logLoss{d: d, y: y, outputs: outputs, dim: s.enc.dim, l2: l2}
	theta := make([]float64, outputs*(s.enc.dim+1))
	res, err := minimize(ctx, obj.eval, theta, maxIter, tol*float64(d.n))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLogistic, err)
	}
	f := file{Task: task, Inputs: s.inputs, Classes: classes, Features: s.features}
	for k := range outputs {
		w := theta[k*(s.enc.dim+1) : (k+1)*(s.enc.dim+1)]
		f.Weights = append(f.Weights, w[:s.enc.dim])
		f.Intercepts = append(f.Intercepts, w[s.enc.dim])
	}
	m, err := newModel(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", NameLogistic, err)
	}
	metrics := map[string]float64{"iterations": float64(res.iterations), "converged": boolMetric(res.converged)}
	metrics["train_log_loss"] = (res.f - obj.penalty(theta)) / float64(d.n)
	if len(s.valid) > 0 {
		metrics["valid_log_loss"], metrics["valid_accuracy"] = classMetrics(m, t, s.valid, s.target)
	}
	return m, metrics, nil
}

func boolMetric(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func classIndexes(c *table.Column, rows []int, classes []string) []int32 {
	index := make(map[string]int32, len(classes))
	for k, c := range classes {
		index[c] = int32(k)
	}
	y := make([]int32, len(rows))
	for r, i := range rows {
		k, ok := index[c.Text(i)]
		if !ok {
			k = -1 // a class not seen in training: always wrong
		}
		y[r] = k
	}
	return y
}

// logLoss is the penalised negative log-likelihood over the encoded train
// rows, in the layout of theta: per output, its weights then its intercept.
//
//	f = Σ_i loss_i + l2/2 · Σ_k ||w_k||²   (intercepts not penalised)
type logLoss struct {
	d       *design
	y       []int32
	outputs int
	dim     int
	l2      float64
	sum     []float64
}

func (o *logLoss) eval(theta, grad []float64) float64 {
	stride := o.dim + 1
	if o.sum == nil {
		o.sum = make([]float64, len(theta)+1)
	}
	d := o.d
	parallel.Sum(d.n, rowChunk, o.sum, func(lo, hi int, part []float64) {
		g, loss := part[:len(theta)], 0.0
		margins := make([]float64, o.outputs)
		probs := make([]float64, o.outputs)
		for r := lo; r < hi; r++ {
			dense, cats := d.dense[r*d.nn:(r+1)*d.nn], d.cats[r*d.nc:(r+1)*d.nc]
			for k := range o.outputs {
				w := theta[k*stride : (k+1)*stride]
				margins[k] = dot(w, dense, cats) + w[o.dim]
			}
			if o.outputs == 1 {
				y, m := float64(o.y[r]), margins[0]
				// One exp serves both the loss and the probability.
				e := math.Exp(-math.Abs(m))
				p := 1 / (1 + e)
				if m < 0 {
					p = e / (1 + e)
				}
				loss += max(m, 0) + math.Log1p(e) - y*m
				probs[0] = p - y
			} else {
				lse := softmax(margins, probs)
				loss += lse - margins[o.y[r]]
				probs[o.y[r]] -= 1
			}
			for k, res := range probs { // probs now holds the residuals
				gk := g[k*stride : (k+1)*stride]
				for j, x := range dense {
					gk[j] += res * x
				}
				for _, c := range cats {
					if c >= 0 {
						gk[c] += res
					}
				}
				gk[o.dim] += res
			}
		}
		part[len(theta)] = loss
	})
	copy(grad, o.sum[:len(theta)])
	for k := range o.outputs {
		w := theta[k*stride : k*stride+o.dim]
		axpy(o.l2, w, grad[k*stride:k*stride+o.dim])
	}
	return o.sum[len(theta)] + o.penalty(theta)
}

// penalty is l2/2 · Σ_k ||w_k||².
func (o *logLoss) penalty(theta []float64) float64 {
	var ss float64
	for k := range o.outputs {
		w := theta[k*(o.dim+1) : k*(o.dim+1)+o.dim]
		ss += dotv(w, w)
	}
	return o.l2 / 2 * ss
}

// classMetrics are the mean log loss and the accuracy of m over rows.
func classMetrics(m *Model, t *table.Table, rows []int, target *table.Column) (logLoss, accuracy float64) {
	mr, err := t.ModelRows(m.f.Inputs, rows)
	if err != nil {
		return math.NaN(), math.NaN()
	}
	out := make([]model.Prediction, len(mr))
	if err := m.Predict(mr, out); err != nil {
		return math.NaN(), math.NaN()
	}
	y := classIndexes(target, rows, m.f.Classes)
	var right int
	for r, p := range out {
		prob := 0.0
		if y[r] >= 0 {
			prob = p.Probabilities[y[r]]
		}
		logLoss -= math.Log(max(prob, 1e-15))
		if p.Label == target.Text(rows[r]) {
			right++
		}
	}
	return logLoss / float64(len(out)), float64(right) / float64(len(out))
}

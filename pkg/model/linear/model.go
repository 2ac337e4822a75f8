package linear

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/internal/parallel"
)

// Bundle formats.
const (
	FormatLogistic = "gyre/logistic"
	FormatLinear   = "gyre/linear"
)

// modelFile is the bundle's one file, model.json.
const modelFile = "model.json"

// file is model.json: the preprocessing and the weights. Weights has one
// row per output (one for binary and regression, one per class for
// multiclass) with a weight per slot (see Feature).
type file struct {
	Task       model.Task    `json:"task"`
	Inputs     []model.Input `json:"inputs"`
	Classes    []string      `json:"classes,omitempty"`
	Features   []Feature     `json:"features"`
	Weights    [][]float64   `json:"weights"`
	Intercepts []float64     `json:"intercepts"`
}

// Model is a trained logistic or linear regression with its preprocessing.
type Model struct {
	f   file
	enc *encoder
}

func newModel(f file) (*Model, error) {
	enc, err := newEncoder(f.Features)
	if err != nil {
		return nil, err
	}
	if len(f.Inputs) != len(f.Features) {
		return nil, fmt.Errorf("%d inputs but %d features", len(f.Inputs), len(f.Features))
	}
	for j, in := range f.Inputs {
		if in.Name != f.Features[j].Name || in.Kind != f.Features[j].Kind {
			return nil, fmt.Errorf("input %d (%s) does not match its feature", j, in.Name)
		}
	}
	outputs := 1
	switch f.Task {
	case model.Binary:
		if len(f.Classes) != 2 {
			return nil, fmt.Errorf("binary model with %d classes", len(f.Classes))
		}
	case model.Multiclass:
		if len(f.Classes) < 3 {
			return nil, fmt.Errorf("multiclass model with %d classes", len(f.Classes))
		}
		outputs = len(f.Classes)
	case model.Regression:
		if len(f.Classes) != 0 {
			return nil, fmt.Errorf("regression model with classes")
		}
	default:
		return nil, fmt.Errorf("unknown task %q", f.Task)
	}
	if len(f.Weights) != outputs || len(f.Intercepts) != outputs {
		return nil, fmt.Errorf("%d weight rows and %d intercepts, want %d", len(f.Weights), len(f.Intercepts), outputs)
	}
	for _, w := range f.Weights {
		if len(w) != enc.dim {
			return nil, fmt.Errorf("%d weights, want %d", len(w), enc.dim)
		}
	}
	return &Model{f: f, enc: enc}, nil
}

func (m *Model) Inputs() []model.Input { return slices.Clone(m.f.Inputs) }
func (m *Model) Task() model.Task      { return m.f.Task }
func (m *Model) Classes() []string     { return slices.Clone(m.f.Classes) }

// Features is the preprocessing of each input, in input order.
func (m *Model) Features() []Feature { return slices.Clone(m.f.Features) }

// Weights are the weights of each output over the standardised, one-hot
// encoded inputs (slots as Feature says), and the intercepts; read only.
func (m *Model) Weights() ([][]float64, []float64) { return m.f.Weights, m.f.Intercepts }

// Predict scores rows, in parallel for large batches.
func (m *Model) Predict(rows []model.Row, out []model.Prediction) error {
	if len(out) != len(rows) {
		return fmt.Errorf("predict: %d rows but room for %d predictions", len(rows), len(out))
	}
	for i, r := range rows {
		if len(r) != len(m.f.Inputs) {
			return fmt.Errorf("row %d: %d values for %d inputs: %w", i, len(r), len(m.f.Inputs), model.ErrInput)
		}
	}
	parallel.Chunks(len(rows), 1024, func(_, lo, hi int) {
		dense := make([]float64, len(m.enc.numeric))
		cats := make([]int32, len(m.enc.categorical))
		margins := make([]float64, len(m.f.Weights))
		for i := lo; i < hi; i++ {
			m.enc.encodeRow(rows[i], dense, cats)
			for k, w := range m.f.Weights {
				margins[k] = dot(w, dense, cats) + m.f.Intercepts[k]
			}
			out[i] = m.predict(margins)
		}
	})
	return nil
}

func (m *Model) predict(margins []float64) model.Prediction {
	switch m.f.Task {
	case model.Regression:
		return model.Prediction{Value: margins[0]}
	case model.Binary:
		p := sigmoid(margins[0])
		label := m.f.Classes[0]
		if p >= 0.5 {
			label = m.f.Classes[1]
		}
		return model.Prediction{Label: label, Value: p, Probabilities: []float64{1 - p, p}}
	}
	probs := make([]float64, len(margins))
	softmax(margins, probs)
	best := 0
	for k, p := range probs {
		if p > probs[best] {
			best = k
		}
	}
	return model.Prediction{Label: m.f.Classes[best], Value: probs[best], Probabilities: probs}
}

// MarshalBundle is the model's bundle: its format and model.json.
func (m *Model) MarshalBundle() (string, map[string][]byte, error) {
	data, err := json.Marshal(m.f)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", modelFile, err)
	}
	format := FormatLogistic
	if m.f.Task == model.Regression {
		format = FormatLinear
	}
	return format, map[string][]byte{modelFile: data}, nil
}

// Preprocessing is the features' preprocessing, for the manifest.
func (m *Model) Preprocessing() json.RawMessage {
	data, _ := json.Marshal(map[string]any{"features": m.f.Features})
	return data
}

func load(dir string, man *model.Manifest) (model.Model, error) {
	data, err := model.ReadFile(dir, man, modelFile)
	if err != nil {
		return nil, err
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", modelFile, err)
	}
	m, err := newModel(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modelFile, err)
	}
	if (f.Task == model.Regression) != (man.Format == FormatLinear) {
		return nil, fmt.Errorf("%s: a %s model in a %s bundle", modelFile, f.Task, man.Format)
	}
	return m, nil
}

func sigmoid(m float64) float64 {
	if m >= 0 {
		return 1 / (1 + math.Exp(-m))
	}
	e := math.Exp(m)
	return e / (1 + e)
}

// softmax writes the softmax of margins into probs and returns
// log Σ exp(margins).
func softmax(margins, probs []float64) float64 {
	top := slices.Max(margins)
	var sum float64
	for k, m := range margins {
		probs[k] = math.Exp(m - top)
		sum += probs[k]
	}
	for k := range probs {
		probs[k] /= sum
	}
	return top + math.Log(sum)
}

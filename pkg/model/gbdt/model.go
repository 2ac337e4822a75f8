package gbdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/gyreml/gyre/pkg/model"
)

// Format names Gyre's own GBDT model file in a bundle's manifest.
const Format = "gyre/gbdt"

// Model is a trained tree ensemble, safe for concurrent Predict calls.
// Marshal writes its model file, Decode reads one.
type Model struct {
	file     File
	catIndex []map[string]int // categorical features: category -> code
}

// File is the model file: the JSON of everything a model is.
type File struct {
	Format   string     `json:"format"`
	Task     model.Task `json:"task"`
	Classes  []string   `json:"classes,omitempty"`
	Features []Feature  `json:"features"`
	// BaseScore is the starting margin of each output: one for binary and
	// regression, one per class for multiclass.
	BaseScore []float64 `json:"baseScore"`
	// Trees, round after round; tree i adds to output i % len(BaseScore).
	Trees []Tree `json:"trees"`
	// Metric is the validation loss early stopping watched ("" without a
	// validation set); BestScore its value after the kept rounds.
	Metric    string  `json:"metric,omitempty"`
	BestScore float64 `json:"bestScore,omitempty"`
	Params    Params  `json:"params"`
}

// Feature is one input of the model.
type Feature struct {
	Name string     `json:"name"`
	Kind model.Kind `json:"kind"`
	// Categories a categorical feature was trained on; a split names them
	// by index. Others are read as missing.
	Categories []string `json:"categories,omitempty"`
}

// Tree is one regression tree; Nodes[0] is the root.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Node is a split, or a leaf when Left is 0 (no node points at the root).
type Node struct {
	Left  int `json:"left,omitempty"`
	Right int `json:"right,omitempty"`
	// Feature indexes Model.Features.
	Feature int `json:"feature,omitempty"`
	// Threshold: a numeric value x goes left when x <= Threshold.
	Threshold float64 `json:"threshold,omitempty"`
	// Categories: the category codes that go left; other known codes go right.
	Categories []int `json:"categories,omitempty"`
	// DefaultLeft sends missing values (and unknown categories) left.
	DefaultLeft bool `json:"defaultLeft,omitempty"`
	// Value is a leaf's contribution to the margin.
	Value float64 `json:"value,omitempty"`
	// Gain is the split's loss reduction, Cover the hessian sum it saw.
	Gain  float64 `json:"gain,omitempty"`
	Cover float64 `json:"cover,omitempty"`

	catSet []uint64 // Categories as a bit set, for Predict
}

func (n *Node) leaf() bool { return n.Left == 0 }

// Inputs are the features, in the order Predict reads a row's values.
func (m *Model) Inputs() []model.Input {
	in := make([]model.Input, len(m.file.Features))
	for i, f := range m.file.Features {
		in[i] = model.Input{Name: f.Name, Kind: f.Kind}
	}
	return in
}

// Task is what the model predicts.
func (m *Model) Task() model.Task { return m.file.Task }

// Classes are the class labels, nil for regression.
func (m *Model) Classes() []string { return m.file.Classes }

// Rounds is how many boosting rounds the model kept.
func (m *Model) Rounds() int { return len(m.file.Trees) / len(m.file.BaseScore) }

// File is the model's content. The slices are the model's own: read only.
func (m *Model) File() File { return m.file }

// Marshal is the model file: deterministic JSON, so the same training
// gives the same bytes.
func (m *Model) Marshal() ([]byte, error) {
	data, err := json.Marshal(&m.file)
	if err != nil {
		return nil, fmt.Errorf("encode gbdt model: %w", err)
	}
	return data, nil
}

// Decode reads a model file and checks that it is whole and consistent.
func Decode(data []byte) (*Model, error) {
	m := &Model{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m.file); err != nil {
		return nil, fmt.Errorf("decode gbdt model: %w", err)
	}
	if err := m.prepare(); err != nil {
		return nil, fmt.Errorf("decode gbdt model: %w", err)
	}
	return m, nil
}

// outputs is how many margins a row gets.
func outputs(task model.Task, classes int) int {
	if task == model.Multiclass {
		return classes
	}
	return 1
}

// prepare validates the model and builds the lookups Predict uses.
func (m *Model) prepare() error {
	if m.file.Format != Format {
		return fmt.Errorf("format %q, want %q", m.file.Format, Format)
	}
	switch m.file.Task {
	case model.Binary:
		if len(m.file.Classes) != 2 {
			return fmt.Errorf("binary model with %d classes", len(m.file.Classes))
		}
	case model.Multiclass:
		if len(m.file.Classes) < 2 {
			return fmt.Errorf("multiclass model with %d classes", len(m.file.Classes))
		}
	case model.Regression:
		if len(m.file.Classes) != 0 {
			return fmt.Errorf("regression model with classes")
		}
	default:
		return fmt.Errorf("unknown task %q", m.file.Task)
	}
	k := outputs(m.file.Task, len(m.file.Classes))
	if len(m.file.BaseScore) != k || len(m.file.Trees)%k != 0 {
		return fmt.Errorf("%d base scores and %d trees for %d outputs", len(m.file.BaseScore), len(m.file.Trees), k)
	}
	m.catIndex = make([]map[string]int, len(m.file.Features))
	for i, f := range m.file.Features {
		switch f.Kind {
		case model.Numeric:
		case model.Categorical:
			m.catIndex[i] = make(map[string]int, len(f.Categories))
			for c, s := range f.Categories {
				m.catIndex[i][s] = c
			}
		default:
			return fmt.Errorf("feature %s: unknown kind %q", f.Name, f.Kind)
		}
	}
	for t := range m.file.Trees {
		if err := m.prepareTree(&m.file.Trees[t]); err != nil {
			return fmt.Errorf("tree %d: %w", t, err)
		}
	}
	return nil
}

func (m *Model) prepareTree(t *Tree) error {
	if len(t.Nodes) == 0 {
		return fmt.Errorf("no nodes")
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.leaf() {
			continue
		}
		// Children after their parent: no cycles, every walk ends.
		if n.Left <= i || n.Right <= i || n.Left >= len(t.Nodes) || n.Right >= len(t.Nodes) {
			return fmt.Errorf("node %d: children %d, %d out of order", i, n.Left, n.Right)
		}
		if n.Feature < 0 || n.Feature >= len(m.file.Features) {
			return fmt.Errorf("node %d: feature %d out of range", i, n.Feature)
		}
		f := m.file.Features[n.Feature]
		if f.Kind != model.Categorical {
			continue
		}
		n.catSet = make([]uint64, (len(f.Categories)+63)/64)
		for _, c := range n.Categories {
			if c < 0 || c >= len(f.Categories) {
				return fmt.Errorf("node %d: category %d out of range", i, c)
			}
			n.catSet[c/64] |= 1 << (c % 64)
		}
	}
	return nil
}

// Predict scores rows; each row holds a value per input, in Inputs order.
func (m *Model) Predict(rows []model.Row, out []model.Prediction) error {
	if len(out) != len(rows) {
		return fmt.Errorf("%d rows, %d predictions: %w", len(rows), len(out), model.ErrInput)
	}
	x := make([]float64, len(m.file.Features))
	margin := make([]float64, len(m.file.BaseScore))
	for i, row := range rows {
		if err := m.encode(row, x); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		m.margins(x, margin)
		out[i] = m.prediction(margin)
	}
	return nil
}

// encode turns a row into the values trees compare: numbers as they are,
// categories as codes, NaN for missing.
func (m *Model) encode(row model.Row, x []float64) error {
	if len(row) != len(m.file.Features) {
		return fmt.Errorf("%d values for %d inputs: %w", len(row), len(m.file.Features), model.ErrInput)
	}
	for j, v := range row {
		switch {
		case v.Null:
			x[j] = math.NaN()
		case m.file.Features[j].Kind == model.Categorical:
			c, ok := m.catIndex[j][v.S]
			if !ok {
				x[j] = math.NaN()
				continue
			}
			x[j] = float64(c)
		default:
			x[j] = clampInf(v.F)
		}
	}
	return nil
}

func (m *Model) margins(x, margin []float64) {
	copy(margin, m.file.BaseScore)
	k := len(margin)
	for t := range m.file.Trees {
		margin[t%k] += m.file.Trees[t].predict(x)
	}
}

func (t *Tree) predict(x []float64) float64 {
	i := 0
	for {
		n := &t.Nodes[i]
		if n.leaf() {
			return n.Value
		}
		v := x[n.Feature]
		var left bool
		switch {
		case math.IsNaN(v):
			left = n.DefaultLeft
		case n.catSet != nil:
			c := int(v)
			left = n.catSet[c/64]&(1<<(c%64)) != 0
		default:
			left = v <= n.Threshold
		}
		if left {
			i = n.Left
		} else {
			i = n.Right
		}
	}
}

func (m *Model) prediction(margin []float64) model.Prediction {
	switch m.file.Task {
	case model.Binary:
		p := sigmoid(margin[0])
		label := m.file.Classes[0]
		if p >= 0.5 {
			label = m.file.Classes[1]
		}
		return model.Prediction{Label: label, Value: p, Probabilities: []float64{1 - p, p}}
	case model.Multiclass:
		probs := make([]float64, len(margin))
		softmax(margin, probs)
		best := 0
		for c, p := range probs {
			if p > probs[best] {
				best = c
			}
		}
		return model.Prediction{Label: m.file.Classes[best], Value: probs[best], Probabilities: probs}
	}
	return model.Prediction{Value: margin[0]}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func softmax(margin, out []float64) {
	hi := math.Inf(-1)
	for _, v := range margin {
		hi = max(hi, v)
	}
	var sum float64
	for c, v := range margin {
		out[c] = math.Exp(v - hi)
		sum += out[c]
	}
	for c := range out {
		out[c] /= sum
	}
}

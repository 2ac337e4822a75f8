package gbdt

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
	"github.com/gyreml/gyre/pkg/model/train"
)

// Name is the trainer's name in a pipeline.
const Name = "builtin/gbdt"

// modelFile is the model's file in its bundle.
const modelFile = "model.json"

// maxClasses bounds a classification target: more distinct values are a
// regression target or an id.
const maxClasses = 1000

// earlyStoppingShare is the share of train rows held out for early
// stopping when the trainer is given no validation rows.
const earlyStoppingShare = 0.1

func init() {
	model.RegisterFormat(Format, load)
	train.Register(Trainer)
}

// Trainer is the "builtin/gbdt" trainer.
var Trainer train.Trainer = trainer{}

type trainer struct{}

func (trainer) Name() string { return Name }

// Train fits a GBDT on the train rows of t. The task follows the param
// objective: "auto" (the default) makes a categorical target, or a numeric
// one with exactly two values, a classification (binary for two classes,
// multiclass for more) and any other numeric target a regression. Rows
// without a target value are skipped.
func (trainer) Train(ctx context.Context, t *table.Table, trainRows, validRows []int, target string, inputs []model.Input, params map[string]any, seed uint64) (model.Model, map[string]float64, error) {
	m, metrics, err := trainTable(ctx, t, trainRows, validRows, target, inputs, params, seed)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", Name, err)
	}
	return m, metrics, nil
}

func trainTable(ctx context.Context, t *table.Table, trainRows, validRows []int, target string, inputs []model.Input, params map[string]any, seed uint64) (*Model, map[string]float64, error) {
	tp := train.NewParams(params)
	p := readParams(tp)
	objective := tp.String("objective", "auto", "auto", string(model.Binary), string(model.Multiclass), string(model.Regression))
	if err := tp.Check(); err != nil {
		return nil, nil, err
	}
	p.Seed = seed
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	tc, ok := t.Column(target)
	if !ok {
		return nil, nil, fmt.Errorf("no target column %q", target)
	}
	inputs, err := t.ResolveInputs(target, inputs)
	if err != nil {
		return nil, nil, err
	}
	trainRows, validRows = labelled(tc, trainRows), labelled(tc, validRows)
	if len(trainRows) == 0 {
		return nil, nil, fmt.Errorf("no train rows with a value of the target %q", target)
	}
	if p.EarlyStoppingRounds > 0 && len(validRows) == 0 {
		trainRows, validRows = holdOut(trainRows, earlyStoppingShare, seed)
	}
	task, classes, err := resolveTask(model.Task(objective), objective == "auto", tc, trainRows)
	if err != nil {
		return nil, nil, err
	}
	label := func(i int) (float64, bool) { return tc.F[i], true }
	if task != model.Regression {
		index := make(map[string]int, len(classes))
		for k, c := range classes {
			index[c] = k
		}
		label = func(i int) (float64, bool) {
			k, ok := index[tc.Text(i)]
			return float64(k), ok
		}
	}
	s := Spec{Task: task, Classes: classes, Params: p}
	tr := tableDataset(t, trainRows, inputs, label)
	var va *Dataset
	if len(validRows) > 0 {
		// A validation row of a class the train rows lack cannot be scored.
		va = tableDataset(t, validRows, inputs, label)
		if va.rows() == 0 {
			va = nil
		}
	}
	if va == nil && p.EarlyStoppingRounds > 0 {
		return nil, nil, fmt.Errorf("param earlyStoppingRounds: no validation rows to watch")
	}
	m, err := Train(ctx, s, tr, va)
	if err != nil {
		return nil, nil, err
	}
	metrics := map[string]float64{"rounds": float64(m.Rounds())}
	if va != nil {
		addValidMetrics(metrics, m, va)
	}
	return m, metrics, nil
}

// resolveTask picks the task and the class labels (sorted, so a binary
// target's positive class is the second).
func resolveTask(task model.Task, auto bool, tc *table.Column, rows []int) (model.Task, []string, error) {
	var classes []string
	if auto || task != model.Regression {
		classes = tc.Classes(rows)
	}
	if auto {
		switch {
		case tc.Kind == model.Categorical && len(classes) == 2, tc.Kind == model.Numeric && len(classes) == 2:
			task = model.Binary
		case tc.Kind == model.Categorical:
			task = model.Multiclass
		default:
			task = model.Regression
		}
	}
	switch {
	case task == model.Regression && tc.Kind != model.Numeric:
		return "", nil, fmt.Errorf("regression needs a numeric target; %q is categorical", tc.Name)
	case task == model.Regression:
		return task, nil, nil
	case len(classes) < 2:
		return "", nil, fmt.Errorf("the target %q has %d class in the train rows, want at least 2", tc.Name, len(classes))
	case task == model.Binary && len(classes) != 2:
		return "", nil, fmt.Errorf("objective binary: the target %q has %d classes", tc.Name, len(classes))
	case len(classes) > maxClasses:
		return "", nil, fmt.Errorf("the target %q has %d classes, at most %d: is it a regression target?", tc.Name, len(classes), maxClasses)
	}
	return task, classes, nil
}

func labelled(c *table.Column, rows []int) []int {
	out := make([]int, 0, len(rows))
	for _, i := range rows {
		if !c.Null[i] {
			out = append(out, i)
		}
	}
	return out
}

// holdOut moves a seeded random share of rows to a second list.
func holdOut(rows []int, share float64, seed uint64) (kept, held []int) {
	rng := rand.New(rand.NewPCG(seed, 0x686f6c646f7574))
	for _, i := range rows {
		if rng.Float64() < share {
			held = append(held, i)
		} else {
			kept = append(kept, i)
		}
	}
	if len(kept) == 0 {
		return held, nil
	}
	return kept, held
}

// tableDataset copies the rows of t that label accepts into a Dataset.
func tableDataset(t *table.Table, rows []int, inputs []model.Input, label func(int) (float64, bool)) *Dataset {
	d := &Dataset{}
	keep := make([]int, 0, len(rows))
	for _, i := range rows {
		if y, ok := label(i); ok {
			keep = append(keep, i)
			d.Y = append(d.Y, y)
		}
	}
	for _, in := range inputs {
		c, _ := t.Column(in.Name)
		col := Column{Name: in.Name, Kind: in.Kind, Null: make([]bool, len(keep))}
		if in.Kind == model.Categorical {
			col.S = make([]string, len(keep))
		} else {
			col.F = make([]float64, len(keep))
		}
		for k, i := range keep {
			col.Null[k] = c.Null[i]
			switch {
			case c.Null[i]:
			case in.Kind == model.Numeric:
				col.F[k] = c.F[i]
			default:
				col.S[k] = c.Text(i)
			}
		}
		d.Features = append(d.Features, col)
	}
	return d
}

// addValidMetrics scores the validation set: the loss early stopping
// watched, plus accuracy (classification) and AUC (binary).
func addValidMetrics(metrics map[string]float64, m *Model, va *Dataset) {
	metrics["valid_"+m.file.Metric] = m.file.BestScore
	if m.Task() == model.Regression {
		return
	}
	out := make([]model.Prediction, va.rows())
	if err := m.Predict(datasetRows(va), out); err != nil {
		// The dataset was built for this model's inputs; Predict cannot refuse it.
		panic(fmt.Sprintf("gbdt: predict on the validation set: %v", err))
	}
	var correct float64
	scores := make([]float64, len(out))
	for r, p := range out {
		if p.Label == m.Classes()[int(va.Y[r])] {
			correct++
		}
		scores[r] = p.Value
	}
	metrics["valid_accuracy"] = correct / float64(len(out))
	if m.Task() == model.Binary {
		metrics["valid_auc"] = auc(scores, va.Y)
	}
}

// datasetRows turns a dataset into Predict's rows.
func datasetRows(d *Dataset) []model.Row {
	out := make([]model.Row, d.rows())
	values := make([]model.Value, d.rows()*len(d.Features))
	for r := range out {
		row := values[r*len(d.Features) : (r+1)*len(d.Features) : (r+1)*len(d.Features)]
		for j := range d.Features {
			c := &d.Features[j]
			switch {
			case c.missing(r):
				row[j].Null = true
			case c.Kind == model.Categorical:
				row[j].S = c.S[r]
			default:
				row[j].F = c.F[r]
			}
		}
		out[r] = row
	}
	return out
}

// auc is the area under the ROC curve of scores against 0/1 labels, tied
// scores counting half.
func auc(scores, y []float64) float64 {
	idx := make([]int, len(y))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var pos, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2
		for _, k := range idx[i:j] {
			if y[k] == 1 {
				rankSum += avgRank
				pos++
			}
		}
		i = j
	}
	neg := float64(len(y)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// MarshalBundle is the model's bundle: its format and its one file.
func (m *Model) MarshalBundle() (string, map[string][]byte, error) {
	data, err := m.Marshal()
	if err != nil {
		return "", nil, err
	}
	return Format, map[string][]byte{modelFile: data}, nil
}

// Preprocessing tells the manifest's readers how the model reads its inputs.
func (m *Model) Preprocessing() json.RawMessage {
	type feature struct {
		Name       string     `json:"name"`
		Kind       model.Kind `json:"kind"`
		Categories int        `json:"categories,omitempty"`
	}
	desc := struct {
		Missing     string    `json:"missing"`
		Categorical string    `json:"categorical"`
		Features    []feature `json:"features"`
	}{
		Missing:     "each split sends missing values to the side learned in training",
		Categorical: "categories seen in training split by sets; unseen ones are read as missing",
	}
	for _, f := range m.file.Features {
		desc.Features = append(desc.Features, feature{f.Name, f.Kind, len(f.Categories)})
	}
	data, err := json.Marshal(desc)
	if err != nil {
		panic(fmt.Sprintf("gbdt: encode preprocessing: %v", err)) // plain structs always encode
	}
	return data
}

// load reads a "gyre/gbdt" bundle.
func load(dir string, man *model.Manifest) (model.Model, error) {
	data, err := model.ReadFile(dir, man, modelFile)
	if err != nil {
		return nil, err
	}
	m, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if man.Task != m.Task() || !slices.Equal(man.Inputs, m.Inputs()) || !slices.Equal(man.Classes, m.Classes()) {
		return nil, fmt.Errorf("the manifest's task, inputs or classes differ from the model file's")
	}
	return m, nil
}

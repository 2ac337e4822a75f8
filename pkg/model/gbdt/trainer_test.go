package gbdt

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
	"github.com/gyreml/gyre/pkg/model/train"
)

// customers is a table like a pipeline's: numbers with gaps, a category, a
// yes/no target, a 3-class target and a numeric one.
func customers(n int, seed uint64) *table.Table {
	rng := rand.New(rand.NewPCG(seed, 7))
	cols := map[string]*table.Column{}
	for _, c := range []struct {
		name string
		kind model.Kind
	}{{"age", model.Numeric}, {"income", model.Numeric}, {"plan", model.Categorical},
		{"churned", model.Categorical}, {"tier", model.Categorical}, {"spend", model.Numeric}} {
		col := &table.Column{Name: c.name, Kind: c.kind, Null: make([]bool, n)}
		if c.kind == model.Numeric {
			col.F = make([]float64, n)
		} else {
			col.S = make([]string, n)
		}
		cols[c.name] = col
	}
	plans := []string{"free", "basic", "pro", "team", "enterprise"}
	for i := range n {
		age, income, plan := 18+rng.Float64()*60, rng.ExpFloat64()*50, rng.IntN(len(plans))
		cols["age"].F[i], cols["income"].F[i], cols["plan"].S[i] = age, income, plans[plan]
		z := (age-45)/10 - float64(plan) + 1.5
		if rng.Float64() < 0.1 {
			cols["income"].F[i], cols["income"].Null[i] = math.NaN(), true
			z += 2
		}
		cols["churned"].S[i] = "no"
		if rng.Float64() < sigmoid(z) {
			cols["churned"].S[i] = "yes"
		}
		cols["tier"].S[i] = []string{"bronze", "silver", "gold"}[min(int(age-18)/20, 2)]
		cols["spend"].F[i] = 10*float64(plan) + age/5 + rng.NormFloat64()
	}
	t := &table.Table{Rows: n}
	for _, name := range []string{"age", "income", "plan", "churned", "tier", "spend"} {
		t.Columns = append(t.Columns, cols[name])
	}
	return t
}

var customerInputs = []model.Input{{Name: "age", Kind: model.Numeric}, {Name: "income", Kind: model.Numeric}, {Name: "plan", Kind: model.Categorical}}

func TestTrainerBundleRoundTrip(t *testing.T) {
	tb := customers(6000, 1)
	trainRows, validRows, err := table.Split(tb, table.SplitSpec{Holdout: 0.25, Seed: 3, Stratify: true, Target: "churned"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.Lookup(Name)
	if err != nil {
		t.Fatal(err)
	}
	m, metrics, err := tr.Train(t.Context(), tb, trainRows, validRows, "churned", customerInputs, map[string]any{"trees": 40, "maxDepth": 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if m.Task() != model.Binary || !slices.Equal(m.Classes(), []string{"no", "yes"}) {
		t.Errorf("task %s, classes %v", m.Task(), m.Classes())
	}
	if metrics["rounds"] != 40 || metrics["valid_auc"] < 0.8 || metrics["valid_accuracy"] < 0.7 || metrics["valid_logloss"] <= 0 {
		t.Errorf("metrics %v", metrics)
	}
	dir := t.TempDir()
	if err := model.Save(dir, m, &model.Manifest{Target: "churned", Metrics: metrics}); err != nil {
		t.Fatal(err)
	}
	loaded, man, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if man.Format != Format || man.Task != model.Binary || !strings.Contains(string(man.Preprocessing), "missing") {
		t.Errorf("manifest %+v", man)
	}
	rows, err := tb.ModelRows(m.Inputs(), validRows)
	if err != nil {
		t.Fatal(err)
	}
	a, b := make([]model.Prediction, len(rows)), make([]model.Prediction, len(rows))
	if err := m.Predict(rows, a); err != nil {
		t.Fatal(err)
	}
	if err := loaded.Predict(rows, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i].Label != b[i].Label || a[i].Value != b[i].Value {
			t.Fatalf("row %d: %+v before saving, %+v after loading", i, a[i], b[i])
		}
	}
	if err := loaded.Predict([]model.Row{{{F: 1}}}, a[:1]); err == nil {
		t.Error("a short row: no error")
	}
}

func TestTrainerTasks(t *testing.T) {
	tb := customers(3000, 2)
	all := make([]int, tb.Rows)
	for i := range all {
		all[i] = i
	}
	run := func(target string, params map[string]any) (model.Model, map[string]float64, error) {
		return Trainer.Train(t.Context(), tb, all[:2400], all[2400:], target, customerInputs, params, 1)
	}
	m, metrics, err := run("tier", map[string]any{"trees": 20})
	if err != nil || m.Task() != model.Multiclass || metrics["valid_accuracy"] < 0.95 {
		t.Errorf("3-class target: task %v, metrics %v, %v", m, metrics, err)
	}
	m, metrics, err = run("spend", map[string]any{"trees": 50})
	if err != nil || m.Task() != model.Regression || metrics["valid_rmse"] > 2 {
		t.Errorf("numeric target: metrics %v, %v", metrics, err)
	}
	if _, _, err := run("tier", map[string]any{"objective": "binary"}); err == nil || !strings.Contains(err.Error(), "3 classes") {
		t.Errorf("objective binary on 3 classes: %v", err)
	}
	if _, _, err := run("tier", map[string]any{"objective": "regression"}); err == nil || !strings.Contains(err.Error(), "numeric target") {
		t.Errorf("regression on a categorical target: %v", err)
	}
	_, _, err = run("churned", map[string]any{"trees": 10, "gamma": 1})
	if err == nil || !strings.Contains(err.Error(), `unknown param "gamma"`) || !strings.Contains(err.Error(), "minSplitGain") {
		t.Errorf("unknown param: %v", err)
	}
	// Early stopping with no validation rows holds some train rows out.
	_, metrics, err = Trainer.Train(t.Context(), tb, all, nil, "churned", customerInputs,
		map[string]any{"trees": 500, "learningRate": 0.5, "earlyStoppingRounds": 5}, 1)
	if err != nil || metrics["rounds"] >= 500 || metrics["valid_logloss"] == 0 {
		t.Errorf("early stopping without validation rows: metrics %v, %v", metrics, err)
	}
	// Inputs left out: every other column, by its kind.
	m, _, err = Trainer.Train(t.Context(), tb, all, nil, "churned", nil, map[string]any{"trees": 5}, 1)
	if err != nil || len(m.Inputs()) != 5 {
		t.Errorf("all columns: %v, %v", m, err)
	}
	// A numeric column read as categorical.
	m, _, err = Trainer.Train(t.Context(), tb, all, nil, "churned", []model.Input{{Name: "age", Kind: model.Categorical}}, map[string]any{"trees": 5}, 1)
	if err != nil || len(m.(*Model).file.Features[0].Categories) != 255 {
		t.Errorf("numeric column as categorical: %v", err)
	}
	out := make([]model.Prediction, 1)
	if err := m.Predict([]model.Row{{{S: strconv.FormatFloat(tb.Columns[0].F[0], 'g', -1, 64)}}}, out); err != nil {
		t.Error(err)
	}
}

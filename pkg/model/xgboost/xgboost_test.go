package xgboost_test

import (
	"math"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/xgboost"
)

// handModel is a one-tree binary model written by hand in xgboost's JSON
// format (with the bare NaN xgboost writes for a categorical split):
//
//	node 0: a < 0.5 ? node 1 : leaf 0.4          (missing a: right)
//	node 1: color in {1, 3} ? leaf 0.2 : leaf -0.3 (missing color: left)
const handModel = `{"learner": {
  "attributes": {}, "feature_names": ["a", "color"], "feature_types": ["q", "c"],
  "gradient_booster": {"model": {"gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "1", "size_leaf_vector": "0"},
    "tree_info": [0],
    "trees": [{"base_weights": [0, 0, 0.4, -0.3, 0.2], "categories": [1, 3], "categories_nodes": [1],
      "categories_segments": [0], "categories_sizes": [2], "default_left": [0, 1, 0, 0, 0], "id": 0,
      "left_children": [1, 3, -1, -1, -1], "right_children": [2, 4, -1, -1, -1],
      "loss_changes": [1, 1, 0, 0, 0], "parents": [2147483647, 0, 0, 1, 1],
      "split_conditions": [0.5, NaN, 0.4, -0.3, 0.2], "split_indices": [0, 1, 0, 0, 0],
      "split_type": [0, 1, 0, 0, 0], "sum_hessian": [1, 1, 1, 1, 1],
      "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": "5", "size_leaf_vector": "0"}}]},
    "name": "gbtree"},
  "learner_model_param": {"base_score": "6E-1", "boost_from_average": "1", "num_class": "0", "num_feature": "2", "num_target": "1"},
  "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}},
 "version": [1, 7, 4]}`

var handInputs = []model.Input{{Name: "color", Kind: model.Categorical}, {Name: "a", Kind: model.Numeric}}

func handManifest() *model.Manifest {
	return &model.Manifest{Task: model.Binary, Inputs: handInputs, Classes: []string{"good", "bad"}}
}

var handCategories = map[string][]string{"color": {"red", "green", "blue", "amber"}}

func TestHandWrittenModel(t *testing.T) {
	m, err := xgboost.Parse([]byte(handModel), handManifest(), handCategories)
	if err != nil {
		t.Fatal(err)
	}
	// logit(base_score) in float32, as xgboost computes it.
	base := -float32(math.Log(float64(1/float32(0.6) - 1)))
	num := func(f float64) model.Value { return model.Value{F: f} }
	cat := func(s string) model.Value { return model.Value{S: s} }
	null := model.Value{Null: true}
	for _, tc := range []struct {
		why  string
		row  model.Row
		leaf float32
	}{
		{"red (code 0) is not in the set: left", model.Row{cat("red"), num(0)}, -0.3},
		{"green (code 1) is: right", model.Row{cat("green"), num(0)}, 0.2},
		{"amber (code 3) is: right", model.Row{cat("amber"), num(0.49)}, 0.2},
		{"a = 0.5 is not < 0.5: right", model.Row{cat("red"), num(0.5)}, 0.4},
		{"missing a: default right", model.Row{cat("red"), null}, 0.4},
		{"missing color: default left", model.Row{null, num(0)}, -0.3},
		{"unknown color is missing: default left", model.Row{cat("violet"), num(0)}, -0.3},
	} {
		margin, err := m.Margins(tc.row)
		if err != nil {
			t.Fatal(err)
		}
		if want := base + tc.leaf; margin[0] != want {
			t.Errorf("%s: margin %v, want %v", tc.why, margin[0], want)
		}
		out := make([]model.Prediction, 1)
		if err := m.Predict([]model.Row{tc.row}, out); err != nil {
			t.Fatal(err)
		}
		p := 1 / (1 + math.Exp(-float64(base+tc.leaf)))
		if math.Abs(out[0].Value-p) > 1e-7 || out[0].Label != map[bool]string{false: "good", true: "bad"}[p >= 0.5] {
			t.Errorf("%s: %+v, want p %v", tc.why, out[0], p)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model string
		man   func(*model.Manifest)
		cats  map[string][]string
		want  string
	}{
		{"ranking objective", strings.Replace(handModel, `"binary:logistic"`, `"rank:pairwise"`, 1), nil, handCategories,
			`objective "rank:pairwise" is not supported`},
		{"task mismatch", handModel, func(m *model.Manifest) { m.Task, m.Classes = model.Regression, nil }, handCategories,
			"objective binary:logistic makes a binary model, but the manifest's task is regression"},
		{"categorical input without codes", handModel, nil, nil,
			`input "color" is categorical but categories.json gives no codes for it`},
		{"feature not an input", handModel, func(m *model.Manifest) { m.Inputs = m.Inputs[:1] }, handCategories,
			`model feature "a" is not among the manifest's inputs`},
		{"linear booster", strings.Replace(handModel, `"name": "gbtree"`, `"name": "gblinear"`, 1), nil, handCategories,
			"gblinear (linear booster) models are not supported"},
		{"tree for a class the model lacks", strings.Replace(handModel, `"tree_info": [0]`, `"tree_info": [1]`, 1), nil, handCategories,
			"tree 0: output 1, the model has 1"},
		{"child before its parent", strings.Replace(handModel, `"left_children": [1, 3,`, `"left_children": [1, 0,`, 1), nil, handCategories,
			"tree 0: node 1: children 0 and 4 out of order"},
		{"not JSON", `{"learner": `, nil, nil, "decode model.json"},
	} {
		man := handManifest()
		if tc.man != nil {
			tc.man(man)
		}
		_, err := xgboost.Parse([]byte(tc.model), man, tc.cats)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestNaNInsideStringsIsLeftAlone(t *testing.T) {
	// A feature named "NaN" must survive the quoting of bare NaN numbers.
	src := strings.Replace(handModel, `"feature_names": ["a", "color"]`, `"feature_names": ["NaN", "color"]`, 1)
	man := handManifest()
	man.Inputs = []model.Input{{Name: "color", Kind: model.Categorical}, {Name: "NaN", Kind: model.Numeric}}
	if _, err := xgboost.Parse([]byte(src), man, handCategories); err != nil {
		t.Fatal(err)
	}
}

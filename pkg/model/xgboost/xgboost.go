// Package xgboost scores XGBoost models in Go, with no Python: it reads the
// JSON model format (booster.save_model("model.json"), xgboost 1.x to 3.x)
// and predicts as xgboost's CPU predictor does, in float32, so its answers
// equal xgboost's own. Importing the package registers the bundle format
// "xgboost/json": a manifest (gyre-model.json) and model.json, plus
// categories.json when a categorical input needs its category codes.
// docs/formats.md is the user's view.
package xgboost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/internal/parallel"
)

// Format is the bundle format this package reads.
const Format = "xgboost/json"

// Bundle files: the booster, and the codes of categorical inputs (optional).
const (
	ModelFile      = "model.json"
	CategoriesFile = model.CategoriesFile
)

func init() { model.RegisterFormat(Format, load) }

func load(dir string, man *model.Manifest) (model.Model, error) {
	data, err := model.ReadFile(dir, man, ModelFile)
	if err != nil {
		return nil, err
	}
	cats, err := model.ReadCategories(dir, man)
	if err != nil {
		return nil, err
	}
	return Parse(data, man, cats)
}

// Model is an XGBoost tree ensemble. It is read only after Parse, so
// Predict is safe for concurrent use.
type Model struct {
	inputs  []model.Input
	task    model.Task
	classes []string
	// objective is xgboost's objective name; link how a margin becomes
	// the answer.
	objective string
	link      link
	// base is the starting margin of each output group.
	base  []float32
	trees []tree
	// group is the output each tree adds to; weight its dart weight
	// (nil for gbtree).
	group  []int
	weight []float32
	// feature maps the model's feature index to the input index.
	feature []int
	// codes maps each categorical input's categories to xgboost's codes.
	codes []map[string]float32
}

type link int

const (
	identity link = iota
	logistic
	softmax
	exponential
)

// node is one tree node, packed in 16 bytes so trees stay in cache.
type node struct {
	// left and right are the children; left < 0 for a leaf.
	left, right int32
	// flags holds the feature index and the defaultLeft and categorical
	// bits.
	flags uint32
	// value is the split threshold (go left when x < value), or the leaf
	// value.
	value float32
}

const (
	defaultLeft = 1 << 31
	categorical = 1 << 30
	featureMask = categorical - 1
)

type tree struct {
	nodes []node
	// catSpan is, for each node (nil when the tree has no categorical
	// split), where in catBits its bitset of codes that go right lies.
	catSpan []span
	catBits []uint64
}

type span struct{ lo, n int32 }

func (t *tree) leaf(x []float32) float32 {
	i := int32(0)
	for {
		n := &t.nodes[i]
		if n.left < 0 {
			return n.value
		}
		v := x[n.flags&featureMask]
		switch {
		case v != v:
			i = n.right
			if n.flags&defaultLeft != 0 {
				i = n.left
			}
		case n.flags&categorical != 0:
			if t.goesRight(i, v) {
				i = n.right
			} else {
				i = n.left
			}
		case v < n.value:
			i = n.left
		default:
			i = n.right
		}
	}
}

// goesRight reports whether category code v (truncated to an integer, as
// xgboost does) is in node i's set; codes outside every set go left.
func (t *tree) goesRight(i int32, v float32) bool {
	if v < 0 || v >= 1<<24 {
		return false
	}
	c, sp := uint32(v), t.catSpan[i]
	w := int32(c / 64)
	return w < sp.n && t.catBits[sp.lo+w]&(1<<(c%64)) != 0
}

func (m *Model) Inputs() []model.Input { return slices.Clone(m.inputs) }
func (m *Model) Task() model.Task      { return m.task }
func (m *Model) Classes() []string     { return slices.Clone(m.classes) }

// Objective is the xgboost objective the model was trained with.
func (m *Model) Objective() string { return m.objective }

// Trees is the number of trees.
func (m *Model) Trees() int { return len(m.trees) }

// Predict scores rows, in parallel for large batches.
func (m *Model) Predict(rows []model.Row, out []model.Prediction) error {
	if len(out) != len(rows) {
		return fmt.Errorf("predict: %d rows but room for %d predictions", len(rows), len(out))
	}
	for i, r := range rows {
		if len(r) != len(m.inputs) {
			return fmt.Errorf("row %d: %d values for %d inputs: %w", i, len(r), len(m.inputs), model.ErrInput)
		}
	}
	nf, ng := len(m.feature), len(m.base)
	parallel.Chunks(len(rows), 256, func(_, lo, hi int) {
		x := make([]float32, block*nf)
		margin := make([]float32, block*ng)
		for b := lo; b < hi; b += block {
			n := min(block, hi-b)
			for k := range n {
				m.encode(rows[b+k], x[k*nf:(k+1)*nf])
				copy(margin[k*ng:], m.base)
			}
			// Tree by tree over a block of rows keeps each tree in cache.
			for t := range m.trees {
				tr, g := &m.trees[t], m.group[t]
				for k := range n {
					v := tr.leaf(x[k*nf : (k+1)*nf])
					if m.weight != nil {
						v *= m.weight[t]
					}
					margin[k*ng+g] += v
				}
			}
			for k := range n {
				out[b+k] = m.prediction(margin[k*ng : (k+1)*ng])
			}
		}
	})
	return nil
}

// block is how many rows Predict walks through each tree at a time.
const block = 64

// Margins are the raw scores of one row, one per output group, as
// xgboost's predict(output_margin=True) gives them.
func (m *Model) Margins(row model.Row) ([]float32, error) {
	if len(row) != len(m.inputs) {
		return nil, fmt.Errorf("%d values for %d inputs: %w", len(row), len(m.inputs), model.ErrInput)
	}
	x := make([]float32, len(m.feature))
	margin := make([]float32, len(m.base))
	m.encode(row, x)
	m.margins(x, margin)
	return margin, nil
}

// encode writes the row's values in the model's feature order, as the
// float32 xgboost stores: NaN for missing and unknown categories.
func (m *Model) encode(row model.Row, x []float32) {
	for j, in := range m.feature {
		v := row[in]
		switch {
		case v.Null:
			x[j] = float32(math.NaN())
		case m.codes[in] != nil:
			c, ok := m.codes[in][v.S]
			if !ok {
				c = float32(math.NaN())
			}
			x[j] = c
		default:
			x[j] = float32(v.F)
		}
	}
}

// margins sums the trees in float32 and in tree order, as xgboost does, so
// the result is xgboost's to the last bit or two.
func (m *Model) margins(x, margin []float32) {
	copy(margin, m.base)
	for t := range m.trees {
		v := m.trees[t].leaf(x)
		if m.weight != nil {
			v *= m.weight[t]
		}
		margin[m.group[t]] += v
	}
}

func (m *Model) prediction(margin []float32) model.Prediction {
	switch m.task {
	case model.Regression:
		v := float64(margin[0])
		if m.link == exponential {
			v = float64(float32(math.Exp(v)))
		}
		return model.Prediction{Value: v}
	case model.Binary:
		p := sigmoid(margin[0])
		label := m.classes[0]
		if p >= 0.5 {
			label = m.classes[1]
		}
		return model.Prediction{Label: label, Value: p, Probabilities: []float64{1 - p, p}}
	}
	probs := make([]float64, len(margin))
	top := float64(slices.Max(margin))
	var sum float64
	for k, v := range margin {
		probs[k] = float64(float32(math.Exp(float64(v) - top)))
		sum += probs[k]
	}
	best := 0
	for k := range probs {
		probs[k] = float64(float32(probs[k] / sum))
		if probs[k] > probs[best] {
			best = k
		}
	}
	return model.Prediction{Label: m.classes[best], Value: probs[best], Probabilities: probs}
}

// sigmoid is xgboost's, rounded to float32 as its output is.
func sigmoid(x float32) float64 {
	return float64(float32(1 / (1 + math.Exp(-float64(x)))))
}

// objectives are the objectives Predict knows: the task they need and the
// link from margin to answer.
var objectives = map[string]struct {
	task model.Task
	link link
}{
	"binary:logistic":      {model.Binary, logistic},
	"binary:logitraw":      {model.Binary, logistic},
	"reg:logistic":         {model.Regression, logistic},
	"multi:softprob":       {model.Multiclass, softmax},
	"multi:softmax":        {model.Multiclass, softmax},
	"reg:squarederror":     {model.Regression, identity},
	"reg:linear":           {model.Regression, identity},
	"reg:squaredlogerror":  {model.Regression, identity},
	"reg:pseudohubererror": {model.Regression, identity},
	"reg:absoluteerror":    {model.Regression, identity},
	"reg:quantileerror":    {model.Regression, identity},
	"count:poisson":        {model.Regression, exponential},
	"reg:gamma":            {model.Regression, exponential},
	"reg:tweedie":          {model.Regression, exponential},
}

// jsonModel is the part of xgboost's JSON model that scoring needs.
type jsonModel struct {
	Learner struct {
		FeatureNames []string `json:"feature_names"`
		Param        struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		Booster jsonBooster `json:"gradient_booster"`
	} `json:"learner"`
}

type jsonBooster struct {
	Name  string `json:"name"`
	Model *struct {
		Trees    []jsonTree `json:"trees"`
		TreeInfo []int      `json:"tree_info"`
	} `json:"model"`
	// Dart keeps its trees in a gbtree and weighs each.
	Gbtree     *jsonBooster `json:"gbtree"`
	WeightDrop []flt        `json:"weight_drop"`
}

type jsonTree struct {
	Left               []int32 `json:"left_children"`
	Right              []int32 `json:"right_children"`
	SplitIndices       []int32 `json:"split_indices"`
	SplitConditions    []flt   `json:"split_conditions"`
	DefaultLeft        []flag  `json:"default_left"`
	SplitType          []int   `json:"split_type"`
	Categories         []int64 `json:"categories"`
	CategoriesNodes    []int   `json:"categories_nodes"`
	CategoriesSegments []int64 `json:"categories_segments"`
	CategoriesSizes    []int64 `json:"categories_sizes"`
	Param              struct {
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
}

// flt is a float32 that also reads the NaN and Infinity xgboost writes
// (quoted by quoteNonFinite, since JSON has no such numbers).
type flt float32

func (f *flt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	v, err := strconv.ParseFloat(s, 32)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = flt(v)
	return nil
}

// flag is a boolean xgboost writes as 0/1 (or true/false).
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "1", "true":
		*f = true
	case "0", "false":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

// Parse reads an XGBoost JSON model for the inputs, task and classes of the
// manifest m. categories gives, for a categorical input, its categories in
// code order (code 0 first); a categorical input needs them.
func Parse(data []byte, m *model.Manifest, categories map[string][]string) (*Model, error) {
	var j jsonModel
	if err := json.Unmarshal(quoteNonFinite(data), &j); err != nil {
		return nil, fmt.Errorf("decode %s: %w", ModelFile, err)
	}
	l := &j.Learner
	obj, ok := objectives[l.Objective.Name]
	if !ok {
		known := slices.Sorted(maps.Keys(objectives))
		return nil, fmt.Errorf("objective %q is not supported (supported: %s)", l.Objective.Name, strings.Join(known, ", "))
	}
	if obj.task != m.Task {
		return nil, fmt.Errorf("objective %s makes a %s model, but the manifest's task is %s", l.Objective.Name, obj.task, m.Task)
	}
	numClass, err := intParam("num_class", l.Param.NumClass)
	if err != nil {
		return nil, err
	}
	numFeature, err := intParam("num_feature", l.Param.NumFeature)
	if err != nil {
		return nil, err
	}
	if t, _ := intParam("num_target", l.Param.NumTarget); t > 1 {
		return nil, fmt.Errorf("multi-target models (num_target %d) are not supported", t)
	}
	groups := 1
	if obj.link == softmax {
		if numClass != len(m.Classes) {
			return nil, fmt.Errorf("the model has %d classes, the manifest %d", numClass, len(m.Classes))
		}
		groups = numClass
	}
	out := &Model{
		inputs: slices.Clone(m.Inputs), task: m.Task, classes: slices.Clone(m.Classes),
		objective: l.Objective.Name, link: obj.link,
	}
	if out.base, err = baseMargins(l.Param.BaseScore, obj.link, groups); err != nil {
		return nil, err
	}
	if err := out.mapFeatures(l.FeatureNames, numFeature, categories); err != nil {
		return nil, err
	}
	if err := out.readTrees(&l.Booster, groups); err != nil {
		return nil, err
	}
	return out, nil
}

func intParam(name, s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v != math.Trunc(v) {
		return 0, fmt.Errorf("learner_model_param %s: want a whole number, got %q", name, s)
	}
	return int(v), nil
}

// baseMargins turns base_score (a probability for logistic objectives, a
// mean for log-link ones; "[v1,v2]" in xgboost 3) into starting margins.
func baseMargins(s string, l link, groups int) ([]float32, error) {
	parts := strings.Split(strings.Trim(s, "[]"), ",")
	base := make([]float32, groups)
	if len(parts) != 1 && len(parts) != groups {
		return nil, fmt.Errorf("base_score %q: %d values for %d outputs", s, len(parts), groups)
	}
	for g := range base {
		p := parts[0]
		if len(parts) == groups {
			p = parts[g]
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, fmt.Errorf("base_score %q: not a number", s)
		}
		// In float32, as xgboost's ProbToMargin computes it.
		v := float32(f)
		switch l {
		case logistic:
			if v <= 0 || v >= 1 {
				return nil, fmt.Errorf("base_score %v: a logistic model's must be in (0, 1)", v)
			}
			v = -float32(math.Log(float64(1/v - 1)))
		case exponential:
			if v <= 0 {
				return nil, fmt.Errorf("base_score %v: a log-link model's must be positive", v)
			}
			v = float32(math.Log(float64(v)))
		}
		base[g] = v
	}
	return base, nil
}

// mapFeatures maps the model's features to the manifest's inputs: by name
// when the model has names, else f0, f1 ... to the inputs in order.
func (m *Model) mapFeatures(names []string, n int, categories map[string][]string) error {
	if len(names) > 0 && len(names) != n {
		return fmt.Errorf("%d feature_names for num_feature %d", len(names), n)
	}
	if len(names) == 0 && n != len(m.inputs) {
		return fmt.Errorf("the model has %d unnamed features but the manifest %d inputs; name the features (DMatrix feature_names) or list the inputs in the model's order", n, len(m.inputs))
	}
	index := make(map[string]int, len(m.inputs))
	for i, in := range m.inputs {
		index[in.Name] = i
	}
	m.feature = make([]int, n)
	for j := range n {
		if len(names) == 0 {
			m.feature[j] = j
			continue
		}
		i, ok := index[names[j]]
		if !ok {
			return fmt.Errorf("model feature %q is not among the manifest's inputs", names[j])
		}
		m.feature[j] = i
	}
	m.codes = make([]map[string]float32, len(m.inputs))
	for i, in := range m.inputs {
		if in.Kind != model.Categorical {
			continue
		}
		list, ok := categories[in.Name]
		if !ok {
			return fmt.Errorf("input %q is categorical but %s gives no codes for it: xgboost reads category codes; list the input's categories there in code order", in.Name, CategoriesFile)
		}
		m.codes[i] = make(map[string]float32, len(list))
		for c, s := range list {
			m.codes[i][s] = float32(c)
		}
	}
	return nil
}

func (m *Model) readTrees(b *jsonBooster, groups int) error {
	switch b.Name {
	case "gbtree":
	case "dart":
		if b.Gbtree == nil {
			return errors.New("dart booster without its gbtree")
		}
		weights := b.WeightDrop
		b = b.Gbtree
		if b.Model != nil && len(weights) != len(b.Model.Trees) {
			return fmt.Errorf("dart: %d weights for %d trees", len(weights), len(b.Model.Trees))
		}
		for _, w := range weights {
			m.weight = append(m.weight, float32(w))
		}
	case "gblinear":
		return errors.New("gblinear (linear booster) models are not supported; only tree models")
	default:
		return fmt.Errorf("booster %q is not supported", b.Name)
	}
	if b.Model == nil {
		return errors.New("gradient_booster has no model")
	}
	trees, info := b.Model.Trees, b.Model.TreeInfo
	if len(info) != len(trees) {
		return fmt.Errorf("%d trees but tree_info has %d entries", len(trees), len(info))
	}
	m.trees, m.group = make([]tree, len(trees)), make([]int, len(trees))
	for t := range trees {
		if info[t] < 0 || info[t] >= groups {
			return fmt.Errorf("tree %d: output %d, the model has %d", t, info[t], groups)
		}
		m.group[t] = info[t]
		var err error
		if m.trees[t], err = m.readTree(&trees[t]); err != nil {
			return fmt.Errorf("tree %d: %w", t, err)
		}
	}
	return nil
}

func (m *Model) readTree(j *jsonTree) (tree, error) {
	n := len(j.Left)
	if n == 0 {
		return tree{}, errors.New("no nodes")
	}
	if len(j.Right) != n || len(j.SplitIndices) != n || len(j.SplitConditions) != n || len(j.DefaultLeft) != n {
		return tree{}, errors.New("node arrays of different lengths")
	}
	if s, _ := intParam("size_leaf_vector", j.Param.SizeLeafVector); s > 1 {
		return tree{}, errors.New("vector leaves (multi-target trees) are not supported")
	}
	if len(j.SplitType) != 0 && len(j.SplitType) != n {
		return tree{}, errors.New("split_type has the wrong length")
	}
	nodes := make([]node, n)
	var t tree
	for i := range n {
		nd := &nodes[i]
		nd.left, nd.right, nd.value = j.Left[i], j.Right[i], float32(j.SplitConditions[i])
		if nd.left < 0 {
			nd.left, nd.right = -1, -1
			continue
		}
		// Children come after their parent, so every walk ends.
		if nd.left <= int32(i) || nd.right <= int32(i) || nd.left >= int32(n) || nd.right >= int32(n) {
			return tree{}, fmt.Errorf("node %d: children %d and %d out of order", i, nd.left, nd.right)
		}
		f := j.SplitIndices[i]
		if f < 0 || int(f) >= len(m.feature) || f > featureMask {
			return tree{}, fmt.Errorf("node %d: feature %d, the model has %d", i, f, len(m.feature))
		}
		nd.flags = uint32(f)
		if j.DefaultLeft[i] {
			nd.flags |= defaultLeft
		}
	}
	for k, i := range j.CategoriesNodes {
		if i < 0 || i >= n || nodes[i].left < 0 || k >= len(j.CategoriesSegments) || k >= len(j.CategoriesSizes) {
			return tree{}, fmt.Errorf("categories_nodes[%d]: bad node or segment", k)
		}
		lo, size := j.CategoriesSegments[k], j.CategoriesSizes[k]
		if lo < 0 || size < 0 || lo+size > int64(len(j.Categories)) {
			return tree{}, fmt.Errorf("node %d: category segment out of range", i)
		}
		if t.catSpan == nil {
			t.catSpan = make([]span, n)
		}
		set := j.Categories[lo : lo+size]
		words := int64(0)
		for _, c := range set {
			if c < 0 || c >= 1<<24 {
				return tree{}, fmt.Errorf("node %d: category code %d out of range", i, c)
			}
			words = max(words, c/64+1)
		}
		t.catSpan[i] = span{lo: int32(len(t.catBits)), n: int32(words)}
		bits := make([]uint64, words)
		for _, c := range set {
			bits[c/64] |= 1 << (c % 64)
		}
		t.catBits = append(t.catBits, bits...)
		nodes[i].flags |= categorical
	}
	for i, st := range j.SplitType {
		if st == 1 && nodes[i].left >= 0 && nodes[i].flags&categorical == 0 {
			return tree{}, fmt.Errorf("node %d: categorical split without categories", i)
		}
	}
	t.nodes = nodes
	return t, nil
}

// quoteNonFinite quotes the NaN, Infinity and -Infinity that xgboost writes
// as bare numbers, which encoding/json refuses.
func quoteNonFinite(data []byte) []byte {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data
	}
	out := make([]byte, 0, len(data)+64)
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		for _, tok := range []string{"NaN", "Infinity", "-Infinity"} {
			if bytes.HasPrefix(data[i:], []byte(tok)) {
				out = append(append(append(out, '"'), tok...), '"')
				i += len(tok) - 1
				c = 0
				break
			}
		}
		if c != 0 {
			out = append(out, c)
		}
	}
	return out
}

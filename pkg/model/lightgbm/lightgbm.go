// Package lightgbm scores LightGBM models in Go, with no Python: it reads
// LightGBM's text model format (booster.save_model("model.txt"), v2 to v4)
// and predicts as LightGBM's Predict does, in float64. Importing the package
// registers the bundle format "lightgbm/text": a manifest (gyre-model.json)
// and model.txt, plus categories.json when a categorical input needs its
// category codes. docs/formats.md is the user's view.
package lightgbm

import (
	"bufio"
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
const Format = "lightgbm/text"

// Bundle files: the booster, and the codes of categorical inputs (optional;
// a pandas-trained model carries them itself, as pandas_categorical).
const (
	ModelFile      = "model.txt"
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

// Model is a LightGBM tree ensemble. It is read only after Parse, so
// Predict is safe for concurrent use.
type Model struct {
	inputs    []model.Input
	task      model.Task
	classes   []string
	objective string
	link      link
	// sigmoid is the scale of the binary and one-vs-all sigmoid.
	sigmoid float64
	// groups is the number of outputs (trees per iteration).
	groups int
	// average divides the sum by the iterations (random forest mode).
	average bool
	trees   []tree
	// feature maps the model's feature index to the input index, -1 for a
	// feature the manifest lacks and no tree splits on.
	feature []int
	// codes maps each categorical input's categories to LightGBM's codes;
	// a categorical input without codes gives them as text ("3").
	codes []map[string]float64
}

type link int

const (
	identity link = iota
	logistic
	softmax
	oneVsAll
	exponential
	square
)

// Decision type bits, as LightGBM writes them.
const (
	catMask         = 1
	defaultLeftMask = 2
	missingZero     = 1
	missingNaN      = 2
)

type node struct {
	left, right int32 // a child < 0 is the leaf ^child
	feature     int32
	decision    uint8
	threshold   float64
	// cats is the bitset of codes that go left, for a categorical split.
	cats []uint32
}

type tree struct {
	nodes  []node
	leaves []float64
}

// leaf follows LightGBM's NumericalDecision and CategoricalDecision.
func (t *tree) leaf(x []float64) float64 {
	if len(t.nodes) == 0 {
		return t.leaves[0]
	}
	i := int32(0)
	for i >= 0 {
		n := &t.nodes[i]
		v := x[n.feature]
		if n.decision&catMask != 0 {
			i = n.right
			if v == v && v >= 0 && v < 1<<31 && inBitset(n.cats, int(v)) {
				i = n.left
			}
			continue
		}
		missing := (n.decision >> 2) & 3
		if v != v && missing != missingNaN {
			v = 0
		}
		if (missing == missingZero && v >= -1e-35 && v <= 1e-35) || (missing == missingNaN && v != v) {
			i = n.right
			if n.decision&defaultLeftMask != 0 {
				i = n.left
			}
			continue
		}
		if v <= n.threshold {
			i = n.left
		} else {
			i = n.right
		}
	}
	return t.leaves[^i]
}

func inBitset(bits []uint32, c int) bool {
	w := c / 32
	return w < len(bits) && bits[w]>>(c%32)&1 != 0
}

func (m *Model) Inputs() []model.Input { return slices.Clone(m.inputs) }
func (m *Model) Task() model.Task      { return m.task }
func (m *Model) Classes() []string     { return slices.Clone(m.classes) }

// Objective is the LightGBM objective line the model was trained with.
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
	parallel.Chunks(len(rows), 256, func(_, lo, hi int) {
		x := make([]float64, len(m.feature))
		raw := make([]float64, m.groups)
		for i := lo; i < hi; i++ {
			m.raw(rows[i], x, raw)
			out[i] = m.prediction(raw)
		}
	})
	return nil
}

// Raw is the raw score of one row, one per output, as LightGBM's
// predict(raw_score=True) gives it.
func (m *Model) Raw(row model.Row) ([]float64, error) {
	if len(row) != len(m.inputs) {
		return nil, fmt.Errorf("%d values for %d inputs: %w", len(row), len(m.inputs), model.ErrInput)
	}
	x, raw := make([]float64, len(m.feature)), make([]float64, m.groups)
	m.raw(row, x, raw)
	return raw, nil
}

func (m *Model) raw(row model.Row, x, raw []float64) {
	for j, in := range m.feature {
		switch {
		case in < 0:
			x[j] = math.NaN()
		case row[in].Null:
			x[j] = math.NaN()
		case m.inputs[in].Kind == model.Categorical:
			x[j] = m.code(in, row[in].S)
		default:
			x[j] = row[in].F
		}
	}
	clear(raw)
	for t := range m.trees {
		raw[t%m.groups] += m.trees[t].leaf(x)
	}
	if m.average {
		iterations := float64(len(m.trees) / m.groups)
		for k := range raw {
			raw[k] /= iterations
		}
	}
}

// code is a category's code; NaN (which goes right) for one unknown.
func (m *Model) code(input int, s string) float64 {
	if m.codes[input] == nil {
		c, err := strconv.ParseUint(s, 10, 31)
		if err != nil {
			return math.NaN()
		}
		return float64(c)
	}
	c, ok := m.codes[input][s]
	if !ok {
		return math.NaN()
	}
	return c
}

func (m *Model) prediction(raw []float64) model.Prediction {
	switch m.task {
	case model.Regression:
		v := raw[0]
		switch m.link {
		case exponential:
			v = math.Exp(v)
		case square:
			v = math.Copysign(v*v, v)
		case logistic:
			v = 1 / (1 + math.Exp(-m.sigmoid*v))
		}
		return model.Prediction{Value: v}
	case model.Binary:
		p := 1 / (1 + math.Exp(-m.sigmoid*raw[0]))
		label := m.classes[0]
		if p >= 0.5 {
			label = m.classes[1]
		}
		return model.Prediction{Label: label, Value: p, Probabilities: []float64{1 - p, p}}
	}
	probs := make([]float64, len(raw))
	if m.link == oneVsAll {
		for k, v := range raw {
			probs[k] = 1 / (1 + math.Exp(-m.sigmoid*v))
		}
	} else {
		top := slices.Max(raw)
		var sum float64
		for k, v := range raw {
			probs[k] = math.Exp(v - top)
			sum += probs[k]
		}
		for k := range probs {
			probs[k] /= sum
		}
	}
	best := 0
	for k := range probs {
		if probs[k] > probs[best] {
			best = k
		}
	}
	return model.Prediction{Label: m.classes[best], Value: probs[best], Probabilities: probs}
}

// objectives are the objectives Predict knows: the task they need and the
// link from raw score to answer.
var objectives = map[string]struct {
	task model.Task
	link link
}{
	"binary":        {model.Binary, logistic},
	"cross_entropy": {model.Binary, logistic},
	"xentropy":      {model.Binary, logistic},
	"multiclass":    {model.Multiclass, softmax},
	"softmax":       {model.Multiclass, softmax},
	"multiclassova": {model.Multiclass, oneVsAll},
	"ova":           {model.Multiclass, oneVsAll},
	"regression":    {model.Regression, identity},
	"regression_l1": {model.Regression, identity},
	"huber":         {model.Regression, identity},
	"fair":          {model.Regression, identity},
	"quantile":      {model.Regression, identity},
	"mape":          {model.Regression, identity},
	"poisson":       {model.Regression, exponential},
	"gamma":         {model.Regression, exponential},
	"tweedie":       {model.Regression, exponential},
}

// Parse reads a LightGBM text model for the inputs, task and classes of the
// manifest m. categories gives, for a categorical input, its categories in
// code order (code 0 first); without them a categorical input uses the
// model's pandas_categorical, else its values must be the codes ("3").
func Parse(data []byte, m *model.Manifest, categories map[string][]string) (*Model, error) {
	header, trees, tail, err := sections(data)
	if err != nil {
		return nil, err
	}
	objLine := header["objective"]
	words := strings.Fields(objLine)
	if len(words) == 0 {
		return nil, errors.New("the model names no objective")
	}
	obj, ok := objectives[words[0]]
	if !ok {
		return nil, fmt.Errorf("objective %q is not supported (supported: %s)", words[0], strings.Join(slices.Sorted(maps.Keys(objectives)), ", "))
	}
	if obj.task != m.Task {
		return nil, fmt.Errorf("objective %s makes a %s model, but the manifest's task is %s", words[0], obj.task, m.Task)
	}
	out := &Model{
		inputs: slices.Clone(m.Inputs), task: m.Task, classes: slices.Clone(m.Classes),
		objective: objLine, link: obj.link, sigmoid: 1, groups: 1,
	}
	for _, w := range words[1:] {
		k, v, _ := strings.Cut(w, ":")
		switch {
		case k == "sigmoid":
			if out.sigmoid, err = strconv.ParseFloat(v, 64); err != nil || out.sigmoid <= 0 {
				return nil, fmt.Errorf("objective %q: bad sigmoid", objLine)
			}
		case k == "sqrt" && obj.link == identity:
			out.link = square
		}
	}
	if _, ok := header["average_output"]; ok {
		out.average = true
	}
	if s, ok := header["num_tree_per_iteration"]; ok {
		if out.groups, err = strconv.Atoi(s); err != nil || out.groups < 1 {
			return nil, fmt.Errorf("num_tree_per_iteration %q: want a positive whole number", s)
		}
	}
	if m.Task == model.Multiclass && out.groups != len(m.Classes) {
		return nil, fmt.Errorf("the model has %d classes, the manifest %d", out.groups, len(m.Classes))
	}
	if m.Task != model.Multiclass && out.groups != 1 {
		return nil, fmt.Errorf("the model has %d outputs for a %s task", out.groups, m.Task)
	}
	if len(trees)%out.groups != 0 {
		return nil, fmt.Errorf("%d trees is not a whole number of iterations of %d", len(trees), out.groups)
	}
	maxFeature, err := strconv.Atoi(header["max_feature_idx"])
	if err != nil || maxFeature < 0 {
		return nil, fmt.Errorf("max_feature_idx %q: want a whole number", header["max_feature_idx"])
	}
	out.trees = make([]tree, len(trees))
	used := make([]bool, maxFeature+1)
	for t, kv := range trees {
		if out.trees[t], err = readTree(kv, used); err != nil {
			return nil, fmt.Errorf("tree %d: %w", t, err)
		}
	}
	names := strings.Fields(header["feature_names"])
	if len(names) != maxFeature+1 {
		return nil, fmt.Errorf("%d feature_names for max_feature_idx %d", len(names), maxFeature)
	}
	if err := out.mapFeatures(names, used); err != nil {
		return nil, err
	}
	if err := out.mapCategories(categories, tail); err != nil {
		return nil, err
	}
	return out, nil
}

// sections splits a model file into its header's key=value pairs, each
// tree's, and the tail after "end of trees" (pandas_categorical lives
// there).
func sections(data []byte) (header map[string]string, trees []map[string]string, tail string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	header = map[string]string{}
	cur := header
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "":
			continue
		case s == "end of trees":
			var rest strings.Builder
			for sc.Scan() {
				rest.WriteString(sc.Text() + "\n")
			}
			return header, trees, rest.String(), sc.Err()
		case strings.HasPrefix(s, "Tree="):
			cur = map[string]string{}
			trees = append(trees, cur)
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			// A bare word is a flag ("average_output"), or the "tree" line.
			cur[s] = ""
			continue
		}
		cur[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, nil, "", fmt.Errorf("read %s: %w", ModelFile, err)
	}
	if line == 0 {
		return nil, nil, "", fmt.Errorf("%s is empty", ModelFile)
	}
	return nil, nil, "", fmt.Errorf("%s: no \"end of trees\" line: not a LightGBM text model, or cut short", ModelFile)
}

func readTree(kv map[string]string, used []bool) (tree, error) {
	leaves, err := strconv.Atoi(kv["num_leaves"])
	if err != nil || leaves < 1 {
		return tree{}, fmt.Errorf("num_leaves %q: want a positive whole number", kv["num_leaves"])
	}
	if kv["is_linear"] == "1" {
		return tree{}, errors.New("linear trees (linear_tree=true) are not supported")
	}
	var t tree
	if t.leaves, err = floats(kv["leaf_value"], leaves, "leaf_value"); err != nil {
		return tree{}, err
	}
	if leaves == 1 {
		return t, nil
	}
	n := leaves - 1
	feature, err := ints(kv["split_feature"], n, "split_feature")
	if err != nil {
		return tree{}, err
	}
	left, err := ints(kv["left_child"], n, "left_child")
	if err != nil {
		return tree{}, err
	}
	right, err := ints(kv["right_child"], n, "right_child")
	if err != nil {
		return tree{}, err
	}
	decision, err := ints(kv["decision_type"], n, "decision_type")
	if err != nil {
		return tree{}, err
	}
	threshold, err := floats(kv["threshold"], n, "threshold")
	if err != nil {
		return tree{}, err
	}
	var bounds, bits []int
	if nc, _ := strconv.Atoi(kv["num_cat"]); nc > 0 {
		if bounds, err = ints(kv["cat_boundaries"], nc+1, "cat_boundaries"); err != nil {
			return tree{}, err
		}
		if bits, err = ints(kv["cat_threshold"], -1, "cat_threshold"); err != nil {
			return tree{}, err
		}
	}
	t.nodes = make([]node, n)
	for i := range n {
		nd := &t.nodes[i]
		if feature[i] < 0 || feature[i] >= len(used) {
			return tree{}, fmt.Errorf("node %d: feature %d out of range", i, feature[i])
		}
		used[feature[i]] = true
		// Children come after their parent (or are leaves), so every
		// walk ends.
		for _, c := range []int{left[i], right[i]} {
			if (c >= 0 && (c <= i || c >= n)) || (c < 0 && ^c >= leaves) {
				return tree{}, fmt.Errorf("node %d: child %d out of range", i, c)
			}
		}
		nd.left, nd.right, nd.feature, nd.threshold = int32(left[i]), int32(right[i]), int32(feature[i]), threshold[i]
		nd.decision = uint8(decision[i])
		if nd.decision&catMask == 0 {
			continue
		}
		c := int(threshold[i])
		if c < 0 || c+1 >= len(bounds) || bounds[c] < 0 || bounds[c] > bounds[c+1] || bounds[c+1] > len(bits) {
			return tree{}, fmt.Errorf("node %d: categorical split %d out of range", i, c)
		}
		nd.cats = make([]uint32, 0, bounds[c+1]-bounds[c])
		for _, b := range bits[bounds[c]:bounds[c+1]] {
			nd.cats = append(nd.cats, uint32(b))
		}
	}
	return t, nil
}

func fields(s string, n int, name string) ([]string, error) {
	f := strings.Fields(s)
	if n >= 0 && len(f) != n {
		return nil, fmt.Errorf("%s: %d values, want %d", name, len(f), n)
	}
	return f, nil
}

func ints(s string, n int, name string) ([]int, error) {
	f, err := fields(s, n, name)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(f))
	for i, w := range f {
		v, err := strconv.ParseInt(w, 10, 64)
		// Bitset words are uint32, everything else int32.
		if err != nil || v < math.MinInt32 || v > math.MaxUint32 {
			return nil, fmt.Errorf("%s: %q is not a whole number", name, w)
		}
		out[i] = int(v)
	}
	return out, nil
}

func floats(s string, n int, name string) ([]float64, error) {
	f, err := fields(s, n, name)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(f))
	for i, w := range f {
		v, err := strconv.ParseFloat(w, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%s: %q is not a number", name, w)
		}
		out[i] = v
	}
	return out, nil
}

// mapFeatures maps the model's features to the manifest's inputs: by name,
// or, when the model has LightGBM's default names (Column_0 ...), by
// position. A feature no tree uses may be missing from the inputs.
func (m *Model) mapFeatures(names []string, used []bool) error {
	index := make(map[string]int, len(m.inputs))
	for i, in := range m.inputs {
		index[in.Name] = i
	}
	byPosition := true
	for j, name := range names {
		if name != "Column_"+strconv.Itoa(j) {
			byPosition = false
		}
	}
	if byPosition {
		if _, clash := index["Column_0"]; clash {
			byPosition = false
		}
	}
	if byPosition && len(names) != len(m.inputs) {
		return fmt.Errorf("the model has %d unnamed features but the manifest %d inputs; name the features (feature_name=) or list the inputs in the model's order", len(names), len(m.inputs))
	}
	m.feature = make([]int, len(names))
	for j, name := range names {
		i, ok := index[name]
		switch {
		case byPosition:
			i = j
		case !ok && used[j]:
			return fmt.Errorf("model feature %q is not among the manifest's inputs", name)
		case !ok:
			i = -1
		}
		m.feature[j] = i
	}
	return nil
}

// mapCategories gives each categorical input its codes: from categories,
// else from the model's pandas_categorical (one list per categorical
// column, in column order), else none (the values are the codes).
func (m *Model) mapCategories(categories map[string][]string, tail string) error {
	var pandas [][]any
	for line := range strings.Lines(tail) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "pandas_categorical:"); ok && v != "null" {
			if err := json.Unmarshal([]byte(v), &pandas); err != nil {
				return fmt.Errorf("pandas_categorical: %w", err)
			}
		}
	}
	var catInputs []int
	for i, in := range m.inputs {
		if in.Kind == model.Categorical {
			catInputs = append(catInputs, i)
		}
	}
	if categories == nil && pandas != nil && len(pandas) != len(catInputs) {
		return fmt.Errorf("pandas_categorical has %d lists but the manifest %d categorical inputs; give their codes in %s", len(pandas), len(catInputs), CategoriesFile)
	}
	m.codes = make([]map[string]float64, len(m.inputs))
	for k, i := range catInputs {
		name := m.inputs[i].Name
		var list []string
		switch {
		case categories != nil:
			var ok bool
			if list, ok = categories[name]; !ok {
				return fmt.Errorf("input %q is categorical but %s gives no codes for it", name, CategoriesFile)
			}
		case pandas != nil:
			for _, v := range pandas[k] {
				list = append(list, categoryText(v))
			}
		default:
			continue
		}
		m.codes[i] = make(map[string]float64, len(list))
		for c, s := range list {
			m.codes[i][s] = float64(c)
		}
	}
	return nil
}

// categoryText is a pandas category as Gyre reads it: a number in
// shortest form.
func categoryText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

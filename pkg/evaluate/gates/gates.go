// Package gates decides whether a model version may advance: each of the
// pipeline's gates (CEL, spec.evaluation.gates) is evaluated over what the
// evaluator measured, and reported with the values it read.
package gates

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/gyreml/gyre/pkg/pipeline"
)

// Inputs are the maps a gate reads (pipeline.GateVariables): metrics,
// fairness.<attribute>, latency, importance, explainability, and champion
// (the production model's own inputs; nil when there is none).
type Inputs map[string]map[string]any

// Result is one gate's outcome.
type Result struct {
	Expression string `json:"expression"`
	Passed     bool   `json:"passed"`
	// Values are the values the expression read, by path ("metrics.auc").
	Values map[string]any `json:"values,omitempty"`
	// Reason says why it failed, or why it was skipped.
	Reason  string `json:"reason,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
}

// paths finds the dotted references a gate makes to its variables, e.g.
// fairness.sex.demographic_parity_difference; index syntax (metrics["auc"])
// is evaluated but not listed.
var paths = regexp.MustCompile(`\b(` + strings.Join(pipeline.GateVariables, "|") + `)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`)

// Evaluate runs every gate. The verdict is passed only if every gate passed
// (a skipped gate counts as passed). A gate naming a value that was not
// measured fails, and says which name. A gate reading champion.* is skipped
// when there is no champion (the first model of a line has none).
func Evaluate(exprs []string, in Inputs) (results []Result, passed bool) {
	passed = true
	for _, expr := range exprs {
		r := evaluate(expr, in)
		passed = passed && r.Passed
		results = append(results, r)
	}
	return results, passed
}

func evaluate(expr string, in Inputs) Result {
	r := Result{Expression: expr, Values: map[string]any{}}
	for _, m := range paths.FindAllStringSubmatch(expr, -1) {
		root, rest := m[1], strings.Split(strings.TrimPrefix(m[2], "."), ".")
		if root == "champion" && in["champion"] == nil {
			r.Passed, r.Skipped, r.Reason = true, true, "no champion yet: the gate compares with the production model"
			r.Values = nil
			return r
		}
		v, err := lookup(in[root], root, rest)
		if err != nil {
			r.Reason = err.Error()
			return r
		}
		r.Values[m[0]] = v
	}
	prg, err := pipeline.CompileGate(expr)
	if err != nil {
		r.Reason = "does not compile: " + err.Error()
		return r
	}
	vars := make(map[string]any, len(pipeline.GateVariables))
	for _, name := range pipeline.GateVariables {
		vars[name] = orEmpty(in[name])
	}
	ok, err := pipeline.EvalBool(prg, vars)
	switch {
	case err != nil:
		r.Reason = "evaluation failed: " + err.Error()
	case !ok:
		r.Reason = "false for " + describe(r.Values)
	default:
		r.Passed = true
	}
	return r
}

// lookup follows a dotted path through nested maps; a missing key is an
// error naming it and what exists there instead.
func lookup(m map[string]any, root string, path []string) (any, error) {
	var cur any = m
	at := root
	for _, key := range path {
		mm, ok := asMap(cur)
		if !ok {
			return nil, fmt.Errorf("unknown value %s.%s: %s is not a map", at, key, at)
		}
		v, ok := mm[key]
		if !ok {
			return nil, fmt.Errorf("unknown value %s.%s (known under %s: %s)", at, key, at, keys(mm))
		}
		cur, at = v, at+"."+key
	}
	if f, ok := cur.(float64); ok && math.IsNaN(f) {
		return nil, fmt.Errorf("value %s is undefined (NaN)", at)
	}
	return cur, nil
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[string]float64:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[k] = x
		}
		return out, true
	}
	return nil, false
}

func keys(m map[string]any) string {
	if len(m) == 0 {
		return "nothing"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func describe(values map[string]any) string {
	if len(values) == 0 {
		return "the values given"
	}
	ks := make([]string, 0, len(values))
	for k := range values {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("%s = %v", k, values[k])
	}
	return strings.Join(parts, ", ")
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

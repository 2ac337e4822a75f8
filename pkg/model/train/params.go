package train

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Params reads hyperparameters as they arrive from a pipeline (decoded
// JSON or YAML: numbers are float64, json.Number or Go integers). Each
// getter records the name as allowed; Check then rejects the rest.
type Params struct {
	m       map[string]any
	allowed []string
	errs    []string
}

// NewParams wraps a pipeline's params (nil is none).
func NewParams(m map[string]any) *Params {
	return &Params{m: m}
}

// Float reads a number, def when absent, that must be within [lo, hi]
// (hi may be +Inf: any finite number from lo up).
func (p *Params) Float(name string, def, lo, hi float64) float64 {
	p.allowed = append(p.allowed, name)
	v, ok := p.m[name]
	if !ok {
		return def
	}
	f, ok := number(v)
	switch {
	case !ok:
		p.errs = append(p.errs, fmt.Sprintf("%s: want a number, got %v", name, v))
		return def
	case math.IsInf(hi, 1) && !(f >= lo && f < hi):
		p.errs = append(p.errs, fmt.Sprintf("%s: must be a finite number of at least %v, got %v", name, lo, f))
		return def
	case !(f >= lo && f <= hi):
		p.errs = append(p.errs, fmt.Sprintf("%s: must be between %v and %v, got %v", name, lo, hi, f))
		return def
	}
	return f
}

// Int reads a whole number, def when absent, that must be within [lo, hi].
func (p *Params) Int(name string, def, lo, hi int) int {
	p.allowed = append(p.allowed, name)
	v, ok := p.m[name]
	if !ok {
		return def
	}
	f, ok := number(v)
	switch {
	case !ok || f != math.Trunc(f):
		p.errs = append(p.errs, fmt.Sprintf("%s: want a whole number, got %v", name, v))
		return def
	case f < float64(lo) || f > float64(hi):
		p.errs = append(p.errs, fmt.Sprintf("%s: must be between %d and %d, got %v", name, lo, hi, f))
		return def
	}
	return int(f)
}

// String reads one of the allowed values, def when absent.
func (p *Params) String(name, def string, oneOf ...string) string {
	p.allowed = append(p.allowed, name)
	v, ok := p.m[name]
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok || !slices.Contains(oneOf, s) {
		p.errs = append(p.errs, fmt.Sprintf("%s: want one of %s, got %v", name, strings.Join(oneOf, ", "), v))
		return def
	}
	return s
}

// Check reports every bad value and every parameter no getter read,
// naming the allowed ones. Call it after all the getters.
func (p *Params) Check() error {
	errs := p.errs
	for _, name := range slices.Sorted(maps.Keys(p.m)) {
		if !slices.Contains(p.allowed, name) {
			errs = append(errs, fmt.Sprintf("unknown param %q (allowed: %s)", name, strings.Join(slices.Sorted(slices.Values(p.allowed)), ", ")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("params: %s", strings.Join(errs, "; "))
	}
	return nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

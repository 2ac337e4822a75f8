package train

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParams(t *testing.T) {
	p := NewParams(map[string]any{"l2": 2, "maxIter": json.Number("50"), "solver": "lbfgs"})
	if l2 := p.Float("l2", 1, 0, 10); l2 != 2 {
		t.Errorf("l2 = %v", l2)
	}
	if it := p.Int("maxIter", 100, 1, 1000); it != 50 {
		t.Errorf("maxIter = %v", it)
	}
	if tol := p.Float("tol", 1e-6, 0, 1); tol != 1e-6 {
		t.Errorf("tol default = %v", tol)
	}
	err := p.Check()
	if err == nil || !strings.Contains(err.Error(), `unknown param "solver" (allowed: l2, maxIter, tol)`) {
		t.Errorf("Check = %v", err)
	}

	p = NewParams(map[string]any{"maxIter": 2.5, "l2": "big", "tol": 5.0})
	p.Int("maxIter", 100, 1, 1000)
	p.Float("l2", 1, 0, 10)
	p.Float("tol", 1e-6, 0, 1)
	err = p.Check()
	for _, want := range []string{"maxIter: want a whole number", "l2: want a number", "tol: must be between 0 and 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check = %v, want it to say %q", err, want)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("builtin/nope")
	if err == nil || !strings.Contains(err.Error(), `unknown trainer "builtin/nope"`) {
		t.Errorf("Lookup = %v", err)
	}
}

package inference

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
)

func TestJSONStringsRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r", "\x00\x1f control", "é ü 日本 🙂", "bad \xff utf8"} {
		enc := appendString(nil, s)
		var viaStd string
		if err := json.Unmarshal(enc, &viaStd); err != nil {
			t.Fatalf("%q encodes as %s: %v", s, enc, err)
		}
		sc := &scanner{b: enc}
		got, err := sc.str()
		if err != nil || string(got) != viaStd {
			t.Errorf("%q: scanner reads %q (%v), encoding/json %q", s, got, err, viaStd)
		}
	}
	// Escapes, surrogate pairs included.
	sc := &scanner{b: []byte(`"a\u00e9\ud83d\ude42\/\"b"`)}
	if got, err := sc.str(); err != nil || string(got) != `aé🙂/"b` {
		t.Errorf("escapes: %q %v", got, err)
	}
}

func TestInferResponseIsJSON(t *testing.T) {
	a := &inferAnswer{model: "m\"1", version: "2", id: "x", env: Production, role: RoleStable}
	preds := []model.Prediction{{Label: "a", Value: 0.25, Probabilities: []float64{0.75, 0.25}}, {Label: "b", Value: math.NaN(), Probabilities: []float64{1e-300, 1}}}
	out := appendInferResponse(nil, a, outputSet{label: true, probabilities: true, value: true}, 2, preds)
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if v["model_name"] != `m"1` {
		t.Errorf("%v", v)
	}
}

// FuzzParseInferRequest: any body is read or refused, never a panic, and
// what is read matches encoding/json's reading of the same body.
func FuzzParseInferRequest(f *testing.F) {
	f.Add(threeRows)
	f.Add(`{"id":"x","inputs":[{"data":[[1,null],[true,"a"]],"name":"n","datatype":"BYTES","shape":[2,2]}],"outputs":[{"name":"value"}],"parameters":{"a":[1,{"b":null}]}}`)
	f.Add(`{"inputs":[{"name":"a","datatype":"BOOL","shape":[1],"data":[false]}]}`)
	f.Add(`{"inputs":[{"name":"a"}],"inputs":[{"name":"b"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req inferRequest
		err := parseInferRequest([]byte(body), &req)
		if err != nil {
			return
		}
		var std struct {
			ID     *string `json:"id"`
			Inputs []struct {
				Name string `json:"name"`
			} `json:"inputs"`
		}
		// encoding/json also matches keys case-insensitively; the protocol's
		// keys are lower case.
		if lower := strings.ToLower(body); strings.Count(lower, `"inputs"`) != strings.Count(body, `"inputs"`) ||
			strings.Count(lower, `"name"`) != strings.Count(body, `"name"`) {
			return
		}
		if json.Unmarshal([]byte(body), &std) != nil {
			// The scanner is lenient in places (numbers like 1e, +1); it
			// must not read a body encoding/json refuses as a request with
			// other inputs, which the next check covers when it does.
			return
		}
		if len(std.Inputs) != len(req.inputs) {
			t.Fatalf("%d inputs, encoding/json reads %d", len(req.inputs), len(std.Inputs))
		}
		for i := range std.Inputs {
			if std.Inputs[i].Name != req.inputs[i].name {
				t.Fatalf("input %d named %q, encoding/json reads %q", i, req.inputs[i].name, std.Inputs[i].Name)
			}
		}
	})
}

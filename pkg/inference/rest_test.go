package inference

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

const threeRows = `{"inputs":[
	{"name":"x0","shape":[3],"datatype":"FP64","data":[0.5,-1.25,2]},
	{"name":"x1","shape":[3],"datatype":"FP32","data":[1,0,-0.5]},
	{"name":"color","shape":[3],"datatype":"BYTES","data":["red","blue","green"]}]}`

var threeModelRows = []model.Row{
	{{F: 0.5}, {F: 1}, {S: "red"}},
	{{F: -1.25}, {F: 0}, {S: "blue"}},
	{{F: 2}, {F: -0.5}, {S: "green"}},
}

// expect scores rows with the model a route's stable version serves.
func (s testServer) expect(t *testing.T, env, name string, rows []model.Row) []model.Prediction {
	t.Helper()
	rt, err := s.lookup(env, name)
	if err != nil {
		t.Fatal(err)
	}
	preds := make([]model.Prediction, len(rows))
	if err := rt.stable.m.model.Predict(rows, preds); err != nil {
		t.Fatal(err)
	}
	return preds
}

func checkAnswer(t *testing.T, answer map[string]any, want []model.Prediction) {
	t.Helper()
	label := output(t, answer, "label")
	if got := strs(label["data"]); !slices.Equal(got, labelsOf(want)) {
		t.Errorf("labels %v, want %v", got, labelsOf(want))
	}
	if fmt.Sprint(label["shape"]) != fmt.Sprintf("[%d]", len(want)) || label["datatype"] != "BYTES" {
		t.Errorf("label tensor %v", label)
	}
	probs := output(t, answer, "probabilities")
	if fmt.Sprint(probs["shape"]) != fmt.Sprintf("[%d 2]", len(want)) || probs["datatype"] != "FP64" {
		t.Errorf("probabilities tensor %v", probs)
	}
	p := floats(probs["data"])
	value := floats(output(t, answer, "value")["data"])
	for i, w := range want {
		if p[2*i] != w.Probabilities[0] || p[2*i+1] != w.Probabilities[1] || value[i] != w.Value {
			t.Errorf("row %d: probabilities %v value %v, want %v", i, p[2*i:2*i+2], value[i], w)
		}
	}
}

func labelsOf(preds []model.Prediction) []string {
	var out []string
	for _, p := range preds {
		out = append(out, p.Label)
	}
	return out
}

func TestInferOneTensorPerInput(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	h := s.Handler(Production)

	code, hdr, answer := post(t, h, "/v2/models/credit/infer", threeRows)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, answer)
	}
	if answer["model_name"] != "credit" || answer["model_version"] != "1" {
		t.Errorf("answer names %v version %v", answer["model_name"], answer["model_version"])
	}
	id, _ := answer["id"].(string)
	if _, err := uuid.Parse(id); err != nil {
		t.Errorf("generated prediction id %q: %v", id, err)
	}
	if hdr.Get(HeaderModelVersion) != "1" || hdr.Get(HeaderPredictionID) != id || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", hdr)
	}
	params, _ := answer["parameters"].(map[string]any)
	if params["role"] != RoleStable || params["environment"] != Production {
		t.Errorf("parameters %v", params)
	}
	checkAnswer(t, answer, s.expect(t, Production, "credit", threeModelRows))

	// The request's own id is the prediction id; [batch, 1] shapes, INT64
	// and BOOL are numbers; null and "" are missing values; outputs
	// filter the answer.
	body := `{"id":"req-7","outputs":[{"name":"value"}],"inputs":[
		{"name":"color","datatype":"BYTES","shape":[2,1],"data":[["red"],[null]]},
		{"name":"x0","datatype":"INT64","shape":[2,1],"data":[[1],[2]]},
		{"data":[true,null],"name":"x1","datatype":"BOOL","shape":[2]}]}`
	code, hdr, answer = post(t, h, "/v2/models/credit/infer", body)
	if code != http.StatusOK || answer["id"] != "req-7" || hdr.Get(HeaderPredictionID) != "req-7" {
		t.Fatalf("status %d, answer %v", code, answer)
	}
	if outs := answer["outputs"].([]any); len(outs) != 1 {
		t.Errorf("outputs %v, want value only", outs)
	}
	want := s.expect(t, Production, "credit", []model.Row{{{F: 1}, {F: 1}, {S: "red"}}, {{F: 2}, {Null: true}, {Null: true}}})
	if got := floats(output(t, answer, "value")["data"]); got[0] != want[0].Value || got[1] != want[1].Value {
		t.Errorf("values %v, want %v", got, want)
	}
}

func TestInferOneTensorOfAllInputs(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "numbers", Stable: fixtures.numeric})
	h := s.Handler(Production)

	// Mixed inputs: BYTES, numbers as numbers or text, rows nested or flat.
	for _, data := range []string{
		`[[0.5,1,"red"],[-1.25,"0","blue"],[2,-0.5,"green"]]`,
		`[0.5,"1","red",-1.25,0,"blue","2","-0.5","green"]`,
	} {
		code, _, answer := post(t, h, "/v2/models/credit/infer",
			`{"inputs":[{"name":"input-0","shape":[3,3],"datatype":"BYTES","data":`+data+`}]}`)
		if code != http.StatusOK {
			t.Fatalf("status %d: %v", code, answer)
		}
		checkAnswer(t, answer, s.expect(t, Production, "credit", threeModelRows))
	}

	code, _, answer := post(t, h, "/v2/models/numbers/infer",
		`{"inputs":[{"name":"features","shape":[2,2],"datatype":"FP32","data":[[0.5,1],[-1.25,0]]}]}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, answer)
	}
	checkAnswer(t, answer, s.expect(t, Production, "numbers", []model.Row{{{F: 0.5}, {F: 1}}, {{F: -1.25}, {F: 0}}}))
}

func TestInferRefusesBadInputNamingIt(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	h := s.Handler(Production)
	x0 := `{"name":"x0","shape":[2],"datatype":"FP64","data":[1,2]}`
	x1 := `{"name":"x1","shape":[2],"datatype":"FP64","data":[1,2]}`
	color := `{"name":"color","shape":[2],"datatype":"BYTES","data":["red","blue"]}`
	req := func(tensors ...string) string { return `{"inputs":[` + strings.Join(tensors, ",") + `]}` }
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown input", req(x0, x1, color, `{"name":"x9","shape":[2],"datatype":"FP64","data":[1,2]}`), `input "x9": not an input of the model (it reads x0, x1, color)`},
		{"missing input", req(x0, x1), `input "color": missing`},
		{"categorical as numbers", req(x0, x1, `{"name":"color","shape":[2],"datatype":"FP64","data":[1,2]}`), `input "color": datatype FP64, but the input is categorical`},
		{"numbers as bytes", req(x1, color, `{"name":"x0","shape":[2],"datatype":"BYTES","data":["1","2"]}`), `input "x0": datatype BYTES, but the input is numeric`},
		{"string in numbers", req(x0, color, `{"name":"x1","shape":[2],"datatype":"FP64","data":[1,"two"]}`), `input "x1": datatype FP64, but data holds a string`},
		{"fraction in integers", req(x0, color, `{"name":"x1","shape":[2],"datatype":"INT32","data":[1,2.5]}`), `input "x1": datatype INT32, but data holds 2.5`},
		{"shape and data differ", req(x0, color, `{"name":"x1","shape":[3],"datatype":"FP64","data":[1,2]}`), `input "x1": shape [3] holds 3 values, but data has 2`},
		{"batch sizes differ", req(x0, color, `{"name":"x1","shape":[3],"datatype":"FP64","data":[1,2,3]}`), `input "x1": batch size 3, but input "x0" has 2`},
		{"matrix shape", req(x0, x1, `{"name":"color","shape":[1,2],"datatype":"BYTES","data":["red","blue"]}`), `input "color": shape [1,2]: want [batch] or [batch, 1]`},
		{"unsupported datatype", req(x0, color, `{"name":"x1","shape":[2],"datatype":"FP16","data":[1,2]}`), `input "x1": datatype FP16 is not supported`},
		{"no datatype", req(x0, color, `{"name":"x1","shape":[2],"data":[1,2]}`), `input "x1": datatype is required`},
		{"twice", req(x0, x1, color, x0), `input "x0": given twice`},
		{"one tensor of the wrong width", req(`{"name":"all","shape":[1,2],"datatype":"FP64","data":[1,2]}`), `input "all": not an input of the model (it reads x0, x1, color); a single tensor of all inputs must have shape [batch, 3], not [1,2]`},
		{"numeric matrix with a category", req(`{"name":"all","shape":[1,3],"datatype":"FP64","data":[1,2,3]}`), `input "color": categorical, but tensor "all" is FP64`},
		{"text that is no number", req(`{"name":"all","shape":[1,3],"datatype":"BYTES","data":["1","x","red"]}`), `input "x1": column 1 of tensor "all", row 0: "x" is not a number`},
		{"no inputs", `{"inputs":[]}`, `inputs: none given (the model reads x0, x1, color)`},
		{"unknown output", `{"outputs":[{"name":"logits"}],"inputs":[` + x0 + "," + x1 + "," + color + `]}`, `output "logits": the model has no such output`},
		{"not JSON", `{"inputs":[`, `request body: invalid JSON`},
		{"trailing data", req(x0, x1, color) + `{}`, `data after the request object`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, answer := post(t, h, "/v2/models/credit/infer", tc.body)
			msg, _ := answer["error"].(string)
			if code != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
				t.Errorf("status %d, error %q; want 400 with %q", code, msg, tc.want)
			}
		})
	}
	if code, _, _ := post(t, h, "/v2/models/credit/infer", req(x0, x1, color)); code != http.StatusOK {
		t.Errorf("the valid request: status %d", code)
	}
	// Inputs that do not fit the version count as its errors; a body that
	// cannot be read (bad JSON, data not of its datatype: 6 cases above)
	// says nothing about the version.
	stats, _ := s.Stats(Production, "credit")
	if stats[0].GetErrors() != 13 || stats[0].GetRequests() != 14 {
		t.Errorf("stats %v, want 13 errors in 14 requests", stats[0])
	}
}

func TestUnknownModelsAndVersionsAreNotFound(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1,
		Canary: fixtures.v2, CanaryWeight: 0, Shadow: withVersion(fixtures.regression, 3)})
	h := s.Handler(Production)

	code, _, answer := post(t, h, "/v2/models/fraud/infer", threeRows)
	if code != http.StatusNotFound || !strings.Contains(answer["error"].(string), `model "fraud"`) {
		t.Errorf("unknown model: %d %v", code, answer)
	}
	code, _, answer = post(t, h, "/v2/models/credit/versions/7/infer", threeRows)
	if code != http.StatusNotFound || !strings.Contains(answer["error"].(string), `no version "7"`) {
		t.Errorf("unknown version: %d %v", code, answer)
	}
	// Each version of the route answers when asked by name: the canary
	// though its weight is 0, and the shadow.
	for v, want := range map[string]string{"1": RoleStable, "2": RoleCanary, "3": RoleShadow} {
		code, hdr, answer := post(t, h, "/v2/models/credit/versions/"+v+"/infer", threeRows)
		params, _ := answer["parameters"].(map[string]any)
		if code != http.StatusOK || answer["model_version"] != v || hdr.Get(HeaderModelVersion) != v || params["role"] != want {
			t.Errorf("version %s: %d %v", v, code, answer)
		}
	}
	if code, answer := get(t, h, "/v2/models/credit/versions/7/ready"); code != http.StatusNotFound {
		t.Errorf("ready of an unknown version: %d %v", code, answer)
	}
	if code, answer := get(t, h, "/v2/models/fraud"); code != http.StatusNotFound {
		t.Errorf("metadata of an unknown model: %d %v", code, answer)
	}
	if code, answer := get(t, h, "/v2/models/credit/infer"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET infer: %d %v", code, answer)
	}
	if code, answer := get(t, h, "/v2/nothing"); code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d %v", code, answer)
	}
}

func TestMetadataAndHealth(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 10})
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "price", Stable: fixtures.regression})
	h := s.Handler(Production)

	code, md := get(t, h, "/v2/models/credit")
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, md)
	}
	want := `map[inputs:[map[datatype:FP64 name:x0 shape:[-1]] map[datatype:FP64 name:x1 shape:[-1]] map[datatype:BYTES name:color shape:[-1]]] ` +
		`name:credit outputs:[map[datatype:BYTES name:label shape:[-1]] map[datatype:FP64 name:probabilities shape:[-1 2]] map[datatype:FP64 name:value shape:[-1]]] ` +
		`parameters:map[classes:[no yes] task:binary] platform:gyre/logistic versions:[1 2]]`
	if got := fmt.Sprint(md); got != want {
		t.Errorf("metadata\n got %s\nwant %s", got, want)
	}
	if code, md := get(t, h, "/v2/models/credit/versions/2"); code != http.StatusOK || md["name"] != "credit" {
		t.Errorf("versioned metadata: %d %v", code, md)
	}
	code, md = get(t, h, "/v2/models/price")
	if got := fmt.Sprint(md["outputs"]); code != http.StatusOK || got != "[map[datatype:FP64 name:value shape:[-1]]]" {
		t.Errorf("regression outputs: %d %s", code, got)
	}
	for path, want := range map[string]string{
		"/v2":                                "map[extensions:[] name:gyre version:test]",
		"/v2/health/live":                    "map[live:true]",
		"/v2/health/ready":                   "map[ready:true]",
		"/v2/models/credit/ready":            "map[name:credit ready:true]",
		"/v2/models/credit/versions/2/ready": "map[name:credit ready:true]",
	} {
		if code, got := get(t, h, path); code != http.StatusOK || fmt.Sprint(got) != want {
			t.Errorf("GET %s: %d %v, want %s", path, code, got, want)
		}
	}
	_ = s.Drain(context.Background())
	if code, got := get(t, h, "/v2/health/ready"); code != http.StatusServiceUnavailable || fmt.Sprint(got) != "map[ready:false]" {
		t.Errorf("ready while draining: %d %v", code, got)
	}
}

func TestEnvironmentsAreSeparate(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	s.setRoute(t, &inferencev1.Route{Environment: Staging, Model: "credit", Stable: fixtures.v2})
	s.setRoute(t, &inferencev1.Route{Environment: Staging, Model: "price", Stable: fixtures.regression})

	// As the gateway mounts them, and each on its own handler.
	mux := http.NewServeMux()
	s.Mount(mux)
	for _, tc := range []struct {
		h            http.Handler
		path         string
		code         int
		version, env string
	}{
		{mux, "/v2/models/credit/infer", 200, "1", Production},
		{mux, "/staging/v2/models/credit/infer", 200, "2", Staging},
		{s.Handler(Production), "/v2/models/credit/infer", 200, "1", Production},
		{s.Handler(Staging), "/v2/models/credit/infer", 200, "2", Staging},
		{mux, "/v2/models/price/infer", 404, "", ""},
		{mux, "/staging/v2/models/price/infer", 200, "4", Staging},
	} {
		code, _, answer := post(t, tc.h, tc.path, threeRows)
		params, _ := answer["parameters"].(map[string]any)
		if code != tc.code || (code == 200 && (answer["model_version"] != tc.version || params["environment"] != tc.env)) {
			t.Errorf("%s: %d %v, want %d from version %s in %s", tc.path, code, answer, tc.code, tc.version, tc.env)
		}
	}
	if code, got := get(t, mux, "/staging/v2/models/price"); code != http.StatusOK || got["name"] != "price" {
		t.Errorf("staging metadata on the gateway: %d %v", code, got)
	}
	// One bundle in two environments is loaded once.
	s.setRoute(t, &inferencev1.Route{Environment: Staging, Model: "credit", Stable: fixtures.v1})
	if n := s.store.loaded(); n != 2 {
		t.Errorf("%d bundles in memory, want 2 (v1 shared by both environments, the regression)", n)
	}
	if err := s.DeleteRoute(context.Background(), Staging, "price"); err != nil {
		t.Fatal(err)
	}
	if n := s.store.loaded(); n != 1 {
		t.Errorf("%d bundles in memory after deleting the regression's only route, want 1", n)
	}
	if _, err := s.SetRoute(context.Background(), &inferencev1.Route{Environment: "qa", Model: "credit", Stable: fixtures.v1}, false); err == nil {
		t.Error("a route in an unknown environment was set")
	}
}

func TestTamperedBundlesAreRefused(t *testing.T) {
	s := newServer(t, nil)
	ctx := context.Background()
	_, err := s.SetRoute(ctx, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.tampered}, false)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("a bundle whose file differs from its manifest: %v, want a sha256 error", err)
	}
	// The archive of v1 claimed to be v2's bytes.
	wrong := &inferencev1.Target{Version: 1, BundleUri: fixtures.v1.GetBundleUri(), BundleSha256: fixtures.v2.GetBundleSha256()}
	_, err = s.SetRoute(ctx, &inferencev1.Route{Environment: Production, Model: "credit", Stable: wrong}, false)
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Errorf("an archive with another digest: %v, want a digest mismatch", err)
	}
	// A route whose canary fails to load is not set, and holds nothing.
	_, err = s.SetRoute(ctx, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.tampered, CanaryWeight: 5}, false)
	if err == nil {
		t.Error("a route with a tampered canary was set")
	}
	if code, _, _ := post(t, s.Handler(Production), "/v2/models/credit/infer", threeRows); code != http.StatusNotFound {
		t.Errorf("after refused routes the model answers %d, want 404", code)
	}
	if n := s.store.loaded(); n != 0 {
		t.Errorf("%d bundles held after refused routes", n)
	}
	entries, _ := readDirNames(s.opts.Config.BundleDir)
	if len(entries) != 0 {
		t.Errorf("bundle dir keeps %v", entries)
	}
}

func TestCanarySplitsByWeight(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 30})
	h := s.Handler(Production)
	const n = 2000
	seen := map[string]int{}
	for range n {
		_, hdr, _ := post(t, h, "/v2/models/credit/infer", threeRows)
		seen[hdr.Get(HeaderModelVersion)]++
	}
	if share := float64(seen["2"]) / n; share < 0.25 || share > 0.35 {
		t.Errorf("canary answered %.1f%% of requests (%v), want about 30%%", 100*share, seen)
	}
	stats, err := s.Stats(Production, "credit")
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].GetRole() != RoleStable || stats[0].GetRequests() != int64(seen["1"]) ||
		stats[1].GetRole() != RoleCanary || stats[1].GetRequests() != int64(seen["2"]) {
		t.Errorf("stats %v, want the split %v", stats, seen)
	}

	// A request id sticks to one version while the weight holds.
	for _, key := range []string{"user-1", "user-2", "user-3", "user-4"} {
		versions := map[string]bool{}
		for range 20 {
			_, hdr, _ := post(t, h, "/v2/models/credit/infer", threeRows, HeaderRoutingKey, key)
			versions[hdr.Get(HeaderModelVersion)] = true
		}
		if len(versions) != 1 {
			t.Errorf("key %s met versions %v", key, versions)
		}
	}

	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 0})
	for range 200 {
		if _, hdr, _ := post(t, h, "/v2/models/credit/infer", threeRows); hdr.Get(HeaderModelVersion) != "1" {
			t.Fatal("a canary at weight 0 answered")
		}
	}
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 100})
	for range 200 {
		if _, hdr, _ := post(t, h, "/v2/models/credit/infer", threeRows); hdr.Get(HeaderModelVersion) != "2" {
			t.Fatal("the stable answered beside a canary at weight 100")
		}
	}
}

func TestShadowNeverChangesTheAnswer(t *testing.T) {
	s := newServer(t, nil)
	h := s.Handler(Production)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	_, _, plain := post(t, h, "/v2/models/credit/infer", `{"id":"a",`+threeRows[1:])

	// v2 disagrees with v1 on every row.
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Shadow: fixtures.v2})
	const n = 50
	for range n {
		code, hdr, answer := post(t, h, "/v2/models/credit/infer", `{"id":"a",`+threeRows[1:])
		if code != http.StatusOK || hdr.Get(HeaderModelVersion) != "1" || fmt.Sprint(answer) != fmt.Sprint(plain) {
			t.Fatalf("with a shadow: %d %v, want %v", code, answer, plain)
		}
	}
	waitFor(t, "shadow scoring", func() bool {
		stats, _ := s.Stats(Production, "credit")
		return len(stats) == 2 && stats[1].GetRequests() == n
	})
	stats, _ := s.Stats(Production, "credit")
	if stats[1].GetRole() != RoleShadow || stats[1].GetVersion() != 2 || stats[1].GetErrors() != 0 {
		t.Errorf("shadow stats %v", stats[1])
	}
	// The shadow's predictions are v2's: their mean differs from v1's.
	if math.Abs(stats[0].GetPredictionMean()-stats[1].GetPredictionMean()) < 0.1 {
		t.Errorf("stable and shadow prediction means %v and %v: is the shadow scoring at all?", stats[0].GetPredictionMean(), stats[1].GetPredictionMean())
	}
}

func TestShadowDropsWhenItsQueueIsFull(t *testing.T) {
	s, err := New(Options{Blobs: fixtures.blobs, Config: configWithDir(t), ShadowQueue: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: no shadow worker takes from the queue.
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if _, err := s.SetRoute(context.Background(), &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Shadow: fixtures.v2}, false); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if code, _, answer := post(t, s.Handler(Production), "/v2/models/credit/infer", threeRows); code != http.StatusOK {
			t.Fatalf("%d %v", code, answer)
		}
	}
	if got := counterValue(t, s.metrics.shadowDropped.WithLabelValues("credit", Production)); got != 3 {
		t.Errorf("%v requests not mirrored, want 3", got)
	}
}

var uuidish = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-`)

func TestPredictionIDsAreUniqueAndTimeOrdered(t *testing.T) {
	ids := map[string]bool{}
	for range 1000 {
		id := predictionID("")
		if ids[id] || !uuidish.MatchString(id) {
			t.Fatalf("id %q repeated or not a UUIDv7", id)
		}
		ids[id] = true
	}
}

// TestServerOnRealHTTP runs requests through a real listener, as clients do.
func TestServerOnRealHTTP(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	srv := httptest.NewServer(s.Handler(Production))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v2/models/credit/infer", "application/json", strings.NewReader(threeRows))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 || resp.Header.Get(HeaderModelVersion) != "1" {
		t.Errorf("status %d, length %d, headers %v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	// A body without Content-Length (chunked) reads as well.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/models/credit/infer", struct{ *strings.Reader }{strings.NewReader(threeRows)})
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		t.Errorf("chunked request: %d", resp2.StatusCode)
	}
}

package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
)

type restResult struct {
	status int
	body   map[string]any
	header http.Header
}

func call(t *testing.T, method, url, body string) restResult {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gyre-Actor", "rest-user")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, url, raw)
		}
	}
	return restResult{resp.StatusCode, out, resp.Header}
}

func TestREST(t *testing.T) {
	_, env := newClient(t)
	base := env.BaseURL

	r := call(t, "POST", base+"/v1/models", `{"name": "fraud", "description": "card fraud"}`)
	if r.status != 200 || r.body["name"] != "fraud" {
		t.Fatalf("create model: %d %v", r.status, r.body)
	}
	r = call(t, "POST", base+"/v1/models/fraud/versions", `{"artifact_uri": "s3://gyre/fraud/1", "artifact_sha256": "`+sha("f1")+`"}`)
	if r.status != 200 || r.body["version"] != "1" {
		t.Fatalf("create version: %d %v", r.status, r.body)
	}
	r = call(t, "PUT", base+"/v1/models/fraud/aliases/staging", `{"version": 1}`)
	if r.status != 200 || r.body["version"] != "1" {
		t.Fatalf("set alias: %d %v", r.status, r.body)
	}
	r = call(t, "GET", base+"/v1/models/fraud", "")
	if aliases, _ := r.body["aliases"].(map[string]any); r.status != 200 || aliases["staging"] != "1" {
		t.Fatalf("get model: %d %v", r.status, r.body)
	}
	r = call(t, "GET", base+"/v1/models/fraud/versions/1", "")
	if r.status != 200 || r.body["artifactSha256"] != sha("f1") {
		t.Fatalf("get version: %d %v", r.status, r.body)
	}
	r = call(t, "POST", base+"/v1/lineage", `{"edges": [{"from": "dataset:cards@1", "to": "model:fraud@1", "relation": "trained"}]}`)
	if r.status != 200 || r.body["recorded"] != float64(1) {
		t.Fatalf("record lineage: %d %v", r.status, r.body)
	}
	r = call(t, "GET", base+"/v1/lineage?node=model:fraud@1", "")
	if r.status != 200 || r.body["root"] != "model:fraud@1" {
		t.Fatalf("lineage: %d %v", r.status, r.body)
	}
	r = call(t, "GET", base+"/v1/audit:verify", "")
	if r.status != 200 || r.body["ok"] != true {
		t.Fatalf("audit verify: %d %v", r.status, r.body)
	}
	r = call(t, "GET", base+"/v1/audit", "")
	if recs, _ := r.body["records"].([]any); r.status != 200 || len(recs) != 4 {
		t.Fatalf("audit: %d %v", r.status, r.body)
	}
	r = call(t, "POST", base+"/v1/pipelines", `{"manifest": "apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: fraud}\nspec: {dataset: cards}\n"}`)
	if r.status != 200 || r.body["created"] != true {
		t.Fatalf("apply pipeline: %d %v", r.status, r.body)
	}
	r = call(t, "GET", base+"/v1/pipelines/fraud", "")
	if r.status != 200 || r.body["model"] != "fraud" {
		t.Fatalf("get pipeline: %d %v", r.status, r.body)
	}

	// Errors share one JSON shape, with the field at fault and the request id.
	r = call(t, "GET", base+"/v1/models/nope", "")
	assertError(t, r, 404, "NOT_FOUND", "")
	r = call(t, "POST", base+"/v1/models", `{"name": "Not Valid"}`)
	assertError(t, r, 400, "INVALID_ARGUMENT", "name")
	r = call(t, "POST", base+"/v1/models", `{"name": "x", "colour": "red"}`)
	assertError(t, r, 400, "INVALID_ARGUMENT", "")
	r = call(t, "POST", base+"/v1/models", `{"name": "fraud"}`)
	assertError(t, r, 409, "ALREADY_EXISTS", "")
	r = call(t, "GET", base+"/v1/nothing-here", "")
	assertError(t, r, 404, "NOT_FOUND", "")

	for _, path := range []string{"/readyz", "/openapi.json"} {
		if r := call(t, "GET", base+path, ""); r.status != 200 {
			t.Fatalf("%s: %d %v", path, r.status, r.body)
		}
	}
	if live, err := http.Get(base + "/livez"); err != nil || live.StatusCode != 200 {
		t.Fatalf("livez: %v %v", live, err)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `gyre_grpc_requests_total{code="OK",method="/gyre.registry.v1.RegistryService/CreateModel"}`) {
		t.Fatalf("metrics lack the request counter:\n%.2000s", metrics)
	}
}

func assertError(t *testing.T, r restResult, httpStatus int, code, field string) {
	t.Helper()
	e, _ := r.body["error"].(map[string]any)
	if r.status != httpStatus || e == nil || e["code"] != code || e["message"] == "" || e["requestId"] == "" || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("want %d %s, got %d %v", httpStatus, code, r.status, r.body)
	}
	if field == "" {
		return
	}
	fields, _ := e["fields"].([]any)
	for _, f := range fields {
		if f.(map[string]any)["field"] == field {
			return
		}
	}
	t.Fatalf("error does not name field %s: %v", field, e)
}

func TestStateChangesEmitEvents(t *testing.T) {
	_, env := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := env.JS.OrderedConsumer(ctx, "GYRE", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"gyre.model.>"}})
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", env.BaseURL+"/v1/models", `{"name": "ev"}`)
	call(t, "POST", env.BaseURL+"/v1/models/ev/versions", `{"artifact_uri": "s3://gyre/ev", "artifact_sha256": "`+sha("ev")+`"}`)
	call(t, "PUT", env.BaseURL+"/v1/models/ev/aliases/production", `{"version": 1, "reason": "first"}`)

	want := []string{"gyre.model.created", "gyre.model.version.registered", "gyre.model.alias.changed"}
	for i, subject := range want {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("event %d (%s): %v", i, subject, err)
		}
		if msg.Subject() != subject {
			t.Fatalf("event %d: got %s, want %s", i, msg.Subject(), subject)
		}
		h := msg.Headers()
		if h.Get("ce-id") == "" || h.Get("ce-source") == "" || h.Get("ce-type") == "" || h.Get("ce-specversion") != "1.0" {
			t.Fatalf("missing CloudEvents headers: %v", h)
		}
		if subject == "gyre.model.alias.changed" {
			var ev eventsv1.ModelAliasChanged
			if err := protojson.Unmarshal(msg.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetModel() != "ev" || ev.GetToVersion() != 1 || ev.GetActor() != "rest-user" || ev.GetReason() != "first" {
				t.Fatalf("alias event = %v", &ev)
			}
		}
	}
}

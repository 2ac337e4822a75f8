package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/client"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func TestLineagePrintsTreesBothWays(t *testing.T) {
	lin := &registryv1.Lineage{
		Root: "model:credit@2",
		Nodes: []*registryv1.LineageNode{
			{Id: "model:credit@2", Kind: "model", Attributes: map[string]string{"artifact_sha256": strings.Repeat("ab", 32), "status": "passed"}},
		},
		Edges: []*registryv1.LineageEdge{
			{From: "pipeline:credit@1", To: "job:j1", Relation: "configured"},
			{From: "dataset:apps@3", To: "job:j1", Relation: "trained"},
			{From: "job:j1", To: "model:credit@2", Relation: "produced"},
			{From: "model:credit@2", To: "deployment:d1", Relation: "deployed_as"},
		},
	}
	var buf bytes.Buffer
	printLineage(&buf, lin, registryv1.LineageDirection_LINEAGE_DIRECTION_BOTH)
	want := `Upstream (where it came from):
  model:credit@2  [sha256=abababababab status=passed]
  └── job:j1 (produced)
      ├── dataset:apps@3 (trained)
      └── pipeline:credit@1 (configured)

Downstream (what it led to):
  model:credit@2  [sha256=abababababab status=passed]
  └── deployment:d1 (deployed_as)
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestLineageStopsOnACycle(t *testing.T) {
	lin := &registryv1.Lineage{Root: "a:x", Edges: []*registryv1.LineageEdge{
		{From: "a:x", To: "b:y", Relation: "r"},
		{From: "b:y", To: "a:x", Relation: "r"},
	}}
	var buf bytes.Buffer
	printLineage(&buf, lin, registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM)
	if !strings.Contains(buf.String(), "└── a:x (r) ↺") {
		t.Fatalf("cycle not marked:\n%s", buf.String())
	}
}

func TestPrintErrorListsEveryField(t *testing.T) {
	var buf bytes.Buffer
	printError(&buf, "http://x", &client.APIError{
		Code: "INVALID_ARGUMENT", HTTPStatus: 400,
		Message: "invalid pipeline: spec.a: bad\nspec.b[1]: worse",
		Fields:  []client.FieldViolation{{Field: "spec.a", Description: "bad"}, {Field: "spec.b[1]", Description: "worse"}},
	})
	want := "error: invalid pipeline\n  spec.a: bad\n  spec.b[1]: worse\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
	buf.Reset()
	printError(&buf, "http://x", &client.APIError{Code: "INTERNAL", HTTPStatus: 500, Message: "internal error", RequestID: "r-1"})
	if !strings.Contains(buf.String(), "request id r-1") {
		t.Fatalf("server errors should name the request id: %q", buf.String())
	}
}

func TestDemoDataAndModelAreDeterministic(t *testing.T) {
	a, b := newSyntheticData(400, 7), newSyntheticData(400, 7)
	if a.digest != b.digest || !bytes.Equal(a.csv, b.csv) {
		t.Fatal("the same seed gave different data")
	}
	if newSyntheticData(400, 8).digest == a.digest {
		t.Fatal("another seed gave the same data")
	}
	short, long := trainLogistic(a, 5, 0.5), trainLogistic(a, 200, 0.5)
	if fmt.Sprint(trainLogistic(b, 200, 0.5).weights) != fmt.Sprint(long.weights) {
		t.Fatal("training is not deterministic")
	}
	accShort, _, lossShort := short.evaluate(a)
	accLong, auc, lossLong := long.evaluate(a)
	// The synthetic labels follow a logistic model, so a fit should be clearly better than chance.
	if accLong < 0.75 || auc < 0.8 || lossLong >= lossShort || accShort < 0.5 {
		t.Fatalf("short fit acc %.3f loss %.3f; long fit acc %.3f auc %.3f loss %.3f", accShort, lossShort, accLong, auc, lossLong)
	}
}

func TestServerURLAcceptsHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9000":        "http://127.0.0.1:9000",
		"https://gyre.example/": "https://gyre.example",
		"http://h:1":            "http://h:1",
	} {
		if got := (&clientOptions{server: in}).serverURL(); got != want {
			t.Errorf("serverURL(%q) = %q, want %q", in, got, want)
		}
	}
}

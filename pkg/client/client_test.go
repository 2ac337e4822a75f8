package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// recorded is what the fake server saw of one request.
type recorded struct {
	method, path, query, body string
	header                    http.Header
}

// recorder answers every request with answer and keeps what it saw.
type recorder struct {
	mu     sync.Mutex
	seen   []recorded
	answer string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.seen = append(r.seen, recorded{req.Method, req.URL.EscapedPath(), req.URL.RawQuery, string(body), req.Header.Clone()})
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, r.answer)
}

func (r *recorder) last() recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

func TestMethodsCallTheGatewayPaths(t *testing.T) {
	rec := &recorder{answer: `{}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := New(srv.URL+"/", WithActor("ana"))
	ctx := context.Background()
	sha := strings.Repeat("ab", 32)

	cases := []struct {
		name                      string
		call                      func() error
		method, path, query, body string
	}{
		{"CreateModel", func() error {
			_, err := c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "credit", Description: "d"})
			return err
		}, "POST", "/v1/models", "", `{"name":"credit","description":"d"}`},
		{"GetModel", func() error { _, err := c.GetModel(ctx, "credit"); return err }, "GET", "/v1/models/credit", "", ""},
		{"ListModels", func() error {
			_, err := c.ListModels(ctx, &registryv1.ListModelsRequest{PageSize: 5, PageToken: "t", NamePrefix: "cr"})
			return err
		}, "GET", "/v1/models", "name_prefix=cr&page_size=5&page_token=t", ""},
		{"CreateModelVersion", func() error {
			_, err := c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "credit", ArtifactUri: "s3://b/k", ArtifactSha256: sha})
			return err
		}, "POST", "/v1/models/credit/versions", "", `{"model":"credit","artifactUri":"s3://b/k","artifactSha256":"` + sha + `"}`},
		{"GetModelVersion", func() error { _, err := c.GetModelVersion(ctx, "credit", 3); return err }, "GET", "/v1/models/credit/versions/3", "", ""},
		{"ListModelVersions", func() error {
			_, err := c.ListModelVersions(ctx, &registryv1.ListModelVersionsRequest{Model: "credit", Status: registryv1.VersionStatus_VERSION_STATUS_PASSED})
			return err
		}, "GET", "/v1/models/credit/versions", "status=VERSION_STATUS_PASSED", ""},
		{"UpdateModelVersion", func() error {
			_, err := c.UpdateModelVersion(ctx, &registryv1.UpdateModelVersionRequest{Model: "credit", Version: 2, StatusReason: "r"})
			return err
		}, "PATCH", "/v1/models/credit/versions/2", "", `{"model":"credit","version":"2","statusReason":"r"}`},
		{"SetAlias", func() error {
			_, err := c.SetAlias(ctx, &registryv1.SetAliasRequest{Model: "credit", Alias: "production", Version: 2, Reason: "go"})
			return err
		}, "PUT", "/v1/models/credit/aliases/production", "", `{"model":"credit","alias":"production","version":"2","reason":"go"}`},
		{"GetAlias", func() error { _, err := c.GetAlias(ctx, "credit", "staging"); return err }, "GET", "/v1/models/credit/aliases/staging", "", ""},
		{"ListAliasHistory", func() error {
			_, err := c.ListAliasHistory(ctx, &registryv1.ListAliasHistoryRequest{Model: "credit", Alias: "staging"})
			return err
		}, "GET", "/v1/models/credit/aliases:history", "alias=staging", ""},
		{"ApplyPipeline", func() error { _, err := c.ApplyPipeline(ctx, "kind: Pipeline\n"); return err }, "POST", "/v1/pipelines", "", `{"manifest":"kind: Pipeline\n"}`},
		{"GetPipeline latest", func() error { _, err := c.GetPipeline(ctx, "credit", 0); return err }, "GET", "/v1/pipelines/credit", "", ""},
		{"GetPipeline version", func() error { _, err := c.GetPipeline(ctx, "credit", 4); return err }, "GET", "/v1/pipelines/credit", "version=4", ""},
		{"ListPipelines", func() error {
			_, err := c.ListPipelines(ctx, &registryv1.ListPipelinesRequest{PageSize: 10})
			return err
		}, "GET", "/v1/pipelines", "page_size=10", ""},
		{"GetLineage", func() error {
			_, err := c.GetLineage(ctx, &registryv1.GetLineageRequest{Node: "model:credit@2", Direction: registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM, Depth: 3})
			return err
		}, "GET", "/v1/lineage", "depth=3&direction=LINEAGE_DIRECTION_UPSTREAM&node=model%3Acredit%402", ""},
		{"RecordLineage", func() error {
			_, err := c.RecordLineage(ctx, &registryv1.RecordLineageRequest{Edges: []*registryv1.LineageEdge{{From: "a:x", To: "b:y", Relation: "r"}}})
			return err
		}, "POST", "/v1/lineage", "", `{"edges":[{"from":"a:x","to":"b:y","relation":"r"}]}`},
		{"ListAuditRecords", func() error {
			_, err := c.ListAuditRecords(ctx, &registryv1.ListAuditRecordsRequest{Resource: "models/credit"})
			return err
		}, "GET", "/v1/audit", "resource=models%2Fcredit", ""},
		{"VerifyAudit", func() error { _, err := c.VerifyAudit(ctx); return err }, "GET", "/v1/audit:verify", "", ""},
		{"escaped name", func() error { _, err := c.GetModel(ctx, "a/b c"); return err }, "GET", "/v1/models/a%2Fb%20c", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			got := rec.last()
			if got.method != tc.method || got.path != tc.path || got.query != tc.query {
				t.Fatalf("sent %s %s?%s, want %s %s?%s", got.method, got.path, got.query, tc.method, tc.path, tc.query)
			}
			if tc.body != "" {
				assertSameJSON(t, got.body, tc.body)
				if ct := got.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type = %q", ct)
				}
			} else if got.body != "" {
				t.Fatalf("unexpected body %q", got.body)
			}
			if got.header.Get("X-Gyre-Actor") != "ana" {
				t.Fatalf("X-Gyre-Actor = %q", got.header.Get("X-Gyre-Actor"))
			}
			if _, err := uuid.Parse(got.header.Get("X-Request-Id")); err != nil {
				t.Fatalf("X-Request-Id = %q: %v", got.header.Get("X-Request-Id"), err)
			}
		})
	}
}

func assertSameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body is not JSON: %q", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("body = %s, want %s", gb, wb)
	}
}

func TestActorDefaultsToEnvironment(t *testing.T) {
	t.Setenv("GYRE_ACTOR", "ci-bot")
	rec := &recorder{answer: `{}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	if _, err := New(srv.URL).VerifyAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rec.last().header.Get("X-Gyre-Actor"); got != "ci-bot" {
		t.Fatalf("X-Gyre-Actor = %q", got)
	}
}

func TestResponsesDecodeAndIgnoreUnknownFields(t *testing.T) {
	srv := httptest.NewServer(&recorder{answer: `{"model":"credit","version":"7","artifactSha256":"ff","metrics":{"accuracy":0.9},
		"lineage":{"dataset":"apps","datasetVersion":"3"},"status":"VERSION_STATUS_PASSED","fromTheFuture":true}`})
	defer srv.Close()
	v, err := New(srv.URL).GetModelVersion(context.Background(), "credit", 7)
	if err != nil {
		t.Fatal(err)
	}
	if v.GetVersion() != 7 || v.GetMetrics()["accuracy"] != 0.9 || v.GetLineage().GetDatasetVersion() != 3 || v.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_PASSED {
		t.Fatalf("decoded %v", v)
	}
}

// pagedModels serves n models, size per page, with the name after which the page starts as token.
func pagedModels(t *testing.T, n, size int, tokens *[]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			t.Errorf("path %s", r.URL.Path)
		}
		token := r.URL.Query().Get("page_token")
		*tokens = append(*tokens, token)
		start := 0
		if token != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(token, "after-"))
		}
		resp := &registryv1.ListModelsResponse{}
		for i := start; i < n && i < start+size; i++ {
			resp.Models = append(resp.Models, &registryv1.Model{Name: fmt.Sprintf("m%d", i)})
		}
		if start+size < n {
			resp.NextPageToken = fmt.Sprintf("after-%d", start+size)
		}
		out, _ := protojson.Marshal(resp)
		_, _ = w.Write(out)
	})
}

func TestAllModelsWalksEveryPage(t *testing.T) {
	var tokens []string
	srv := httptest.NewServer(pagedModels(t, 5, 2, &tokens))
	defer srv.Close()
	req := &registryv1.ListModelsRequest{PageSize: 2}
	models, err := New(srv.URL).AllModels(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range models {
		names = append(names, m.GetName())
	}
	if strings.Join(names, ",") != "m0,m1,m2,m3,m4" {
		t.Fatalf("models = %v", names)
	}
	if strings.Join(tokens, ",") != ",after-2,after-4" {
		t.Fatalf("tokens sent = %q", tokens)
	}
	if req.GetPageToken() != "" {
		t.Fatal("the caller's request was changed")
	}
}

func TestAllPagesStopsOnARepeatedToken(t *testing.T) {
	srv := httptest.NewServer(&recorder{answer: `{"pipelines":[{"name":"p"}],"nextPageToken":"same"}`})
	defer srv.Close()
	_, err := New(srv.URL).AllPipelines(context.Background(), &registryv1.ListPipelinesRequest{PageToken: "same"})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("err = %v", err)
	}
}

func TestErrorsDecodeTheServerBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "hdr-id")
		switch r.URL.Path {
		case "/v1/pipelines":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":"INVALID_ARGUMENT","httpStatus":400,
				"message":"invalid pipeline: spec.training.trainer: unknown trainer \"x\"\nspec.evaluation.gates[0]: undeclared reference to 'auc2'",
				"requestId":"req-1","fields":[
					{"field":"spec.training.trainer","description":"unknown trainer \"x\""},
					{"field":"spec.evaluation.gates[0]","description":"undeclared reference to 'auc2'"}]}}`)
		case "/v1/models/nope":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"NOT_FOUND","httpStatus":404,"message":"model \"nope\" not found"}}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}
	}))
	defer srv.Close()
	c := New(srv.URL)
	ctx := context.Background()

	_, err := c.ApplyPipeline(ctx, "x")
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %T %v", err, err)
	}
	if ae.Code != "INVALID_ARGUMENT" || ae.HTTPStatus != 400 || ae.RequestID != "req-1" || len(ae.Fields) != 2 || ae.Fields[1].Field != "spec.evaluation.gates[0]" {
		t.Fatalf("decoded %+v", ae)
	}
	if ae.Summary() != "invalid pipeline" {
		t.Fatalf("summary = %q", ae.Summary())
	}
	want := `invalid pipeline: spec.training.trainer: unknown trainer "x"; spec.evaluation.gates[0]: undeclared reference to 'auc2'`
	if ae.Error() != want {
		t.Fatalf("Error() = %q\nwant     %q", ae.Error(), want)
	}

	_, err = c.GetModel(ctx, "nope")
	if !HasCode(err, "NOT_FOUND") || err.Error() != `model "nope" not found` {
		t.Fatalf("err = %v", err)
	}
	if errors.As(err, &ae); ae.RequestID != "hdr-id" {
		t.Fatalf("request id = %q, want the header's", ae.RequestID)
	}

	_, err = c.VerifyAudit(ctx)
	if !HasCode(err, "INTERNAL") || !strings.Contains(err.Error(), "502 Bad Gateway: <html>bad gateway</html>") {
		t.Fatalf("err = %v", err)
	}
}

func TestSummaryWithoutARepeatedField(t *testing.T) {
	cases := map[string]*APIError{
		"validation error": {Message: "validation error:\n - name: value does not match regex", Fields: []FieldViolation{{"name", "value does not match regex"}}},
		"invalid request":  {Message: "manifest: yaml: line 3: bad indent", Fields: []FieldViolation{{"manifest", "yaml: line 3: bad indent"}}},
		"bad things":       {Message: "bad things", Fields: []FieldViolation{{"x", "y"}}},
		"plain":            {Message: "plain"},
	}
	for want, e := range cases {
		if got := e.Summary(); got != want {
			t.Errorf("Summary(%q) = %q, want %q", e.Message, got, want)
		}
	}
}

func TestReady(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			t.Errorf("path %s", r.URL.Path)
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"ready":false,"checks":{"postgres":"connection refused"}}`)
		}
	}))
	c := New(srv.URL)
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	ready = false
	if err := c.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
	srv.Close()
	if err := c.Ready(context.Background()); err == nil {
		t.Fatal("a closed server is ready")
	}
}

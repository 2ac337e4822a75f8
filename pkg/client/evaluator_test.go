package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
)

func TestEvaluatorMethodsCallTheGatewayPaths(t *testing.T) {
	rec := &recorder{answer: `{}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := New(srv.URL, WithActor("ana"))
	ctx := context.Background()

	cases := []struct {
		name                      string
		call                      func() error
		method, path, query, body string
	}{
		{"Evaluate", func() error { _, err := c.Evaluate(ctx, "credit", 3); return err }, "POST", "/v1/models/credit/versions/3:evaluate", "", `{}`},
		{"GetEvaluation", func() error { _, err := c.GetEvaluation(ctx, "e-1"); return err }, "GET", "/v1/evaluations/e-1", "", ""},
		{"ListEvaluations", func() error {
			_, err := c.ListEvaluations(ctx, &evaluatorv1.ListEvaluationsRequest{Model: "credit", PageSize: 20, PageToken: "t"})
			return err
		}, "GET", "/v1/evaluations", "model=credit&page_size=20&page_token=t", ""},
		{"ListEvaluations unfiltered", func() error { _, err := c.ListEvaluations(ctx, nil); return err }, "GET", "/v1/evaluations", "", ""},
		{"GetEvaluationReport", func() error { _, err := c.GetEvaluationReport(ctx, "e-1"); return err }, "GET", "/v1/evaluations/e-1/report", "", ""},
		{"escaped model", func() error { _, err := c.Evaluate(ctx, "a/b", 1); return err }, "POST", "/v1/models/a%2Fb/versions/1:evaluate", "", `{}`},
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
			} else if got.body != "" {
				t.Fatalf("unexpected body %q", got.body)
			}
			if got.header.Get("X-Gyre-Actor") != "ana" {
				t.Fatalf("X-Gyre-Actor = %q", got.header.Get("X-Gyre-Actor"))
			}
		})
	}
}

func TestGetEvaluationDecodesGatesAndMetrics(t *testing.T) {
	srv := httptest.NewServer(&recorder{answer: `{"id":"e-1","model":"credit","version":"3","state":"EVALUATION_STATE_FAILED",
		"reasons":["auc 0.71 < 0.8"],"metrics":{"auc":0.71,"accuracy":0.9},
		"gates":[{"expression":"candidate.auc >= 0.8","passed":false,"reason":"auc too low","values":{"candidate.auc":"0.71"}},
		         {"expression":"candidate.auc >= champion.auc","skipped":true,"reason":"no champion"}],
		"dataset":"loans","datasetVersion":"4","holdoutRows":"250","championVersion":"2","reportSha256":"abc",
		"createTime":"2026-01-02T03:04:05Z","newerField":1}`})
	defer srv.Close()
	e, err := New(srv.URL).GetEvaluation(context.Background(), "e-1")
	if err != nil {
		t.Fatal(err)
	}
	if e.GetState() != evaluatorv1.EvaluationState_EVALUATION_STATE_FAILED || e.GetVersion() != 3 || e.GetMetrics()["auc"] != 0.71 ||
		e.GetDatasetVersion() != 4 || e.GetHoldoutRows() != 250 || e.GetChampionVersion() != 2 || e.GetCreateTime().AsTime().Year() != 2026 {
		t.Fatalf("decoded %v", e)
	}
	gates := e.GetGates()
	if len(gates) != 2 || gates[0].GetPassed() || gates[0].GetValues()["candidate.auc"] != "0.71" || !gates[1].GetSkipped() || gates[1].GetReason() != "no champion" {
		t.Fatalf("gates = %v", gates)
	}
}

func TestGetEvaluationReportKeepsTheHTMLExact(t *testing.T) {
	html := "<!doctype html>\n<html><body><p>a &amp; b <b>\"q\"</b></p>\u00e9</body></html>\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"evaluation":"e-1","report":{"verdict":"passed","gates":[{"passed":true}]},"html":"<!doctype html>\n<html><body><p>a \u0026amp; b <b>\"q\"</b></p>\u00e9</body></html>\n"}`)
	}))
	defer srv.Close()
	rep, err := New(srv.URL).GetEvaluationReport(context.Background(), "e-1")
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetHtml() != html {
		t.Fatalf("html = %q, want %q", rep.GetHtml(), html)
	}
	if rep.GetEvaluation() != "e-1" || rep.GetReport().GetFields()["verdict"].GetStringValue() != "passed" {
		t.Fatalf("report = %v", rep)
	}
}

func TestAllEvaluationsKeepsTheModelOnEveryPage(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.URL.Query().Get("page_token") == "" {
			_, _ = io.WriteString(w, `{"evaluations":[{"id":"b"},{"id":"a"}],"nextPageToken":"p2"}`)
			return
		}
		_, _ = io.WriteString(w, `{"evaluations":[{"id":"c"}]}`)
	}))
	defer srv.Close()
	evals, err := New(srv.URL).AllEvaluations(context.Background(), &evaluatorv1.ListEvaluationsRequest{Model: "credit"})
	if err != nil || len(evals) != 3 || evals[2].GetId() != "c" {
		t.Fatalf("AllEvaluations = %v, %v", evals, err)
	}
	if want := "model=credit&page_token=p2"; len(queries) != 2 || queries[1] != want {
		t.Fatalf("queries = %q, want the second to be %q", queries, want)
	}
}

func TestEvaluateNotFoundIsAnAPIError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"NOT_FOUND","httpStatus":404,"message":"model version credit@9 not found"}}`)
	}))
	defer srv.Close()
	_, err := New(srv.URL).Evaluate(context.Background(), "credit", 9)
	if !HasCode(err, "NOT_FOUND") || err.Error() != "model version credit@9 not found" {
		t.Fatalf("err = %v", err)
	}
}

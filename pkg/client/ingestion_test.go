package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
)

func TestIngestionMethodsCallTheGatewayPaths(t *testing.T) {
	rec := &recorder{answer: `{}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := New(srv.URL, WithActor("ana"))
	ctx := context.Background()
	sha := strings.Repeat("cd", 32)

	cases := []struct {
		name                      string
		call                      func() error
		method, path, query, body string
	}{
		{"GetDataset", func() error { _, err := c.GetDataset(ctx, "credit-apps"); return err }, "GET", "/v1/datasets/credit-apps", "", ""},
		{"ListDatasets", func() error {
			_, err := c.ListDatasets(ctx, &ingestionv1.ListDatasetsRequest{PageSize: 20, PageToken: "t"})
			return err
		}, "GET", "/v1/datasets", "page_size=20&page_token=t", ""},
		{"ListDatasetVersions", func() error {
			_, err := c.ListDatasetVersions(ctx, &ingestionv1.ListDatasetVersionsRequest{Dataset: "credit-apps", PageSize: 3})
			return err
		}, "GET", "/v1/datasets/credit-apps/versions", "page_size=3", ""},
		{"GetDatasetVersion", func() error { _, err := c.GetDatasetVersion(ctx, "credit-apps", 4); return err }, "GET", "/v1/datasets/credit-apps/versions/4", "", ""},
		{"GetReport of a version", func() error { _, err := c.GetReport(ctx, "credit-apps", 4, ""); return err }, "GET", "/v1/datasets/credit-apps/versions/4/report", "", ""},
		{"GetReport of a rejected upload", func() error { _, err := c.GetReport(ctx, "credit-apps", 0, sha); return err },
			"GET", "/v1/datasets/credit-apps/versions/0/report", "report_sha256=" + sha, ""},
		{"RegisterObject", func() error {
			_, err := c.RegisterObject(ctx, &ingestionv1.RegisterObjectRequest{Dataset: "credit-apps", Uri: "s3://b/k.csv", Format: "csv", Pipeline: "p"})
			return err
		}, "POST", "/v1/datasets/credit-apps/versions:register", "", `{"dataset":"credit-apps","uri":"s3://b/k.csv","format":"csv","pipeline":"p"}`},
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

func TestAllDatasetsWalksEveryPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("page_token") == "" {
			_, _ = io.WriteString(w, `{"datasets":[{"name":"a"},{"name":"b"}],"nextPageToken":"p2"}`)
			return
		}
		_, _ = io.WriteString(w, `{"datasets":[{"name":"c"}]}`)
	}))
	defer srv.Close()
	all, err := New(srv.URL).AllDatasets(context.Background(), nil)
	if err != nil || len(all) != 3 || all[2].GetName() != "c" {
		t.Fatalf("AllDatasets = %v, %v", all, err)
	}
}

// A push must reach the server while the caller is still producing the
// file: the client must not read the body whole before sending it.
func TestPushDatasetStreamsTheBody(t *testing.T) {
	first := []byte(strings.Repeat("age,income\n", 100))
	rest := []byte(strings.Repeat("30,52.5\n", 5000))
	size := int64(len(first) + len(rest))

	received := make(chan int64, 1024)
	var seen recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = recorded{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header.Clone()}
		var total int64
		buf := make([]byte, 4096)
		for {
			n, err := r.Body.Read(buf)
			total += int64(n)
			if n > 0 {
				select {
				case received <- total:
				default:
				}
			}
			if err != nil {
				break
			}
		}
		if total != size || r.ContentLength != size {
			http.Error(w, "short body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"version":{"dataset":"credit-apps","version":"3","sha256":"`+strings.Repeat("ef", 32)+`","rows":"5000",
			"summary":{"verdict":"VERDICT_VALIDATED","rulesChecked":2}},"summary":{"verdict":"VERDICT_VALIDATED","rulesChecked":2},"newField":1}`)
	}))
	defer srv.Close()

	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(first)
		// Only once the server has the first part does the rest exist.
		for {
			select {
			case n := <-received:
				if n < int64(len(first)) {
					continue
				}
				_, _ = pw.Write(rest)
				pw.Close()
			case <-time.After(10 * time.Second):
				pw.CloseWithError(errors.New("the server never saw the first part: the client holds the body back"))
			}
			return
		}
	}()
	var progress []int64
	resp, err := New(srv.URL, WithActor("ana")).PushDataset(context.Background(), "credit-apps", pr, size, "text/csv", "credit demo",
		func(sent int64) { progress = append(progress, sent) })
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVersion(); v.GetVersion() != 3 || v.GetRows() != 5000 || resp.GetSummary().GetVerdict() != ingestionv1.Verdict_VERDICT_VALIDATED {
		t.Fatalf("response = %v", resp)
	}
	if seen.method != "PUT" || seen.path != "/v1/datasets/credit-apps/versions:upload" || seen.query != "pipeline=credit+demo" {
		t.Fatalf("sent %s %s?%s", seen.method, seen.path, seen.query)
	}
	if ct, actor := seen.header.Get("Content-Type"), seen.header.Get("X-Gyre-Actor"); ct != "text/csv" || actor != "ana" {
		t.Fatalf("Content-Type %q, X-Gyre-Actor %q", ct, actor)
	}
	if len(progress) < 2 || progress[len(progress)-1] != size {
		t.Fatalf("progress = %v, want at least two calls ending at %d", progress, size)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] <= progress[i-1] {
			t.Fatalf("progress went backwards: %v", progress)
		}
	}
}

func TestPushDatasetReturnsRejectionsAndServerErrors(t *testing.T) {
	const limit = 1 << 16
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.ContentLength > limit:
			// Like the server: refused from the header, before the body is read.
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = io.WriteString(w, `{"error":{"code":"RESOURCE_EXHAUSTED","httpStatus":413,"message":"upload of 200000 bytes exceeds the maximum of 65536 bytes"}}`)
		case r.URL.Query().Get("pipeline") == "strict":
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, `{"summary":{"verdict":"VERDICT_REJECTED","reasons":["privacy: column \"email\" holds personal data (email) and the policy is reject"],
				"privacyFindings":1,"privacyAction":"reject"},"reportSha256":"`+strings.Repeat("12", 32)+`"}`)
		default:
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":"INVALID_ARGUMENT","httpStatus":400,"message":"body: line 3, column 7: bare \" in non-quoted field",
				"fields":[{"field":"body","description":"line 3, column 7: bare \" in non-quoted field"}]}}`)
		}
	}))
	defer srv.Close()
	c := New(srv.URL)
	ctx := context.Background()
	push := func(body []byte, pipeline string) (*ingestionv1.UploadVersionResponse, error) {
		return c.PushDataset(ctx, "credit-apps", bytes.NewReader(body), int64(len(body)), "text/csv", pipeline, nil)
	}

	resp, err := push([]byte("email\na@b.co\n"), "strict")
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != nil || resp.GetSummary().GetVerdict() != ingestionv1.Verdict_VERDICT_REJECTED || len(resp.GetSummary().GetReasons()) != 1 || resp.GetReportSha256() == "" {
		t.Fatalf("rejection = %v", resp)
	}

	_, err = push([]byte("a,b\n1,2\n3,x\"y\n"), "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 400 || len(ae.Fields) != 1 || !strings.Contains(ae.Error(), "line 3, column 7") {
		t.Fatalf("malformed file: err = %v", err)
	}

	_, err = push(bytes.Repeat([]byte("1,2\n"), 50_000), "")
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusRequestEntityTooLarge || ae.Code != "RESOURCE_EXHAUSTED" {
		t.Fatalf("too large: err = %v", err)
	}
}

func TestContentTypeFor(t *testing.T) {
	for name, want := range map[string]string{
		"credit.csv":          "text/csv",
		"data/Credit.CSV.gz":  "text/csv",
		"events.jsonl":        "application/x-ndjson",
		"events.ndjson.gz":    "application/x-ndjson",
		"part-0.parquet":      "application/vnd.apache.parquet",
		"no-extension":        "",
		"sheet.xlsx":          "",
		"part-0.parquet.gz":   "",
		"credit.csv.gz.extra": "",
	} {
		got, err := ContentTypeFor(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ContentTypeFor(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

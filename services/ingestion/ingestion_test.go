package ingestion_test

// Integration tests: real Postgres (pgtest), in-process NATS JetStream and S3,
// registry and ingestion served by a real gyre process.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyretest"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

type push struct {
	status int
	resp   *ingestionv1.UploadVersionResponse
	err    map[string]any
}

func upload(t *testing.T, env *gyretest.Env, dataset, contentType string, body io.Reader, query string) push {
	t.Helper()
	u := env.BaseURL + "/v1/datasets/" + dataset + "/versions:upload"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest("PUT", u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Gyre-Actor", "dana")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := push{status: resp.StatusCode}
	if resp.StatusCode == 200 {
		p.resp = &ingestionv1.UploadVersionResponse{}
		if err := protojson.Unmarshal(raw, p.resp); err != nil {
			t.Fatalf("response: %v\n%s", err, raw)
		}
	} else if err := json.Unmarshal(raw, &p.err); err != nil {
		t.Fatalf("error body not JSON (%d): %s", resp.StatusCode, raw)
	}
	return p
}

func csvRows(n int, row func(i int) string, header string) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := range n {
		b.WriteString(row(i) + "\n")
	}
	return b.String()
}

func loans(n, shift int) string {
	return csvRows(n, func(i int) string {
		return fmt.Sprintf("%d,%d,%s,%d", 20+(i*7+shift)%60, 1000+i*13+shift*100, []string{"a", "b", "c"}[i%3], i%2)
	}, "age,income,segment,default")
}

func applyPipeline(t *testing.T, env *gyretest.Env, manifest string) {
	t.Helper()
	_, err := registryv1.NewRegistryServiceClient(env.Conn).ApplyPipeline(context.Background(), &registryv1.ApplyPipelineRequest{Manifest: manifest})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPushValidatesVersionsAndIsIdempotent(t *testing.T) {
	env := gyretest.Start(t)
	applyPipeline(t, env, `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: loans}
spec:
  dataset: loans
  validation:
    rules: [{column: age, min: 18, max: 120}, {column: income, notNull: true}, {minRows: 10}]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := env.JS.OrderedConsumer(ctx, "GYRE", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"gyre.dataset.>"}})
	if err != nil {
		t.Fatal(err)
	}

	first := upload(t, env, "loans", "text/csv", strings.NewReader(loans(200, 0)), "")
	if first.status != 200 || first.resp.GetVersion().GetVersion() != 1 || first.resp.GetSummary().GetVerdict() != ingestionv1.Verdict_VERDICT_VALIDATED {
		t.Fatalf("first push: %d %v %v", first.status, first.resp, first.err)
	}
	v1 := first.resp.GetVersion()
	if v1.GetProfileSummary().GetFields()["Rows"].GetNumberValue() != 200 && v1.GetProfileSummary().GetFields()["rows"].GetNumberValue() != 200 {
		t.Fatalf("profile summary = %v", v1.GetProfileSummary())
	}
	if v1.GetRows() != 200 || len(v1.GetSha256()) != 64 || v1.GetPipeline() != "loans" || v1.GetSummary().GetRulesChecked() == 0 {
		t.Fatalf("version 1 = %v", v1)
	}
	again := upload(t, env, "loans", "text/csv", strings.NewReader(loans(200, 0)), "")
	if again.status != 200 || !again.resp.GetExisting() || again.resp.GetVersion().GetVersion() != 1 {
		t.Fatalf("same bytes again: %v", again.resp)
	}
	// The same rows, gzipped, are other bytes but the same stored content.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(loans(200, 5)))
	zw.Close()
	second := upload(t, env, "loans", "text/csv", &gz, "")
	if second.status != 200 || second.resp.GetVersion().GetVersion() != 2 {
		t.Fatalf("second push: %d %v %v", second.status, second.resp, second.err)
	}
	if len(second.resp.GetVersion().GetSummary().GetSchemaChanges()) != 0 || second.resp.GetVersion().GetSummary().GetMaxDriftColumn() == "" {
		t.Fatalf("second version's schema/drift summary = %v", second.resp.GetVersion().GetSummary())
	}

	// The stored object is the canonical CSV, and its digest checks out.
	c := ingestionv1.NewIngestionServiceClient(env.Conn)
	ds, err := c.GetDataset(ctx, &ingestionv1.GetDatasetRequest{Dataset: "loans"})
	if err != nil {
		t.Fatal(err)
	}
	if ds.GetLatestVersion() != 2 || len(ds.GetSchema()) != 4 || ds.GetSchema()[0].GetType() != "int" {
		t.Fatalf("dataset = %v", ds)
	}
	key, _ := env.Process.Blobs.KeyOf(v1.GetUri())
	rc, err := env.Process.Blobs.Get(ctx, key, v1.GetSha256())
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(stored) != loans(200, 0) {
		t.Fatalf("stored bytes differ (%v)", err)
	}
	rep, err := c.GetReport(ctx, &ingestionv1.GetReportRequest{Dataset: "loans", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetReport().GetFields()["verdict"].GetStringValue() != "validated" || len(rep.GetReport().GetFields()["drift"].GetListValue().GetValues()) == 0 {
		t.Fatalf("report = %v", rep.GetReport())
	}
	list, err := c.ListDatasetVersions(ctx, &ingestionv1.ListDatasetVersionsRequest{Dataset: "loans", PageSize: 1})
	if err != nil || len(list.GetVersions()) != 1 || list.GetNextPageToken() == "" {
		t.Fatalf("list = %v %v", list, err)
	}

	for i, want := range []string{"gyre.dataset.version.validated", "gyre.dataset.version.validated"} {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil || msg.Subject() != want {
			t.Fatalf("event %d: %v %v", i, msg, err)
		}
	}
	// The registry learns the version as a lineage node (through the event).
	reg := registryv1.NewRegistryServiceClient(env.Conn)
	deadline := time.Now().Add(15 * time.Second)
	for {
		lin, err := reg.GetLineage(ctx, &registryv1.GetLineageRequest{Node: "dataset:loans@1"})
		if err == nil {
			for _, n := range lin.GetNodes() {
				if n.GetId() == "dataset:loans@1" && n.GetAttributes()["sha256"] == v1.GetSha256() {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry never recorded dataset:loans@1: %v %v", lin, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRulesSchemaAndKAnonymityReject(t *testing.T) {
	env := gyretest.Start(t)
	applyPipeline(t, env, `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: people}
spec:
  dataset: people
  validation:
    rules: [{column: age, min: 18}]
    privacy: {quasiIdentifiers: [zip, sex], kAnonymity: 3}
`)
	good := csvRows(60, func(i int) string { return fmt.Sprintf("%d,%d,%s", 30+i%40, 10000+i%4, []string{"f", "m"}[i%2]) }, "age,zip,sex")
	if p := upload(t, env, "people", "text/csv", strings.NewReader(good), ""); p.status != 200 || p.resp.GetVersion().GetVersion() != 1 {
		t.Fatalf("good push: %d %v %v", p.status, p.resp, p.err)
	}

	underage := strings.Replace(good, "\n30,", "\n12,", 1)
	p := upload(t, env, "people", "text/csv", strings.NewReader(underage), "")
	assertRejected(t, p, `rule "age: min 18" failed on 1`)

	// One person alone in their (zip, sex) group.
	lonely := good + "44,99999,f\n"
	p = upload(t, env, "people", "text/csv", strings.NewReader(lonely), "")
	assertRejected(t, p, "k-anonymity: the smallest group over (zip, sex) has 1 rows, below k=3")
	if p.resp.GetSummary().GetSmallestEquivalenceClass() != 1 {
		t.Fatalf("summary = %v", p.resp.GetSummary())
	}

	missing := csvRows(60, func(i int) string { return fmt.Sprintf("%d,%d", 30+i%40, 10000+i%4) }, "age,zip")
	p = upload(t, env, "people", "text/csv", strings.NewReader(missing), "validation="+url.QueryEscape("{}"))
	assertRejected(t, p, "schema does not match")

	// A rejected push of the same bytes is the same rejection; nothing was versioned.
	again := upload(t, env, "people", "text/csv", strings.NewReader(underage), "")
	if !again.resp.GetExisting() || again.resp.GetReportSha256() == "" {
		t.Fatalf("same rejected bytes: %v", again.resp)
	}
	c := ingestionv1.NewIngestionServiceClient(env.Conn)
	ds, err := c.GetDataset(context.Background(), &ingestionv1.GetDatasetRequest{Dataset: "people"})
	if err != nil || ds.GetLatestVersion() != 1 || ds.GetRejectedUploads() != 3 {
		t.Fatalf("dataset = %v %v", ds, err)
	}
	rep, err := c.GetReport(context.Background(), &ingestionv1.GetReportRequest{Dataset: "people", ReportSha256: again.resp.GetReportSha256()})
	if err != nil || rep.GetReport().GetFields()["verdict"].GetStringValue() != "rejected" {
		t.Fatalf("rejected report = %v %v", rep, err)
	}
}

func assertRejected(t *testing.T, p push, reason string) {
	t.Helper()
	if p.status != 200 || p.resp.GetSummary().GetVerdict() != ingestionv1.Verdict_VERDICT_REJECTED || p.resp.GetVersion() != nil {
		t.Fatalf("want rejected, got %d %v %v", p.status, p.resp, p.err)
	}
	for _, r := range p.resp.GetSummary().GetReasons() {
		if strings.Contains(r, reason) {
			return
		}
	}
	t.Fatalf("no reason contains %q: %v", reason, p.resp.GetSummary().GetReasons())
}

func piiRows(n int) string {
	return csvRows(n, func(i int) string {
		return fmt.Sprintf("%d,user%d@example.com,%d", i, i, 100+i)
	}, "id,email,score")
}

func TestPrivacyPolicies(t *testing.T) {
	env := gyretest.Start(t)
	policy := func(action string) string {
		return "validation=" + url.QueryEscape(`{privacy: {detect: [email], action: `+action+`}}`)
	}
	p := upload(t, env, "contacts", "text/csv", strings.NewReader(piiRows(50)), policy("reject"))
	assertRejected(t, p, `column "email" holds personal data (email)`)

	p = upload(t, env, "contacts", "text/csv", strings.NewReader(piiRows(50)), policy("redact"))
	if p.status != 200 || p.resp.GetVersion() == nil {
		t.Fatalf("redact: %d %v %v", p.status, p.resp, p.err)
	}
	redacted := readVersion(t, env, p.resp.GetVersion())
	if strings.Contains(redacted, "@example.com") || !strings.Contains(redacted, "id,email,score") {
		t.Fatalf("redacted data still holds emails:\n%.300s", redacted)
	}

	p1 := upload(t, env, "contacts-p", "text/csv", strings.NewReader(piiRows(50)), policy("pseudonymize"))
	p2 := upload(t, env, "contacts-p", "text/csv", strings.NewReader(piiRows(60)), policy("pseudonymize"))
	a, b := readVersion(t, env, p1.resp.GetVersion()), readVersion(t, env, p2.resp.GetVersion())
	if strings.Contains(a, "@example.com") || strings.Contains(b, "@example.com") {
		t.Fatal("pseudonymized data still holds emails")
	}
	// Same value, same pseudonym, across versions: joins still work.
	lineA, lineB := strings.Split(a, "\n")[3], strings.Split(b, "\n")[3]
	if lineA != lineB || !strings.Contains(lineA, "pse_") {
		t.Fatalf("pseudonyms differ across versions: %q vs %q", lineA, lineB)
	}
	// The raw bytes were never stored.
	keys, err := env.Process.Blobs.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "datasets/") {
			if s := readKey(t, env, k); strings.Contains(s, "@example.com") {
				t.Fatalf("object %s holds raw personal data", k)
			}
		}
	}
}

func readVersion(t *testing.T, env *gyretest.Env, v *ingestionv1.DatasetVersion) string {
	t.Helper()
	key, ok := env.Process.Blobs.KeyOf(v.GetUri())
	if !ok {
		t.Fatalf("uri %s", v.GetUri())
	}
	return readKey(t, env, key)
}

func readKey(t *testing.T, env *gyretest.Env, key string) string {
	t.Helper()
	rc, err := env.Process.Blobs.Get(context.Background(), key, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadInputLeavesNothingBehind(t *testing.T) {
	env := gyretest.Start(t)
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"ragged row", "text/csv", "a,b\n1,2\n3\n", 400, "line 3"},
		{"unterminated quote", "text/csv", "a,b\n1,\"2\n", 400, "line 2"},
		{"empty file", "text/csv", "", 400, ""},
		{"duplicate columns", "text/csv", "a,a\n1,2\n", 400, "duplicate"},
		{"invalid utf-8", "text/csv", "a,b\n1,\xff\xfe\n", 400, "line 2"},
		{"binary garbage", "text/csv", "\x00\x01\x02\x03garbage", 400, ""},
		{"bad json line", "application/x-ndjson", "{\"a\": 1}\n{\"a\": \n", 400, "line 2"},
		{"wrong content type", "image/png", "a\n1\n", 400, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := upload(t, env, "bad", tc.contentType, strings.NewReader(tc.body), "")
			e, _ := p.err["error"].(map[string]any)
			if p.status != tc.status || e == nil || !strings.Contains(fmt.Sprint(e["message"]), tc.want) {
				t.Fatalf("got %d %v", p.status, p.err)
			}
		})
	}
	assertNothingStored(t, env, "bad")
}

func TestTooLargeAndDisconnectLeaveNothingBehind(t *testing.T) {
	env := gyretest.StartWith(t, func(c *config.Config) { c.Ingestion.MaxUploadBytes = 64 << 10 })
	p := upload(t, env, "big", "text/csv", strings.NewReader(loans(20000, 0)), "")
	if e, _ := p.err["error"].(map[string]any); p.status != 413 || !strings.Contains(fmt.Sprint(e["message"]), "exceeds the maximum") {
		t.Fatalf("too large: %d %v", p.status, p.err)
	}
	// Without a Content-Length the limit is enforced while streaming.
	p = upload(t, env, "big", "text/csv", io.MultiReader(strings.NewReader(loans(20000, 0))), "")
	if p.status != 413 {
		t.Fatalf("too large, streamed: %d %v", p.status, p.err)
	}
	assertNothingStored(t, env, "big")

	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(loans(1000, 0)))
		pw.CloseWithError(fmt.Errorf("client went away"))
	}()
	req, _ := http.NewRequest("PUT", env.BaseURL+"/v1/datasets/cut/versions:upload", pr)
	req.Header.Set("Content-Type", "text/csv")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond)
	assertNothingStored(t, env, "cut")
}

func assertNothingStored(t *testing.T, env *gyretest.Env, dataset string) {
	t.Helper()
	keys, err := env.Process.Blobs.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, dataset) || strings.HasPrefix(k, "tmp/") {
			t.Fatalf("object left behind: %s", k)
		}
	}
	_, err = ingestionv1.NewIngestionServiceClient(env.Conn).GetDataset(context.Background(), &ingestionv1.GetDatasetRequest{Dataset: dataset})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("dataset %s exists after a failed upload: %v", dataset, err)
	}
}

func TestGRPCStreamingUploadAndRegisterObject(t *testing.T) {
	env := gyretest.Start(t)
	c := ingestionv1.NewIngestionServiceClient(env.Conn)
	ctx := context.Background()
	stream, err := c.UploadVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&ingestionv1.UploadVersionRequest{Part: &ingestionv1.UploadVersionRequest_Header{Header: &ingestionv1.UploadHeader{Dataset: "streamed", Format: "jsonl"}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		line := fmt.Sprintf("{\"x\": %d, \"y\": \"v%d\"}\n", i, i%3)
		if err := stream.Send(&ingestionv1.UploadVersionRequest{Part: &ingestionv1.UploadVersionRequest_Chunk{Chunk: []byte(line)}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion().GetRows() != 100 || resp.GetVersion().GetSourceFormat() != "jsonl" {
		t.Fatalf("streamed = %v", resp)
	}

	if _, err := env.Process.Blobs.Put(ctx, "incoming/loans.csv", strings.NewReader(loans(50, 0)), -1, "text/csv"); err != nil {
		t.Fatal(err)
	}
	reg, err := c.RegisterObject(ctx, &ingestionv1.RegisterObjectRequest{Dataset: "registered", Uri: env.Process.Blobs.URI("incoming/loans.csv"), Format: "csv"})
	if err != nil {
		t.Fatal(err)
	}
	if reg.GetVersion().GetRows() != 50 {
		t.Fatalf("registered = %v", reg)
	}
	_, err = c.RegisterObject(ctx, &ingestionv1.RegisterObjectRequest{Dataset: "registered", Uri: "s3://other-bucket/x.csv", Format: "csv"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("foreign bucket: %v", err)
	}
}

package evaluator_test

// End to end on real servers: a pipeline with gates, a pushed dataset, a real
// worker training the model, and the evaluator judging the version.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/gyretest"
	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/worker"
)

func start(t *testing.T, gates string) (*gyretest.Env, registryv1.RegistryServiceClient, evaluatorv1.EvaluatorServiceClient) {
	t.Helper()
	env := gyretest.Start(t)
	reg := registryv1.NewRegistryServiceClient(env.Conn)
	if _, err := reg.ApplyPipeline(context.Background(), &registryv1.ApplyPipelineRequest{Manifest: `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned, trainer: builtin/gbdt, params: {trees: 30, maxDepth: 3}}
  retraining: {on: [new_data], cooldown: 1s}
  evaluation:
    sensitiveAttributes: [plan]
    minGroupSize: 20
    gates: ` + gates + `
`}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("tenure,spend,plan,churned\n")
	for i := range 600 {
		fmt.Fprintf(&b, "%d,%d,%s,%d\n", i%60, (i*37)%100, []string{"basic", "pro"}[i%2], map[bool]int{true: 1}[i%60 < 25])
	}
	req, _ := http.NewRequest("PUT", env.BaseURL+"/v1/datasets/customers/versions:upload", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	w, err := worker.New(context.Background(), worker.Config{
		Scheduler: env.Process.Server.GRPCAddr(), Name: "w", WorkDir: t.TempDir(),
		S3:     blob.Config{Endpoint: env.Config.S3.Endpoint, AccessKey: env.Config.S3.AccessKey, SecretKey: env.Config.S3.SecretKey, Bucket: env.Config.S3.Bucket},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return env, reg, evaluatorv1.NewEvaluatorServiceClient(env.Conn)
}

// waitVersion waits until version v of churn has a verdict.
func waitVersion(t *testing.T, reg registryv1.RegistryServiceClient, v int64) *registryv1.ModelVersion {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		mv, err := reg.GetModelVersion(context.Background(), &registryv1.GetModelVersionRequest{Model: "churn", Version: v})
		if err == nil && (mv.GetStatus() == registryv1.VersionStatus_VERSION_STATUS_PASSED || mv.GetStatus() == registryv1.VersionStatus_VERSION_STATUS_FAILED) {
			return mv
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("version %d was never judged", v)
	return nil
}

func TestATrainedVersionIsEvaluatedAndPasses(t *testing.T) {
	env, reg, ev := start(t, `["metrics.auc >= 0.7", "fairness.plan.demographic_parity_difference <= 0.5", "latency.p99_ms <= 50", "metrics.auc >= champion.metrics.auc - 0.05"]`)
	// The push triggered training (retraining on new_data by default).
	mv := waitVersion(t, reg, 1)
	if mv.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_PASSED || mv.GetMetrics()["auc"] < 0.7 {
		t.Fatalf("version 1: %v (%s) %v", mv.GetStatus(), mv.GetStatusReason(), mv.GetMetrics())
	}
	list, err := ev.ListEvaluations(context.Background(), &evaluatorv1.ListEvaluationsRequest{Model: "churn"})
	if err != nil || len(list.GetEvaluations()) != 1 {
		t.Fatalf("evaluations = %v %v", list, err)
	}
	e := list.GetEvaluations()[0]
	if e.GetState() != evaluatorv1.EvaluationState_EVALUATION_STATE_PASSED || len(e.GetGates()) != 4 || e.GetHoldoutRows() == 0 {
		t.Fatalf("evaluation = %v", e)
	}
	if !e.GetGates()[3].GetSkipped() || e.GetGates()[0].GetValues()["metrics.auc"] == "" {
		t.Fatalf("gates = %v", e.GetGates())
	}
	rep, err := ev.GetEvaluationReport(context.Background(), &evaluatorv1.GetEvaluationReportRequest{Evaluation: e.GetId()})
	if err != nil || !strings.Contains(rep.GetHtml(), "<svg") || rep.GetReport().GetFields()["Verdict"].GetStringValue() != "passed" {
		t.Fatalf("report: %v (%d bytes of html)", err, len(rep.GetHtml()))
	}
	_ = env
}

func TestAGateNamingAnUnknownValueFailsTheVersion(t *testing.T) {
	_, reg, _ := start(t, `["metrics.auc2 >= 0.5"]`)
	mv := waitVersion(t, reg, 1)
	if mv.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_FAILED || !strings.Contains(mv.GetStatusReason(), "unknown value metrics.auc2") {
		t.Fatalf("version 1: %v %q", mv.GetStatus(), mv.GetStatusReason())
	}
}

func TestBadInputFailsWithAClearReason(t *testing.T) {
	env, reg, ev := start(t, `["metrics.auc >= 0.5"]`)
	mv := waitVersion(t, reg, 1)
	if mv.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_PASSED {
		t.Fatalf("version 1: %v %q", mv.GetStatus(), mv.GetStatusReason())
	}
	ctx := context.Background()

	// A sensitive attribute the data does not have.
	if _, err := reg.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned, trainer: builtin/gbdt, params: {trees: 30, maxDepth: 3}}
  retraining: {on: []}
  evaluation: {sensitiveAttributes: [sex], gates: ["metrics.auc >= 0.5"]}
`}); err != nil {
		t.Fatal(err)
	}
	// A version trained by pipeline version 2 reuses version 1's bundle.
	v2, err := reg.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "churn", ArtifactUri: mv.GetArtifactUri(),
		ArtifactSha256: mv.GetArtifactSha256(), SizeBytes: mv.GetSizeBytes(), Format: mv.GetFormat(),
		Lineage: &registryv1.VersionLineage{Dataset: "customers", DatasetVersion: 1, Pipeline: "churn", PipelineVersion: 2, TrainingJob: "manual-2"}})
	if err != nil {
		t.Fatal(err)
	}
	got := waitVersion(t, reg, v2.GetVersion())
	if got.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_FAILED || !strings.Contains(got.GetStatusReason(), `sensitive attribute "sex" is not a column`) {
		t.Fatalf("missing attribute: %v %q", got.GetStatus(), got.GetStatusReason())
	}

	// A bundle whose bytes no longer match the registered digest.

	tampered := "models/churn/tampered.tar.gz"
	if _, err := env.Process.Blobs.Put(ctx, tampered, strings.NewReader("not the bundle"), -1, "application/gzip"); err != nil {
		t.Fatal(err)
	}
	v3, err := reg.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "churn", ArtifactUri: env.Process.Blobs.URI(tampered),
		ArtifactSha256: mv.GetArtifactSha256(), Format: mv.GetFormat(),
		Lineage: &registryv1.VersionLineage{Dataset: "customers", DatasetVersion: 1, Pipeline: "churn", PipelineVersion: 1, TrainingJob: "manual-3"}})
	if err != nil {
		t.Fatal(err)
	}
	got = waitVersion(t, reg, v3.GetVersion())
	if got.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_FAILED || !strings.Contains(got.GetStatusReason(), "sha256 mismatch") {
		t.Fatalf("tampered bundle: %v %q", got.GetStatus(), got.GetStatusReason())
	}
	_ = ev
}

func TestAChallengerIsComparedWithTheProductionChampion(t *testing.T) {
	env, reg, ev := start(t, `["metrics.auc >= champion.metrics.auc - 0.2"]`)
	ctx := context.Background()
	waitVersion(t, reg, 1)
	if _, err := reg.SetAlias(ctx, &registryv1.SetAliasRequest{Model: "churn", Alias: "production", Version: 1}); err != nil {
		t.Fatal(err)
	}
	// New data: the scheduler retrains, and version 2 meets the champion.
	var b strings.Builder
	b.WriteString("tenure,spend,plan,churned\n")
	for i := range 700 {
		fmt.Fprintf(&b, "%d,%d,%s,%d\n", i%60, (i*41)%100, []string{"basic", "pro"}[i%2], map[bool]int{true: 1}[i%60 < 25])
	}
	req, _ := http.NewRequest("PUT", env.BaseURL+"/v1/datasets/customers/versions:upload", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	mv := waitVersion(t, reg, 2)
	if mv.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_PASSED {
		t.Fatalf("version 2: %v %q", mv.GetStatus(), mv.GetStatusReason())
	}
	list, err := ev.ListEvaluations(ctx, &evaluatorv1.ListEvaluationsRequest{Model: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	e := list.GetEvaluations()[0] // newest first
	if e.GetVersion() != 2 || e.GetChampionVersion() != 1 || e.GetGates()[0].GetSkipped() || e.GetGates()[0].GetValues()["champion.metrics.auc"] == "" {
		t.Fatalf("evaluation of version 2 = %v", e)
	}
	rep, err := ev.GetEvaluationReport(ctx, &evaluatorv1.GetEvaluationReportRequest{Evaluation: e.GetId()})
	if err != nil || !strings.Contains(rep.GetHtml(), "champion") {
		t.Fatalf("report: %v", err)
	}
}

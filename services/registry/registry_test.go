package registry_test

// Integration tests: real Postgres (pgtest), in-process NATS JetStream and S3,
// the registry served over gRPC and REST by a real gyre process.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gyreml/gyre/pkg/gyretest"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newClient(t *testing.T) (registryv1.RegistryServiceClient, *gyretest.Env) {
	t.Helper()
	env := gyretest.Start(t, "registry")
	return registryv1.NewRegistryServiceClient(env.Conn), env
}

func asActor(name string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-gyre-actor", name, "x-request-id", "req-"+name)
}

func wantCode(t *testing.T, err error, code codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return st
}

func TestModelsAndVersions(t *testing.T) {
	c, _ := newClient(t)
	ctx := asActor("alice")

	m, err := c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "credit-risk", Description: "PD model", Tags: map[string]string{"team": "risk"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetName() != "credit-risk" || m.GetLatestVersion() != 0 || m.GetEtag() == "" {
		t.Fatalf("model = %v", m)
	}
	_, err = c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "credit-risk"})
	wantCode(t, err, codes.AlreadyExists)

	_, err = c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "Credit_Risk"})
	st := wantCode(t, err, codes.InvalidArgument)
	if !hasFieldViolation(st, "name") {
		t.Fatalf("violation does not name the field: %v", st.Details())
	}
	_, err = c.GetModel(ctx, &registryv1.GetModelRequest{Model: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "nope", ArtifactUri: "s3://b/k", ArtifactSha256: sha("x")})
	wantCode(t, err, codes.NotFound)

	for i := 1; i <= 5; i++ {
		v, err := c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{
			Model: "credit-risk", ArtifactUri: fmt.Sprintf("s3://gyre/models/%d", i), ArtifactSha256: sha(fmt.Sprint(i)),
			Format: "gyre-gbdt", Metrics: map[string]float64{"auc": 0.8 + float64(i)/100},
		})
		if err != nil {
			t.Fatal(err)
		}
		if v.GetVersion() != int64(i) || v.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_REGISTERED {
			t.Fatalf("version = %v", v)
		}
	}
	_, err = c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "credit-risk", ArtifactUri: "s3://x", ArtifactSha256: sha("1")})
	wantCode(t, err, codes.AlreadyExists)
	_, err = c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "credit-risk", ArtifactUri: "s3://x", ArtifactSha256: "not-a-digest"})
	wantCode(t, err, codes.InvalidArgument)

	// Paging walks every version exactly once, newest first.
	var seen []int64
	token := ""
	for {
		resp, err := c.ListModelVersions(ctx, &registryv1.ListModelVersionsRequest{Model: "credit-risk", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range resp.GetVersions() {
			seen = append(seen, v.GetVersion())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(seen) != "[5 4 3 2 1]" {
		t.Fatalf("paged versions = %v", seen)
	}
	_, err = c.ListModelVersions(ctx, &registryv1.ListModelVersionsRequest{Model: "credit-risk", PageToken: "garbage"})
	wantCode(t, err, codes.InvalidArgument)

	// Optimistic concurrency: a stale etag loses.
	v3, err := c.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: "credit-risk", Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	upd, err := c.UpdateModelVersion(ctx, &registryv1.UpdateModelVersionRequest{Model: "credit-risk", Version: 3, Etag: v3.GetEtag(),
		Status: registryv1.VersionStatus_VERSION_STATUS_PASSED, Metrics: map[string]float64{"f1": 0.7}})
	if err != nil {
		t.Fatal(err)
	}
	if upd.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_PASSED || upd.GetMetrics()["f1"] != 0.7 || math.Abs(upd.GetMetrics()["auc"]-0.83) > 1e-9 {
		t.Fatalf("update = %v", upd)
	}
	_, err = c.UpdateModelVersion(ctx, &registryv1.UpdateModelVersionRequest{Model: "credit-risk", Version: 3, Etag: v3.GetEtag(),
		Status: registryv1.VersionStatus_VERSION_STATUS_FAILED})
	wantCode(t, err, codes.Aborted)
	_, err = c.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: "credit-risk", Version: 99})
	wantCode(t, err, codes.NotFound)
}

func TestTrainingJobRegistersOnce(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	req := &registryv1.CreateModelVersionRequest{Model: "m", ArtifactUri: "s3://gyre/a", ArtifactSha256: sha("a"),
		Lineage: &registryv1.VersionLineage{TrainingJob: "job-1", Dataset: "loans", DatasetVersion: 3}}
	first, err := c.CreateModelVersion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateModelVersion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetVersion() != 1 || again.GetVersion() != 1 {
		t.Fatalf("a retried job registered versions %d and %d", first.GetVersion(), again.GetVersion())
	}
}

func TestConcurrentAliasMovesKeepAConsistentHistory(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if _, err := c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "m", ArtifactUri: "s3://x", ArtifactSha256: sha(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := c.SetAlias(asActor(fmt.Sprintf("mover-%d", i)), &registryv1.SetAliasRequest{Model: "m", Alias: "production", Version: int64(i%4 + 1)})
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	hist, err := c.ListAliasHistory(ctx, &registryv1.ListAliasHistoryRequest{Model: "m", Alias: "production"})
	if err != nil {
		t.Fatal(err)
	}
	var prev int64
	for i, ch := range hist.GetChanges() {
		if ch.GetFromVersion() != prev || ch.GetToVersion() == ch.GetFromVersion() {
			t.Fatalf("history entry %d moves %d->%d after the alias was at %d", i, ch.GetFromVersion(), ch.GetToVersion(), prev)
		}
		prev = ch.GetToVersion()
	}
	alias, err := c.GetAlias(ctx, &registryv1.GetAliasRequest{Model: "m", Alias: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if alias.GetVersion() != prev {
		t.Fatalf("alias at %d, history ends at %d", alias.GetVersion(), prev)
	}
	m, err := c.GetModel(ctx, &registryv1.GetModelRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetAliases()["production"] != prev {
		t.Fatalf("model aliases = %v", m.GetAliases())
	}
	audit, err := c.VerifyAudit(ctx, &registryv1.VerifyAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !audit.GetOk() {
		t.Fatalf("audit chain broken after concurrent moves: %v", audit)
	}

	// Stale etags lose; unknown versions are NotFound.
	_, err = c.SetAlias(ctx, &registryv1.SetAliasRequest{Model: "m", Alias: "production", Version: 1, Etag: "0"})
	wantCode(t, err, codes.Aborted)
	_, err = c.SetAlias(ctx, &registryv1.SetAliasRequest{Model: "m", Alias: "production", Version: 9})
	wantCode(t, err, codes.NotFound)
}

const minimalPipeline = `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
`

func TestApplyPipeline(t *testing.T) {
	c, _ := newClient(t)
	ctx := asActor("bob")
	first, err := c.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: minimalPipeline})
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetCreated() || first.GetPipeline().GetVersion() != 1 || first.GetPipeline().GetModel() != "churn" {
		t.Fatalf("first apply = %v", first)
	}
	// The same spec, reformatted, is not a new version.
	again, err := c.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: "kind: Pipeline\napiVersion: gyre.dev/v1\nspec: {dataset: customers}\nmetadata: {name: churn}\n"})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetCreated() || again.GetPipeline().GetVersion() != 1 {
		t.Fatalf("identical re-apply = %v", again)
	}
	changed, err := c.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: strings.Replace(minimalPipeline, "customers", "customers-v2", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if !changed.GetCreated() || changed.GetPipeline().GetVersion() != 2 {
		t.Fatalf("changed apply = %v", changed)
	}
	// The pipeline's model exists now.
	if _, err := c.GetModel(ctx, &registryv1.GetModelRequest{Model: "churn"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: "churn", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSpec().GetFields()["spec"].GetStructValue().GetFields()["dataset"].GetStringValue() != "customers" {
		t.Fatalf("stored spec = %v", got.GetSpec())
	}
	list, err := c.ListPipelines(ctx, &registryv1.ListPipelinesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetPipelines()) != 1 || list.GetPipelines()[0].GetVersion() != 2 {
		t.Fatalf("list = %v", list)
	}
}

func TestInvalidPipelineReportsEveryErrorWithItsPath(t *testing.T) {
	c, _ := newClient(t)
	bad := `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: Bad_Name}
spec:
  dataset: loans
  training:
    trainer: builtin/forest
    split: {holdout: 1.5}
  evaluation:
    gates:
      - metrics.auc >= 0.8
      - metrics.f1 >= 0.5
      - auc2 >= 1
`
	_, err := c.ApplyPipeline(context.Background(), &registryv1.ApplyPipelineRequest{Manifest: bad})
	st := wantCode(t, err, codes.InvalidArgument)
	for _, path := range []string{"metadata.name", "spec.training.trainer", "spec.training.split.holdout", "spec.evaluation.gates[2]"} {
		if !hasFieldViolation(st, path) {
			t.Errorf("no violation for %s in %v", path, st.Details())
		}
	}
	if _, err := c.GetPipeline(context.Background(), &registryv1.GetPipelineRequest{Pipeline: "bad-name"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a rejected spec was stored: %v", err)
	}
}

func hasFieldViolation(st *status.Status, field string) bool {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}

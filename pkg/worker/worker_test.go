package worker_test

// Integration tests: a real gyre process (Postgres, in-process NATS and S3,
// registry, ingestion, scheduler) and a real worker pulling from it; external
// trainers are shell scripts.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyretest"
	"github.com/gyreml/gyre/pkg/model"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/worker"
)

type fixture struct {
	env  *gyretest.Env
	jobs schedulerv1.SchedulerServiceClient
	reg  registryv1.RegistryServiceClient
}

func start(t *testing.T, training string) *fixture {
	t.Helper()
	f := startWithoutWorker(t, training)
	f.runWorker(t)
	return f
}

// startWithoutWorker is a gyre process with the pipeline applied and its
// dataset pushed, and no worker yet.
func startWithoutWorker(t *testing.T, training string) *fixture {
	t.Helper()
	env := gyretest.StartWith(t, func(c *config.Config) {
		c.Scheduler.LeaseDuration = 2 * time.Second
		c.Scheduler.RetryBackoff = 10 * time.Millisecond
	})
	f := &fixture{env: env, jobs: schedulerv1.NewSchedulerServiceClient(env.Conn), reg: registryv1.NewRegistryServiceClient(env.Conn)}
	if _, err := f.reg.ApplyPipeline(context.Background(), &registryv1.ApplyPipelineRequest{Manifest: `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: ` + training + `
  retraining: {on: []}
`}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("tenure,spend,plan,churned\n")
	for i := range 300 {
		fmt.Fprintf(&b, "%d,%d,%s,%d\n", i%60, (i*37)%100, []string{"basic", "pro"}[i%2], boolInt(i%60 < 20))
	}
	req, _ := http.NewRequest("PUT", env.BaseURL+"/v1/datasets/customers/versions:upload", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	return f
}

// runWorker runs a worker in this process until the test ends.
func (f *fixture) runWorker(t *testing.T) {
	t.Helper()
	env := f.env
	w, err := worker.New(context.Background(), worker.Config{
		Scheduler: env.Process.Server.GRPCAddr(), Name: "test-worker", WorkDir: t.TempDir(),
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
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (f *fixture) wait(t *testing.T, id string, want schedulerv1.JobState) *schedulerv1.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := f.jobs.GetJob(context.Background(), &schedulerv1.GetJobRequest{Job: id})
		if err != nil {
			t.Fatal(err)
		}
		if j.GetEndTime() != nil && j.GetState() != schedulerv1.JobState_JOB_STATE_QUEUED {
			if j.GetState() != want {
				t.Fatalf("job ended %s (%s), want %s\n%s", j.GetState(), j.GetReason(), want, f.logs(t, id))
			}
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s\n%s", j.GetState(), f.logs(t, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fixture) logs(t *testing.T, id string) string {
	stream, err := f.jobs.GetJobLogs(context.Background(), &schedulerv1.GetJobLogsRequest{Job: id})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for {
		l, err := stream.Recv()
		if err != nil {
			return b.String()
		}
		fmt.Fprintf(&b, "%s: %s\n", l.GetStream(), l.GetText())
	}
}

// liveInGroup lists the processes of a process group that are not zombies
// (a killed orphan stays a zombie where PID 1 does not reap).
func liveInGroup(pgid string) []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var alive []string
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) > 2 && fields[2] == pgid && fields[0] != "Z" {
			alive = append(alive, path)
		}
	}
	return alive
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "train.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nset -e\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A trainer that writes a valid bundle by hand: a model file and its manifest.
const writesBundle = `
echo "inputs: $(ls "$GYRE_INPUT_DIR" | tr '\n' ' ')"
echo "params: $(cat "$GYRE_PARAMS")"
test -s "$GYRE_INPUT_DIR/train.csv"
echo '{"weights": [0.5]}' > "$GYRE_OUTPUT_DIR/model.json"
sum=$(sha256sum "$GYRE_OUTPUT_DIR/model.json" | cut -d' ' -f1)
cat > "$GYRE_OUTPUT_DIR/gyre-model.json" <<JSON
{"format": "custom/shell", "task": "binary", "inputs": [{"name": "tenure", "kind": "numeric"}], "target": "churned",
 "classes": ["0", "1"], "files": {"model.json": "$sum"}, "createdAt": "2026-01-01T00:00:00Z"}
JSON
echo '{"auc": 0.77}' > "$GYRE_METRICS_FILE"
echo "cuda: [$CUDA_VISIBLE_DEVICES]" >&2
`

func TestCommandTrainerRunsThroughTheContract(t *testing.T) {
	f := start(t, `{trainer: command, target: churned, command: ["`+script(t, writesBundle)+`"], params: {depth: 3}}`)
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	done := f.wait(t, job.GetId(), schedulerv1.JobState_JOB_STATE_SUCCEEDED)
	if done.GetModelVersion() != 1 || done.GetMetrics()["auc"] != 0.77 {
		t.Fatalf("job = %v", done)
	}
	logs := f.logs(t, job.GetId())
	for _, want := range []string{"stdout: inputs: schema.json train.csv validation.csv", `stdout: params: {"depth":3}`, "stderr: cuda: []", "bundle uploaded"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %q:\n%s", want, logs)
		}
	}
	mv, err := f.reg.GetModelVersion(context.Background(), &registryv1.GetModelVersionRequest{Model: "churn", Version: 1})
	if err != nil || mv.GetFormat() != "custom/shell" || mv.GetLineage().GetTrainingJob() != job.GetId() {
		t.Fatalf("version = %v %v", mv, err)
	}
}

func TestAnOutputWithoutAValidManifestIsRejected(t *testing.T) {
	f := start(t, `{trainer: command, target: churned, maxAttempts: 1, command: ["`+script(t, `echo '{}' > "$GYRE_OUTPUT_DIR/model.json"`)+`"]}`)
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	done := f.wait(t, job.GetId(), schedulerv1.JobState_JOB_STATE_FAILED)
	if !strings.Contains(done.GetReason(), "not a valid model bundle") {
		t.Fatalf("reason = %q", done.GetReason())
	}
}

func TestCancelStopsTheTrainerProcess(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The trainer and its child (sleep) share a process group.
	f := start(t, `{trainer: command, target: churned, command: ["`+script(t, `echo $$ > `+pidFile+`; echo started; sleep 30`)+`"]}`)
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(f.logs(t, job.GetId()), "stdout: started") {
		if time.Now().After(deadline) {
			t.Fatalf("trainer never started:\n%s", f.logs(t, job.GetId()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := f.jobs.CancelJob(context.Background(), &schedulerv1.CancelJobRequest{Job: job.GetId(), Reason: "not needed"}); err != nil {
		t.Fatal(err)
	}
	f.wait(t, job.GetId(), schedulerv1.JobState_JOB_STATE_CANCELLED)
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pgid := strings.TrimSpace(string(raw))
	if alive := liveInGroup(pgid); len(alive) > 0 {
		t.Fatalf("processes of the trainer's group %s outlived the cancellation: %v", pgid, alive)
	}
}

func TestBuiltinLogisticTrainsAndRegistersAVerifiedBundle(t *testing.T) {
	f := start(t, `{trainer: builtin/logistic, target: churned, params: {l2: 0.5}}`)
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	done := f.wait(t, job.GetId(), schedulerv1.JobState_JOB_STATE_SUCCEEDED)
	mv, err := f.reg.GetModelVersion(context.Background(), &registryv1.GetModelVersionRequest{Model: "churn", Version: done.GetModelVersion()})
	if err != nil {
		t.Fatal(err)
	}
	if mv.GetFormat() != "gyre/logistic" || mv.GetMetrics()["train_rows"] == 0 || mv.GetLineage().GetDatasetDigest() != job.GetDatasetSha256() {
		t.Fatalf("version = %v", mv)
	}
	// The stored bundle is what was registered, and it loads and predicts.
	key, ok := f.env.Process.Blobs.KeyOf(mv.GetArtifactUri())
	if !ok {
		t.Fatalf("artifact uri %s", mv.GetArtifactUri())
	}
	rc, err := f.env.Process.Blobs.Get(context.Background(), key, mv.GetArtifactSha256())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dir := t.TempDir()
	if err := model.Unpack(rc, dir); err != nil {
		t.Fatal(err)
	}
	mdl, manifest, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if manifest.Lineage["training_job"] != job.GetId() || manifest.Target != "churned" {
		t.Fatalf("manifest = %+v", manifest)
	}
	out := make([]model.Prediction, 2)
	rows := []model.Row{{{F: 5}, {F: 10}, {S: "pro"}}, {{F: 55}, {F: 10}, {S: "pro"}}}
	if err := mdl.Predict(rows, out); err != nil {
		t.Fatal(err)
	}
	// Short tenure churns in the training data: the model learned it.
	if out[0].Value <= out[1].Value {
		t.Fatalf("predictions %v", out)
	}
}

func TestBuiltinGBDTTrainsOnTheWorker(t *testing.T) {
	f := start(t, `{trainer: builtin/gbdt, target: churned, params: {trees: 20, maxDepth: 3}}`)
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	done := f.wait(t, job.GetId(), schedulerv1.JobState_JOB_STATE_SUCCEEDED)
	if done.GetMetrics()["valid_auc"] <= 0.5 {
		t.Fatalf("metrics = %v", done.GetMetrics())
	}
	mv, err := f.reg.GetModelVersion(context.Background(), &registryv1.GetModelVersionRequest{Model: "churn", Version: done.GetModelVersion()})
	if err != nil || mv.GetFormat() != "gyre/gbdt" {
		t.Fatalf("version = %v %v", mv, err)
	}
}

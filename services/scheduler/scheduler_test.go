package scheduler_test

// Integration tests: real Postgres, in-process NATS JetStream and S3, the
// registry, ingestion and scheduler in a real gyre process; the test plays
// the worker through the real WorkerService protocol.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyretest"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

type fixture struct {
	env     *gyretest.Env
	jobs    schedulerv1.SchedulerServiceClient
	workers schedulerv1.WorkerServiceClient
	reg     registryv1.RegistryServiceClient
}

func setup(t testing.TB, retraining string, configure func(*config.Config)) *fixture {
	t.Helper()
	env := gyretest.StartWith(t, func(c *config.Config) {
		c.Scheduler.LeaseDuration = 2 * time.Second
		c.Scheduler.RetryBackoff = 10 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	})
	f := &fixture{env: env, jobs: schedulerv1.NewSchedulerServiceClient(env.Conn), workers: schedulerv1.NewWorkerServiceClient(env.Conn),
		reg: registryv1.NewRegistryServiceClient(env.Conn)}
	_, err := f.reg.ApplyPipeline(context.Background(), &registryv1.ApplyPipelineRequest{Manifest: `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned, trainer: builtin/logistic, maxAttempts: 2}
  retraining: ` + retraining + `
`})
	if err != nil {
		t.Fatal(err)
	}
	f.push(t, 0)
	return f
}

func (f *fixture) push(t testing.TB, shift int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("tenure,spend,churned\n")
	for i := range 50 {
		fmt.Fprintf(&b, "%d,%d,%d\n", i+shift, (i*37)%100, i%2)
	}
	req, _ := http.NewRequest("PUT", f.env.BaseURL+"/v1/datasets/customers/versions:upload", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %d", resp.StatusCode)
	}
}

func (f *fixture) register(t testing.TB, name string) string {
	t.Helper()
	w, err := f.workers.RegisterWorker(context.Background(), &schedulerv1.RegisterWorkerRequest{Name: name, Cpu: 4, MemoryMib: 8192})
	if err != nil {
		t.Fatal(err)
	}
	return w.GetWorkerId()
}

func (f *fixture) poll(t testing.TB, worker string, wait time.Duration) *schedulerv1.PollJobResponse {
	t.Helper()
	resp, err := f.workers.PollJob(context.Background(), &schedulerv1.PollJobRequest{WorkerId: worker, Wait: durationpb.New(wait)})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (f *fixture) succeed(job *schedulerv1.Job, lease string) (*schedulerv1.CompleteJobResponse, error) {
	return f.workers.CompleteJob(context.Background(), &schedulerv1.CompleteJobRequest{
		Job: job.GetId(), LeaseId: lease, Succeeded: true, BundleUri: "s3://gyre/models/churn/sha256/" + digest(job.GetId()),
		BundleSha256: digest(job.GetId()), BundleSize: 123, Format: "gyre/logistic", Metrics: map[string]float64{"auc": 0.9},
		Duration: durationpb.New(time.Second),
	})
}

func TestSubmitClaimCompleteRegistersTheVersionWithLineage(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", nil)
	ctx := context.Background()
	_, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown pipeline: %v", err)
	}
	job, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn", CodeRef: "git:abc123", IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if job.GetState() != schedulerv1.JobState_JOB_STATE_QUEUED || job.GetDatasetVersion() != 1 || len(job.GetDatasetSha256()) != 64 ||
		job.GetTrainer() != "builtin/logistic" || job.GetTarget() != "churned" || job.GetModel() != "churn" {
		t.Fatalf("job = %v", job)
	}
	again, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn", IdempotencyKey: "k1"})
	if err != nil || again.GetId() != job.GetId() {
		t.Fatalf("duplicate submission made another job: %v %v", again, err)
	}

	w := f.register(t, "w1")
	got := f.poll(t, w, time.Second)
	if got.GetJob().GetId() != job.GetId() || got.GetLeaseId() == "" || got.GetJob().GetAttempt() != 1 {
		t.Fatalf("poll = %v", got)
	}
	if _, err := f.workers.AppendLogs(ctx, &schedulerv1.AppendLogsRequest{Job: job.GetId(), LeaseId: got.GetLeaseId(),
		Lines: []*schedulerv1.LogLine{{Stream: "stdout", Text: "epoch 1"}, {Stream: "stderr", Text: "warning"}}}); err != nil {
		t.Fatal(err)
	}
	hb, err := f.workers.Heartbeat(ctx, &schedulerv1.HeartbeatRequest{WorkerId: w, Job: job.GetId(), LeaseId: got.GetLeaseId()})
	if err != nil || hb.GetStop() {
		t.Fatalf("heartbeat = %v %v", hb, err)
	}
	done, err := f.succeed(got.GetJob(), got.GetLeaseId())
	if err != nil || done.GetModelVersion() != 1 {
		t.Fatalf("complete = %v %v", done, err)
	}
	final, err := f.jobs.GetJob(ctx, &schedulerv1.GetJobRequest{Job: job.GetId()})
	if err != nil || final.GetState() != schedulerv1.JobState_JOB_STATE_SUCCEEDED || final.GetModelVersion() != 1 || final.GetMetrics()["auc"] != 0.9 {
		t.Fatalf("final = %v %v", final, err)
	}
	mv, err := f.reg.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: "churn", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	lin := mv.GetLineage()
	if lin.GetTrainingJob() != job.GetId() || lin.GetDatasetVersion() != 1 || lin.GetDatasetDigest() != job.GetDatasetSha256() ||
		lin.GetCodeRef() != "git:abc123" || lin.GetTrainer() != "builtin/logistic" || lin.GetWorker() != w {
		t.Fatalf("lineage = %v", lin)
	}
	stream, err := f.jobs.GetJobLogs(ctx, &schedulerv1.GetJobLogsRequest{Job: job.GetId(), Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		l, err := stream.Recv()
		if err != nil {
			break
		}
		lines = append(lines, l.GetStream()+":"+l.GetText())
	}
	if strings.Join(lines, "|") != "stdout:epoch 1|stderr:warning" {
		t.Fatalf("logs = %v", lines)
	}
}

func TestALongPollIsWokenBySubmit(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", nil)
	w := f.register(t, "w1")
	got := make(chan *schedulerv1.PollJobResponse, 1)
	go func() { got <- f.poll(t, w, 30*time.Second) }()
	time.Sleep(200 * time.Millisecond) // let the poll start waiting
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-got:
		if resp.GetJob().GetId() != job.GetId() {
			t.Fatalf("woken with %v", resp)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting worker was not woken by the new job")
	}
}

func TestAWorkerThatStopsHeartbeatingLosesItsJobAndOneVersionIsRegistered(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", nil)
	ctx := context.Background()
	job, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	dead, alive := f.register(t, "dead"), f.register(t, "alive")
	first := f.poll(t, dead, time.Second)
	if first.GetJob().GetId() != job.GetId() {
		t.Fatalf("first claim = %v", first)
	}
	// "dead" never heartbeats: after the lease the job is queued again.
	second := f.poll(t, alive, 15*time.Second)
	if second.GetJob().GetId() != job.GetId() || second.GetJob().GetAttempt() != 2 {
		t.Fatalf("second claim = %v", second)
	}
	hb, err := f.workers.Heartbeat(ctx, &schedulerv1.HeartbeatRequest{WorkerId: dead, Job: job.GetId(), LeaseId: first.GetLeaseId()})
	if err != nil || !hb.GetStop() {
		t.Fatalf("the dead worker is not told to stop: %v %v", hb, err)
	}
	if _, err := f.succeed(first.GetJob(), first.GetLeaseId()); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a stale lease completed the job: %v", err)
	}
	done, err := f.succeed(second.GetJob(), second.GetLeaseId())
	if err != nil || done.GetModelVersion() != 1 {
		t.Fatalf("complete = %v %v", done, err)
	}
	versions, err := f.reg.ListModelVersions(ctx, &registryv1.ListModelVersionsRequest{Model: "churn"})
	if err != nil || len(versions.GetVersions()) != 1 {
		t.Fatalf("versions = %v %v", versions, err)
	}
}

func TestFailuresRetryThenFailAndCancelStopsTheWorker(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", nil)
	ctx := context.Background()
	w := f.register(t, "w1")
	job, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := int32(1); attempt <= 2; attempt++ {
		got := f.poll(t, w, 5*time.Second)
		if got.GetJob().GetAttempt() != attempt {
			t.Fatalf("attempt %d: %v", attempt, got)
		}
		if _, err := f.workers.CompleteJob(ctx, &schedulerv1.CompleteJobRequest{Job: job.GetId(), LeaseId: got.GetLeaseId(), Error: "out of memory"}); err != nil {
			t.Fatal(err)
		}
	}
	final, _ := f.jobs.GetJob(ctx, &schedulerv1.GetJobRequest{Job: job.GetId()})
	if final.GetState() != schedulerv1.JobState_JOB_STATE_FAILED || final.GetReason() != "out of memory" {
		t.Fatalf("after max attempts: %v", final)
	}

	queued, _ := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	c, err := f.jobs.CancelJob(ctx, &schedulerv1.CancelJobRequest{Job: queued.GetId()})
	if err != nil || c.GetState() != schedulerv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancel queued: %v %v", c, err)
	}
	running, _ := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	got := f.poll(t, w, 5*time.Second)
	if _, err := f.jobs.CancelJob(ctx, &schedulerv1.CancelJobRequest{Job: running.GetId(), Reason: "wrong params"}); err != nil {
		t.Fatal(err)
	}
	hb, err := f.workers.Heartbeat(ctx, &schedulerv1.HeartbeatRequest{WorkerId: w, Job: running.GetId(), LeaseId: got.GetLeaseId()})
	if err != nil || !hb.GetStop() || hb.GetReason() != "wrong params" {
		t.Fatalf("heartbeat after cancel = %v %v", hb, err)
	}
	if _, err := f.workers.CompleteJob(ctx, &schedulerv1.CompleteJobRequest{Job: running.GetId(), LeaseId: got.GetLeaseId(), Error: "killed"}); err != nil {
		t.Fatal(err)
	}
	final, _ = f.jobs.GetJob(ctx, &schedulerv1.GetJobRequest{Job: running.GetId()})
	if final.GetState() != schedulerv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancelled running job ended %v", final)
	}
	if _, err := f.jobs.CancelJob(ctx, &schedulerv1.CancelJobRequest{Job: running.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("cancel of an ended job: %v", err)
	}
}

func TestManyJobsManyWorkersEachRunsOnce(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", func(c *config.Config) {
		c.Scheduler.LeaseDuration = time.Minute
		c.Scheduler.MaxRunningPerPipeline = 100
	})
	ctx := context.Background()
	const jobs, workers = 200, 8
	for range jobs {
		if _, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for i := range workers {
		id := f.register(t, fmt.Sprintf("w%d", i))
		wg.Go(func() {
			for {
				resp, err := f.workers.PollJob(ctx, &schedulerv1.PollJobRequest{WorkerId: id, Wait: durationpb.New(500 * time.Millisecond)})
				if err != nil {
					t.Error(err)
					return
				}
				if resp.GetJob() == nil {
					return
				}
				mu.Lock()
				claimed[resp.GetJob().GetId()]++
				mu.Unlock()
				if _, err := f.workers.CompleteJob(ctx, &schedulerv1.CompleteJobRequest{Job: resp.GetJob().GetId(), LeaseId: resp.GetLeaseId(), Error: "done"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Each job failed once (maxAttempts 2): it is claimed exactly twice.
	if len(claimed) != jobs {
		t.Fatalf("%d distinct jobs claimed, want %d", len(claimed), jobs)
	}
	for id, n := range claimed {
		if n != 2 {
			t.Fatalf("job %s claimed %d times", id, n)
		}
	}
}

func TestNewDataTriggersOneRunForABurst(t *testing.T) {
	f := setup(t, "{on: [new_data], cooldown: 1h}", nil)
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	var list *schedulerv1.ListJobsResponse
	for time.Now().Before(deadline) {
		var err error
		list, err = f.jobs.ListJobs(ctx, &schedulerv1.ListJobsRequest{Pipeline: "churn"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.GetJobs()) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(list.GetJobs()) != 1 || list.GetJobs()[0].GetTrigger() != "new_data" {
		t.Fatalf("jobs after the first push = %v", list.GetJobs())
	}
	f.push(t, 1)
	f.push(t, 2)
	deadline = time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		j, _ := f.jobs.GetJob(ctx, &schedulerv1.GetJobRequest{Job: list.GetJobs()[0].GetId()})
		if j.GetDatasetVersion() == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	after, err := f.jobs.ListJobs(ctx, &schedulerv1.ListJobsRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.GetJobs()) != 1 || after.GetJobs()[0].GetDatasetVersion() != 3 {
		t.Fatalf("a burst of pushes made %d jobs: %v", len(after.GetJobs()), after.GetJobs())
	}
}

func TestASchedulerRestartLosesNoQueuedJob(t *testing.T) {
	f := setup(t, "{on: [drift]}", func(c *config.Config) { c.Scheduler.MaxRunningPerPipeline = 100 })
	ctx := context.Background()
	submitted := map[string]bool{}
	for range 20 {
		j, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
		if err != nil {
			t.Fatal(err)
		}
		submitted[j.GetId()] = true
	}
	if err := f.env.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	// A new process on the same database (its registry and ingestion are new
	// too, which claiming does not need).
	again := gyretest.StartWith(t, func(c *config.Config) {
		c.Database.URL = f.env.DatabaseURL
		c.Scheduler.MaxRunningPerPipeline = 100
	})
	workers := schedulerv1.NewWorkerServiceClient(again.Conn)
	w, err := workers.RegisterWorker(ctx, &schedulerv1.RegisterWorkerRequest{Name: "after-restart", Cpu: 64, MemoryMib: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		resp, err := workers.PollJob(ctx, &schedulerv1.PollJobRequest{WorkerId: w.GetWorkerId(), Wait: durationpb.New(2 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if !submitted[resp.GetJob().GetId()] {
			t.Fatalf("claimed %v, not one of the jobs queued before the restart", resp.GetJob())
		}
		delete(submitted, resp.GetJob().GetId())
	}
	if len(submitted) != 0 {
		t.Fatalf("%d jobs lost in the restart", len(submitted))
	}
}

func TestGPUJobsGoOnlyToWorkersWithTheRightFreeGPUs(t *testing.T) {
	f := setup(t, "{on: [drift]}", nil)
	ctx := context.Background()
	if _, err := f.reg.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned, trainer: command, command: [python3, train.py], resources: {gpu: 2, gpuModel: NVIDIA A100}}
  retraining: {on: [drift]}
`}); err != nil {
		t.Fatal(err)
	}
	job, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	reg := func(name string, gpus ...*schedulerv1.GPU) string {
		w, err := f.workers.RegisterWorker(ctx, &schedulerv1.RegisterWorkerRequest{Name: name, Cpu: 8, MemoryMib: 1 << 16, Gpus: gpus})
		if err != nil {
			t.Fatal(err)
		}
		return w.GetWorkerId()
	}
	cpuOnly := reg("cpu")
	otherModel := reg("h100", &schedulerv1.GPU{Index: 0, Model: "NVIDIA H100"}, &schedulerv1.GPU{Index: 1, Model: "NVIDIA H100"})
	tooFew := reg("one-a100", &schedulerv1.GPU{Index: 0, Model: "NVIDIA A100"})
	right := reg("a100s", &schedulerv1.GPU{Index: 0, Model: "NVIDIA A100"}, &schedulerv1.GPU{Index: 1, Model: "NVIDIA T4"},
		&schedulerv1.GPU{Index: 2, Model: "NVIDIA A100"})
	for _, w := range []string{cpuOnly, otherModel, tooFew} {
		if got := f.poll(t, w, 100*time.Millisecond); got.GetJob() != nil {
			t.Fatalf("worker %s got the GPU job", w)
		}
	}
	got := f.poll(t, right, time.Second)
	if got.GetJob().GetId() != job.GetId() || got.GetJob().GetGpuDevices() != "0,2" {
		t.Fatalf("claim = %v", got.GetJob())
	}
	// Its GPUs are taken now: a second GPU job waits.
	if _, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"}); err != nil {
		t.Fatal(err)
	}
	if again := f.poll(t, right, 100*time.Millisecond); again.GetJob() != nil {
		t.Fatalf("a busy GPU worker got a second GPU job: %v", again.GetJob())
	}
}

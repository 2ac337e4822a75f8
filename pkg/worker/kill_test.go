package worker_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/blob"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/worker"
)

// TestMain lets a test start this binary as a worker process, to kill it.
func TestMain(m *testing.M) {
	if os.Getenv("GYRE_TEST_WORKER_PROCESS") == "1" {
		w, err := worker.New(context.Background(), worker.Config{
			Scheduler: os.Getenv("GYRE_TEST_SCHEDULER"), Name: "doomed", WorkDir: os.TempDir(),
			S3: blob.Config{Endpoint: os.Getenv("GYRE_S3_ENDPOINT"), AccessKey: os.Getenv("GYRE_S3_ACCESS_KEY"),
				SecretKey: os.Getenv("GYRE_S3_SECRET_KEY"), Bucket: "gyre"},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			os.Exit(2)
		}
		_ = w.Run(context.Background())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAWorkerKilledMidJobLosesItAndTheJobRegistersOnce(t *testing.T) {
	// First attempt sleeps (and is killed with its worker); the next one finishes.
	body := `if [ ! -f "$GYRE_MARK" ]; then touch "$GYRE_MARK"; echo slow-start; sleep 60; fi` + writesBundle
	mark := t.TempDir() + "/first-attempt"
	t.Setenv("GYRE_MARK", mark)
	f := startWithoutWorker(t, `{trainer: command, target: churned, maxAttempts: 3, command: ["`+script(t, body)+`"]}`)

	doomed := exec.Command(os.Args[0], "-test.run=^$")
	doomed.Env = append(os.Environ(), "GYRE_TEST_WORKER_PROCESS=1", "GYRE_TEST_SCHEDULER="+f.env.Process.Server.GRPCAddr(),
		"GYRE_S3_ENDPOINT="+f.env.Config.S3.Endpoint, "GYRE_S3_ACCESS_KEY="+f.env.Config.S3.AccessKey, "GYRE_S3_SECRET_KEY="+f.env.Config.S3.SecretKey)
	if err := doomed.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { doomed.Process.Kill(); doomed.Wait() })
	job, err := f.jobs.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(f.logs(t, job.GetId()), "slow-start") {
		if time.Now().After(deadline) {
			t.Fatalf("the first attempt never started:\n%s", f.logs(t, job.GetId()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := doomed.Process.Signal(os.Kill); err != nil { // kill -9
		t.Fatal(err)
	}
	doomed.Wait()

	f.runWorker(t) // a healthy worker takes the job once the lease expires
	done := f.wait(t, job.GetId(), schedulerv1.JobState_JOB_STATE_SUCCEEDED)
	if done.GetAttempt() != 2 {
		t.Fatalf("attempt = %d, want 2", done.GetAttempt())
	}
	versions, err := f.reg.ListModelVersions(context.Background(), &registryv1.ListModelVersionsRequest{Model: "churn"})
	if err != nil || len(versions.GetVersions()) != 1 {
		t.Fatalf("versions = %v %v", versions, err)
	}
}

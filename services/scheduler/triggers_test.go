package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/services/scheduler"
)

func (f *fixture) waitJobs(t *testing.T, n int) []*schedulerv1.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		list, err := f.jobs.ListJobs(context.Background(), &schedulerv1.ListJobsRequest{Pipeline: "churn"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.GetJobs()) >= n || time.Now().After(deadline) {
			return list.GetJobs()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestADriftAlertRetrainsThePipeline(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", nil)
	f.alert(t, "a1")
	jobs := f.waitJobs(t, 1)
	if len(jobs) != 1 || jobs[0].GetTrigger() != "drift" || jobs[0].GetDatasetVersion() != 1 {
		t.Fatalf("jobs after a drift alert = %v", jobs)
	}
	if nb := jobs[0].GetNotBefore().AsTime(); nb.After(jobs[0].GetCreateTime().AsTime().Add(time.Second)) {
		t.Fatalf("the first retraining is held until %v", nb)
	}
	// Once it has run, the next alert's job waits out the cooldown, counted
	// from when the first was queued, and says so.
	w := f.register(t, "w1")
	got := f.poll(t, w, time.Second)
	if _, err := f.succeed(got.GetJob(), got.GetLeaseId()); err != nil {
		t.Fatal(err)
	}
	f.alert(t, "a2")
	jobs = f.waitJobs(t, 2)
	var second *schedulerv1.Job
	for _, j := range jobs {
		if j.GetId() != got.GetJob().GetId() {
			second = j
		}
	}
	if want := got.GetJob().GetCreateTime().AsTime().Add(time.Hour); second == nil || second.GetState() != schedulerv1.JobState_JOB_STATE_QUEUED ||
		!second.GetNotBefore().AsTime().Equal(want) {
		t.Fatalf("second retraining = %v, want queued with notBefore %v", second, want)
	}
	if p := f.poll(t, w, 200*time.Millisecond); p.GetJob() != nil {
		t.Fatalf("a job within the cooldown was claimed: %v", p.GetJob())
	}
}

// alert publishes a drift alert for churn as the monitor does.
func (f *fixture) alert(t *testing.T, id string) {
	t.Helper()
	data, err := protojson.Marshal(&eventsv1.MonitorAlertFired{Alert: id, Model: "churn", ModelVersion: 1, Kind: "drift", Rule: "psi > 0.2", Value: 0.4, Threshold: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("gyre.monitor.alert.fired")
	msg.Data = data
	for k, v := range map[string]string{"ce-id": uuid.NewString(), "ce-type": "dev.gyre.monitor.alert.fired", "ce-source": "gyre/monitor",
		"ce-specversion": "1.0", "ce-time": time.Now().UTC().Format(time.RFC3339Nano), "content-type": "application/json"} {
		msg.Header.Set(k, v)
	}
	if _, err := f.env.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func TestACronScheduleStartsOneJobPerFiring(t *testing.T) {
	f := setup(t, `{on: [schedule], schedule: "0 3 * * *"}`, nil)
	ctx := context.Background()
	pool, err := pg.Connect(ctx, f.env.DatabaseURL, scheduler.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// A second scheduler on the same database: replicas must not double a firing.
	other := scheduler.New(pool, registryv1.NewRegistryServiceClient(f.env.Conn), ingestionv1.NewIngestionServiceClient(f.env.Conn),
		scheduler.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tomorrow := time.Now().Add(25 * time.Hour)
	for range 2 {
		if err := other.RunSchedules(ctx, tomorrow); err != nil {
			t.Fatal(err)
		}
	}
	jobs := f.waitJobs(t, 1)
	if len(jobs) != 1 || jobs[0].GetTrigger() != "schedule" {
		t.Fatalf("jobs after one firing = %v", jobs)
	}
	if err := other.RunSchedules(ctx, tomorrow.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	jobs = f.waitJobs(t, 2)
	if len(jobs) != 2 {
		t.Fatalf("jobs after the next day's firing = %v", jobs)
	}
	// A schedule is an explicit choice: its firings are not held by the cooldown.
	for _, j := range jobs {
		if j.GetNotBefore().AsTime().After(j.GetCreateTime().AsTime().Add(time.Second)) {
			t.Fatalf("scheduled job %s held until %v", j.GetId(), j.GetNotBefore().AsTime())
		}
	}
}

// A trigger absorbed by a queued job holds the job's row lock while it
// updates it, so a worker claiming then skips the job (SKIP LOCKED). The
// absorbing transaction wakes the pollers again on commit, or the worker
// would sleep out its whole poll.
func TestAWorkerIsWokenWhenATriggerIsAbsorbedUnderItsClaim(t *testing.T) {
	f := setup(t, "{on: [drift], cooldown: 1h}", nil)
	ctx := context.Background()
	f.alert(t, "a1")
	queued := f.waitJobs(t, 1)
	if len(queued) != 1 {
		t.Fatalf("jobs after an alert = %v", queued)
	}
	pool, err := pg.Connect(ctx, f.env.DatabaseURL, scheduler.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Hold the job's row as the absorbing transaction will; the second
	// alert's trigger then waits on it.
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // committed below
	if _, err := lock.Exec(ctx, `SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE`, queued[0].GetId()); err != nil {
		t.Fatal(err)
	}
	f.alert(t, "a2")
	waitFor(t, func() bool { // the trigger's UPDATE waits on the lock
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	w := f.register(t, "w1")
	polled := make(chan *schedulerv1.PollJobResponse, 1)
	started := time.Now()
	go func() { polled <- f.poll(t, w, 30*time.Second) }()
	time.Sleep(300 * time.Millisecond) // the poll's claim skips the locked job and waits
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-polled
	if got.GetJob().GetId() != queued[0].GetId() {
		t.Fatalf("poll = %v, want job %s", got, queued[0].GetId())
	}
	// Without the wake-up the poll would end only with its 30s wait.
	if waited := time.Since(started); waited > 15*time.Second {
		t.Fatalf("the worker got the job after %s: the absorbed trigger did not wake it", waited)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
	}
}

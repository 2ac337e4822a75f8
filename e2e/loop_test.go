// Package e2e holds the closed-loop test: on the embedded stack `gyre dev`
// runs (Postgres, in-process NATS JetStream and S3, every target in one
// process, a real worker), production traffic drifts, the monitor alerts,
// the scheduler retrains, the evaluator judges the new version against the
// champion, and the deployer takes it through staging and a canary into
// production, with no human action.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyretest"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/worker"
)

// The pipeline retrains on drift only, so the test's own pushes start
// nothing; monitoring windows are 2s so the loop turns in seconds.
const manifest = `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned, trainer: builtin/logistic, params: {maxIter: 50}}
  evaluation:
    sensitiveAttributes: [plan]
    minGroupSize: 20
    gates: ["metrics.auc >= 0.6", "fairness.plan.demographic_parity_difference <= 0.3"]
  deployment:
    staging: {smokeTest: {requests: 30, maxErrorRate: 0}}
    production: {approval: auto, strategy: canary, steps: [50, 100], stepDuration: 1s, rollbackOn: ["canary.error_rate > 0.01"]}
  monitoring:
    window: 2s
    minSamples: 50
    drift: {method: psi, threshold: 0.2}
  retraining: {on: [drift], cooldown: 30s}
`

type loop struct {
	env   *gyretest.Env
	reg   registryv1.RegistryServiceClient
	sched schedulerv1.SchedulerServiceClient
	dep   deployerv1.DeployerServiceClient
	mon   monitorv1.MonitorServiceClient
}

func start(t *testing.T) *loop {
	t.Helper()
	env := gyretest.StartWith(t, func(c *config.Config) {
		c.Deployer.TickInterval = 100 * time.Millisecond
		c.Monitor.TickInterval = 100 * time.Millisecond
		c.Monitor.CloseDelay = 200 * time.Millisecond
		c.Inference.LogFlushInterval = 50 * time.Millisecond
	})
	l := &loop{env: env, reg: registryv1.NewRegistryServiceClient(env.Conn), sched: schedulerv1.NewSchedulerServiceClient(env.Conn),
		dep: deployerv1.NewDeployerServiceClient(env.Conn), mon: monitorv1.NewMonitorServiceClient(env.Conn)}
	if _, err := l.reg.ApplyPipeline(context.Background(), &registryv1.ApplyPipelineRequest{Manifest: manifest}); err != nil {
		t.Fatal(err)
	}
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
	return l
}

// push uploads a dataset version: tenure from lo to lo+59, churn decided by
// churned(tenure, plan).
func (l *loop) push(t *testing.T, lo int, churned func(tenure int, plan string) bool) {
	t.Helper()
	var b strings.Builder
	b.WriteString("tenure,spend,plan,churned\n")
	for i := range 600 {
		tenure, plan := lo+i%60, []string{"basic", "pro"}[(i/3)%2]
		c := 0
		if churned(tenure, plan) {
			c = 1
		}
		fmt.Fprintf(&b, "%d,%d,%s,%d\n", tenure, (i*37)%100, plan, c)
	}
	req, _ := http.NewRequest("PUT", l.env.BaseURL+"/v1/datasets/customers/versions:upload", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s %s", resp.Status, body)
	}
}

// predict asks production and returns the version that answered.
func (l *loop) predict(t *testing.T, tenure int, plan string) string {
	t.Helper()
	body := fmt.Sprintf(`{"inputs":[{"name":"tenure","shape":[1],"datatype":"FP64","data":[%d]},`+
		`{"name":"spend","shape":[1],"datatype":"FP64","data":[40]},{"name":"plan","shape":[1],"datatype":"BYTES","data":["%s"]}]}`, tenure, plan)
	resp, err := http.Post(l.env.BaseURL+"/v2/models/churn/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("Gyre-Model-Version")
}

func (l *loop) alias(t *testing.T, name string) int64 {
	t.Helper()
	a, err := l.reg.GetAlias(context.Background(), &registryv1.GetAliasRequest{Model: "churn", Alias: name})
	if status.Code(err) == codes.NotFound {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return a.GetVersion()
}

// until polls cond, doing work between polls, for up to d.
func until(t *testing.T, d time.Duration, what string, work func(), cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		if work != nil {
			work()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// productionV1 trains version 1 and waits for it to serve production.
func (l *loop) productionV1(t *testing.T) {
	t.Helper()
	l.push(t, 0, func(tenure int, _ string) bool { return tenure < 25 })
	if _, err := l.sched.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"}); err != nil {
		t.Fatal(err)
	}
	until(t, 90*time.Second, "version 1 in production", nil, func() bool { return l.alias(t, "production") == 1 })
	if v := l.predict(t, 10, "pro"); v != "1" {
		t.Fatalf("production answered with version %q", v)
	}
}

// drift sends production traffic far outside the training data until the
// monitor fires a drift alert, and returns it.
func (l *loop) drift(t *testing.T) *monitorv1.Alert {
	t.Helper()
	var fired *monitorv1.Alert
	i := 0
	until(t, 60*time.Second, "a drift alert", func() {
		for range 10 {
			l.predict(t, 150+i%60, []string{"basic", "pro"}[i%2])
			i++
		}
	}, func() bool {
		resp, err := l.mon.ListAlerts(context.Background(), &monitorv1.ListAlertsRequest{Model: "churn"})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.GetAlerts() {
			if a.GetKind() == "drift" {
				fired = a
				return true
			}
		}
		return false
	})
	return fired
}

func TestDriftRetrainsAndTheNewVersionReachesProductionByItself(t *testing.T) {
	l := start(t)
	l.productionV1(t)
	// New data arrives that covers where traffic is going; nothing retrains yet.
	l.push(t, 150, func(tenure int, _ string) bool { return tenure < 175 })

	began := time.Now()
	alert := l.drift(t)
	t.Logf("alert %s fired after %s: %s = %.3f > %.3f", alert.GetId(), time.Since(began).Round(time.Millisecond), alert.GetRule(),
		alert.GetValue(), alert.GetThreshold())

	// No human action from here: the scheduler retrains on the alert, the
	// evaluator passes the new version, the deployer stages and canaries it.
	fired := time.Now()
	var v int64
	until(t, 120*time.Second, "a retrained version in production", func() { l.predict(t, 160, "basic") }, func() bool {
		v = l.alias(t, "production")
		return v >= 2
	})
	t.Logf("alert fired to version %d serving production: %s (after the test saw it: %s)", v,
		time.Since(alert.GetFireTime().AsTime()).Round(time.Millisecond), time.Since(fired).Round(time.Millisecond))

	ctx := context.Background()
	mv, err := l.reg.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: "churn", Version: v})
	if err != nil {
		t.Fatal(err)
	}
	job, err := l.sched.GetJob(ctx, &schedulerv1.GetJobRequest{Job: mv.GetLineage().GetTrainingJob()})
	if err != nil {
		t.Fatal(err)
	}
	at := alert.GetFireTime().AsTime()
	t.Logf("timeline after the alert: job queued +%s, not before +%s, started +%s, ended +%s; version %d registered +%s",
		job.GetCreateTime().AsTime().Sub(at).Round(time.Millisecond), job.GetNotBefore().AsTime().Sub(at).Round(time.Millisecond),
		job.GetStartTime().AsTime().Sub(at).Round(time.Millisecond),
		job.GetEndTime().AsTime().Sub(at).Round(time.Millisecond), v, mv.GetCreateTime().AsTime().Sub(at).Round(time.Millisecond))
	if job.GetTrigger() != "drift" || job.GetDatasetVersion() != 2 {
		t.Fatalf("the retraining job: trigger %q on dataset version %d", job.GetTrigger(), job.GetDatasetVersion())
	}
	deps, err := l.dep.ListDeployments(ctx, &deployerv1.ListDeploymentsRequest{Model: "churn", Environment: "production"})
	if err != nil {
		t.Fatal(err)
	}
	var d *deployerv1.Deployment
	for _, x := range deps.GetDeployments() {
		if x.GetVersion() == v && x.GetState() == deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED {
			d = x
		}
	}
	if d == nil || d.GetStrategy() != "canary" || d.GetPreviousVersion() != 1 || len(d.GetAnalyses()) == 0 {
		t.Fatalf("the production rollout of version %d: %v", v, d)
	}
	for _, x := range deps.GetDeployments() {
		t.Logf("deployment of %d to production: created +%s, ended +%s", x.GetVersion(), x.GetCreateTime().AsTime().Sub(at).Round(time.Millisecond),
			x.GetEndTime().AsTime().Sub(at).Round(time.Millisecond))
	}
	if got := l.predict(t, 160, "basic"); got != fmt.Sprint(v) {
		t.Fatalf("production answered with version %q", got)
	}
	// Lineage links the deployment to the version, the version to its job and data.
	lin, err := l.reg.GetLineage(ctx, &registryv1.GetLineageRequest{Node: fmt.Sprintf("model:churn@%d", v),
		Direction: registryv1.LineageDirection_LINEAGE_DIRECTION_BOTH})
	if err != nil {
		t.Fatal(err)
	}
	var edges []string
	for _, e := range lin.GetEdges() {
		edges = append(edges, e.GetFrom()+" -"+e.GetRelation()+"-> "+e.GetTo())
	}
	joined := strings.Join(edges, "\n")
	for _, want := range []string{fmt.Sprintf("model:churn@%d -deployed_as-> deployment:%s", v, d.GetId()), "dataset:customers@2 -trained-> job:" + job.GetId()} {
		if !strings.Contains(joined, want) {
			t.Fatalf("lineage of churn@%d lacks %q:\n%s", v, want, joined)
		}
	}
}

func TestARetrainedVersionThatFailsFairnessNeverReachesProduction(t *testing.T) {
	l := start(t)
	l.productionV1(t)
	// The new data is biased: churn follows the plan, so the model learns it.
	l.push(t, 150, func(_ int, plan string) bool { return plan == "pro" })
	l.drift(t)

	var mv *registryv1.ModelVersion
	until(t, 120*time.Second, "version 2's verdict", nil, func() bool {
		var err error
		mv, err = l.reg.GetModelVersion(context.Background(), &registryv1.GetModelVersionRequest{Model: "churn", Version: 2})
		return err == nil && (mv.GetStatus() == registryv1.VersionStatus_VERSION_STATUS_PASSED || mv.GetStatus() == registryv1.VersionStatus_VERSION_STATUS_FAILED)
	})
	if mv.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_FAILED || !strings.Contains(mv.GetStatusReason(), "fairness.plan.demographic_parity_difference") {
		t.Fatalf("version 2: %v %q", mv.GetStatus(), mv.GetStatusReason())
	}
	// Give the deployer time to (wrongly) act, then check production stayed.
	time.Sleep(2 * time.Second)
	if l.alias(t, "production") != 1 || l.predict(t, 160, "pro") != "1" {
		t.Fatal("production left version 1 for a version that failed its gates")
	}
	deps, err := l.dep.ListDeployments(context.Background(), &deployerv1.ListDeploymentsRequest{Model: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.GetDeployments() {
		if d.GetVersion() == 2 {
			t.Fatalf("a rollout of the failed version: %v", d)
		}
	}
}

package deployer_test

// End to end on real servers: a pipeline, a pushed dataset, a real worker
// training each version, the evaluator passing it, and the deployer taking it
// through staging (smoke test against the real staging endpoint) and a canary
// into production, with the inference target answering real OIP requests.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyre"
	"github.com/gyreml/gyre/pkg/gyretest"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/worker"
)

const pipelineTmpl = `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned, trainer: builtin/logistic, params: {maxIter: 20}}
  retraining: {on: []}
  evaluation: {gates: ["metrics.auc >= 0.6"]}
  deployment:
    staging: {smokeTest: {requests: 40, maxErrorRate: 0}}
    production: {approval: %s, strategy: canary, steps: [50, 100], stepDuration: 1s, rollbackOn: %s}
`

type suite struct {
	env   *gyretest.Env
	reg   registryv1.RegistryServiceClient
	sched schedulerv1.SchedulerServiceClient
	dep   deployerv1.DeployerServiceClient
}

func start(t *testing.T, approval, rollbackOn string) *suite {
	t.Helper()
	env := gyretest.StartWith(t, func(c *config.Config) { c.Deployer.TickInterval = 100 * time.Millisecond })
	s := &suite{env: env, reg: registryv1.NewRegistryServiceClient(env.Conn), sched: schedulerv1.NewSchedulerServiceClient(env.Conn),
		dep: deployerv1.NewDeployerServiceClient(env.Conn)}
	ctx := context.Background()
	if _, err := s.reg.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: fmt.Sprintf(pipelineTmpl, approval, rollbackOn)}); err != nil {
		t.Fatal(err)
	}
	startWorkerAndData(t, env)
	return s
}

// startWorkerAndData pushes the customers dataset and runs a worker.
func startWorkerAndData(t *testing.T, env *gyretest.Env) {
	t.Helper()
	ctx := context.Background()
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
	w, err := worker.New(ctx, worker.Config{
		Scheduler: env.Process.Server.GRPCAddr(), Name: "w", WorkDir: t.TempDir(),
		S3:     blob.Config{Endpoint: env.Config.S3.Endpoint, AccessKey: env.Config.S3.AccessKey, SecretKey: env.Config.S3.SecretKey, Bucket: env.Config.S3.Bucket},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// train submits a job and returns once its version exists.
func (s *suite) train(t *testing.T) {
	t.Helper()
	if _, err := s.sched.SubmitJob(context.Background(), &schedulerv1.SubmitJobRequest{Pipeline: "churn"}); err != nil {
		t.Fatal(err)
	}
}

// waitDeployment waits for the rollout of version to env to end.
func (s *suite) waitDeployment(t *testing.T, version int64, env string, traffic func()) *deployerv1.Deployment {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		list, err := s.dep.ListDeployments(context.Background(), &deployerv1.ListDeploymentsRequest{Model: "churn", Environment: env})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list.GetDeployments() {
			if d.GetVersion() != version || d.GetStrategy() == "rollback" {
				continue
			}
			switch d.GetState() {
			case deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED, deployerv1.DeploymentState_DEPLOYMENT_STATE_FAILED,
				deployerv1.DeploymentState_DEPLOYMENT_STATE_ROLLED_BACK, deployerv1.DeploymentState_DEPLOYMENT_STATE_AWAITING_APPROVAL:
				return d
			}
		}
		if traffic != nil {
			traffic()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the rollout of churn@%d to %s never ended", version, env)
	return nil
}

// predict sends one OIP v2 REST request and returns the version that answered.
func (s *suite) predict(t *testing.T, prefix string) (string, int) {
	t.Helper()
	body := `{"inputs":[{"name":"tenure","shape":[1],"datatype":"FP64","data":[12]},{"name":"spend","shape":[1],"datatype":"FP64","data":[40]},` +
		`{"name":"plan","shape":[1],"datatype":"BYTES","data":["pro"]}]}`
	resp, err := http.Post(s.env.BaseURL+prefix+"/v2/models/churn/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ModelVersion string `json:"model_version"`
		ID           string `json:"id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&out); err != nil || out.ID == "" {
			t.Fatalf("infer answer %s: %v", raw, err)
		}
	}
	return out.ModelVersion, resp.StatusCode
}

func alias(t *testing.T, reg registryv1.RegistryServiceClient, name string) int64 {
	t.Helper()
	a, err := reg.GetAlias(context.Background(), &registryv1.GetAliasRequest{Model: "churn", Alias: name})
	if status.Code(err) == codes.NotFound {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return a.GetVersion()
}

func TestAPassedVersionGoesThroughStagingAndACanaryToProduction(t *testing.T) {
	s := start(t, "auto", `["canary.error_rate > 0.01"]`)
	s.train(t)
	st := s.waitDeployment(t, 1, "staging", nil)
	if st.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED || !st.GetSmokeTest().GetPassed() ||
		st.GetSmokeTest().GetRequests() != 40 || st.GetSmokeTest().GetMismatches() != 0 {
		t.Fatalf("staging rollout of v1: %v", st)
	}
	// The first production version has nothing to canary against: it goes direct.
	prod := s.waitDeployment(t, 1, "production", nil)
	if prod.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED || prod.GetPreviousVersion() != 0 {
		t.Fatalf("production rollout of v1: %v", prod)
	}
	if alias(t, s.reg, "staging") != 1 || alias(t, s.reg, "production") != 1 {
		t.Fatal("aliases did not follow the traffic")
	}
	if v, code := s.predict(t, ""); v != "1" || code != 200 {
		t.Fatalf("production answered %q (%d)", v, code)
	}
	if v, code := s.predict(t, "/staging"); v != "1" || code != 200 {
		t.Fatalf("staging answered %q (%d)", v, code)
	}

	// Version 2: a canary at 50% with production traffic, then promotion.
	s.train(t)
	seen := map[string]int{}
	var mu sync.Mutex
	prod = s.waitDeployment(t, 2, "production", func() {
		v, _ := s.predict(t, "")
		mu.Lock()
		seen[v]++
		mu.Unlock()
	})
	if prod.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED || prod.GetPreviousVersion() != 1 || len(prod.GetAnalyses()) != 1 {
		t.Fatalf("production rollout of v2: %v", prod)
	}
	if a := prod.GetAnalyses()[0]; !a.GetPassed() || a.GetWeight() != 50 || a.GetCanary()["requests"] == 0 || a.GetStable()["requests"] == 0 {
		t.Fatalf("canary analysis: %v", a)
	}
	if seen["1"] == 0 || seen["2"] == 0 {
		t.Fatalf("during the canary both versions should answer: %v", seen)
	}
	if alias(t, s.reg, "production") != 2 {
		t.Fatal("production alias did not move to 2")
	}
	if v, _ := s.predict(t, ""); v != "2" {
		t.Fatalf("after promotion production answers %q", v)
	}

	// Rollback by hand: production goes back to version 1 at once.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-gyre-actor", "alice")
	rb, err := s.dep.Rollback(ctx, &deployerv1.RollbackRequest{Model: "churn", Environment: "production", Reason: "pager"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.GetVersion() != 1 || rb.GetStrategy() != "rollback" || rb.GetRequestedBy() != "alice" {
		t.Fatalf("rollback: %v", rb)
	}
	if v, _ := s.predict(t, ""); v != "1" || alias(t, s.reg, "production") != 1 {
		t.Fatalf("after rollback production answers %q", v)
	}
	// The audit log names who rolled back.
	waitAudit(t, s.reg, "RollbackDeployment", "alice")
}

func waitAudit(t *testing.T, reg registryv1.RegistryServiceClient, action, actor string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := reg.ListAuditRecords(context.Background(), &registryv1.ListAuditRecordsRequest{PageSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs.GetRecords() {
			if r.GetAction() == action && r.GetActor() == actor {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s audit record by %s", action, actor)
}

func TestACanaryThatMisbehavesIsRolledBack(t *testing.T) {
	// Any canary traffic at all trips this condition: the rollback path, deterministically.
	s := start(t, "auto", `["canary.requests > 0"]`)
	s.train(t)
	s.waitDeployment(t, 1, "production", nil)
	s.train(t)
	prod := s.waitDeployment(t, 2, "production", func() { s.predict(t, "") })
	if prod.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_ROLLED_BACK ||
		!strings.Contains(prod.GetReason(), "canary step 1 (50%): rollbackOn held: canary.requests > 0") {
		t.Fatalf("v2: %v %q", prod.GetState(), prod.GetReason())
	}
	if v, _ := s.predict(t, ""); v != "1" || alias(t, s.reg, "production") != 1 {
		t.Fatalf("after the rollback production answers %q", v)
	}
}

func TestManualApprovalWaitsAndIsAudited(t *testing.T) {
	s := start(t, "manual", `[]`)
	s.train(t)
	prod := s.waitDeployment(t, 1, "production", nil)
	if prod.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_AWAITING_APPROVAL {
		t.Fatalf("v1 in production without approval: %v", prod)
	}
	if _, code := s.predict(t, ""); code != http.StatusNotFound {
		t.Fatalf("production serves before approval: %d", code)
	}
	// A second rollout of the same model to production is refused, naming the first.
	_, err := s.dep.Deploy(context.Background(), &deployerv1.DeployRequest{Model: "churn", Version: 1, Environment: "production"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), prod.GetId()) {
		t.Fatalf("a concurrent rollout: %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-gyre-actor", "bob")
	if _, err := s.dep.ApproveDeployment(ctx, &deployerv1.ApproveDeploymentRequest{Deployment: prod.GetId(), Comment: "ok"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := s.dep.GetDeployment(context.Background(), &deployerv1.GetDeploymentRequest{Deployment: prod.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if d.GetState() == deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED {
			if d.GetApprovedBy() != "bob" {
				t.Fatalf("approved by %q", d.GetApprovedBy())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approved rollout never ended: %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitAudit(t, s.reg, "ApproveDeployment", "bob")
	if _, err := s.dep.ApproveDeployment(ctx, &deployerv1.ApproveDeploymentRequest{Deployment: prod.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("approving twice: %v", err)
	}
}

func TestConcurrentDeploysOneWinAndDryRunsChangeNothing(t *testing.T) {
	s := start(t, "manual", `[]`)
	s.train(t)
	s.waitDeployment(t, 1, "production", nil)
	// The auto rollout waits for approval; roll it back so production is free.
	ctx := context.Background()
	if _, err := s.dep.Rollback(ctx, &deployerv1.RollbackRequest{Model: "churn", Environment: "production"}); err != nil {
		t.Fatal(err)
	}
	before, err := s.dep.ListDeployments(ctx, &deployerv1.ListDeploymentsRequest{Model: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	dry, err := s.dep.Deploy(ctx, &deployerv1.DeployRequest{Model: "churn", Version: 1, Environment: "production", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.GetId() != "" || dry.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_PENDING || dry.GetApproval() != "manual" ||
		dry.GetStrategy() != "canary" || dry.GetTarget() != "local" || dry.GetManifests() != "" {
		t.Fatalf("dry run = %v", dry)
	}
	if _, err := s.dep.Deploy(ctx, &deployerv1.DeployRequest{Model: "churn", Version: 9, Environment: "production", DryRun: true}); status.Code(err) != codes.NotFound {
		t.Fatalf("dry run of an unknown version: %v", err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.dep.Deploy(context.Background(), &deployerv1.DeployRequest{Model: "churn", Version: 1, Environment: "production"})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already rolling churn@1 out to production"):
			t.Fatalf("a losing deploy: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d deploys won", won)
	}
	// A dry run makes the same checks: production is taken now.
	_, err = s.dep.Deploy(ctx, &deployerv1.DeployRequest{Model: "churn", Version: 1, Environment: "production", DryRun: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already rolling churn@1 out to production") {
		t.Fatalf("dry run while a rollout is active: %v", err)
	}
	after, err := s.dep.ListDeployments(ctx, &deployerv1.ListDeploymentsRequest{Model: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.GetDeployments()) != len(before.GetDeployments())+1 {
		t.Fatalf("%d deployments before, %d after one real deploy and two dry runs", len(before.GetDeployments()), len(after.GetDeployments()))
	}
}

// startDeployer runs a deployer-only process against env's services and
// stores, as a second replica or a restarted deployer would.
func startDeployer(t *testing.T, env *gyretest.Env) (*gyre.Process, deployerv1.DeployerServiceClient) {
	t.Helper()
	cfg := env.Config
	cfg.Targets = []string{gyre.Deployer}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	addr := env.Process.Server.GRPCAddr()
	cfg.Services.Registry, cfg.Services.Ingestion, cfg.Services.Inference = addr, addr, addr
	cfg.Deployer.TickInterval = 100 * time.Millisecond
	p, err := gyre.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(p.Server.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return p, deployerv1.NewDeployerServiceClient(conn)
}

func TestADeployerStoppedMidCanaryResumesWhereItWas(t *testing.T) {
	// Everything but the deployer in one process; the deployer in its own.
	env := gyretest.Start(t, gyre.Registry, gyre.Ingestion, gyre.Scheduler, gyre.Evaluator, gyre.Inference)
	s := &suite{env: env, reg: registryv1.NewRegistryServiceClient(env.Conn), sched: schedulerv1.NewSchedulerServiceClient(env.Conn)}
	ctx := context.Background()
	if _, err := s.reg.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: strings.Replace(
		fmt.Sprintf(pipelineTmpl, "auto", "[]"), "stepDuration: 1s", "stepDuration: 3s", 1)}); err != nil {
		t.Fatal(err)
	}
	startWorkerAndData(t, env)
	for v := int64(1); v <= 2; v++ {
		s.train(t)
		until(t, func() bool {
			mv, err := s.reg.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: "churn", Version: v})
			return err == nil && mv.GetStatus() == registryv1.VersionStatus_VERSION_STATUS_PASSED
		})
	}
	// The deployer takes both passed versions out on its own: v1 directly,
	// v2 by a canary whose steps last 3s.
	first, dep := startDeployer(t, env)
	s.dep = dep
	s.waitDeployment(t, 1, "production", nil)
	until(t, func() bool {
		list, err := dep.ListDeployments(ctx, &deployerv1.ListDeploymentsRequest{Model: "churn", Environment: "production", ActiveOnly: true})
		return err == nil && len(list.GetDeployments()) == 1 && list.GetDeployments()[0].GetVersion() == 2 &&
			list.GetDeployments()[0].GetPhase() == "canary"
	})
	// The deployer goes away mid-canary; another one takes over from the database.
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second, dep := startDeployer(t, env)
	t.Cleanup(func() { _ = second.Stop() })
	s.dep = dep
	done := s.waitDeployment(t, 2, "production", func() { s.predict(t, "") })
	if done.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED || len(done.GetAnalyses()) != 1 || done.GetPreviousVersion() != 1 {
		t.Fatalf("after the restart: %v", done)
	}
	// One promotion: production moved to 2 exactly once.
	hist, err := s.reg.ListAliasHistory(ctx, &registryv1.ListAliasHistoryRequest{Model: "churn", Alias: "production"})
	if err != nil {
		t.Fatal(err)
	}
	moves := 0
	for _, c := range hist.GetChanges() {
		if c.GetToVersion() == 2 {
			moves++
		}
	}
	if moves != 1 {
		t.Fatalf("production moved to 2 %d times", moves)
	}
}

func until(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

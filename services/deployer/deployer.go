// Package deployer is the deployer service: a version that passed its
// evaluation goes to staging, is smoke-tested there with real requests, and
// reaches production by its pipeline's strategy (direct, canary, shadow),
// with approvals, analysis between canary steps and automatic rollback.
//
// Every rollout is a row in Postgres moved one action at a time by the
// rollout loop (rollout.go) under a row lock, so a deployer killed mid-rollout
// resumes where it was, and two replicas never act on one rollout.
package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/paging"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/server"
)

// Schema is the deployer's Postgres schema (migrations/deployer).
const Schema = "deployer"

const source = "gyre/deployer"

// Environments.
const (
	Staging    = "staging"
	Production = "production"
)

// Deployment states as stored; queued rollouts wait for the active one of
// their model and environment to end.
const (
	stateQueued           = "queued"
	statePending          = "pending"
	stateAwaitingApproval = "awaiting_approval"
	stateProgressing      = "progressing"
	stateSucceeded        = "succeeded"
	stateRolledBack       = "rolled_back"
	stateFailed           = "failed"
)

// StrategyRollback marks the deployment a Rollback call records.
const StrategyRollback = "rollback"

// ConsumedSubjects start rollouts.
var ConsumedSubjects = []string{"gyre.evaluation.completed"}

// Config tunes the deployer.
type Config struct {
	// TickInterval is how often the rollout loop looks for due work.
	TickInterval time.Duration
	// WorkDir holds bundles while the smoke test loads them ("" = temp dir).
	WorkDir string
}

// Service implements DeployerService.
type Service struct {
	deployerv1.UnimplementedDeployerServiceServer
	pool      *pgxpool.Pool
	blobs     *blob.Store
	registry  registryv1.RegistryServiceClient
	ingestion ingestionv1.IngestionServiceClient
	targets   map[string]Target
	cfg       Config
	log       *slog.Logger
	wake      chan struct{}
}

// New makes the service; targets maps a pipeline's deployment.target
// (local, kubernetes) to what runs it.
func New(pool *pgxpool.Pool, blobs *blob.Store, registry registryv1.RegistryServiceClient, ingestion ingestionv1.IngestionServiceClient,
	targets map[string]Target, cfg Config, log *slog.Logger) *Service {
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = time.Second
	}
	return &Service{pool: pool, blobs: blobs, registry: registry, ingestion: ingestion, targets: targets, cfg: cfg, log: log,
		wake: make(chan struct{}, 1)}
}

// plan is how a version is rolled out to an environment, from its pipeline.
type plan struct {
	strategy, target, approval, pipeline string
	pipelineVersion                      int64
	steps                                []int
	stepDuration                         time.Duration
	rollbackOn                           []string
}

// planFor reads the version's pipeline. A version without one (imported by
// hand) is deployed directly to the local target.
func (s *Service) planFor(ctx context.Context, model string, version int64, env string) (*plan, error) {
	mv, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: model, Version: version})
	if err != nil {
		return nil, err
	}
	if mv.GetStatus() == registryv1.VersionStatus_VERSION_STATUS_FAILED {
		return nil, apierr.FailedPrecondition("%s@%d failed its evaluation (%s); it cannot be deployed", model, version, mv.GetStatusReason())
	}
	p := &plan{strategy: pipeline.StrategyDirect, target: pipeline.TargetLocal, approval: pipeline.ApprovalAuto}
	lin := mv.GetLineage()
	if lin.GetPipeline() == "" {
		return p, nil
	}
	pl, err := s.registry.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: lin.GetPipeline(), Version: lin.GetPipelineVersion()})
	if err != nil {
		return nil, fmt.Errorf("pipeline %s@%d: %w", lin.GetPipeline(), lin.GetPipelineVersion(), err)
	}
	spec, err := pipeline.FromStruct(pl.GetSpec())
	if err != nil {
		return nil, err
	}
	d := spec.Spec.Deployment
	p.pipeline, p.pipelineVersion = pl.GetName(), pl.GetVersion()
	if d.Target != "" {
		p.target = d.Target
	}
	if env == Production {
		p.strategy, p.approval = d.Production.Strategy, d.Production.Approval
		p.steps, p.stepDuration, p.rollbackOn = d.Production.Steps, d.Production.StepDuration.Duration, d.Production.RollbackOn
		if p.strategy == pipeline.StrategyShadow {
			p.stepDuration = d.Production.ShadowDuration.Duration
		}
	}
	if _, ok := s.targets[p.target]; !ok {
		return nil, apierr.FailedPrecondition("pipeline %s deploys to target %q, which this deployer is not configured for", p.pipeline, p.target)
	}
	return p, nil
}

// insert records a new rollout in the caller's transaction. A second active
// rollout of the same model and environment is refused, naming the first.
func insert(ctx context.Context, tx pgx.Tx, model string, version int64, env string, p *plan, state, evaluation string, promote bool, by string) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	steps, _ := json.Marshal(orEmpty(p.steps))
	rb, _ := json.Marshal(orEmpty(p.rollbackOn))
	// A savepoint, so that a refused insert leaves tx usable to name the winner.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", err
	}
	_, err = sp.Exec(ctx, `INSERT INTO deployments (id, model, version, environment, strategy, target, state, steps, step_duration_ms,
		rollback_on, pipeline, pipeline_version, evaluation, promote, approval, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		id, model, version, env, p.strategy, p.target, state, steps, p.stepDuration.Milliseconds(), rb, p.pipeline, p.pipelineVersion,
		evaluation, promote, p.approval, by)
	if err == nil {
		err = sp.Commit(ctx)
	} else {
		_ = sp.Rollback(ctx)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		if pgErr.ConstraintName == "deployments_evaluation" {
			return "", apierr.AlreadyExists("evaluation %s already started a rollout to %s", evaluation, env)
		}
		var other, otherState string
		var otherVersion int64
		if e := tx.QueryRow(ctx, `SELECT id::text, version, state FROM deployments WHERE model = $1 AND environment = $2
			AND state IN ('pending', 'awaiting_approval', 'progressing')`, model, env).Scan(&other, &otherVersion, &otherState); e == nil {
			return "", apierr.FailedPrecondition("deployment %s is already rolling %s@%d out to %s (%s); wait for it, or roll it back",
				other, model, otherVersion, env, otherState)
		}
		return "", apierr.FailedPrecondition("another rollout of %s to %s is active", model, env)
	}
	if err != nil {
		return "", err
	}
	return id, nil
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// HandleEvent queues a staging rollout, which goes on to production, for
// every version that passed its evaluation.
func (s *Service) HandleEvent(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var e eventsv1.EvaluationCompleted
	if err := ev.Decode(&e); err != nil {
		return err
	}
	if !e.GetPassed() {
		return nil // the evaluator put the reasons on the version
	}
	p, err := s.planFor(ctx, e.GetModel(), e.GetVersion(), Staging)
	if err != nil {
		s.log.Warn("passed version not deployed", "model", e.GetModel(), "version", e.GetVersion(), "err", err)
		return nil
	}
	_, err = insert(ctx, tx, e.GetModel(), e.GetVersion(), Staging, p, stateQueued, e.GetEvaluation(), true, "evaluator")
	if ae := (*apierr.Error)(nil); errors.As(err, &ae) && ae.Code == codes.AlreadyExists {
		return nil // a redelivered event
	}
	if err == nil {
		s.nudge()
	}
	return err
}

func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) Deploy(ctx context.Context, req *deployerv1.DeployRequest) (*deployerv1.Deployment, error) {
	if req.GetPromote() && req.GetEnvironment() != Staging {
		return nil, apierr.InvalidField("promote", "only a staging rollout goes on to production")
	}
	p, err := s.planFor(ctx, req.GetModel(), req.GetVersion(), req.GetEnvironment())
	if err != nil {
		return nil, err
	}
	if req.GetDryRun() {
		return s.dryRun(ctx, req, p)
	}
	var id string
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		id, err = insert(ctx, tx, req.GetModel(), req.GetVersion(), req.GetEnvironment(), p, statePending, "", req.GetPromote(), actor(ctx))
		return err
	})
	if err != nil {
		return nil, err
	}
	s.nudge()
	return s.get(ctx, id)
}

// dryRun records the rollout in a transaction it then rolls back: the same
// checks as a real deploy (one active rollout per model and environment
// included), and the deployment as it would start, without its id.
func (s *Service) dryRun(ctx context.Context, req *deployerv1.DeployRequest, p *plan) (*deployerv1.Deployment, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // nothing of a dry run is kept
	id, err := insert(ctx, tx, req.GetModel(), req.GetVersion(), req.GetEnvironment(), p, statePending, "", req.GetPromote(), actor(ctx))
	if err != nil {
		return nil, err
	}
	d, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM deployments WHERE id = $1`, id))
	if err != nil {
		return nil, err
	}
	out := d.proto()
	out.Id = ""
	if m, ok := s.targets[p.target].(manifester); ok {
		stable, err := s.ref(ctx, req.GetModel(), req.GetVersion())
		if err != nil {
			return nil, err
		}
		yaml, err := m.Manifests(req.GetEnvironment(), req.GetModel(), stable)
		if err != nil {
			return nil, err
		}
		out.Manifests = string(yaml)
	}
	return out, nil
}

// manifester is a target that can show what it would apply.
type manifester interface {
	Manifests(env, model string, stable ref) ([]byte, error)
}

func actor(ctx context.Context) string {
	if a := server.RequestInfoFrom(ctx).Actor; a != "" {
		return a
	}
	return "anonymous"
}

const columns = `id::text, model, version, environment, strategy, target, state, phase, steps, step, weight, step_duration_ms,
	rollback_on, previous_version, pipeline, pipeline_version, evaluation, promote, approval, approved_by, approve_time,
	requested_by, reason, smoke_test, analyses, create_time, update_time, end_time`

// deployment is a rollout row.
type deployment struct {
	id, model, env, strategy, target, state, phase string
	version, prevVersion, pipelineVersion          int64
	steps                                          []int
	step, weight                                   int
	stepDuration                                   time.Duration
	rollbackOn                                     []string
	pipeline, evaluation, approval, approvedBy     string
	approveTime                                    *time.Time
	requestedBy, reason                            string
	promote                                        bool
	smoke                                          *smokeResult
	analyses                                       []analysis
	created, updated                               time.Time
	ended                                          *time.Time
}

func scan(row pgx.Row) (*deployment, error) {
	var d deployment
	var steps, rollbackOn, analyses, smoke []byte
	var stepMs int64
	if err := row.Scan(&d.id, &d.model, &d.version, &d.env, &d.strategy, &d.target, &d.state, &d.phase, &steps, &d.step, &d.weight,
		&stepMs, &rollbackOn, &d.prevVersion, &d.pipeline, &d.pipelineVersion, &d.evaluation, &d.promote, &d.approval, &d.approvedBy,
		&d.approveTime, &d.requestedBy, &d.reason, &smoke, &analyses, &d.created, &d.updated, &d.ended); err != nil {
		return nil, err
	}
	d.stepDuration = time.Duration(stepMs) * time.Millisecond
	for _, f := range []struct {
		raw  []byte
		into any
	}{{steps, &d.steps}, {rollbackOn, &d.rollbackOn}, {analyses, &d.analyses}} {
		if err := json.Unmarshal(f.raw, f.into); err != nil {
			return nil, fmt.Errorf("deployment %s: %w", d.id, err)
		}
	}
	if smoke != nil {
		d.smoke = new(smokeResult)
		if err := json.Unmarshal(smoke, d.smoke); err != nil {
			return nil, fmt.Errorf("deployment %s: %w", d.id, err)
		}
	}
	return &d, nil
}

var apiStates = map[string]deployerv1.DeploymentState{
	stateQueued: deployerv1.DeploymentState_DEPLOYMENT_STATE_PENDING, statePending: deployerv1.DeploymentState_DEPLOYMENT_STATE_PENDING,
	stateAwaitingApproval: deployerv1.DeploymentState_DEPLOYMENT_STATE_AWAITING_APPROVAL,
	stateProgressing:      deployerv1.DeploymentState_DEPLOYMENT_STATE_PROGRESSING,
	stateSucceeded:        deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED,
	stateRolledBack:       deployerv1.DeploymentState_DEPLOYMENT_STATE_ROLLED_BACK,
	stateFailed:           deployerv1.DeploymentState_DEPLOYMENT_STATE_FAILED,
}

func (d *deployment) proto() *deployerv1.Deployment {
	out := &deployerv1.Deployment{Id: d.id, Model: d.model, Version: d.version, Environment: d.env, Strategy: d.strategy,
		Target: d.target, State: apiStates[d.state], Phase: d.phase, Step: int32(d.step), Weight: int32(d.weight),
		PreviousVersion: d.prevVersion, Pipeline: d.pipeline, PipelineVersion: d.pipelineVersion, Evaluation: d.evaluation,
		Approval: d.approval, ApprovedBy: d.approvedBy, RequestedBy: d.requestedBy, Reason: d.reason,
		CreateTime: timestamppb.New(d.created), UpdateTime: timestamppb.New(d.updated)}
	if d.state == stateQueued {
		out.Phase = stateQueued
	}
	for _, st := range d.steps {
		out.Steps = append(out.Steps, int32(st))
	}
	if d.approveTime != nil {
		out.ApproveTime = timestamppb.New(*d.approveTime)
	}
	if d.ended != nil {
		out.EndTime = timestamppb.New(*d.ended)
	}
	if d.smoke != nil {
		out.SmokeTest = d.smoke.proto()
	}
	for _, a := range d.analyses {
		out.Analyses = append(out.Analyses, a.proto())
	}
	return out
}

func (s *Service) load(ctx context.Context, q pgx.Tx, id string, lock bool) (*deployment, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, apierr.NotFound("deployment %q not found", id)
	}
	sql := `SELECT ` + columns + ` FROM deployments WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	var row pgx.Row
	if q != nil {
		row = q.QueryRow(ctx, sql, id)
	} else {
		row = s.pool.QueryRow(ctx, sql, id)
	}
	d, err := scan(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("deployment %q not found", id)
	}
	return d, err
}

func (s *Service) get(ctx context.Context, id string) (*deployerv1.Deployment, error) {
	d, err := s.load(ctx, nil, id, false)
	if err != nil {
		return nil, err
	}
	return d.proto(), nil
}

func (s *Service) GetDeployment(ctx context.Context, req *deployerv1.GetDeploymentRequest) (*deployerv1.Deployment, error) {
	return s.get(ctx, req.GetDeployment())
}

func (s *Service) ListDeployments(ctx context.Context, req *deployerv1.ListDeploymentsRequest) (*deployerv1.ListDeploymentsResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM deployments WHERE ($1 = '' OR id < $1::uuid) AND ($2 = '' OR model = $2)
		AND ($3 = '' OR environment = $3) AND (NOT $4 OR state IN ('queued', 'pending', 'awaiting_approval', 'progressing'))
		ORDER BY id DESC LIMIT $5`, after, req.GetModel(), req.GetEnvironment(), req.GetActiveOnly(), limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &deployerv1.ListDeploymentsResponse{}
	for rows.Next() {
		d, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if len(resp.Deployments) == limit {
			resp.NextPageToken = paging.Token(resp.Deployments[limit-1].GetId())
			break
		}
		resp.Deployments = append(resp.Deployments, d.proto())
	}
	return resp, rows.Err()
}

// ApproveDeployment lets a rollout waiting for approval go on.
func (s *Service) ApproveDeployment(ctx context.Context, req *deployerv1.ApproveDeploymentRequest) (*deployerv1.Deployment, error) {
	who := actor(ctx)
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		d, err := s.load(ctx, tx, req.GetDeployment(), true)
		if err != nil {
			return err
		}
		if d.state != stateAwaitingApproval {
			return apierr.FailedPrecondition("deployment %s is %s, not waiting for approval", d.id, strings.ReplaceAll(d.state, "_", " "))
		}
		if _, err := tx.Exec(ctx, `UPDATE deployments SET state = 'pending', approved_by = $2, approve_time = now(), next_action_at = now(),
			update_time = now() WHERE id = $1`, d.id, who); err != nil {
			return err
		}
		d.state, d.approvedBy = statePending, who
		return emit(ctx, tx, d, "approved", who, req.GetComment())
	})
	if err != nil {
		return nil, err
	}
	s.nudge()
	return s.get(ctx, req.GetDeployment())
}

// emit records a deployment event (subject gyre.deployment.<what>) in tx.
func emit(ctx context.Context, tx pgx.Tx, d *deployment, what, who, reason string) error {
	if reason == "" {
		reason = d.reason
	}
	if who == "" {
		who = d.requestedBy
	}
	_, err := events.Enqueue(ctx, tx, source, "gyre.deployment."+what, &eventsv1.DeploymentChanged{
		Deployment: d.id, Model: d.model, Version: d.version, Environment: d.env, Strategy: d.strategy, State: d.state,
		Weight: int32(d.weight), PreviousVersion: d.prevVersion, Reason: reason, Pipeline: d.pipeline, Actor: who,
	})
	return err
}

// ListServing is the deployer's desired routes.
func (s *Service) ListServing(ctx context.Context, req *deployerv1.ListServingRequest) (*deployerv1.ListServingResponse, error) {
	routes, err := listRoutes(ctx, s.pool, req.GetModel())
	if err != nil {
		return nil, err
	}
	resp := &deployerv1.ListServingResponse{}
	for _, r := range routes {
		resp.Serving = append(resp.Serving, &deployerv1.Serving{Model: r.Model, Environment: r.Env, StableVersion: r.Stable.Version,
			CanaryVersion: r.Canary.Version, CanaryWeight: int32(r.CanaryWeight), ShadowVersion: r.Shadow.Version,
			UpdateTime: timestamppb.New(r.Updated)})
	}
	return resp, nil
}

package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/server"
	"github.com/gyreml/gyre/pkg/sketch"
)

// Phases of a progressing rollout.
const (
	phaseDeploying = "deploying"
	phaseSmokeTest = "smoke_test"
	phaseCanary    = "canary"
	phaseShadow    = "shadow"
	phasePromoting = "promoting"
	phaseDone      = "done"
)

const (
	// retryAfter is the wait before an action that failed for a passing
	// reason (a target unreachable) is tried again.
	retryAfter = 5 * time.Second
	// resyncEvery pushes every desired route to the targets again, so an
	// inference process that restarted serves what it should.
	resyncEvery = 30 * time.Second
)

// Run moves rollouts until ctx ends: queued ones start when their model and
// environment are free, due ones take their next action.
func (s *Service) Run(ctx context.Context) error {
	// The deployer's own moves (aliases it sets) are audited as the deployer's.
	ctx = metadata.AppendToOutgoingContext(server.WithRequestInfo(ctx, server.RequestInfo{Actor: "deployer"}), "x-gyre-actor", "deployer")
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	lastSync := time.Time{}
	for {
		if time.Since(lastSync) >= resyncEvery {
			s.resync(ctx)
			lastSync = time.Now()
		}
		if err := s.activateQueued(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("start queued rollouts", "err", err)
		}
		for {
			did, err := s.advanceOne(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("rollout loop", "err", err)
			}
			if !did || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// activateQueued makes the oldest queued rollout of each free model and
// environment pending. The one-active index decides races between replicas.
func (s *Service) activateQueued(ctx context.Context) error {
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE deployments SET state = 'pending', next_action_at = now(), update_time = now() WHERE id IN (
			SELECT DISTINCT ON (model, environment) q.id FROM deployments q WHERE q.state = 'queued' AND NOT EXISTS (
				SELECT 1 FROM deployments a WHERE a.model = q.model AND a.environment = q.environment
				AND a.state IN ('pending', 'awaiting_approval', 'progressing'))
			ORDER BY model, environment, create_time)`)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return nil // another replica started it
	}
	return err
}

// advanceOne takes the next action of one due rollout under its row lock.
func (s *Service) advanceOne(ctx context.Context) (bool, error) {
	var id string
	var actErr error
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		d, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM deployments WHERE state IN ('pending', 'progressing')
			AND next_action_at <= now() ORDER BY next_action_at LIMIT 1 FOR UPDATE SKIP LOCKED`))
		if err != nil {
			return err
		}
		id = d.id
		if actErr = s.act(ctx, tx, d); actErr != nil && !permanent(actErr) {
			return actErr
		}
		if actErr != nil {
			return s.finish(ctx, tx, d, stateFailed, actErr.Error(), "failed")
		}
		return nil
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil && id != "" {
		// A passing failure: nothing of the action was recorded; try again later.
		s.log.Warn("rollout action failed; retrying", "deployment", id, "err", err)
		_, uerr := s.pool.Exec(ctx, `UPDATE deployments SET next_action_at = now() + $2::interval, update_time = now() WHERE id = $1`,
			id, retryAfter.String())
		return true, uerr
	}
	return err == nil, err
}

// permanent errors end a rollout: what it needs is missing or refused.
func permanent(err error) bool {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae.Code != codes.Unavailable
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.DataLoss, codes.PermissionDenied:
		return true
	}
	return false
}

// act takes one step of d's state machine, in tx.
func (s *Service) act(ctx context.Context, tx pgx.Tx, d *deployment) error {
	if d.state == statePending {
		if d.env == Production && d.approval == pipeline.ApprovalManual && d.approvedBy == "" {
			d.state = stateAwaitingApproval
			if err := s.save(ctx, tx, d, time.Now()); err != nil {
				return err
			}
			return emit(ctx, tx, d, "awaiting_approval", "", "")
		}
		d.state, d.phase = stateProgressing, phaseDeploying
		if err := emit(ctx, tx, d, "started", d.requestedBy, ""); err != nil {
			return err
		}
	}
	switch d.phase {
	case phaseDeploying:
		return s.deploy(ctx, tx, d)
	case phaseSmokeTest:
		return s.runSmokeTest(ctx, tx, d)
	case phaseCanary, phaseShadow:
		return s.analyse(ctx, tx, d)
	case phasePromoting:
		return s.promote(ctx, tx, d)
	}
	return apierr.FailedPrecondition("deployment %s is in an unknown phase %q", d.id, d.phase)
}

// deploy sends the new version its first traffic.
func (s *Service) deploy(ctx context.Context, tx pgx.Tx, d *deployment) error {
	cur, err := getRoute(ctx, tx, d.env, d.model)
	if err != nil {
		return err
	}
	d.prevVersion = cur.Stable.Version
	if d.prevVersion == d.version {
		d.prevVersion = 0 // redeploying what already serves: nothing to fall back to
	}
	next, err := s.ref(ctx, d.model, d.version)
	if err != nil {
		return err
	}
	gradual := d.env == Production && cur.Stable.Version != 0 && cur.Stable.Version != d.version && s.targets[d.target].Gradual()
	switch {
	case gradual && d.strategy == pipeline.StrategyCanary && len(d.steps) > 0 && d.steps[0] < 100:
		d.phase, d.step, d.weight = phaseCanary, 0, d.steps[0]
		if err := s.apply(ctx, tx, d.target, route{Env: d.env, Model: d.model, Stable: cur.Stable, Canary: next, CanaryWeight: d.weight}); err != nil {
			return err
		}
		if err := s.save(ctx, tx, d, time.Now().Add(d.stepDuration)); err != nil {
			return err
		}
		return emit(ctx, tx, d, "progressing", "", fmt.Sprintf("canary at %d%%", d.weight))
	case gradual && d.strategy == pipeline.StrategyShadow:
		d.phase = phaseShadow
		if err := s.apply(ctx, tx, d.target, route{Env: d.env, Model: d.model, Stable: cur.Stable, Shadow: next}); err != nil {
			return err
		}
		if err := s.save(ctx, tx, d, time.Now().Add(d.stepDuration)); err != nil {
			return err
		}
		return emit(ctx, tx, d, "progressing", "", "shadowing production traffic")
	}
	// Direct (and the first version of an environment: nothing to compare a canary with).
	if err := s.apply(ctx, tx, d.target, route{Env: d.env, Model: d.model, Stable: next}); err != nil {
		return err
	}
	if d.env == Staging {
		d.phase = phaseSmokeTest
		return s.runSmokeTest(ctx, tx, d)
	}
	return s.promote(ctx, tx, d)
}

// runSmokeTest sends holdout rows to the staging endpoint; passing promotes
// the version to the staging alias (and, when asked, on to production).
func (s *Service) runSmokeTest(ctx context.Context, tx pgx.Tx, d *deployment) error {
	res, err := s.smokeTest(ctx, d)
	if err != nil {
		return err
	}
	d.smoke = res
	if !res.Passed {
		if err := s.restore(ctx, tx, d); err != nil {
			return err
		}
		return s.finish(ctx, tx, d, stateFailed, "smoke test: "+strings.Join(res.Reasons, "; "), "failed")
	}
	return s.promote(ctx, tx, d)
}

// analyse judges the canary step (or the shadow period) that just ended.
func (s *Service) analyse(ctx context.Context, tx pgx.Tx, d *deployment) error {
	stats, err := s.targets[d.target].Stats(ctx, d.env, d.model)
	if err != nil {
		return err
	}
	a, err := judge(d, stats)
	if err != nil {
		return err
	}
	d.analyses = append(d.analyses, a)
	if !a.Passed {
		where := "shadow period"
		if d.phase == phaseCanary {
			where = fmt.Sprintf("canary step %d (%d%%)", d.step+1, d.weight)
		}
		if err := s.restore(ctx, tx, d); err != nil {
			return err
		}
		return s.finish(ctx, tx, d, stateRolledBack, fmt.Sprintf("%s: rollbackOn held: %s", where, strings.Join(a.Triggered, "; ")), "rolled_back")
	}
	if d.phase == phaseShadow || d.step+1 >= len(d.steps) || d.steps[d.step+1] >= 100 {
		d.step = min(d.step+1, max(len(d.steps)-1, 0))
		return s.promote(ctx, tx, d)
	}
	d.step++
	d.weight = d.steps[d.step]
	cur, err := getRoute(ctx, tx, d.env, d.model)
	if err != nil {
		return err
	}
	cur.CanaryWeight = d.weight
	if err := s.apply(ctx, tx, d.target, cur); err != nil {
		return err
	}
	if err := s.save(ctx, tx, d, time.Now().Add(d.stepDuration)); err != nil {
		return err
	}
	return emit(ctx, tx, d, "progressing", "", fmt.Sprintf("canary at %d%%", d.weight))
}

// promote gives the new version all traffic and moves the environment's
// alias to it, under the rollout's row lock: a crash between the two is
// repaired by the next attempt, which does both again.
func (s *Service) promote(ctx context.Context, tx pgx.Tx, d *deployment) error {
	next, err := s.ref(ctx, d.model, d.version)
	if err != nil {
		return err
	}
	if err := s.apply(ctx, tx, d.target, route{Env: d.env, Model: d.model, Stable: next}); err != nil {
		return err
	}
	if err := s.setAlias(ctx, d.model, d.env, d.version, "deployment "+d.id); err != nil {
		return err
	}
	if d.strategy == pipeline.StrategyCanary || d.env == Staging || d.strategy == pipeline.StrategyDirect {
		d.weight = 100
	}
	subject := "succeeded"
	if d.strategy == StrategyRollback {
		subject = "rolled_back"
	}
	if err := s.finish(ctx, tx, d, stateSucceeded, "", subject); err != nil {
		return err
	}
	if d.env == Staging && d.promote {
		p, err := s.planFor(ctx, d.model, d.version, Production)
		if err != nil {
			return err
		}
		_, err = insert(ctx, tx, d.model, d.version, Production, p, stateQueued, d.evaluation, false, d.requestedBy)
		if err != nil {
			return err
		}
		s.nudge()
	}
	return nil
}

// restore gives the environment back to the version that served it before
// (or stops serving it, when there was none).
func (s *Service) restore(ctx context.Context, tx pgx.Tx, d *deployment) error {
	r := route{Env: d.env, Model: d.model}
	if d.prevVersion != 0 {
		prev, err := s.ref(ctx, d.model, d.prevVersion)
		if err != nil {
			return err
		}
		r.Stable = prev
	}
	d.weight = 0
	return s.apply(ctx, tx, d.target, r)
}

// finish ends a rollout in state and announces it.
func (s *Service) finish(ctx context.Context, tx pgx.Tx, d *deployment, state, reason, subject string) error {
	return s.finishBy(ctx, tx, d, state, reason, subject, "")
}

func (s *Service) finishBy(ctx context.Context, tx pgx.Tx, d *deployment, state, reason, subject, who string) error {
	d.state = state
	if reason != "" {
		d.reason = reason
	}
	if state == stateSucceeded {
		d.phase = phaseDone
	}
	if _, err := tx.Exec(ctx, `UPDATE deployments SET end_time = now() WHERE id = $1`, d.id); err != nil {
		return err
	}
	if err := s.save(ctx, tx, d, time.Now()); err != nil {
		return err
	}
	s.nudge() // a queued rollout of the same model may start
	return emit(ctx, tx, d, subject, who, "")
}

func (s *Service) save(ctx context.Context, tx pgx.Tx, d *deployment, next time.Time) error {
	analyses, err := json.Marshal(orEmpty(d.analyses))
	if err != nil {
		return err
	}
	var smoke []byte
	if d.smoke != nil {
		if smoke, err = json.Marshal(d.smoke); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `UPDATE deployments SET state = $2, phase = $3, step = $4, weight = $5, previous_version = $6, reason = $7,
		smoke_test = $8, analyses = $9, next_action_at = $10, update_time = now() WHERE id = $1`,
		d.id, d.state, d.phase, d.step, d.weight, d.prevVersion, d.reason, smoke, analyses, next)
	return err
}

// ref is the verified bundle of a version, from the registry.
func (s *Service) ref(ctx context.Context, model string, version int64) (ref, error) {
	mv, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: model, Version: version})
	if err != nil {
		return ref{}, err
	}
	return ref{Version: version, URI: mv.GetArtifactUri(), SHA256: mv.GetArtifactSha256()}, nil
}

// setAlias moves alias to version unless it is there already.
func (s *Service) setAlias(ctx context.Context, model, alias string, version int64, reason string) error {
	cur, err := s.registry.GetAlias(ctx, &registryv1.GetAliasRequest{Model: model, Alias: alias})
	if err == nil && cur.GetVersion() == version {
		return nil
	}
	if err != nil && status.Code(err) != codes.NotFound {
		return err
	}
	_, err = s.registry.SetAlias(ctx, &registryv1.SetAliasRequest{Model: model, Alias: alias, Version: version, Reason: reason})
	return err
}

// analysis is one judgement of the new version against the stable one.
type analysis struct {
	Step      int                `json:"step"`
	Weight    int                `json:"weight"`
	Time      time.Time          `json:"time"`
	Canary    map[string]float64 `json:"canary"`
	Stable    map[string]float64 `json:"stable"`
	Triggered []string           `json:"triggered,omitempty"`
	Passed    bool               `json:"passed"`
}

func (a analysis) proto() *deployerv1.Analysis {
	return &deployerv1.Analysis{Step: int32(a.Step), Weight: int32(a.Weight), Time: timestamppb.New(a.Time), Canary: a.Canary,
		Stable: a.Stable, Triggered: a.Triggered, Passed: a.Passed}
}

// judge runs the rollout's rollbackOn conditions over the live stats of the
// new version (canary, or shadow) and the stable one. Each side reads as
// requests, errors, error_rate, latency.p50_ms, latency.p99_ms,
// prediction_mean and (new version only) prediction_psi against stable.
func judge(d *deployment, stats []*inferencev1.VersionStats) (analysis, error) {
	a := analysis{Step: d.step + 1, Weight: d.weight, Time: time.Now().UTC(), Canary: map[string]float64{}, Stable: map[string]float64{}}
	var canary, stable *inferencev1.VersionStats
	for _, st := range stats {
		switch {
		case st.GetVersion() == d.version && (st.GetRole() == "canary" || st.GetRole() == "shadow"):
			canary = st
		case st.GetRole() == "stable":
			stable = st
		}
	}
	flat := func(st *inferencev1.VersionStats, into map[string]float64) {
		into["requests"], into["errors"], into["error_rate"] = float64(st.GetRequests()), float64(st.GetErrors()), st.GetErrorRate()
		into["latency.p50_ms"], into["latency.p99_ms"], into["prediction_mean"] = st.GetLatencyP50Ms(), st.GetLatencyP99Ms(), st.GetPredictionMean()
	}
	flat(canary, a.Canary)
	flat(stable, a.Stable)
	a.Canary["prediction_psi"] = predictionPSI(stable.GetPredictionSketch(), canary.GetPredictionSketch())
	vars := map[string]any{"canary": celMap(a.Canary), "stable": celMap(a.Stable)}
	for _, expr := range d.rollbackOn {
		prg, err := pipeline.CompileRollback(expr)
		if err != nil {
			return a, apierr.FailedPrecondition("rollbackOn %q: %v", expr, err)
		}
		held, err := pipeline.EvalBool(prg, vars)
		if err != nil {
			return a, apierr.FailedPrecondition("rollbackOn %q: %v", expr, err)
		}
		if held {
			a.Triggered = append(a.Triggered, fmt.Sprintf("%s (%s)", expr, witnesses(expr, a)))
		}
	}
	a.Passed = len(a.Triggered) == 0
	return a, nil
}

// celMap nests "latency.p99_ms" as latency: {p99_ms: ...} for CEL.
func celMap(flat map[string]float64) map[string]any {
	out := map[string]any{}
	for k, v := range flat {
		if group, name, ok := strings.Cut(k, "."); ok {
			m, _ := out[group].(map[string]any)
			if m == nil {
				m = map[string]any{}
				out[group] = m
			}
			m[name] = v
			continue
		}
		out[k] = v
	}
	return out
}

// witnesses lists the values an expression read, for the reason text.
func witnesses(expr string, a analysis) string {
	var parts []string
	for _, side := range []struct {
		name string
		m    map[string]float64
	}{{"canary", a.Canary}, {"stable", a.Stable}} {
		for _, k := range slices.Sorted(mapsKeys(side.m)) {
			if strings.Contains(expr, side.name+"."+k) {
				parts = append(parts, fmt.Sprintf("%s.%s=%.4g", side.name, k, side.m[k]))
			}
		}
	}
	return strings.Join(parts, ", ")
}

func mapsKeys(m map[string]float64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// predictionPSI compares the new version's predicted values with the
// stable version's over ten quantile bins of the stable ones; 0 when
// either side has no traffic.
func predictionPSI(stableRaw, canaryRaw []byte) float64 {
	if len(stableRaw) == 0 || len(canaryRaw) == 0 {
		return 0
	}
	var st, ca sketch.KLL
	if st.UnmarshalBinary(stableRaw) != nil || ca.UnmarshalBinary(canaryRaw) != nil || st.Count() == 0 || ca.Count() == 0 {
		return 0
	}
	sv, cv := st.Sorted(), ca.Sorted()
	const bins = 10
	var edges []float64
	for i := 1; i < bins; i++ {
		if q := sv.Quantile(float64(i) / bins); len(edges) == 0 || q > edges[len(edges)-1] {
			edges = append(edges, q)
		}
	}
	shares := func(v *sketch.SortedView) []float64 {
		out := make([]float64, len(edges)+1)
		prev := 0.0
		for i, e := range edges {
			c := v.CDF(e)
			out[i], prev = c-prev, c
		}
		out[len(edges)] = 1 - prev
		return out
	}
	p, q := shares(sv), shares(cv)
	const eps = 1e-4
	psi := 0.0
	for i := range p {
		a, b := math.Max(p[i], eps), math.Max(q[i], eps)
		psi += (b - a) * math.Log(b/a)
	}
	return psi
}

// Rollback returns an environment to the version it served before.
func (s *Service) Rollback(ctx context.Context, req *deployerv1.RollbackRequest) (*deployerv1.Deployment, error) {
	who := actor(ctx)
	reason := "rolled back by " + who
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	var id string
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		active, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM deployments WHERE model = $1 AND environment = $2
			AND state IN ('pending', 'awaiting_approval', 'progressing') FOR UPDATE`, req.GetModel(), req.GetEnvironment()))
		if err == nil {
			// Stop the rollout: the version it replaces takes all traffic back.
			id = active.id
			if active.state == stateProgressing && active.phase != phaseDeploying {
				if err := s.restore(ctx, tx, active); err != nil {
					return err
				}
			}
			return s.finishBy(ctx, tx, active, stateRolledBack, reason, "rolled_back", who)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Nothing rolling out: go back to the alias's previous version.
		alias, err := s.registry.GetAlias(ctx, &registryv1.GetAliasRequest{Model: req.GetModel(), Alias: req.GetEnvironment()})
		if status.Code(err) == codes.NotFound {
			return apierr.FailedPrecondition("%s has never been deployed to %s", req.GetModel(), req.GetEnvironment())
		}
		if err != nil {
			return err
		}
		if alias.GetPreviousVersion() == 0 {
			return apierr.FailedPrecondition("%s has served only version %d in %s: there is no previous version to roll back to",
				req.GetModel(), alias.GetVersion(), req.GetEnvironment())
		}
		target := pipeline.TargetLocal
		_ = tx.QueryRow(ctx, `SELECT target FROM deployments WHERE model = $1 AND environment = $2 AND state = 'succeeded'
			ORDER BY id DESC LIMIT 1`, req.GetModel(), req.GetEnvironment()).Scan(&target)
		p := &plan{strategy: StrategyRollback, target: target, approval: pipeline.ApprovalAuto}
		if id, err = insert(ctx, tx, req.GetModel(), alias.GetPreviousVersion(), req.GetEnvironment(), p, stateProgressing, "", false, who); err != nil {
			return err
		}
		d, err := s.load(ctx, tx, id, true)
		if err != nil {
			return err
		}
		d.prevVersion, d.reason = alias.GetVersion(), reason
		return s.promote(ctx, tx, d)
	})
	if err != nil {
		return nil, err
	}
	return s.get(ctx, id)
}

// resync pushes every desired route to its target again.
func (s *Service) resync(ctx context.Context) {
	routes, err := listRoutes(ctx, s.pool, "")
	if err != nil {
		s.log.Warn("resync routes", "err", err)
		return
	}
	for _, r := range routes {
		t, ok := s.targets[r.Target]
		if !ok {
			continue
		}
		if err := t.Apply(ctx, r, false); err != nil && ctx.Err() == nil {
			s.log.Warn("resync route", "model", r.Model, "environment", r.Env, "err", err)
		}
	}
}

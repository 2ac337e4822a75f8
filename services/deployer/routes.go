package deployer

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

// ref is one version's packed bundle.
type ref struct {
	Version int64
	URI     string
	SHA256  string
}

func (r ref) proto() *inferencev1.Target {
	if r.Version == 0 {
		return nil
	}
	return &inferencev1.Target{Version: r.Version, BundleUri: r.URI, BundleSha256: r.SHA256}
}

// route is what should answer one model in one environment; no stable
// version means the environment does not serve the model.
type route struct {
	Env, Model             string
	Stable, Canary, Shadow ref
	CanaryWeight           int
	// Target runs the route (local, kubernetes).
	Target  string
	Updated time.Time
}

func (r route) proto() *inferencev1.Route {
	return &inferencev1.Route{Environment: r.Env, Model: r.Model, Stable: r.Stable.proto(), Canary: r.Canary.proto(),
		CanaryWeight: int32(r.CanaryWeight), Shadow: r.Shadow.proto()}
}

// Target runs routes: Gyre's own inference target, or Kubernetes.
type Target interface {
	// Apply makes the route live and returns once it serves; a route with
	// no stable version stops serving the model. resetStats starts a new
	// stats window.
	Apply(ctx context.Context, r route, resetStats bool) error
	// Stats is each version's traffic in the current window.
	Stats(ctx context.Context, env, model string) ([]*inferencev1.VersionStats, error)
	// Gradual says whether the target splits traffic (canary, shadow);
	// one that does not replaces versions directly.
	Gradual() bool
	// Infer is the environment's prediction endpoint, for the smoke test.
	Infer(env, model string) Predictor
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const routeColumns = `environment, model, stable_version, stable_uri, stable_sha256, canary_version, canary_uri, canary_sha256,
	canary_weight, shadow_version, shadow_uri, shadow_sha256, target, update_time`

func scanRoute(row pgx.Row) (route, error) {
	var r route
	err := row.Scan(&r.Env, &r.Model, &r.Stable.Version, &r.Stable.URI, &r.Stable.SHA256, &r.Canary.Version, &r.Canary.URI,
		&r.Canary.SHA256, &r.CanaryWeight, &r.Shadow.Version, &r.Shadow.URI, &r.Shadow.SHA256, &r.Target, &r.Updated)
	return r, err
}

// getRoute reads (and locks) a route; a missing one is the zero route.
func getRoute(ctx context.Context, tx pgx.Tx, env, model string) (route, error) {
	r, err := scanRoute(tx.QueryRow(ctx, `SELECT `+routeColumns+` FROM routes WHERE environment = $1 AND model = $2 FOR UPDATE`, env, model))
	if errors.Is(err, pgx.ErrNoRows) {
		return route{Env: env, Model: model}, nil
	}
	return r, err
}

func listRoutes(ctx context.Context, q querier, model string) ([]route, error) {
	rows, err := q.Query(ctx, `SELECT `+routeColumns+` FROM routes WHERE $1 = '' OR model = $1 ORDER BY model, environment`, model)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (route, error) { return scanRoute(row) })
}

// apply makes the route live on its target, then records it as desired
// state, in tx: if the commit fails, the next attempt applies it again.
func (s *Service) apply(ctx context.Context, tx pgx.Tx, target string, r route) error {
	r.Target = target
	if err := s.targets[target].Apply(ctx, r, true); err != nil {
		return err
	}
	if r.Stable.Version == 0 {
		_, err := tx.Exec(ctx, `DELETE FROM routes WHERE environment = $1 AND model = $2`, r.Env, r.Model)
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO routes (`+routeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now())
		ON CONFLICT (environment, model) DO UPDATE SET stable_version = excluded.stable_version, stable_uri = excluded.stable_uri,
		stable_sha256 = excluded.stable_sha256, canary_version = excluded.canary_version, canary_uri = excluded.canary_uri,
		canary_sha256 = excluded.canary_sha256, canary_weight = excluded.canary_weight, shadow_version = excluded.shadow_version,
		shadow_uri = excluded.shadow_uri, shadow_sha256 = excluded.shadow_sha256, target = excluded.target, update_time = now()`,
		r.Env, r.Model, r.Stable.Version, r.Stable.URI, r.Stable.SHA256, r.Canary.Version, r.Canary.URI, r.Canary.SHA256,
		r.CanaryWeight, r.Shadow.Version, r.Shadow.URI, r.Shadow.SHA256, target)
	return err
}

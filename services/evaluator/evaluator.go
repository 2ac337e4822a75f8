// Package evaluator is the evaluator service: every registered model version
// is scored on the holdout its training left aside, against the production
// model, and judged by the pipeline's gates; the verdict goes on the model
// version and out as evaluation.completed.
package evaluator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/paging"
	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
)

// Schema is the evaluator's Postgres schema (migrations/evaluator).
const Schema = "evaluator"

const (
	source        = "gyre/evaluator"
	notifyChannel = "gyre_evaluations"
	pollEvery     = 2 * time.Second
)

// ConsumedSubjects start evaluations.
var ConsumedSubjects = []string{"gyre.model.version.registered"}

// Service implements EvaluatorService.
type Service struct {
	evaluatorv1.UnimplementedEvaluatorServiceServer
	pool      *pgxpool.Pool
	blobs     *blob.Store
	registry  registryv1.RegistryServiceClient
	ingestion ingestionv1.IngestionServiceClient
	log       *slog.Logger
	workDir   string
}

func New(pool *pgxpool.Pool, blobs *blob.Store, registry registryv1.RegistryServiceClient, ingestion ingestionv1.IngestionServiceClient, workDir string, log *slog.Logger) *Service {
	return &Service{pool: pool, blobs: blobs, registry: registry, ingestion: ingestion, workDir: workDir, log: log}
}

// HandleEvent queues the evaluation of a newly registered version.
func (s *Service) HandleEvent(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var e eventsv1.ModelVersionRegistered
	if err := ev.Decode(&e); err != nil {
		return err
	}
	_, err := enqueue(ctx, tx, e.GetModel(), e.GetVersion())
	return err
}

func enqueue(ctx context.Context, tx pgx.Tx, model string, version int64) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := tx.Exec(ctx, `INSERT INTO evaluations (id, model, version) VALUES ($1, $2, $3)`, id, model, version); err != nil {
		return "", err
	}
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", notifyChannel)
	return id, err
}

func (s *Service) Evaluate(ctx context.Context, req *evaluatorv1.EvaluateRequest) (*evaluatorv1.Evaluation, error) {
	if _, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: req.GetModel(), Version: req.GetVersion()}); err != nil {
		return nil, err
	}
	var id string
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		id, err = enqueue(ctx, tx, req.GetModel(), req.GetVersion())
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.get(ctx, id)
}

const columns = `id::text, model, version, state, reasons, metrics, gates, dataset, dataset_version, holdout_rows, champion_version,
	report_sha256, create_time, end_time`

var states = map[string]evaluatorv1.EvaluationState{
	"pending": evaluatorv1.EvaluationState_EVALUATION_STATE_PENDING, "running": evaluatorv1.EvaluationState_EVALUATION_STATE_RUNNING,
	"passed": evaluatorv1.EvaluationState_EVALUATION_STATE_PASSED, "failed": evaluatorv1.EvaluationState_EVALUATION_STATE_FAILED,
}

func scan(row pgx.Row) (*evaluatorv1.Evaluation, error) {
	var e evaluatorv1.Evaluation
	var state string
	var reasons, metrics, gatesJSON []byte
	var created time.Time
	var ended *time.Time
	if err := row.Scan(&e.Id, &e.Model, &e.Version, &state, &reasons, &metrics, &gatesJSON, &e.Dataset, &e.DatasetVersion,
		&e.HoldoutRows, &e.ChampionVersion, &e.ReportSha256, &created, &ended); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(reasons, &e.Reasons); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(metrics, &e.Metrics); err != nil {
		return nil, err
	}
	var gs []storedGate
	if err := json.Unmarshal(gatesJSON, &gs); err != nil {
		return nil, err
	}
	for _, g := range gs {
		e.Gates = append(e.Gates, &evaluatorv1.GateResult{Expression: g.Expression, Passed: g.Passed, Skipped: g.Skipped, Reason: g.Reason, Values: g.Values})
	}
	e.State, e.CreateTime = states[state], timestamppb.New(created)
	if ended != nil {
		e.EndTime = timestamppb.New(*ended)
	}
	return &e, nil
}

type storedGate struct {
	Expression string            `json:"expression"`
	Passed     bool              `json:"passed"`
	Skipped    bool              `json:"skipped,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Values     map[string]string `json:"values,omitempty"`
}

func (s *Service) get(ctx context.Context, id string) (*evaluatorv1.Evaluation, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, apierr.NotFound("evaluation %q not found", id)
	}
	e, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM evaluations WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("evaluation %q not found", id)
	}
	return e, err
}

func (s *Service) GetEvaluation(ctx context.Context, req *evaluatorv1.GetEvaluationRequest) (*evaluatorv1.Evaluation, error) {
	return s.get(ctx, req.GetEvaluation())
}

func (s *Service) ListEvaluations(ctx context.Context, req *evaluatorv1.ListEvaluationsRequest) (*evaluatorv1.ListEvaluationsResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM evaluations WHERE ($1 = '' OR id < $1::uuid) AND ($2 = '' OR model = $2)
		ORDER BY id DESC LIMIT $3`, after, req.GetModel(), limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &evaluatorv1.ListEvaluationsResponse{}
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if len(resp.Evaluations) == limit {
			resp.NextPageToken = paging.Token(resp.Evaluations[limit-1].GetId())
			break
		}
		resp.Evaluations = append(resp.Evaluations, e)
	}
	return resp, rows.Err()
}

// Run evaluates pending evaluations one at a time until ctx ends, woken by
// NOTIFY and a slow poll.
func (s *Service) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.listen(ctx, wake) })
	defer wg.Wait()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		for {
			done, err := s.runNext(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("evaluation loop", "err", err)
			}
			if !done || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-t.C:
		}
	}
}

func (s *Service) listen(ctx context.Context, wake chan<- struct{}) {
	for ctx.Err() == nil {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err == nil {
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					break
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
		conn.Release()
	}
}

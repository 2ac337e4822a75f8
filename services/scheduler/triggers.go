package scheduler

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// ConsumedSubjects are the events that can start training.
var ConsumedSubjects = []string{"gyre.dataset.version.validated", "gyre.monitor.alert.fired"}

// HandleEvent turns a validated dataset version into a training job for
// every pipeline that trains on it with retraining.on: [new_data]. A burst
// becomes one run: while a job of the pipeline waits in the queue it takes
// the newest version instead of a second job being added, and a new job
// waits out the pipeline's cooldown after the last automatic one.
func (s *Service) HandleEvent(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	switch ev.Subject {
	case "gyre.dataset.version.validated":
		return s.onNewData(ctx, tx, ev)
	case "gyre.monitor.alert.fired":
		return s.onAlert(ctx, tx, ev)
	}
	return nil
}

// onAlert retrains the pipelines of the alerting model that retrain on this
// kind of alert (drift, performance), on their newest dataset version.
func (s *Service) onAlert(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var e eventsv1.MonitorAlertFired
	if err := ev.Decode(&e); err != nil {
		return fmt.Errorf("decode %s: %w", ev.Subject, err)
	}
	if e.GetKind() != pipeline.TriggerDrift && e.GetKind() != pipeline.TriggerPerformance {
		return nil
	}
	pipes, err := s.pipelinesWhere(ctx, func(p *registryv1.Pipeline, spec *pipeline.Pipeline) bool {
		return (p.GetName() == e.GetPipeline() || spec.ModelName() == e.GetModel()) && slices.Contains(spec.Spec.Retraining.On, e.GetKind())
	})
	if err != nil {
		return err
	}
	for _, p := range pipes {
		if err := s.trigger(ctx, tx, p, 0, e.GetKind()); err != nil {
			return fmt.Errorf("trigger %s: %w", p.GetName(), err)
		}
	}
	return nil
}

func (s *Service) onNewData(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var e eventsv1.DatasetVersionValidated
	if err := ev.Decode(&e); err != nil {
		return fmt.Errorf("decode %s: %w", ev.Subject, err)
	}
	pipes, err := s.pipelinesFor(ctx, e.GetDataset(), pipeline.TriggerNewData)
	if err != nil {
		return err
	}
	for _, p := range pipes {
		if err := s.trigger(ctx, tx, p, e.GetVersion(), pipeline.TriggerNewData); err != nil {
			return fmt.Errorf("trigger %s: %w", p.GetName(), err)
		}
	}
	return nil
}

// pipelinesFor lists the pipelines training on dataset with the given
// retraining trigger.
func (s *Service) pipelinesFor(ctx context.Context, dataset, on string) ([]*registryv1.Pipeline, error) {
	return s.pipelinesWhere(ctx, func(p *registryv1.Pipeline, spec *pipeline.Pipeline) bool {
		return p.GetDataset() == dataset && slices.Contains(spec.Spec.Retraining.On, on)
	})
}

// pipelinesWhere lists the latest version of each pipeline that keep accepts.
func (s *Service) pipelinesWhere(ctx context.Context, keep func(*registryv1.Pipeline, *pipeline.Pipeline) bool) ([]*registryv1.Pipeline, error) {
	var out []*registryv1.Pipeline
	token := ""
	for {
		resp, err := s.registry.ListPipelines(ctx, &registryv1.ListPipelinesRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list pipelines: %w", err)
		}
		for _, p := range resp.GetPipelines() {
			spec, err := pipeline.FromStruct(p.GetSpec())
			if err != nil {
				s.log.Warn("stored pipeline does not parse", "pipeline", p.GetName(), "err", err)
				continue
			}
			if keep(p, spec) {
				out = append(out, p)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

func (s *Service) trigger(ctx context.Context, tx pgx.Tx, p *registryv1.Pipeline, datasetVersion int64, why string) error {
	// A queued automatic job absorbs the trigger: it will train on the newest data.
	tag, err := tx.Exec(ctx, `UPDATE jobs SET dataset_version = greatest(dataset_version, $2)
		WHERE pipeline = $1 AND state = 'queued' AND trigger <> 'manual'`, p.GetName(), datasetVersion)
	if err != nil {
		return err
	}
	if tag.RowsAffected() > 0 {
		s.log.Info("trigger absorbed by a queued job", "pipeline", p.GetName(), "trigger", why, "dataset_version", datasetVersion)
		if err := s.refreshQueuedDataset(ctx, tx, p.GetName()); err != nil {
			return err
		}
		// This transaction holds the job's row lock, so a worker claiming now
		// skips the job (SKIP LOCKED) and waits: wake it again on commit.
		return notify(ctx, tx)
	}
	js, err := s.prepare(ctx, p.GetName(), datasetVersion)
	if err != nil {
		return err
	}
	js.trigger = why
	var last *time.Time
	if err := tx.QueryRow(ctx, `SELECT max(create_time) FROM jobs WHERE pipeline = $1 AND trigger <> 'manual'`, p.GetName()).Scan(&last); err != nil {
		return err
	}
	if cooldown := js.spec.Spec.Retraining.Cooldown.Duration; last != nil && cooldown > 0 {
		js.notBefore = last.Add(cooldown)
	}
	_, err = s.enqueue(ctx, tx, js)
	return err
}

// refreshQueuedDataset points a queued job's dataset digest and URI at the
// version it now trains on.
func (s *Service) refreshQueuedDataset(ctx context.Context, tx pgx.Tx, pipelineName string) error {
	var id string
	var version int64
	err := tx.QueryRow(ctx, `SELECT id::text, dataset_version FROM jobs WHERE pipeline = $1 AND state = 'queued' AND trigger <> 'manual' LIMIT 1`,
		pipelineName).Scan(&id, &version)
	if err != nil {
		return err
	}
	js, err := s.prepare(ctx, pipelineName, version)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE jobs SET dataset_sha256 = $2, dataset_uri = $3 WHERE id = $1`, id, js.dataset.GetSha256(), js.dataset.GetUri())
	return err
}

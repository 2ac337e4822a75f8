package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// scheduleCheck is how often cron schedules are looked at.
const scheduleCheck = 30 * time.Second

func (s *Service) scheduleLoop(ctx context.Context) {
	t := time.NewTicker(scheduleCheck)
	defer t.Stop()
	for {
		if err := s.RunSchedules(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("schedules failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunSchedules starts the pipelines whose retraining schedule (cron, UTC)
// fired since the firing of their last scheduled job (or since the pipeline
// version was applied). Firings missed while nothing ran collapse into the
// latest one. Each firing is one job, whatever the number of replicas: its
// idempotency key is the pipeline and the firing time.
func (s *Service) RunSchedules(ctx context.Context, now time.Time) error {
	type due struct {
		p    *registryv1.Pipeline
		fire time.Time
	}
	var todo []due
	_, err := s.pipelinesWhere(ctx, func(p *registryv1.Pipeline, spec *pipeline.Pipeline) bool {
		r := spec.Spec.Retraining
		if r.Schedule == "" {
			return false
		}
		cron, err := pipeline.ParseCron(r.Schedule)
		if err != nil {
			return false
		}
		since := p.GetCreateTime().AsTime()
		var last *time.Time
		if err := s.pool.QueryRow(ctx, `SELECT max(fire_time) FROM jobs WHERE pipeline = $1 AND trigger = 'schedule'`, p.GetName()).Scan(&last); err == nil && last != nil && last.After(since) {
			since = *last
		}
		fire := time.Time{}
		for next := cron.Next(since.UTC()); !next.After(now.UTC()); next = cron.Next(next) {
			fire = next
		}
		if !fire.IsZero() {
			todo = append(todo, due{p, fire})
		}
		return false
	})
	if err != nil {
		return err
	}
	for _, d := range todo {
		key := fmt.Sprintf("schedule:%s:%s", d.p.GetName(), d.fire.UTC().Format(time.RFC3339))
		if j, err := s.jobByKey(ctx, key); err != nil || j != nil {
			continue
		}
		err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			js, err := s.prepare(ctx, d.p.GetName(), 0)
			if err != nil {
				return err
			}
			js.trigger, js.idempotencyKey, js.fireTime = pipeline.TriggerSchedule, key, &d.fire
			_, err = s.enqueue(ctx, tx, js)
			return err
		})
		if err != nil && !isPrecondition(err) {
			s.log.Warn("scheduled job not started", "pipeline", d.p.GetName(), "err", err)
		}
	}
	return nil
}

package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/gyreml/gyre/pkg/events"
)

// pruneEvery is how often the closer prunes what is past its horizon.
const pruneEvery = 10 * time.Minute

// pruneIfDue keeps the tables the size of their horizons: predictions and
// feedback for the label horizon, batch ids for as long as the stream can
// redeliver a batch, windows (with their scores) and deliveries for the
// retention.
func (s *Service) pruneIfDue(ctx context.Context) error {
	s.pruneMu.Lock()
	due := time.Since(s.lastPrune) >= pruneEvery
	if due {
		s.lastPrune = time.Now()
	}
	s.pruneMu.Unlock()
	if !due {
		return nil
	}
	_, err := s.Prune(ctx)
	return err
}

// Prune deletes what is past its horizon now and returns the rows deleted.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	batchHorizon := max(s.cfg.LabelHorizon, events.StreamMaxAge)
	var total int64
	for _, q := range []struct {
		what, sql string
		arg       time.Duration
	}{
		{"predictions", `DELETE FROM predictions WHERE time < now() - $1::interval`, s.cfg.LabelHorizon},
		{"feedback", `DELETE FROM feedback WHERE receive_time < now() - $1::interval`, s.cfg.LabelHorizon},
		{"batches", `DELETE FROM logged_batches WHERE logged_time < now() - $1::interval`, batchHorizon},
		{"windows", `DELETE FROM windows WHERE end_time < now() - $1::interval`, s.cfg.Retention},
		{"deliveries", `DELETE FROM deliveries WHERE coalesce(delivered_at, failed_at) < now() - $1::interval`, s.cfg.Retention},
		// Feedback past the horizon no longer changes a window's performance.
		{"relabelled marks", `UPDATE windows SET labels_changed_at = NULL WHERE labels_changed_at IS NOT NULL AND start_time <= now() - $1::interval`, s.cfg.LabelHorizon},
	} {
		tag, err := s.pool.Exec(ctx, q.sql, q.arg)
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", q.what, err)
		}
		total += tag.RowsAffected()
	}
	if total > 0 {
		s.log.Info("monitor pruned", "rows", total)
	}
	return total, nil
}

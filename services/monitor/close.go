package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/sketch"
)

// window is a window's row.
type window struct {
	id                     int64
	key                    windowKey
	end                    time.Time
	requests, errors, late int64
	latency                []byte
	values                 []byte
	labels                 []byte
	closed                 bool
}

const windowColumns = `id, model, version, environment, start_time, end_time, requests, errors, late_records,
	latency, prediction_values, prediction_labels, closed_at IS NOT NULL`

func scanWindow(row pgx.Row) (*window, error) {
	w := &window{}
	err := row.Scan(&w.id, &w.key.model, &w.key.version, &w.key.environment, &w.key.start, &w.end, &w.requests, &w.errors, &w.late,
		&w.latency, &w.values, &w.labels, &w.closed)
	if err != nil {
		return nil, err
	}
	w.key.start = w.key.start.UTC()
	return w, nil
}

// driftRow is one stored drift score.
type driftRow struct {
	feature, kind, method string
	score, pValue         float64
	samples               int64
	reference             string
	alerting              bool
	threshold             float64
}

// closeNext closes the oldest window that ended CloseDelay ago, if any
// (but none of skip): scores its drift and performance, applies the rules,
// and marks it closed, in one transaction. It returns the window's id, 0
// when none was due.
func (s *Service) closeNext(ctx context.Context, skip []int64) (id int64, err error) {
	var after []func()
	changed := false
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		after, changed = nil, false
		w, err := scanWindow(tx.QueryRow(ctx, `SELECT `+windowColumns+` FROM windows
			WHERE closed_at IS NULL AND end_time <= now() - $1::interval AND id <> ALL($2)
			ORDER BY start_time, version LIMIT 1 FOR UPDATE SKIP LOCKED`, s.cfg.CloseDelay, skip))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		id = w.id
		info, err := s.version(ctx, w.key.model, w.key.version)
		if err != nil {
			return err
		}
		scores, err := s.driftScores(ctx, tx, w, info)
		if err != nil {
			return err
		}
		if err := storeDrift(ctx, tx, w.id, scores); err != nil {
			return err
		}
		perf, err := s.measureWindow(ctx, tx, w, info)
		if err != nil {
			return err
		}
		if err := storePerformance(ctx, tx, w.id, perf); err != nil {
			return err
		}
		if w.key.environment == s.cfg.AlertEnvironment {
			checks := append(driftChecks(scores, info), s.performanceChecks(perf, info)...)
			if changed, err = s.judge(ctx, tx, w, info, checks); err != nil {
				return err
			}
			after = append(after, s.gauges(w, scores, perf))
		}
		if _, err := tx.Exec(ctx, `UPDATE windows SET closed_at = now(), labels_changed_at = NULL WHERE id = $1`, w.id); err != nil {
			return err
		}
		s.log.Debug("window closed", "model", w.key.model, "version", w.key.version, "environment", w.key.environment,
			"start", w.key.start, "requests", w.requests, "scores", len(scores))
		return nil
	})
	if err != nil {
		return id, err
	}
	for _, f := range after {
		f()
	}
	if changed {
		s.notifyDeliveries()
		if err := s.refreshFiring(ctx); err != nil {
			s.log.Warn("count firing alerts", "err", err)
		}
	}
	return id, nil
}

// remeasureNext measures again the performance of a closed window (not in
// skip) that received feedback since, and applies the performance rules to
// it. It returns the window's id, 0 when there was none.
func (s *Service) remeasureNext(ctx context.Context, skip []int64) (id int64, err error) {
	var after []func()
	changed := false
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		after, changed = nil, false
		w, err := scanWindow(tx.QueryRow(ctx, `SELECT `+windowColumns+` FROM windows
			WHERE labels_changed_at IS NOT NULL AND closed_at IS NOT NULL AND start_time > now() - $1::interval AND id <> ALL($2)
			ORDER BY start_time, version LIMIT 1 FOR UPDATE SKIP LOCKED`, s.cfg.LabelHorizon, skip))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		id = w.id
		info, err := s.version(ctx, w.key.model, w.key.version)
		if err != nil {
			return err
		}
		perf, err := s.measureWindow(ctx, tx, w, info)
		if err != nil {
			return err
		}
		if err := storePerformance(ctx, tx, w.id, perf); err != nil {
			return err
		}
		if w.key.environment == s.cfg.AlertEnvironment {
			if changed, err = s.judge(ctx, tx, w, info, s.performanceChecks(perf, info)); err != nil {
				return err
			}
			after = append(after, s.gauges(w, nil, perf))
		}
		_, err = tx.Exec(ctx, `UPDATE windows SET labels_changed_at = NULL WHERE id = $1`, w.id)
		return err
	})
	if err != nil {
		return id, err
	}
	for _, f := range after {
		f()
	}
	if changed {
		s.notifyDeliveries()
		if err := s.refreshFiring(ctx); err != nil {
			s.log.Warn("count firing alerts", "err", err)
		}
	}
	return id, nil
}

// driftScores scores every feature of the window against the training
// data's profile, and the predictions against the version's first full
// window (its reference while no evaluator distribution is stored).
func (s *Service) driftScores(ctx context.Context, tx pgx.Tx, w *window, info *versionInfo) ([]driftRow, error) {
	var out []driftRow
	ref, err := s.reference(ctx, info)
	if err != nil {
		return nil, err
	}
	rows, _ := tx.Query(ctx, `SELECT feature, kind, count, sketch FROM window_features WHERE window_id = $1 ORDER BY feature, kind`, w.id)
	var name, kind string
	var count int64
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&name, &kind, &count, &raw}, func() error {
		if ref == nil {
			return nil
		}
		refKLL, refStd, refTopK, ok := referenceColumn(ref.profile, name, kind)
		if !ok {
			return nil // not a column of the training data, or of another kind there
		}
		f, err := decodeFeature(kind, count, raw)
		if err != nil {
			return fmt.Errorf("feature %s sketch: %w", name, err)
		}
		var scores []methodScore
		if kind == kindNumeric {
			scores = numericScores(refKLL, f.kll, refStd)
		} else {
			scores = categoricalScores(refTopK, f.topk)
		}
		method, threshold := alertMethod(kind, info.monitoring)
		out = appendScores(out, name, kind, scores, count, ref.name, method, threshold)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.predictionDrift(ctx, tx, w, info, out)
}

// predictionDrift compares the window's outputs with the version's first
// window that had MinSamples answered predictions; that first window is
// its own reference and gets no score.
func (s *Service) predictionDrift(ctx context.Context, tx pgx.Tx, w *window, info *versionInfo, out []driftRow) ([]driftRow, error) {
	var refID int64
	var refStart time.Time
	var refValues, refLabels []byte
	err := tx.QueryRow(ctx, `SELECT id, start_time, prediction_values, prediction_labels FROM windows
		WHERE model = $1 AND version = $2 AND environment = $3 AND closed_at IS NOT NULL AND requests - errors >= $4
		ORDER BY start_time LIMIT 1`, w.key.model, w.key.version, w.key.environment, info.monitoring.MinSamples).Scan(&refID, &refStart, &refValues, &refLabels)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	refName := "window:" + refStart.UTC().Format(time.RFC3339)
	rv, err := decodeKLL(refValues)
	if err != nil {
		return nil, err
	}
	cv, err := decodeKLL(w.values)
	if err != nil {
		return nil, err
	}
	method, threshold := alertMethod(kindNumeric, info.monitoring)
	out = appendScores(out, PredictionFeature, kindNumeric, numericScores(rv, cv, sketchStd(rv)), cv.Count(), refName, method, threshold)
	rl, err := decodeTopK(refLabels)
	if err != nil {
		return nil, err
	}
	cl, err := decodeTopK(w.labels)
	if err != nil {
		return nil, err
	}
	method, threshold = alertMethod(kindCategorical, info.monitoring)
	return appendScores(out, LabelFeature, kindCategorical, categoricalScores(rl, cl), cl.Count(), refName, method, threshold), nil
}

func appendScores(out []driftRow, feature, kind string, scores []methodScore, samples int64, ref, alertMethod string, threshold float64) []driftRow {
	for _, sc := range scores {
		if math.IsNaN(sc.score) || math.IsInf(sc.score, 0) {
			continue
		}
		d := driftRow{feature: feature, kind: kind, method: sc.method, score: sc.score, pValue: sc.pValue, samples: samples, reference: ref}
		if sc.method == alertMethod {
			d.alerting, d.threshold = true, threshold
		}
		out = append(out, d)
	}
	return out
}

func storeDrift(ctx context.Context, tx pgx.Tx, windowID int64, scores []driftRow) error {
	var b pgx.Batch
	for _, d := range scores {
		var p *float64
		if !math.IsNaN(d.pValue) {
			p = &d.pValue
		}
		b.Queue(`INSERT INTO drift_scores (window_id, feature, method, score, p_value, samples, reference, alerting, threshold)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (window_id, feature, method) DO UPDATE SET score = excluded.score, p_value = excluded.p_value, samples = excluded.samples,
				reference = excluded.reference, alerting = excluded.alerting, threshold = excluded.threshold`,
			windowID, d.feature, d.method, d.score, p, d.samples, d.reference, d.alerting, d.threshold)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// gauges returns the update of the window's Prometheus series, applied
// after its transaction commits.
func (s *Service) gauges(w *window, scores []driftRow, perf map[string]metricValue) func() {
	return func() {
		v := strconv.FormatInt(w.key.version, 10)
		for _, d := range scores {
			s.metrics.drift.WithLabelValues(w.key.model, v, d.feature, d.method).Set(d.score)
		}
		for name, m := range perf {
			s.metrics.live.WithLabelValues(w.key.model, v, name).Set(m.value)
		}
		if lat, err := decodeKLL(w.latency); err == nil && lat.Count() > 0 {
			s.metrics.latencyP99.WithLabelValues(w.key.model, v, w.key.environment).Set(lat.Quantile(0.99))
		}
	}
}

// quantile reads q from an encoded KLL sketch; NaN when empty.
func quantile(raw []byte, q float64) float64 {
	k, err := decodeKLL(raw)
	if err != nil || k.Count() == 0 {
		return math.NaN()
	}
	return k.Quantile(q)
}

// mergeKLL folds an encoded sketch into into.
func mergeKLL(into *sketch.KLL, raw []byte) error {
	k, err := decodeKLL(raw)
	if err != nil {
		return err
	}
	return into.Merge(k)
}

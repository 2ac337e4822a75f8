package monitor

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
)

// HandleEvent folds a batch of logged predictions into their windows, in
// the consumer's transaction: the batch counts once or not at all. A batch
// id seen before (the same batch published again under another event id)
// changes nothing.
func (s *Service) HandleEvent(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var e eventsv1.InferenceLogged
	if err := ev.Decode(&e); err != nil {
		return err
	}
	if e.GetBatch() != "" {
		tag, err := tx.Exec(ctx, `INSERT INTO logged_batches (batch) VALUES ($1) ON CONFLICT DO NOTHING`, e.GetBatch())
		if err != nil {
			return fmt.Errorf("record batch: %w", err)
		}
		if tag.RowsAffected() == 0 {
			s.log.Debug("inference batch already folded", "batch", e.GetBatch())
			return nil
		}
	}
	groups := map[windowKey][]*eventsv1.PredictionRecord{}
	infos := map[string]*versionInfo{}
	for _, r := range e.GetPredictions() {
		if r.GetModel() == "" || r.GetModelVersion() <= 0 {
			continue // nothing to attribute it to
		}
		info, err := s.version(ctx, r.GetModel(), r.GetModelVersion())
		if err != nil {
			return err
		}
		infos[versionKey(r.GetModel(), r.GetModelVersion())] = info
		t := ev.Time
		if r.GetTime() != nil {
			t = r.GetTime().AsTime()
		}
		if t.IsZero() {
			t = time.Now()
		}
		k := windowKey{model: r.GetModel(), version: r.GetModelVersion(), environment: r.GetEnvironment(),
			start: windowStart(t, info.monitoring.Window.Duration)}
		groups[k] = append(groups[k], r)
	}
	// A fixed order takes the window locks in the same order in every transaction.
	keys := make([]windowKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b windowKey) int {
		return cmp.Or(cmp.Compare(a.model, b.model), cmp.Compare(a.version, b.version),
			cmp.Compare(a.environment, b.environment), a.start.Compare(b.start))
	})
	for _, k := range keys {
		info := infos[versionKey(k.model, k.version)]
		if err := s.fold(ctx, tx, k, info.monitoring.Window.Duration, groups[k]); err != nil {
			return fmt.Errorf("fold into window %s@%d %s %s: %w", k.model, k.version, k.environment, k.start.Format(time.RFC3339), err)
		}
		if err := s.keepPredictions(ctx, tx, k, info, groups[k]); err != nil {
			return err
		}
		s.metrics.predictions.WithLabelValues(k.model, strconv.FormatInt(k.version, 10), k.environment).Add(float64(len(groups[k])))
	}
	return nil
}

func versionKey(model string, version int64) string {
	return model + "@" + strconv.FormatInt(version, 10)
}

// fold adds records to their window's sketches. A window that already
// closed only counts them as late.
func (s *Service) fold(ctx context.Context, tx pgx.Tx, k windowKey, length time.Duration, records []*eventsv1.PredictionRecord) error {
	if _, err := tx.Exec(ctx, `INSERT INTO windows (model, version, environment, start_time, end_time) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (model, version, environment, start_time) DO NOTHING`, k.model, k.version, k.environment, k.start, k.start.Add(length)); err != nil {
		return err
	}
	var id int64
	var closed bool
	var latency, values, labels []byte
	w := &windowState{features: map[featureKey]*featureState{}}
	if err := tx.QueryRow(ctx, `SELECT id, closed_at IS NOT NULL, requests, errors, latency, prediction_values, prediction_labels
		FROM windows WHERE model = $1 AND version = $2 AND environment = $3 AND start_time = $4 FOR UPDATE`,
		k.model, k.version, k.environment, k.start).Scan(&id, &closed, &w.requests, &w.errors, &latency, &values, &labels); err != nil {
		return err
	}
	if closed {
		_, err := tx.Exec(ctx, `UPDATE windows SET late_records = late_records + $2 WHERE id = $1`, id, len(records))
		return err
	}
	var err error
	if w.latency, err = decodeKLL(latency); err != nil {
		return fmt.Errorf("latency sketch: %w", err)
	}
	if w.values, err = decodeKLL(values); err != nil {
		return fmt.Errorf("prediction sketch: %w", err)
	}
	if w.labels, err = decodeTopK(labels); err != nil {
		return fmt.Errorf("label sketch: %w", err)
	}
	rows, _ := tx.Query(ctx, `SELECT feature, kind, count, sketch FROM window_features WHERE window_id = $1`, id)
	var name, kind string
	var count int64
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&name, &kind, &count, &raw}, func() error {
		f, err := decodeFeature(kind, count, raw)
		if err != nil {
			return fmt.Errorf("feature %s sketch: %w", name, err)
		}
		w.features[featureKey{name, kind}] = f
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range records {
		w.add(r)
	}
	var b pgx.Batch
	for fk, f := range w.features {
		raw, err := f.encode()
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO window_features (window_id, feature, kind, count, sketch) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (window_id, feature, kind) DO UPDATE SET count = excluded.count, sketch = excluded.sketch`, id, fk.name, fk.kind, f.count, raw)
	}
	lat, err := encodeSketch(w.latency)
	if err != nil {
		return err
	}
	vals, err := encodeSketch(w.values)
	if err != nil {
		return err
	}
	labs, err := encodeSketch(w.labels)
	if err != nil {
		return err
	}
	b.Queue(`UPDATE windows SET requests = $2, errors = $3, latency = $4, prediction_values = $5, prediction_labels = $6 WHERE id = $1`,
		id, w.requests, w.errors, lat, vals, labs)
	return tx.SendBatch(ctx, &b).Close()
}

// keepPredictions stores the answered records for the label horizon, and
// marks the closed windows whose predictions meet feedback that arrived
// first, so their performance is measured again.
func (s *Service) keepPredictions(ctx context.Context, tx pgx.Tx, k windowKey, info *versionInfo, records []*eventsv1.PredictionRecord) error {
	var ids, labels, probs, groups []string
	var rowIdx []int32
	var times []time.Time
	var values []float64
	for _, r := range records {
		if r.GetError() != "" || r.GetPredictionId() == "" {
			continue
		}
		p, err := json.Marshal(orEmptyFloats(r.GetProbabilities()))
		if err != nil {
			return err
		}
		g := map[string]string{}
		for _, attr := range info.sensitive {
			if v, ok := r.GetCategorical()[attr]; ok {
				g[attr] = v
			} else if x, ok := r.GetNumeric()[attr]; ok {
				g[attr] = strconv.FormatFloat(x, 'g', -1, 64)
			}
		}
		gj, err := json.Marshal(g)
		if err != nil {
			return err
		}
		t := k.start
		if r.GetTime() != nil {
			t = r.GetTime().AsTime()
		}
		ids, rowIdx, times = append(ids, r.GetPredictionId()), append(rowIdx, r.GetRow()), append(times, t)
		labels, values, probs, groups = append(labels, r.GetLabel()), append(values, r.GetValue()), append(probs, string(p)), append(groups, string(gj))
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO predictions (prediction_id, row, model, version, environment, window_start, time, label, value, probabilities, groups)
		SELECT id, r, $3, $4, $5, $6, t, l, v, p, g
		FROM unnest($1::text[], $2::int[], $7::timestamptz[], $8::text[], $9::float8[], $10::jsonb[], $11::jsonb[]) AS x(id, r, t, l, v, p, g)
		ON CONFLICT (prediction_id, row) DO NOTHING`,
		ids, rowIdx, k.model, k.version, k.environment, k.start, times, labels, values, probs, groups); err != nil {
		return fmt.Errorf("keep predictions: %w", err)
	}
	_, err := tx.Exec(ctx, `UPDATE windows SET labels_changed_at = now()
		WHERE model = $3 AND version = $4 AND environment = $5 AND start_time = $6 AND closed_at IS NOT NULL
		AND EXISTS (SELECT 1 FROM feedback f JOIN unnest($1::text[], $2::int[]) AS x(id, r) ON f.prediction_id = x.id AND f.row = x.r)`,
		ids, rowIdx, k.model, k.version, k.environment, k.start)
	return err
}

func orEmptyFloats(xs []float64) []float64 {
	if xs == nil {
		return []float64{}
	}
	return xs
}

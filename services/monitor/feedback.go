package monitor

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/apierr"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	"github.com/gyreml/gyre/pkg/pg"
)

// maxUnknownListed is how many unknown prediction ids a response names.
const maxUnknownListed = 20

// SubmitFeedback stores ground truth by prediction id and row (the latest
// feedback for a row wins) and marks the closed windows of the predictions
// it joins, whose performance the closer then measures again.
func (s *Service) SubmitFeedback(ctx context.Context, req *monitorv1.SubmitFeedbackRequest) (*monitorv1.SubmitFeedbackResponse, error) {
	type rowKey struct {
		id  string
		row int32
	}
	latest := map[rowKey]int{}
	var order []rowKey
	var violations []apierr.FieldViolation
	for i, f := range req.GetFeedback() {
		switch t := f.GetTruth().(type) {
		case nil:
			violations = append(violations, apierr.FieldViolation{Field: fmt.Sprintf("feedback[%d]", i), Description: "a label or a value is required"})
			continue
		case *monitorv1.Feedback_Value:
			if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) {
				violations = append(violations, apierr.FieldViolation{Field: fmt.Sprintf("feedback[%d].value", i), Description: "must be finite"})
				continue
			}
		}
		k := rowKey{f.GetPredictionId(), f.GetRow()}
		if _, ok := latest[k]; !ok {
			order = append(order, k)
		}
		latest[k] = i
	}
	if len(violations) > 0 {
		msgs := make([]string, len(violations))
		for i, v := range violations {
			msgs[i] = v.Field + ": " + v.Description
		}
		return nil, apierr.Invalid(strings.Join(msgs, "; "), violations...)
	}
	ids, rows := make([]string, len(order)), make([]int32, len(order))
	labels, values := make([]*string, len(order)), make([]*float64, len(order))
	for i, k := range order {
		f := req.GetFeedback()[latest[k]]
		ids[i], rows[i] = k.id, k.row
		switch t := f.GetTruth().(type) {
		case *monitorv1.Feedback_Label:
			labels[i] = &t.Label
		case *monitorv1.Feedback_Value:
			values[i] = &t.Value
		}
	}
	resp := &monitorv1.SubmitFeedbackResponse{}
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		resp.Reset()
		if _, err := tx.Exec(ctx, `INSERT INTO feedback (prediction_id, row, label, value)
			SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::float8[])
			ON CONFLICT (prediction_id, row) DO UPDATE SET label = excluded.label, value = excluded.value, receive_time = now()`,
			ids, rows, labels, values); err != nil {
			return fmt.Errorf("store feedback: %w", err)
		}
		known := map[rowKey]bool{}
		kr, _ := tx.Query(ctx, `SELECT p.prediction_id, p.row FROM predictions p JOIN unnest($1::text[], $2::int[]) AS x(id, r)
			ON p.prediction_id = x.id AND p.row = x.r`, ids, rows)
		var k rowKey
		if _, err := pgx.ForEachRow(kr, []any{&k.id, &k.row}, func() error { known[k] = true; return nil }); err != nil {
			return err
		}
		for _, k := range order {
			if known[k] {
				resp.Accepted++
				continue
			}
			resp.Unknown++
			if len(resp.UnknownPredictions) < maxUnknownListed {
				resp.UnknownPredictions = append(resp.UnknownPredictions, k.id)
			}
		}
		if resp.Accepted == 0 {
			return nil
		}
		// Lock the windows in id order first, so two transactions take them alike.
		rows, _ := tx.Query(ctx, `SELECT DISTINCT w.id FROM windows w JOIN predictions p ON p.model = w.model AND p.version = w.version
				AND p.environment = w.environment AND p.window_start = w.start_time
			JOIN unnest($1::text[], $2::int[]) AS x(id, r) ON p.prediction_id = x.id AND p.row = x.r
			WHERE w.closed_at IS NOT NULL ORDER BY w.id`, ids, rows)
		windowIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(windowIDs) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM windows WHERE id = ANY($1) ORDER BY id FOR UPDATE`, windowIDs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE windows SET labels_changed_at = now() WHERE id = ANY($1)`, windowIDs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

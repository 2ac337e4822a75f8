package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// Alert events.
const (
	subjectFired    = "gyre.monitor.alert.fired"
	subjectResolved = "gyre.monitor.alert.resolved"
	eventFired      = "alert.fired"
	eventResolved   = "alert.resolved"
)

// judge applies the window's rule checks to the model's alerts, in the
// window's transaction:
//
//   - a failing check fires the rule's alert unless it already fires (one
//     firing alert per model and rule), and restarts its count of clean
//     windows;
//   - a clean check counts one more clean window (a window judged again,
//     when late feedback arrives, does not count twice), and ResolveAfter
//     clean windows in a row resolve the alert;
//   - a check neither failing nor clean (a drift score between
//     ResolveMargin x threshold and the threshold) restarts the count.
//
// A window older than the newest one a rule judged is not applied to it.
// Fired and resolved alerts go out as events (outbox) and to the sinks
// (deliveries). changed reports whether an alert fired or resolved.
func (s *Service) judge(ctx context.Context, tx pgx.Tx, w *window, info *versionInfo, checks []ruleCheck) (changed bool, err error) {
	for _, c := range checks {
		if _, err := tx.Exec(ctx, `INSERT INTO rule_states (model, rule) VALUES ($1, $2) ON CONFLICT DO NOTHING`, w.key.model, c.rule); err != nil {
			return false, err
		}
		var last *time.Time
		var clean int
		if err := tx.QueryRow(ctx, `SELECT last_window_start, clean_windows FROM rule_states WHERE model = $1 AND rule = $2 FOR UPDATE`,
			w.key.model, c.rule).Scan(&last, &clean); err != nil {
			return false, err
		}
		if last != nil && w.key.start.Before(*last) {
			continue
		}
		newer := last == nil || w.key.start.After(*last)
		a, err := firingAlert(ctx, tx, w.key.model, c.rule)
		if err != nil {
			return false, err
		}
		c.clean = c.clean || (!c.failing && c.kind == pipeline.TriggerDrift && c.value <= c.threshold*s.cfg.ResolveMargin)
		switch {
		case c.failing:
			clean = 0
			if a == nil {
				if err := s.fire(ctx, tx, w, info, c); err != nil {
					return false, err
				}
				changed = true
			}
		case c.clean:
			if newer {
				clean++
			}
			if a != nil && clean >= s.cfg.ResolveAfter {
				if err := s.resolve(ctx, tx, a, c, clean); err != nil {
					return false, err
				}
				changed = true
				a = nil
			}
		default:
			clean = 0
		}
		if a != nil {
			if _, err := tx.Exec(ctx, `UPDATE alerts SET last_value = $2 WHERE id = $1`, a.GetId(), finite(c.value)); err != nil {
				return false, err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE rule_states SET last_window_start = $3, clean_windows = $4 WHERE model = $1 AND rule = $2`,
			w.key.model, c.rule, w.key.start, clean); err != nil {
			return false, err
		}
	}
	return changed, nil
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func (s *Service) fire(ctx context.Context, tx pgx.Tx, w *window, info *versionInfo, c ruleCheck) error {
	a := &monitorv1.Alert{
		Id: uuid.Must(uuid.NewV7()).String(), Model: w.key.model, ModelVersion: w.key.version, Environment: w.key.environment,
		Pipeline: info.pipeline, Kind: c.kind, Rule: c.rule, Feature: c.feature, Method: c.method, State: monitorv1.AlertState_ALERT_STATE_FIRING,
		Value: finite(c.value), Threshold: finite(c.threshold), LastValue: finite(c.value), WindowStart: timestamppb.New(w.key.start),
		FireTime: timestamppb.Now(),
	}
	if _, err := tx.Exec(ctx, `INSERT INTO alerts (id, model, model_version, environment, pipeline, kind, rule, feature, method, state,
			value, threshold, last_value, window_start, fire_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'firing', $10, $11, $12, $13, $14)`,
		a.Id, a.Model, a.ModelVersion, a.Environment, a.Pipeline, a.Kind, a.Rule, a.Feature, a.Method, a.Value, a.Threshold, a.LastValue,
		w.key.start, a.FireTime.AsTime()); err != nil {
		return fmt.Errorf("fire alert %s %s: %w", a.Model, a.Rule, err)
	}
	if _, err := events.Enqueue(ctx, tx, source, subjectFired, &eventsv1.MonitorAlertFired{
		Alert: a.Id, Model: a.Model, ModelVersion: a.ModelVersion, Pipeline: a.Pipeline, Kind: a.Kind, Rule: a.Rule, Value: a.Value, Threshold: a.Threshold,
	}); err != nil {
		return err
	}
	s.log.Info("alert fired", "alert", a.Id, "model", a.Model, "version", a.ModelVersion, "rule", a.Rule, "value", a.Value, "threshold", a.Threshold)
	return s.queueDeliveries(ctx, tx, eventFired, a)
}

func (s *Service) resolve(ctx context.Context, tx pgx.Tx, a *monitorv1.Alert, c ruleCheck, clean int) error {
	a.State, a.LastValue, a.ResolveTime, a.CleanWindows = monitorv1.AlertState_ALERT_STATE_RESOLVED, finite(c.value), timestamppb.Now(), int32(clean)
	if _, err := tx.Exec(ctx, `UPDATE alerts SET state = 'resolved', last_value = $2, resolve_time = $3 WHERE id = $1`,
		a.Id, a.LastValue, a.ResolveTime.AsTime()); err != nil {
		return err
	}
	if _, err := events.Enqueue(ctx, tx, source, subjectResolved, &eventsv1.MonitorAlertResolved{
		Alert: a.Id, Model: a.Model, ModelVersion: a.ModelVersion, Pipeline: a.Pipeline, Kind: a.Kind, Rule: a.Rule, Value: a.LastValue, Threshold: a.Threshold,
	}); err != nil {
		return err
	}
	s.log.Info("alert resolved", "alert", a.Id, "model", a.Model, "rule", a.Rule, "value", a.LastValue, "clean_windows", clean)
	return s.queueDeliveries(ctx, tx, eventResolved, a)
}

const alertColumns = `a.id::text, a.model, a.model_version, a.environment, a.pipeline, a.kind, a.rule, a.feature, a.method, a.state,
	a.value, a.threshold, a.last_value, coalesce(r.clean_windows, 0), a.window_start, a.fire_time, a.resolve_time`

func scanAlert(row pgx.Row) (*monitorv1.Alert, error) {
	a := &monitorv1.Alert{}
	var state string
	var windowStart, fired time.Time
	var resolved *time.Time
	if err := row.Scan(&a.Id, &a.Model, &a.ModelVersion, &a.Environment, &a.Pipeline, &a.Kind, &a.Rule, &a.Feature, &a.Method, &state,
		&a.Value, &a.Threshold, &a.LastValue, &a.CleanWindows, &windowStart, &fired, &resolved); err != nil {
		return nil, err
	}
	a.State = monitorv1.AlertState_ALERT_STATE_RESOLVED
	if state == "firing" {
		a.State = monitorv1.AlertState_ALERT_STATE_FIRING
	}
	a.WindowStart, a.FireTime = timestamppb.New(windowStart), timestamppb.New(fired)
	if resolved != nil {
		a.ResolveTime = timestamppb.New(*resolved)
	}
	return a, nil
}

func firingAlert(ctx context.Context, tx pgx.Tx, model, rule string) (*monitorv1.Alert, error) {
	a, err := scanAlert(tx.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts a LEFT JOIN rule_states r ON r.model = a.model AND r.rule = a.rule
		WHERE a.model = $1 AND a.rule = $2 AND a.state = 'firing' FOR UPDATE OF a`, model, rule))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return a, err
}

// refreshFiring sets gyre_monitor_alerts_firing from the table.
func (s *Service) refreshFiring(ctx context.Context) error {
	rows, _ := s.pool.Query(ctx, `SELECT model, count(*) FILTER (WHERE state = 'firing') FROM alerts GROUP BY model`)
	counts := map[string]float64{}
	var model string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&model, &n}, func() error { counts[model] = float64(n); return nil }); err != nil {
		return err
	}
	s.metrics.firing.Reset()
	for m, c := range counts {
		s.metrics.firing.WithLabelValues(m).Set(c)
	}
	return nil
}

// alertPayload is the JSON body a webhook receives.
type alertPayload struct {
	// Event is alert.fired or alert.resolved.
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
	// Alert is the alert as the REST API returns it.
	Alert json.RawMessage `json:"alert"`
}

// queueDeliveries writes one delivery per sink, in the alert's transaction.
// The body is fixed now, so every retry sends (and signs) the same bytes.
func (s *Service) queueDeliveries(ctx context.Context, tx pgx.Tx, event string, a *monitorv1.Alert) error {
	if len(s.cfg.Sinks) == 0 {
		return nil
	}
	alertJSON, err := protojson.Marshal(a)
	if err != nil {
		return err
	}
	jsonBody, err := json.Marshal(alertPayload{Event: event, Time: time.Now().UTC(), Alert: alertJSON})
	if err != nil {
		return err
	}
	slackBody, err := json.Marshal(map[string]string{"text": slackText(event, a)})
	if err != nil {
		return err
	}
	for _, sk := range s.cfg.Sinks {
		body := jsonBody
		if sk.Format == FormatSlack {
			body = slackBody
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deliveries (alert, event, sink, format, body) VALUES ($1, $2, $3, $4, $5)`,
			a.GetId(), event, sk.id(), sk.Format, body); err != nil {
			return fmt.Errorf("queue delivery: %w", err)
		}
	}
	return nil
}

// slackText is the one-line message a Slack-compatible sink shows.
func slackText(event string, a *monitorv1.Alert) string {
	state := "FIRING"
	if event == eventResolved {
		state = "RESOLVED"
	}
	text := fmt.Sprintf("[gyre] %s %s alert on %s@%d (%s): %s", state, a.GetKind(), a.GetModel(), a.GetModelVersion(), a.GetEnvironment(), a.GetRule())
	if a.GetKind() == pipeline.TriggerDrift {
		text += fmt.Sprintf(" = %.4g (threshold %.4g)", a.GetLastValue(), a.GetThreshold())
	} else {
		text += fmt.Sprintf(" (value %.4g)", a.GetLastValue())
	}
	if a.GetPipeline() != "" {
		text += ", pipeline " + a.GetPipeline()
	}
	return text
}

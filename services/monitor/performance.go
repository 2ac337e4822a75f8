package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/evaluate/fairness"
	evalmetrics "github.com/gyreml/gyre/pkg/evaluate/metrics"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// maxLabelledRows bounds the labelled predictions one measurement reads
// (performance of a window with more is measured on its first ones).
const maxLabelledRows = 200_000

// metricValue is a live metric and the rows it was measured on.
type metricValue struct {
	value   float64
	samples int64
}

// labelledRow is a logged prediction with its feedback.
type labelledRow struct {
	label     string
	value     float64
	probs     []float64
	groups    map[string]string
	trueLabel *string
	trueValue *float64
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// labelledRows reads the predictions matching where (over predictions p)
// that received feedback.
func labelledRows(ctx context.Context, q querier, where string, args ...any) ([]labelledRow, error) {
	rows, _ := q.Query(ctx, `SELECT p.label, p.value, p.probabilities, p.groups, f.label, f.value
		FROM predictions p JOIN feedback f ON f.prediction_id = p.prediction_id AND f.row = p.row
		WHERE `+where+` LIMIT `+strconv.Itoa(maxLabelledRows), args...)
	var out []labelledRow
	var r labelledRow
	var probs, groups []byte
	_, err := pgx.ForEachRow(rows, []any{&r.label, &r.value, &probs, &groups, &r.trueLabel, &r.trueValue}, func() error {
		row := labelledRow{label: r.label, value: r.value, trueLabel: r.trueLabel, trueValue: r.trueValue}
		if err := json.Unmarshal(probs, &row.probs); err != nil {
			return fmt.Errorf("stored probabilities: %w", err)
		}
		if err := json.Unmarshal(groups, &row.groups); err != nil {
			return fmt.Errorf("stored groups: %w", err)
		}
		out = append(out, row)
		return nil
	})
	return out, err
}

// measureWindow is the window's live performance: error_rate from its
// counts, and the label metrics and fairness of its predictions that
// received feedback.
func (s *Service) measureWindow(ctx context.Context, tx pgx.Tx, w *window, info *versionInfo) (map[string]metricValue, error) {
	out := map[string]metricValue{}
	if w.requests > 0 {
		out["error_rate"] = metricValue{value: float64(w.errors) / float64(w.requests), samples: w.requests}
	}
	rows, err := labelledRows(ctx, tx, `p.model = $1 AND p.version = $2 AND p.environment = $3 AND p.window_start = $4`,
		w.key.model, w.key.version, w.key.environment, w.key.start)
	if err != nil {
		return nil, err
	}
	n, values := liveMetrics(rows, info.sensitive, info.minGroupSize)
	for k, v := range values {
		out[k] = metricValue{value: v, samples: n}
	}
	return out, nil
}

func storePerformance(ctx context.Context, tx pgx.Tx, windowID int64, perf map[string]metricValue) error {
	var b pgx.Batch
	b.Queue(`DELETE FROM performance_scores WHERE window_id = $1`, windowID)
	for name, m := range perf {
		b.Queue(`INSERT INTO performance_scores (window_id, metric, value, samples) VALUES ($1, $2, $3, $4)`, windowID, name, m.value, m.samples)
	}
	return tx.SendBatch(ctx, &b).Close()
}

// liveMetrics measures labelled predictions: rmse, mae and r2 for a
// regression model; accuracy for a classifier, and for a binary one also
// precision, recall, f1, auc and log_loss (pkg/evaluate/metrics, with the
// evaluator's 0.5 threshold) and the fairness differences of each
// sensitive attribute the inputs carried (fairness.<attribute>.<name>).
// n is the number of rows measured. Feedback of the wrong type (a value for
// a classifier) is ignored.
func liveMetrics(rows []labelledRow, sensitive []string, minGroupSize int) (n int64, out map[string]float64) {
	out = map[string]float64{}
	regression := true
	for _, r := range rows {
		if r.label != "" || len(r.probs) > 0 {
			regression = false
			break
		}
	}
	if regression {
		var y, yhat []float64
		for _, r := range rows {
			if r.trueValue != nil {
				y, yhat = append(y, *r.trueValue), append(yhat, r.value)
			}
		}
		if reg, err := evalmetrics.EvaluateRegression(y, yhat); err == nil {
			for _, k := range []string{"rmse", "mae", "r2"} {
				out[k] = reg.Values()[k]
			}
		}
		return int64(len(y)), out
	}
	var cls []labelledRow
	binary := true // every row with the two class probabilities
	for _, r := range rows {
		if r.trueLabel == nil {
			continue
		}
		cls = append(cls, r)
		if len(r.probs) != 2 {
			binary = false
		}
	}
	if len(cls) == 0 {
		return 0, out
	}
	right := 0
	for _, r := range cls {
		if r.label == *r.trueLabel {
			right++
		}
	}
	out["accuracy"] = float64(right) / float64(len(cls))
	if !binary {
		return int64(len(cls)), out
	}
	y, p, decisions := binaryOutcomes(cls)
	if b, err := evalmetrics.EvaluateBinary(y, p, 0.5, 10); err == nil {
		for _, k := range []string{"accuracy", "precision", "recall", "f1", "auc", "log_loss"} {
			out[k] = b.Values()[k]
		}
	}
	for _, attr := range sensitive {
		groups := make([]string, len(cls))
		seen := false
		for i, r := range cls {
			if g, ok := r.groups[attr]; ok {
				groups[i], seen = g, true
			}
		}
		if !seen {
			continue // not among the logged inputs
		}
		rep, err := fairness.Evaluate(attr, fairness.Input{Y: y, Pred: decisions, Groups: groups},
			fairness.Options{MinGroupSize: minGroupSize, Bootstrap: 100, Seed: 1})
		if err != nil {
			continue
		}
		for k, v := range rep.Values() {
			out["fairness."+attr+"."+k] = v
		}
	}
	return int64(len(cls)), out
}

// binaryOutcomes turns labelled binary predictions (two class
// probabilities each) into the 0/1 truth, the positive-class probability
// and the decision at 0.5. The positive class is the label the model gives
// when that probability is at least 0.5, learned from the predictions
// themselves (the log carries labels, not class order).
func binaryOutcomes(rows []labelledRow) (y []int, p []float64, decisions []int) {
	pos, neg := "", ""
	prob := func(r labelledRow) float64 { return r.probs[1] }
	for _, r := range rows {
		if prob(r) >= 0.5 {
			pos = r.label
		} else {
			neg = r.label
		}
		if pos != "" && neg != "" {
			break
		}
	}
	y, p, decisions = make([]int, len(rows)), make([]float64, len(rows)), make([]int, len(rows))
	for i, r := range rows {
		p[i] = min(max(prob(r), 0), 1)
		if p[i] >= 0.5 {
			decisions[i] = 1
		}
		switch {
		case pos != "":
			if *r.trueLabel == pos {
				y[i] = 1
			}
		case *r.trueLabel != neg:
			y[i] = 1
		}
	}
	return y, p, decisions
}

// ruleCheck is one rule judged on one window.
type ruleCheck struct {
	kind, rule, feature, method string
	value, threshold            float64
	// failing fires (or keeps firing) the rule; clean counts towards
	// resolving it; neither resets the count of clean windows.
	failing, clean bool
}

// driftChecks are the drift rules of a window: each input feature's score
// by the alerting method against its threshold, where the feature had
// MinSamples values. A window is clean at or below ResolveMargin x the
// threshold. The prediction's own drift is charted, not alerted on.
func driftChecks(scores []driftRow, info *versionInfo) []ruleCheck {
	var out []ruleCheck
	for _, d := range scores {
		if !d.alerting || d.samples < int64(info.monitoring.MinSamples) || d.feature == PredictionFeature || d.feature == LabelFeature {
			continue
		}
		out = append(out, ruleCheck{kind: pipeline.TriggerDrift, rule: d.method + "(" + d.feature + ")", feature: d.feature, method: d.method,
			value: d.score, threshold: d.threshold, failing: d.score > d.threshold})
	}
	return out
}

var programs sync.Map // expression -> cel.Program

// performanceChecks evaluates the pipeline's performance checks. error_rate
// counts once the window had MinSamples requests, the label metrics once
// MinSamples predictions had feedback; a check that reads a metric not
// measured (yet) is not judged.
func (s *Service) performanceChecks(perf map[string]metricValue, info *versionInfo) []ruleCheck {
	var out []ruleCheck
	if len(info.monitoring.Performance) == 0 {
		return nil
	}
	min := int64(info.monitoring.MinSamples)
	vars := map[string]any{}
	all := map[string]any{}
	for name, m := range perf {
		if m.samples < min {
			continue
		}
		all[name] = m.value
		vars[name] = m.value
	}
	vars["metrics"] = all
	for _, expr := range info.monitoring.Performance {
		prg, err := compiled(expr)
		if err != nil {
			s.log.Warn("performance check does not compile", "expression", expr, "err", err)
			continue
		}
		ok, err := pipeline.EvalBool(prg, vars)
		if err != nil {
			continue // a metric it reads is not measured in this window
		}
		value, threshold := checkValue(expr, perf)
		out = append(out, ruleCheck{kind: pipeline.TriggerPerformance, rule: expr, value: value, threshold: threshold, failing: !ok, clean: ok})
	}
	return out
}

func compiled(expr string) (cel.Program, error) {
	if p, ok := programs.Load(expr); ok {
		return p.(cel.Program), nil
	}
	prg, err := pipeline.CompilePerformance(expr)
	if err != nil {
		return nil, err
	}
	programs.Store(expr, prg)
	return prg, nil
}

var (
	simpleCheck = regexp.MustCompile(`^\s*([a-z_0-9]+)\s*(>=|<=|>|<|==|!=)\s*([-+0-9.eE]+)\s*$`)
	identifier  = regexp.MustCompile(`[A-Za-z_][A-Za-z_0-9.]*`)
)

// checkValue is what an alert on a performance check reports: the metric
// it reads and, for "metric op number", the number as threshold.
func checkValue(expr string, perf map[string]metricValue) (value, threshold float64) {
	if m := simpleCheck.FindStringSubmatch(expr); m != nil {
		if t, err := strconv.ParseFloat(m[3], 64); err == nil {
			if v, ok := perf[m[1]]; ok {
				return v.value, t
			}
			return 0, t
		}
	}
	for _, n := range identifier.FindAllString(expr, -1) {
		if v, ok := perf[strings.TrimPrefix(n, "metrics.")]; ok {
			return v.value, 0
		}
	}
	return 0, 0
}

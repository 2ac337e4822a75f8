package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gyreml/gyre/pkg/evaluate/explain"
	"github.com/gyreml/gyre/pkg/evaluate/fairness"
	"github.com/gyreml/gyre/pkg/evaluate/gates"
	"github.com/gyreml/gyre/pkg/evaluate/latency"
	"github.com/gyreml/gyre/pkg/evaluate/metrics"
	"github.com/gyreml/gyre/pkg/evaluate/report"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/fetch"
	"github.com/gyreml/gyre/pkg/model/gbdt"
	"github.com/gyreml/gyre/pkg/model/table"
	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// outcome is what one evaluation found.
type outcome struct {
	passed          bool
	reasons         []string
	metrics         map[string]float64
	gates           []gates.Result
	dataset         string
	datasetVersion  int64
	holdoutRows     int
	championVersion int64
	page            *report.Evaluation
}

// runNext claims the oldest pending evaluation and runs it; done is false
// when there was none.
func (s *Service) runNext(ctx context.Context) (done bool, err error) {
	var id, modelName string
	var version int64
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `UPDATE evaluations SET state = 'running', start_time = now() WHERE id = (
			SELECT id FROM evaluations WHERE state = 'pending' ORDER BY create_time LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING id::text, model, version`).Scan(&id, &modelName, &version)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	out, evalErr := s.evaluate(ctx, modelName, version)
	if evalErr != nil {
		// A model that cannot be evaluated does not advance: the reason is the verdict.
		out = &outcome{reasons: []string{evalErr.Error()}}
	}
	return true, s.finish(ctx, id, modelName, version, out)
}

// evaluate scores a version on its holdout, with the champion beside it.
func (s *Service) evaluate(ctx context.Context, modelName string, version int64) (*outcome, error) {
	mv, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: modelName, Version: version})
	if err != nil {
		return nil, fmt.Errorf("get model version: %w", err)
	}
	lin := mv.GetLineage()
	if lin.GetPipeline() == "" || lin.GetDataset() == "" || lin.GetDatasetVersion() == 0 {
		return nil, errors.New("the version has no pipeline and dataset version in its lineage: there is no holdout to evaluate it on")
	}
	p, err := s.registry.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: lin.GetPipeline(), Version: lin.GetPipelineVersion()})
	if err != nil {
		return nil, fmt.Errorf("get pipeline %s@%d: %w", lin.GetPipeline(), lin.GetPipelineVersion(), err)
	}
	spec, err := pipeline.FromStruct(p.GetSpec())
	if err != nil {
		return nil, err
	}
	dv, err := s.ingestion.GetDatasetVersion(ctx, &ingestionv1.GetDatasetVersionRequest{Dataset: lin.GetDataset(), Version: lin.GetDatasetVersion()})
	if err != nil {
		return nil, fmt.Errorf("get dataset %s@%d: %w", lin.GetDataset(), lin.GetDatasetVersion(), err)
	}
	t, err := s.readTable(ctx, dv.GetUri(), dv.GetSha256())
	if err != nil {
		return nil, err
	}
	tr := spec.Spec.Training
	stratify := tr.Split.Stratify == nil || *tr.Split.Stratify
	_, holdout, err := table.TrainHoldout(t, tr.Target, tr.Split.Holdout, uint64(tr.Split.Seed), stratify)
	if err != nil {
		return nil, fmt.Errorf("rebuild the holdout: %w", err)
	}
	m, err := s.loadModel(ctx, mv)
	if err != nil {
		return nil, err
	}
	sc, err := score(m, t, holdout, tr.Target)
	if err != nil {
		return nil, err
	}
	out := &outcome{metrics: sc.values, dataset: lin.GetDataset(), datasetVersion: lin.GetDatasetVersion(), holdoutRows: len(holdout)}
	page := &report.Evaluation{Model: modelName, Version: version, Task: string(m.Task()), Binary: sc.binary, Multiclass: sc.multiclass,
		Regression: sc.regression, Dataset: lin.GetDataset(), DatasetVersion: lin.GetDatasetVersion(), DatasetSHA256: dv.GetSha256(),
		HoldoutRows: len(holdout), CreatedAt: time.Now().UTC()}
	in := gates.Inputs{"metrics": anyMap(sc.values)}

	ev := spec.Spec.Evaluation
	if len(ev.SensitiveAttributes) > 0 {
		if m.Task() != model.Binary {
			return nil, fmt.Errorf("fairness needs a binary classifier; this model is %s", m.Task())
		}
		in["fairness"] = map[string]any{}
		for _, attr := range ev.SensitiveAttributes {
			col, ok := t.Column(attr)
			if !ok {
				return nil, fmt.Errorf("sensitive attribute %q is not a column of dataset %s@%d", attr, lin.GetDataset(), lin.GetDatasetVersion())
			}
			groups := make([]string, len(holdout))
			for i, r := range holdout {
				groups[i] = col.Text(r)
			}
			fr, err := fairness.Evaluate(attr, fairness.Input{Y: sc.y, Pred: sc.decisions, Groups: groups}, fairness.Options{MinGroupSize: ev.MinGroupSize, Bootstrap: 500, Seed: 1})
			if err != nil {
				return nil, fmt.Errorf("fairness %s: %w", attr, err)
			}
			page.Fairness = append(page.Fairness, fr)
			in["fairness"][attr] = anyMap(fr.Values())
		}
	}
	imp, err := explain.PermutationImportance(ctx, m, sc.rows, sc.primaryScore, 3, 1)
	if err != nil {
		return nil, fmt.Errorf("permutation importance: %w", err)
	}
	page.Permutation = imp
	impMap := map[string]any{}
	for _, i := range imp {
		impMap[i.Feature] = i.Mean
	}
	in["importance"] = impMap
	if g, ok := m.(*gbdt.Model); ok {
		if shap, err := explain.MeanAbsSHAP(g, sc.rows[:min(len(sc.rows), 2000)]); err == nil {
			page.SHAP = shap
		}
	}
	lat, err := latency.Measure(ctx, m, sc.rows, latency.Options{SingleRowRuns: 500, BatchDuration: 200 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	page.Latency = lat
	in["latency"] = lat.Values()
	in["latency"]["bundle_size_bytes"] = float64(mv.GetSizeBytes())
	out.metrics["bundle_size_bytes"] = float64(mv.GetSizeBytes())
	out.metrics["latency_p99_ms"] = lat.P99Ms

	if champ, err := s.champion(ctx, modelName, version, t, holdout, tr.Target, sc); err != nil {
		return nil, err
	} else if champ != nil {
		out.championVersion = champ.Version
		page.Champion = champ.page
		in["champion"] = map[string]any{"metrics": anyMap(champ.values), "version": float64(champ.Version)}
	}

	results, passed := gates.Evaluate(ev.Gates, in)
	out.gates, out.passed, page.Gates = results, passed, results
	for _, r := range results {
		if !r.Passed {
			out.reasons = append(out.reasons, r.Expression+": "+r.Reason)
		}
	}
	page.Verdict, page.Reasons = verdict(out.passed), out.reasons
	out.page = page
	return out, nil
}

func verdict(passed bool) string {
	if passed {
		return "passed"
	}
	return "failed"
}

func (s *Service) readTable(ctx context.Context, uri, sha string) (*table.Table, error) {
	return fetch.Table(ctx, s.blobs, uri, sha)
}

// loadModel downloads a version's bundle, verifies its digest and every
// file's, and loads it with the same code the inference server uses.
func (s *Service) loadModel(ctx context.Context, mv *registryv1.ModelVersion) (model.Model, error) {
	m, _, err := fetch.Model(ctx, s.blobs, mv.GetArtifactUri(), mv.GetArtifactSha256(), s.workDir)
	if err != nil {
		return nil, fmt.Errorf("%s@%d: %w", mv.GetModel(), mv.GetVersion(), err)
	}
	return m, nil
}

// scored is a model's predictions on the holdout and their metrics.
type scored struct {
	rows         []model.Row
	preds        []model.Prediction
	y            []int
	decisions    []int
	values       map[string]float64
	binary       *metrics.Binary
	multiclass   *metrics.Multiclass
	regression   *metrics.Regression
	primaryScore func([]model.Prediction) float64
}

func score(m model.Model, t *table.Table, holdout []int, target string) (*scored, error) {
	col, ok := t.Column(target)
	if !ok {
		return nil, fmt.Errorf("the target column %q is not in the dataset", target)
	}
	rows, err := t.ModelRows(m.Inputs(), holdout)
	if err != nil {
		return nil, fmt.Errorf("the holdout no longer matches the model's inputs: %w", err)
	}
	preds := make([]model.Prediction, len(rows))
	if err := m.Predict(rows, preds); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	sc := &scored{rows: rows, preds: preds}
	switch m.Task() {
	case model.Regression:
		y := make([]float64, len(holdout))
		for i, r := range holdout {
			if y[i], err = strconv.ParseFloat(col.Text(r), 64); err != nil {
				return nil, fmt.Errorf("row %d: target %q is not a number", r+1, col.Text(r))
			}
		}
		yhat := func(p []model.Prediction) []float64 {
			out := make([]float64, len(p))
			for i := range p {
				out[i] = p[i].Value
			}
			return out
		}
		if sc.regression, err = metrics.EvaluateRegression(y, yhat(preds)); err != nil {
			return nil, err
		}
		sc.values = sc.regression.Values()
		sc.primaryScore = func(p []model.Prediction) float64 {
			r, err := metrics.EvaluateRegression(y, yhat(p))
			if err != nil {
				return math.NaN()
			}
			return -r.RMSE
		}
	default:
		index := map[string]int{}
		for i, c := range m.Classes() {
			index[c] = i
		}
		sc.y = make([]int, len(holdout))
		for i, r := range holdout {
			k, ok := index[col.Text(r)]
			if !ok {
				return nil, fmt.Errorf("row %d: target %q is not one of the model's classes %v", r+1, col.Text(r), m.Classes())
			}
			sc.y[i] = k
		}
		if m.Task() == model.Binary {
			p1 := func(p []model.Prediction) []float64 {
				out := make([]float64, len(p))
				for i := range p {
					out[i] = p[i].Value
				}
				return out
			}
			if sc.binary, err = metrics.EvaluateBinary(sc.y, p1(preds), 0.5, 10); err != nil {
				return nil, err
			}
			sc.values = sc.binary.Values()
			sc.decisions = make([]int, len(preds))
			for i := range preds {
				if preds[i].Value >= 0.5 {
					sc.decisions[i] = 1
				}
			}
			sc.primaryScore = func(p []model.Prediction) float64 {
				b, err := metrics.EvaluateBinary(sc.y, p1(p), 0.5, 10)
				if err != nil {
					return math.NaN()
				}
				return b.ROCAUC
			}
		} else {
			probs := func(p []model.Prediction) [][]float64 {
				out := make([][]float64, len(p))
				for i := range p {
					out[i] = p[i].Probabilities
				}
				return out
			}
			if sc.multiclass, err = metrics.EvaluateMulticlass(sc.y, probs(preds), m.Classes()); err != nil {
				return nil, err
			}
			sc.values = sc.multiclass.Values()
			sc.primaryScore = func(p []model.Prediction) float64 {
				mc, err := metrics.EvaluateMulticlass(sc.y, probs(p), m.Classes())
				if err != nil {
					return math.NaN()
				}
				return mc.Accuracy
			}
		}
	}
	return sc, nil
}

type championResult struct {
	Version int64
	values  map[string]float64
	page    *report.Champion
}

// champion scores the production version on the same holdout and the
// difference in the primary metric with a paired bootstrap interval; nil
// when there is no other production version.
func (s *Service) champion(ctx context.Context, modelName string, version int64, t *table.Table, holdout []int, target string, challenger *scored) (*championResult, error) {
	alias, err := s.registry.GetAlias(ctx, &registryv1.GetAliasRequest{Model: modelName, Alias: "production"})
	if status.Code(err) == codes.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get the production alias: %w", err)
	}
	if alias.GetVersion() == version {
		return nil, nil
	}
	mv, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: modelName, Version: alias.GetVersion()})
	if err != nil {
		return nil, err
	}
	m, err := s.loadModel(ctx, mv)
	if err != nil {
		return nil, fmt.Errorf("champion %s@%d: %w", modelName, alias.GetVersion(), err)
	}
	sc, err := score(m, t, holdout, target)
	if err != nil {
		return nil, fmt.Errorf("champion %s@%d: %w", modelName, alias.GetVersion(), err)
	}
	primary := "auc"
	if challenger.regression != nil {
		primary = "rmse"
	} else if challenger.multiclass != nil {
		primary = "accuracy"
	}
	diff := challenger.primaryScore(challenger.preds) - sc.primaryScore(sc.preds)
	if primary == "rmse" {
		diff = -diff // primaryScore is -RMSE; report the RMSE difference
	}
	low, high := pairedBootstrap(challenger, sc, primary, 200)
	return &championResult{Version: alias.GetVersion(), values: sc.values, page: &report.Champion{
		Version: alias.GetVersion(), Primary: primary, Challenger: challenger.values[primary], ChampionValue: sc.values[primary],
		Difference: diff, Low: low, High: high,
	}}, nil
}

// pairedBootstrap resamples holdout rows (the same rows for both models) and
// returns the 95% percentile interval of the primary metric's difference.
func pairedBootstrap(a, b *scored, primary string, n int) (float64, float64) {
	rng := rand.New(rand.NewPCG(7, 11))
	size := len(a.preds)
	var diffs []float64
	pa, pb := make([]model.Prediction, size), make([]model.Prediction, size)
	for range n {
		idx := make([]int, size)
		for i := range idx {
			idx[i] = rng.IntN(size)
		}
		for i, j := range idx {
			pa[i], pb[i] = a.preds[j], b.preds[j]
		}
		ra, rb := resampled(a, idx), resampled(b, idx)
		d := ra.primaryScore(pa) - rb.primaryScore(pb)
		if primary == "rmse" {
			d = -d
		}
		if !math.IsNaN(d) {
			diffs = append(diffs, d)
		}
	}
	if len(diffs) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(diffs)
	return diffs[int(0.025*float64(len(diffs)-1))], diffs[int(0.975*float64(len(diffs)-1))]
}

// resampled is a scored whose primary score reads the labels of rows idx.
func resampled(s *scored, idx []int) *scored {
	r := *s
	switch {
	case s.binary != nil:
		y := make([]int, len(idx))
		for i, j := range idx {
			y[i] = s.y[j]
		}
		r.primaryScore = func(p []model.Prediction) float64 {
			probs := make([]float64, len(p))
			for i := range p {
				probs[i] = p[i].Value
			}
			b, err := metrics.EvaluateBinary(y, probs, 0.5, 10)
			if err != nil {
				return math.NaN()
			}
			return b.ROCAUC
		}
	case s.multiclass != nil:
		y := make([]int, len(idx))
		for i, j := range idx {
			y[i] = s.y[j]
		}
		r.primaryScore = func(p []model.Prediction) float64 {
			right := 0
			for i := range p {
				best := 0
				for k, v := range p[i].Probabilities {
					if v > p[i].Probabilities[best] {
						best = k
					}
				}
				if best == y[i] {
					right++
				}
			}
			return float64(right) / float64(len(p))
		}
	}
	return &r
}

// finish records the outcome, puts the verdict on the model version and
// emits evaluation.completed, in one transaction with the row update.
func (s *Service) finish(ctx context.Context, id, modelName string, version int64, out *outcome) error {
	var reportSHA, htmlSHA string
	if out.page != nil {
		var html bytes.Buffer
		if err := report.HTML(&html, out.page); err == nil {
			if obj, err := s.blobs.PutContent(ctx, "evaluations/"+modelName, &html, "text/html"); err == nil {
				htmlSHA = obj.SHA256
			}
		}
		raw, err := json.Marshal(out.page)
		if err == nil {
			if obj, err := s.blobs.PutContent(ctx, "evaluations/"+modelName, bytes.NewReader(raw), "application/json"); err == nil {
				reportSHA = obj.SHA256
			}
		}
	}
	stored := make([]storedGate, len(out.gates))
	for i, g := range out.gates {
		vals := map[string]string{}
		for k, v := range g.Values {
			vals[k] = fmt.Sprint(v)
		}
		stored[i] = storedGate{Expression: g.Expression, Passed: g.Passed, Skipped: g.Skipped, Reason: g.Reason, Values: vals}
	}
	finite := map[string]float64{}
	for k, v := range out.metrics {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite[k] = v
		}
	}
	state, vstatus := "failed", registryv1.VersionStatus_VERSION_STATUS_FAILED
	if out.passed {
		state, vstatus = "passed", registryv1.VersionStatus_VERSION_STATUS_PASSED
	}
	reason := "all gates passed"
	if len(out.reasons) > 0 {
		reason = out.reasons[0]
		if len(out.reasons) > 1 {
			reason += fmt.Sprintf(" (and %d more)", len(out.reasons)-1)
		}
	}
	if _, err := s.registry.UpdateModelVersion(ctx, &registryv1.UpdateModelVersionRequest{
		Model: modelName, Version: version, Status: vstatus, StatusReason: reason, Metrics: finite,
		Tags: map[string]string{"evaluation": id},
	}); err != nil {
		return fmt.Errorf("record the verdict on %s@%d: %w", modelName, version, err)
	}
	reasons, _ := json.Marshal(orEmpty(out.reasons))
	metricsJSON, _ := json.Marshal(finite)
	gatesJSON, _ := json.Marshal(stored)
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE evaluations SET state = $2, reasons = $3, metrics = $4, gates = $5, dataset = $6,
				dataset_version = $7, holdout_rows = $8, champion_version = $9, report_sha256 = $10, html_sha256 = $11, end_time = now()
			WHERE id = $1`, id, state, reasons, metricsJSON, gatesJSON, out.dataset, out.datasetVersion, out.holdoutRows,
			out.championVersion, reportSHA, htmlSHA); err != nil {
			return err
		}
		_, err := events.Enqueue(ctx, tx, source, "gyre.evaluation.completed", &eventsv1.EvaluationCompleted{
			Evaluation: id, Model: modelName, Version: version, Passed: out.passed, Reasons: out.reasons, ReportSha256: reportSHA,
		})
		return err
	})
}

// GetEvaluationReport returns the stored JSON report and HTML page.
func (s *Service) GetEvaluationReport(ctx context.Context, req *evaluatorv1.GetEvaluationReportRequest) (*evaluatorv1.EvaluationReport, error) {
	e, err := s.get(ctx, req.GetEvaluation())
	if err != nil {
		return nil, err
	}
	var htmlSHA string
	if err := s.pool.QueryRow(ctx, `SELECT html_sha256 FROM evaluations WHERE id = $1`, e.GetId()).Scan(&htmlSHA); err != nil {
		return nil, err
	}
	if e.GetReportSha256() == "" {
		return nil, statusNoReport(e)
	}
	out := &evaluatorv1.EvaluationReport{Evaluation: e.GetId()}
	raw, err := s.read(ctx, "evaluations/"+e.GetModel()+"/sha256/"+e.GetReportSha256(), e.GetReportSha256())
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if out.Report, err = structpb.NewStruct(m); err != nil {
		return nil, err
	}
	if htmlSHA != "" {
		html, err := s.read(ctx, "evaluations/"+e.GetModel()+"/sha256/"+htmlSHA, htmlSHA)
		if err != nil {
			return nil, err
		}
		out.Html = string(html)
	}
	return out, nil
}

func (s *Service) read(ctx context.Context, key, sha string) ([]byte, error) {
	rc, err := s.blobs.Get(ctx, key, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func statusNoReport(e *evaluatorv1.Evaluation) error {
	return status.Errorf(codes.FailedPrecondition, "evaluation %s has no report (state %s)", e.GetId(), e.GetState())
}

func anyMap(m map[string]float64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

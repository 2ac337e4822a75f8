package deployer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/fetch"
	"github.com/gyreml/gyre/pkg/model/table"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// Predictor answers rows at an environment's prediction endpoint, and says
// which version answered.
type Predictor interface {
	Predict(ctx context.Context, inputs []model.Input, rows []model.Row) ([]model.Prediction, int64, error)
}

// parityTolerance is how far a served value may be from the bundle scored
// in the deployer: both run the same Go code, so only encoding may differ.
const parityTolerance = 1e-9

// smokeResult is what the staging endpoint answered.
type smokeResult struct {
	Requests     int      `json:"requests"`
	Errors       int      `json:"errors"`
	ErrorRate    float64  `json:"errorRate"`
	LatencyP99Ms float64  `json:"latencyP99Ms"`
	Mismatches   int      `json:"mismatches"`
	MaxAbsDiff   float64  `json:"maxAbsDiff"`
	Passed       bool     `json:"passed"`
	Reasons      []string `json:"reasons,omitempty"`
}

func (r *smokeResult) proto() *deployerv1.SmokeTest {
	return &deployerv1.SmokeTest{Requests: int32(r.Requests), Errors: int32(r.Errors), ErrorRate: r.ErrorRate,
		LatencyP99Ms: r.LatencyP99Ms, Mismatches: int32(r.Mismatches), MaxAbsDiff: r.MaxAbsDiff, Passed: r.Passed, Reasons: r.Reasons}
}

// smokeTest sends the version's holdout rows, one request each, to the
// environment's endpoint, and checks error rate, p99 latency, and that each
// answer equals the evaluator's scoring of the same bundle on the same row.
func (s *Service) smokeTest(ctx context.Context, d *deployment) (*smokeResult, error) {
	mv, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: d.model, Version: d.version})
	if err != nil {
		return nil, err
	}
	lin := mv.GetLineage()
	if lin.GetPipeline() == "" || lin.GetDataset() == "" {
		return nil, apierr.FailedPrecondition("%s@%d has no pipeline and dataset in its lineage: there are no holdout rows to smoke-test it with",
			d.model, d.version)
	}
	pl, err := s.registry.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: lin.GetPipeline(), Version: lin.GetPipelineVersion()})
	if err != nil {
		return nil, err
	}
	spec, err := pipeline.FromStruct(pl.GetSpec())
	if err != nil {
		return nil, err
	}
	cfg := spec.Spec.Deployment.Staging.SmokeTest
	dv, err := s.ingestion.GetDatasetVersion(ctx, &ingestionv1.GetDatasetVersionRequest{Dataset: lin.GetDataset(), Version: lin.GetDatasetVersion()})
	if err != nil {
		return nil, err
	}
	t, err := fetch.Table(ctx, s.blobs, dv.GetUri(), dv.GetSha256())
	if err != nil {
		return nil, err
	}
	tr := spec.Spec.Training
	stratify := tr.Split.Stratify == nil || *tr.Split.Stratify
	_, holdout, err := table.TrainHoldout(t, tr.Target, tr.Split.Holdout, uint64(tr.Split.Seed), stratify)
	if err != nil {
		return nil, apierr.FailedPrecondition("rebuild the holdout: %v", err)
	}
	if len(holdout) == 0 {
		return nil, apierr.FailedPrecondition("the holdout of %s@%d is empty", lin.GetDataset(), lin.GetDatasetVersion())
	}
	m, _, err := fetch.Model(ctx, s.blobs, mv.GetArtifactUri(), mv.GetArtifactSha256(), s.cfg.WorkDir)
	if err != nil {
		return nil, apierr.FailedPrecondition("%s@%d: %v", d.model, d.version, err)
	}
	n := max(cfg.Requests, 1)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = holdout[i%len(holdout)]
	}
	rows, err := t.ModelRows(m.Inputs(), idx)
	if err != nil {
		return nil, apierr.FailedPrecondition("the holdout no longer matches the model's inputs: %v", err)
	}
	want := make([]model.Prediction, n)
	if err := m.Predict(rows, want); err != nil {
		return nil, apierr.FailedPrecondition("score the holdout: %v", err)
	}
	return runSmoke(ctx, s.targets[d.target].Infer(d.env, d.model), d.version, m.Inputs(), rows, want, cfg), nil
}

// runSmoke sends rows one request each and judges the answers.
func runSmoke(ctx context.Context, p Predictor, version int64, inputs []model.Input, rows []model.Row, want []model.Prediction, cfg pipeline.SmokeTest) *smokeResult {
	res := &smokeResult{Requests: len(rows)}
	lat := make([]float64, 0, len(rows))
	wrongVersion := int64(0)
	for i := range rows {
		start := time.Now()
		got, v, err := p.Predict(ctx, inputs, rows[i:i+1])
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
		if err != nil || len(got) != 1 {
			res.Errors++
			continue
		}
		if v != version {
			wrongVersion = v
			res.Mismatches++
			continue
		}
		diff := math.Abs(got[0].Value - want[i].Value)
		for j := range min(len(got[0].Probabilities), len(want[i].Probabilities)) {
			diff = math.Max(diff, math.Abs(got[0].Probabilities[j]-want[i].Probabilities[j]))
		}
		res.MaxAbsDiff = math.Max(res.MaxAbsDiff, diff)
		if diff > parityTolerance || got[0].Label != want[i].Label {
			res.Mismatches++
		}
	}
	slices.Sort(lat)
	res.LatencyP99Ms = lat[min(len(lat)-1, int(math.Ceil(0.99*float64(len(lat))))-1)]
	res.ErrorRate = float64(res.Errors) / float64(res.Requests)
	if res.ErrorRate > cfg.MaxErrorRate {
		res.Reasons = append(res.Reasons, fmt.Sprintf("error rate %.4f > maxErrorRate %g (%d of %d requests failed)",
			res.ErrorRate, cfg.MaxErrorRate, res.Errors, res.Requests))
	}
	if cfg.MaxLatencyMs > 0 && res.LatencyP99Ms > cfg.MaxLatencyMs {
		res.Reasons = append(res.Reasons, fmt.Sprintf("p99 latency %.3f ms > maxLatencyMs %g", res.LatencyP99Ms, cfg.MaxLatencyMs))
	}
	if wrongVersion != 0 {
		res.Reasons = append(res.Reasons, fmt.Sprintf("answered by version %d, not %d", wrongVersion, version))
	}
	if res.Mismatches > 0 {
		res.Reasons = append(res.Reasons, fmt.Sprintf("%d of %d answers differ from the evaluator's scoring of the bundle (max |diff| %.3g)",
			res.Mismatches, res.Requests, res.MaxAbsDiff))
	}
	res.Passed = len(res.Reasons) == 0
	return res
}

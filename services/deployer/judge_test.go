package deployer

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/sketch"
)

func kllOf(t *testing.T, xs []float64) []byte {
	t.Helper()
	s := sketch.NewKLL(200)
	for _, x := range xs {
		s.Update(x)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJudgeRollsBackOnTheConditionsThatHold(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	same, shifted := make([]float64, 5000), make([]float64, 5000)
	for i := range same {
		same[i], shifted[i] = r.Float64(), 0.5+r.Float64()/2
	}
	d := &deployment{version: 2, step: 0, weight: 10, rollbackOn: []string{"canary.error_rate > 0.01", "canary.latency.p99_ms > 2.0 * stable.latency.p99_ms",
		"canary.prediction_psi > 0.2"}}
	stable := &inferencev1.VersionStats{Version: 1, Role: "stable", Requests: 900, LatencyP99Ms: 1, PredictionSketch: kllOf(t, same)}

	healthy := &inferencev1.VersionStats{Version: 2, Role: "canary", Requests: 100, LatencyP99Ms: 1.5, PredictionSketch: kllOf(t, same)}
	a, err := judge(d, []*inferencev1.VersionStats{stable, healthy})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Passed || len(a.Triggered) != 0 {
		t.Fatalf("a healthy canary is rolled back: %+v", a)
	}
	if a.Canary["prediction_psi"] > 0.05 {
		t.Errorf("same distributions: prediction_psi = %g", a.Canary["prediction_psi"])
	}

	bad := &inferencev1.VersionStats{Version: 2, Role: "canary", Requests: 100, Errors: 5, ErrorRate: 0.05, LatencyP99Ms: 3, PredictionSketch: kllOf(t, shifted)}
	a, err = judge(d, []*inferencev1.VersionStats{stable, bad})
	if err != nil {
		t.Fatal(err)
	}
	if a.Passed || len(a.Triggered) != 3 {
		t.Fatalf("want all three conditions to hold, got %+v", a.Triggered)
	}
	if !strings.Contains(a.Triggered[0], "canary.error_rate=0.05") {
		t.Errorf("the reason does not show the value read: %q", a.Triggered[0])
	}
}

func TestJudgeReportsAnInvalidCondition(t *testing.T) {
	d := &deployment{version: 2, rollbackOn: []string{"canary.nonsense > 1"}}
	_, err := judge(d, []*inferencev1.VersionStats{{Version: 2, Role: "canary"}})
	if err == nil || !permanent(err) || !strings.Contains(err.Error(), "canary.nonsense") {
		t.Fatalf("want a permanent error naming the condition, got %v", err)
	}
}

type fakePredictor struct {
	version int64
	fail    int // every fail-th request errors
	shift   float64
	n       int
}

func (f *fakePredictor) Predict(_ context.Context, _ []model.Input, rows []model.Row) ([]model.Prediction, int64, error) {
	f.n++
	if f.fail > 0 && f.n%f.fail == 0 {
		return nil, 0, errors.New("boom")
	}
	out := make([]model.Prediction, len(rows))
	for i, r := range rows {
		out[i] = model.Prediction{Value: r[0].F + f.shift}
	}
	return out, f.version, nil
}

func TestRunSmokeJudgesErrorsParityAndVersion(t *testing.T) {
	rows := make([]model.Row, 50)
	want := make([]model.Prediction, 50)
	for i := range rows {
		rows[i] = model.Row{{F: float64(i) / 50}}
		want[i] = model.Prediction{Value: float64(i) / 50}
	}
	cfg := pipeline.SmokeTest{Requests: 50, MaxErrorRate: 0.05}
	if res := runSmoke(context.Background(), &fakePredictor{version: 3}, 3, nil, rows, want, cfg); !res.Passed || res.Requests != 50 {
		t.Fatalf("a faithful endpoint fails: %+v", res)
	}
	res := runSmoke(context.Background(), &fakePredictor{version: 3, fail: 10}, 3, nil, rows, want, cfg)
	if res.Passed || res.Errors != 5 || !strings.Contains(res.Reasons[0], "error rate 0.1000 > maxErrorRate 0.05") {
		t.Fatalf("10%% errors pass: %+v", res)
	}
	res = runSmoke(context.Background(), &fakePredictor{version: 3, shift: 1e-6}, 3, nil, rows, want, cfg)
	if res.Passed || res.Mismatches != 50 {
		t.Fatalf("answers off by 1e-6 pass parity: %+v", res)
	}
	res = runSmoke(context.Background(), &fakePredictor{version: 2}, 3, nil, rows, want, cfg)
	if res.Passed || !strings.Contains(strings.Join(res.Reasons, ";"), "answered by version 2, not 3") {
		t.Fatalf("the wrong version answering passes: %+v", res)
	}
}

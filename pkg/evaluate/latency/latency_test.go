package latency

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/model"
)

// sleepy is a pure-logic stand-in model whose cost is known.
type sleepy struct{ perCall time.Duration }

func (s sleepy) Inputs() []model.Input { return []model.Input{{Name: "x", Kind: model.Numeric}} }
func (s sleepy) Task() model.Task      { return model.Regression }
func (s sleepy) Classes() []string     { return nil }
func (s sleepy) Predict(rows []model.Row, out []model.Prediction) error {
	if len(rows) == 0 {
		return errors.New("no rows")
	}
	time.Sleep(s.perCall)
	for i := range rows {
		out[i] = model.Prediction{Value: rows[i][0].F}
	}
	return nil
}

func TestMeasureOrdersPercentilesAndCountsRows(t *testing.T) {
	rows := []model.Row{{{F: 1}}, {{F: 2}}}
	r, err := Measure(context.Background(), sleepy{200 * time.Microsecond}, rows, Options{SingleRowRuns: 50, Warmup: 1, BatchSize: 10, BatchDuration: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !(r.P50Ms <= r.P95Ms && r.P95Ms <= r.P99Ms && r.P99Ms <= r.MaxMs) || r.P50Ms < 0.2 || r.RowsPerSec <= 0 || r.SingleRowRun != 50 {
		t.Fatalf("report = %+v", r)
	}
	if r.Values()["p99_ms"] != r.P99Ms {
		t.Fatal("values")
	}
}

func TestMeasureNeedsRows(t *testing.T) {
	if _, err := Measure(context.Background(), sleepy{}, nil, Options{}); err == nil {
		t.Fatal("no error for no rows")
	}
}

// Package latency measures how fast a model answers in-process, with the
// same Predict the inference server calls: single-row latency percentiles
// and batch throughput.
package latency

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/gyreml/gyre/pkg/model"
)

// Report is what a latency gate reads (latency.p99_ms ...).
type Report struct {
	P50Ms        float64 `json:"p50_ms"`
	P95Ms        float64 `json:"p95_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	BatchSize    int     `json:"batch_size"`
	RowsPerSec   float64 `json:"rows_per_second"`
	SingleRowRun int     `json:"single_row_runs"`
}

// Values are the report's numbers by gate name.
func (r *Report) Values() map[string]any {
	return map[string]any{"p50_ms": r.P50Ms, "p95_ms": r.P95Ms, "p99_ms": r.P99Ms, "max_ms": r.MaxMs, "rows_per_second": r.RowsPerSec}
}

// Options bound the measurement.
type Options struct {
	// SingleRowRuns is how many one-row predictions are timed (default 1000),
	// after Warmup untimed ones (default 100).
	SingleRowRuns, Warmup int
	// BatchSize rows per Predict for throughput (default 256), for at least
	// BatchDuration (default 500ms).
	BatchSize     int
	BatchDuration time.Duration
}

func (o *Options) defaults() {
	if o.SingleRowRuns <= 0 {
		o.SingleRowRuns = 1000
	}
	if o.Warmup <= 0 {
		o.Warmup = 100
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.BatchDuration <= 0 {
		o.BatchDuration = 500 * time.Millisecond
	}
}

// Measure times m on rows (cycled as needed).
func Measure(ctx context.Context, m model.Model, rows []model.Row, opt Options) (*Report, error) {
	if len(rows) == 0 {
		return nil, errors.New("latency: no rows to predict")
	}
	opt.defaults()
	out := make([]model.Prediction, max(1, opt.BatchSize))
	for i := range opt.Warmup {
		if err := m.Predict(rows[i%len(rows):i%len(rows)+1], out[:1]); err != nil {
			return nil, err
		}
	}
	times := make([]time.Duration, opt.SingleRowRuns)
	for i := range times {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		row := rows[i%len(rows) : i%len(rows)+1]
		t0 := time.Now()
		if err := m.Predict(row, out[:1]); err != nil {
			return nil, err
		}
		times[i] = time.Since(t0)
	}
	slices.Sort(times)
	pct := func(p float64) float64 {
		return ms(times[min(len(times)-1, int(p*float64(len(times))))])
	}
	batch := make([]model.Row, opt.BatchSize)
	for i := range batch {
		batch[i] = rows[i%len(rows)]
	}
	n := 0
	start := time.Now()
	for time.Since(start) < opt.BatchDuration {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := m.Predict(batch, out); err != nil {
			return nil, err
		}
		n += len(batch)
	}
	return &Report{
		P50Ms: pct(0.50), P95Ms: pct(0.95), P99Ms: pct(0.99), MaxMs: ms(times[len(times)-1]),
		BatchSize: opt.BatchSize, RowsPerSec: float64(n) / time.Since(start).Seconds(), SingleRowRun: len(times),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

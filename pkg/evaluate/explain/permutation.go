package explain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gyreml/gyre/pkg/model"
)

// Importance is how much one input matters. For permutation importance
// Scores are the score drops of each repeat and Mean, Std their mean and
// population standard deviation (as scikit-learn reports them); for SHAP,
// Mean and Std are over rows of |SHAP| and Scores is nil.
type Importance struct {
	Feature string    `json:"feature"`
	Mean    float64   `json:"mean"`
	Std     float64   `json:"std"`
	Scores  []float64 `json:"scores,omitempty"`
}

// chunkRows bounds the rows a worker copies at once, so memory does not
// grow with the holdout.
const chunkRows = 4096

// PermutationImportance is, for each input, the baseline score minus the
// score with that input's column shuffled across rows, repeated repeats
// times with a fresh shuffle each. score sees predictions in rows order,
// is higher-is-better, and must be safe for concurrent calls. The result
// is sorted by Mean, highest first, and depends only on seed.
func PermutationImportance(ctx context.Context, m model.Model, rows []model.Row, score func(preds []model.Prediction) float64, repeats int, seed uint64) ([]Importance, error) {
	if repeats < 1 {
		return nil, fmt.Errorf("permutation importance: %d repeats, want at least 1", repeats)
	}
	if len(rows) == 0 {
		return nil, errors.New("permutation importance: no rows")
	}
	inputs := m.Inputs()
	preds := make([]model.Prediction, len(rows))
	if err := m.Predict(rows, preds); err != nil {
		return nil, fmt.Errorf("permutation importance: baseline predict: %w", err)
	}
	baseline := score(preds)

	out := make([]Importance, len(inputs))
	errs := make([]error, len(inputs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(inputs)) {
		wg.Go(func() {
			w := newPermuter(len(rows))
			for {
				j := int(next.Add(1)) - 1
				if j >= len(inputs) {
					return
				}
				// A stream per input: shuffles do not depend on scheduling.
				rng := rand.New(rand.NewPCG(seed, uint64(j)))
				scores := make([]float64, repeats)
				for r := range repeats {
					s, err := w.score(ctx, m, rows, j, rng, score)
					if err != nil {
						errs[j] = fmt.Errorf("permutation importance: input %s, repeat %d: %w", inputs[j].Name, r, err)
						break
					}
					scores[r] = baseline - s
				}
				mean, std := meanStd(scores)
				out[j] = Importance{Feature: inputs[j].Name, Mean: mean, Std: std, Scores: scores}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sortByMean(out)
	return out, nil
}

// permuter is one worker's buffers.
type permuter struct {
	perm  []int
	preds []model.Prediction
	chunk []model.Row
	flat  []model.Value // the chunk's values, reused
}

func newPermuter(n int) *permuter {
	return &permuter{perm: make([]int, n), preds: make([]model.Prediction, n)}
}

// score predicts rows with column j taken from a shuffled order of rows.
func (w *permuter) score(ctx context.Context, m model.Model, rows []model.Row, j int, rng *rand.Rand, score func([]model.Prediction) float64) (float64, error) {
	for i := range w.perm {
		w.perm[i] = i
	}
	rng.Shuffle(len(w.perm), func(a, b int) { w.perm[a], w.perm[b] = w.perm[b], w.perm[a] })
	for lo := 0; lo < len(rows); lo += chunkRows {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hi := min(lo+chunkRows, len(rows))
		w.chunk, w.flat = w.chunk[:0], w.flat[:0]
		for i := lo; i < hi; i++ {
			start := len(w.flat)
			w.flat = append(w.flat, rows[i]...)
			row := w.flat[start:len(w.flat):len(w.flat)]
			if j < len(row) && j < len(rows[w.perm[i]]) {
				row[j] = rows[w.perm[i]][j]
			}
			w.chunk = append(w.chunk, row)
		}
		if err := m.Predict(w.chunk, w.preds[lo:hi]); err != nil {
			return 0, fmt.Errorf("predict rows %d-%d: %w", lo, hi-1, err)
		}
	}
	return score(w.preds), nil
}

func meanStd(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs)))
}

// sortByMean puts the most important first; ties keep input order.
func sortByMean(imp []Importance) {
	slices.SortStableFunc(imp, func(a, b Importance) int {
		switch {
		case a.Mean > b.Mean:
			return -1
		case a.Mean < b.Mean:
			return 1
		}
		return 0
	})
}

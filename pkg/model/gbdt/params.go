package gbdt

import (
	"fmt"
	"math"
	"runtime"

	"github.com/gyreml/gyre/pkg/model/train"
)

// Params are the training hyperparameters, named as in a pipeline's
// training.params (camelCase). Their meaning follows xgboost's tree_method=hist.
type Params struct {
	// Trees is the number of boosting rounds (xgboost num_boost_round); a
	// multiclass model grows one tree per class per round.
	Trees int `json:"trees"`
	// MaxDepth bounds every tree's depth (xgboost max_depth); growth is depth-wise.
	MaxDepth int `json:"maxDepth"`
	// LearningRate shrinks every leaf (xgboost eta).
	LearningRate float64 `json:"learningRate"`
	// MinChildWeight is the least hessian sum a child may hold (min_child_weight).
	MinChildWeight float64 `json:"minChildWeight"`
	// Lambda is the L2 penalty on leaf weights (reg_lambda).
	Lambda float64 `json:"lambda"`
	// MinSplitGain prunes splits whose loss reduction is below it (gamma).
	MinSplitGain float64 `json:"minSplitGain"`
	// Subsample is the fraction of rows each round samples (subsample).
	Subsample float64 `json:"subsample"`
	// ColsampleByTree is the fraction of features each tree may split on.
	ColsampleByTree float64 `json:"colsampleByTree"`
	// EarlyStoppingRounds stops when the validation metric has not improved
	// for this many rounds and keeps the best round's trees; 0 turns it off.
	EarlyStoppingRounds int `json:"earlyStoppingRounds"`
	// MaxBins is the most histogram bins a feature gets (max_bin), at most 255;
	// missing values have a bin of their own besides these.
	MaxBins int `json:"maxBins"`
	// Seed drives the binning sample, row and feature sampling; the
	// trainer passes the pipeline's seed.
	Seed uint64 `json:"seed"`
	// Threads is how many goroutines train; 0 means GOMAXPROCS. The model
	// does not depend on it.
	Threads int `json:"threads"`
}

// DefaultParams are xgboost's defaults where xgboost has one.
func DefaultParams() Params {
	return Params{
		Trees:           100,
		MaxDepth:        6,
		LearningRate:    0.1,
		MinChildWeight:  1,
		Lambda:          1,
		MinSplitGain:    0,
		Subsample:       1,
		ColsampleByTree: 1,
		MaxBins:         255,
	}
}

// ParseParams reads params from a pipeline's training.params over the
// defaults. An unknown name or a value out of range is an error naming it.
func ParseParams(in map[string]any) (Params, error) {
	tp := train.NewParams(in)
	p := readParams(tp)
	if err := tp.Check(); err != nil {
		return Params{}, err
	}
	return p, p.Validate()
}

// readParams reads every Params field but Seed (the trainer's seed) from tp.
func readParams(tp *train.Params) Params {
	d := DefaultParams()
	return Params{
		Trees:               tp.Int("trees", d.Trees, 1, 1_000_000),
		MaxDepth:            tp.Int("maxDepth", d.MaxDepth, 1, maxDepthLimit),
		LearningRate:        tp.Float("learningRate", d.LearningRate, 0, 1),
		MinChildWeight:      tp.Float("minChildWeight", d.MinChildWeight, 0, math.MaxFloat64),
		Lambda:              tp.Float("lambda", d.Lambda, 0, math.MaxFloat64),
		MinSplitGain:        tp.Float("minSplitGain", d.MinSplitGain, 0, math.MaxFloat64),
		Subsample:           tp.Float("subsample", d.Subsample, 0, 1),
		ColsampleByTree:     tp.Float("colsampleByTree", d.ColsampleByTree, 0, 1),
		EarlyStoppingRounds: tp.Int("earlyStoppingRounds", d.EarlyStoppingRounds, 0, 1_000_000),
		MaxBins:             tp.Int("maxBins", d.MaxBins, 2, 255),
		Threads:             tp.Int("threads", d.Threads, 0, 4096),
	}
}

// Validate reports the first param out of its range, by name.
func (p Params) Validate() error {
	checks := []struct {
		name string
		ok   bool
		want string
		got  any
	}{
		{"trees", p.Trees >= 1, ">= 1", p.Trees},
		{"maxDepth", p.MaxDepth >= 1 && p.MaxDepth <= maxDepthLimit, fmt.Sprintf("in [1, %d]", maxDepthLimit), p.MaxDepth},
		{"learningRate", p.LearningRate > 0 && p.LearningRate <= 1, "in (0, 1]", p.LearningRate},
		{"minChildWeight", p.MinChildWeight >= 0, ">= 0", p.MinChildWeight},
		{"lambda", p.Lambda >= 0, ">= 0", p.Lambda},
		{"minSplitGain", p.MinSplitGain >= 0, ">= 0", p.MinSplitGain},
		{"subsample", p.Subsample > 0 && p.Subsample <= 1, "in (0, 1]", p.Subsample},
		{"colsampleByTree", p.ColsampleByTree > 0 && p.ColsampleByTree <= 1, "in (0, 1]", p.ColsampleByTree},
		{"earlyStoppingRounds", p.EarlyStoppingRounds >= 0, ">= 0", p.EarlyStoppingRounds},
		{"maxBins", p.MaxBins >= 2 && p.MaxBins <= 255, "in [2, 255]", p.MaxBins},
		{"threads", p.Threads >= 0, ">= 0", p.Threads},
	}
	for _, c := range checks {
		// NaN fails every comparison above, so it lands here too.
		if !c.ok {
			return fmt.Errorf("param %s: must be %s, got %v", c.name, c.want, c.got)
		}
	}
	return nil
}

// maxDepthLimit keeps a depth-wise tree's node count addressable and sane.
const maxDepthLimit = 20

func (p Params) threads() int {
	if p.Threads > 0 {
		return p.Threads
	}
	return runtime.GOMAXPROCS(0)
}

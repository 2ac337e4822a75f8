package gbdt

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
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
	// Seed drives the binning sample, row and feature sampling.
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
	p := DefaultParams()
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := in[name]
		var err error
		switch name {
		case "trees":
			p.Trees, err = intParam(v)
		case "maxDepth":
			p.MaxDepth, err = intParam(v)
		case "learningRate":
			p.LearningRate, err = floatParam(v)
		case "minChildWeight":
			p.MinChildWeight, err = floatParam(v)
		case "lambda":
			p.Lambda, err = floatParam(v)
		case "minSplitGain":
			p.MinSplitGain, err = floatParam(v)
		case "subsample":
			p.Subsample, err = floatParam(v)
		case "colsampleByTree":
			p.ColsampleByTree, err = floatParam(v)
		case "earlyStoppingRounds":
			p.EarlyStoppingRounds, err = intParam(v)
		case "maxBins":
			p.MaxBins, err = intParam(v)
		case "seed":
			var s int
			s, err = intParam(v)
			if err == nil && s < 0 {
				err = fmt.Errorf("must be >= 0, got %d", s)
			}
			p.Seed = uint64(s)
		case "threads":
			p.Threads, err = intParam(v)
		default:
			return Params{}, fmt.Errorf("unknown param %q (known: %s)", name, strings.Join(paramNames, ", "))
		}
		if err != nil {
			return Params{}, fmt.Errorf("param %s: %w", name, err)
		}
	}
	return p, p.Validate()
}

var paramNames = []string{"trees", "maxDepth", "learningRate", "minChildWeight", "lambda", "minSplitGain",
	"subsample", "colsampleByTree", "earlyStoppingRounds", "maxBins", "seed", "threads"}

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

// floatParam accepts the number types YAML and JSON decoders produce.
func floatParam(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case json.Number:
		return x.Float64()
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}

func intParam(v any) (int, error) {
	f, err := floatParam(v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, fmt.Errorf("want an integer, got %v", v)
	}
	return int(f), nil
}

package gbdt

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gyreml/gyre/pkg/model"
)

// Spec is one training run.
type Spec struct {
	Task model.Task
	// Classes are the class labels (classification); Dataset.Y holds
	// indexes into them. Binary needs exactly two: negative, positive.
	Classes []string
	Params  Params
}

// Train fits a model to train. valid, when given, is scored after every
// round: early stopping watches it and the model records its best score.
func Train(ctx context.Context, s Spec, train, valid *Dataset) (*Model, error) {
	p := s.Params
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkSpec(s, train, valid); err != nil {
		return nil, err
	}
	if p.EarlyStoppingRounds > 0 && valid == nil {
		return nil, fmt.Errorf("param earlyStoppingRounds: needs a validation set")
	}
	threads := p.threads()
	nf := len(train.Features)
	fb := make([]*featureBins, nf)
	parallelFor(nf, threads, func(j int) {
		// A stream per feature: the sample does not depend on scheduling.
		fb[j] = newFeatureBins(&train.Features[j], p.MaxBins, rand.New(rand.NewPCG(p.Seed, uint64(j))))
	})
	tm := binData(train, fb, true, threads)
	var vm *matrix
	if valid != nil {
		vm = binData(valid, fb, false, threads)
	}
	k := outputs(s.Task, len(s.Classes))
	obj := objective{task: s.Task, k: k}
	base := obj.baseScore(train.Y)
	margin := fill(tm.n*k, base)
	var vmargin []float64
	if vm != nil {
		vmargin = fill(vm.n*k, base)
	}

	g := newGrower(p, tm, fb)
	ghs := make([][]gpair, k)
	for c := range ghs {
		ghs[c] = make([]gpair, tm.n)
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0x6762647431))
	sample := make([]uint32, 0, tm.n)
	var inSample []bool
	if p.Subsample < 1 {
		inSample = make([]bool, tm.n)
	}
	var trees []Tree
	best, bestScore := -1, math.Inf(1)
	for round := range p.Trees {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("train round %d: %w", round, err)
		}
		obj.gradients(margin, train.Y, ghs, threads)
		sample = sampleRows(sample[:0], inSample, tm.n, p.Subsample, rng)
		sampleFeatures(g.allowed, p.ColsampleByTree, rng)
		for c := range k {
			copy(g.rows, sample)
			g.gh = ghs[c]
			nodes := g.grow(len(sample))
			g.addLeaves(nodes, margin, k, c)
			if inSample != nil {
				addBinned(nodes, tm, func(r int) bool { return !inSample[r] }, margin, k, c, threads)
			}
			if vm != nil {
				addBinned(nodes, vm, nil, vmargin, k, c, threads)
			}
			trees = append(trees, exportTree(nodes, fb))
		}
		if vm == nil {
			continue
		}
		if score := obj.loss(vmargin, valid.Y); score < bestScore {
			best, bestScore = round, score
		}
		if p.EarlyStoppingRounds > 0 && round-best >= p.EarlyStoppingRounds {
			break
		}
	}
	f := File{Format: Format, Task: s.Task, Classes: s.Classes, BaseScore: base, Trees: trees, Params: p}
	if vm != nil {
		f.Metric, f.BestScore = obj.lossName(), bestScore
		if p.EarlyStoppingRounds > 0 {
			f.Trees = trees[:(best+1)*k]
		} else {
			f.BestScore = obj.loss(vmargin, valid.Y)
		}
	}
	for j, c := range train.Features {
		f.Features = append(f.Features, Feature{Name: c.Name, Kind: c.Kind, Categories: fb[j].cats})
	}
	m := &Model{file: f}
	if err := m.prepare(); err != nil {
		return nil, fmt.Errorf("trained model: %w", err)
	}
	return m, nil
}

func checkSpec(s Spec, train, valid *Dataset) error {
	switch s.Task {
	case model.Binary:
		if len(s.Classes) != 2 {
			return fmt.Errorf("binary task needs 2 classes, got %d", len(s.Classes))
		}
	case model.Multiclass:
		if len(s.Classes) < 2 || len(s.Classes) > 1<<16 {
			return fmt.Errorf("multiclass task needs 2 or more classes, got %d", len(s.Classes))
		}
	case model.Regression:
		if len(s.Classes) != 0 {
			return fmt.Errorf("regression task takes no classes")
		}
	default:
		return fmt.Errorf("unknown task %q", s.Task)
	}
	if train == nil || train.rows() == 0 {
		return fmt.Errorf("no training rows")
	}
	if train.rows() >= math.MaxUint32 {
		return fmt.Errorf("%d training rows: at most %d", train.rows(), math.MaxUint32-1)
	}
	sets := []*Dataset{train}
	if valid != nil {
		if len(valid.Features) != len(train.Features) {
			return fmt.Errorf("validation set has %d features, training set %d", len(valid.Features), len(train.Features))
		}
		for j, c := range valid.Features {
			if t := train.Features[j]; c.Name != t.Name || c.Kind != t.Kind {
				return fmt.Errorf("validation feature %d is %s (%s), training feature %s (%s)", j, c.Name, c.Kind, t.Name, t.Kind)
			}
		}
		sets = append(sets, valid)
	}
	for i, d := range sets {
		what := []string{"training set", "validation set"}[i]
		if err := d.check(what); err != nil {
			return err
		}
		for r, y := range d.Y {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				return fmt.Errorf("%s: row %d: label %v", what, r, y)
			}
			if s.Task != model.Regression && (y != math.Trunc(y) || y < 0 || int(y) >= len(s.Classes)) {
				return fmt.Errorf("%s: row %d: label %v is not a class index below %d", what, r, y, len(s.Classes))
			}
		}
	}
	return nil
}

func fill(n int, base []float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = base[i%len(base)]
	}
	return out
}

// sampleRows draws each row with probability frac (xgboost's subsample),
// at least one.
func sampleRows(dst []uint32, in []bool, n int, frac float64, rng *rand.Rand) []uint32 {
	if frac >= 1 {
		for r := range n {
			dst = append(dst, uint32(r))
		}
		return dst
	}
	for r := range n {
		in[r] = rng.Float64() < frac
		if in[r] {
			dst = append(dst, uint32(r))
		}
	}
	if len(dst) == 0 {
		r := rng.IntN(n)
		in[r] = true
		dst = append(dst, uint32(r))
	}
	return dst
}

// sampleFeatures allows a random frac of the features (at least one).
func sampleFeatures(allowed []bool, frac float64, rng *rand.Rand) {
	n := len(allowed)
	keep := max(1, int(math.Round(frac*float64(n))))
	if frac >= 1 {
		keep = n
	}
	for j, i := range rng.Perm(n) {
		allowed[i] = j < keep
	}
}

// addLeaves adds each leaf's value to the margins of the rows it holds.
func (g *grower) addLeaves(nodes []tnode, margin []float64, k, c int) {
	var leaves []int
	for i := range nodes {
		if nodes[i].leaf() {
			leaves = append(leaves, i)
		}
	}
	parallelFor(len(leaves), g.threads, func(i int) {
		nd := &nodes[leaves[i]]
		for _, r := range g.rows[nd.begin:nd.end] {
			margin[int(r)*k+c] += nd.weight
		}
	})
}

// addBinned adds the tree's output to the margins of the rows of m that
// want it (all when want is nil), walking the tree.
func addBinned(nodes []tnode, m *matrix, want func(int) bool, margin []float64, k, c, threads int) {
	const block = 1 << 14
	parallelFor((m.n+block-1)/block, threads, func(b int) {
		for r := b * block; r < min((b+1)*block, m.n); r++ {
			if want == nil || want(r) {
				margin[r*k+c] += predictBinned(nodes, m.row(r))
			}
		}
	})
}

// exportTree turns a grown tree into the model's: bins become thresholds
// and category codes.
func exportTree(nodes []tnode, fb []*featureBins) Tree {
	t := Tree{Nodes: make([]Node, len(nodes))}
	for i := range nodes {
		nd := &nodes[i]
		out := &t.Nodes[i]
		out.Cover = nd.sum.h
		if nd.leaf() {
			out.Value = nd.weight
			continue
		}
		s := &nd.split
		out.Left, out.Right, out.Feature = nd.left, nd.right, nd.feature
		out.DefaultLeft, out.Gain = s.defaultLeft, s.gain
		f := fb[nd.feature]
		if f.kind == model.Categorical {
			for b := 1; b <= len(f.cats); b++ {
				if nd.route[b] {
					out.Categories = append(out.Categories, b-1)
				}
			}
			continue
		}
		out.Threshold = math.MaxFloat64
		if s.bin <= len(f.cuts) {
			out.Threshold = f.cuts[s.bin-1]
		}
	}
	return t
}

// objective is the loss for a task: binary logloss, softmax, or squared error.
type objective struct {
	task model.Task
	k    int
}

// baseScore starts every margin at the labels' best constant: their mean,
// its log-odds, or the log class priors.
func (o objective) baseScore(y []float64) []float64 {
	switch o.task {
	case model.Binary:
		var pos float64
		for _, v := range y {
			pos += v
		}
		p := min(max(pos/float64(len(y)), 1e-6), 1-1e-6)
		return []float64{math.Log(p / (1 - p))}
	case model.Multiclass:
		counts := make([]float64, o.k)
		for _, v := range y {
			counts[int(v)]++
		}
		base := make([]float64, o.k)
		for c := range base {
			base[c] = math.Log(max(counts[c]/float64(len(y)), 1e-6))
		}
		return base
	}
	var sum float64
	for _, v := range y {
		sum += v
	}
	return []float64{sum / float64(len(y))}
}

// minHess keeps Newton steps finite when a prediction saturates.
const minHess = 1e-16

// gradients fills gh[c][r] with the loss's derivatives at margin[r*k+c].
func (o objective) gradients(margin, y []float64, gh [][]gpair, threads int) {
	n := len(y)
	const block = 1 << 14
	parallelFor((n+block-1)/block, threads, func(b int) {
		probs := make([]float64, o.k)
		for r := b * block; r < min((b+1)*block, n); r++ {
			switch o.task {
			case model.Binary:
				p := sigmoid(margin[r])
				gh[0][r] = gpair{p - y[r], max(p*(1-p), minHess)}
			case model.Multiclass:
				softmax(margin[r*o.k:(r+1)*o.k], probs)
				for c, p := range probs {
					var t float64
					if int(y[r]) == c {
						t = 1
					}
					// xgboost's multi:softprob hessian, 2p(1-p).
					gh[c][r] = gpair{p - t, max(2*p*(1-p), minHess)}
				}
			default:
				gh[0][r] = gpair{margin[r] - y[r], 1}
			}
		}
	})
}

func (o objective) lossName() string {
	switch o.task {
	case model.Binary:
		return "logloss"
	case model.Multiclass:
		return "mlogloss"
	}
	return "rmse"
}

// loss is the validation metric: mean log loss, or RMSE for regression.
func (o objective) loss(margin, y []float64) float64 {
	const eps = 1e-15
	var sum float64
	probs := make([]float64, o.k)
	for r, v := range y {
		switch o.task {
		case model.Binary:
			p := min(max(sigmoid(margin[r]), eps), 1-eps)
			sum -= v*math.Log(p) + (1-v)*math.Log(1-p)
		case model.Multiclass:
			softmax(margin[r*o.k:(r+1)*o.k], probs)
			sum -= math.Log(max(probs[int(v)], eps))
		default:
			d := margin[r] - v
			sum += d * d
		}
	}
	if o.task == model.Regression {
		return math.Sqrt(sum / float64(len(y)))
	}
	return sum / float64(len(y))
}

package gbdt

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"unsafe"

	"github.com/gyreml/gyre/pkg/model"
)

// Column is one feature, column-wise: numeric values in F (NaN is
// missing), categorical values in S ("" is missing). Null, when set, marks
// missing values of either kind.
type Column struct {
	Name string
	Kind model.Kind
	F    []float64
	S    []string
	Null []bool
}

func (c *Column) len() int {
	if c.Kind == model.Categorical {
		return len(c.S)
	}
	return len(c.F)
}

func (c *Column) missing(i int) bool {
	if c.Null != nil && c.Null[i] {
		return true
	}
	if c.Kind == model.Categorical {
		return c.S[i] == ""
	}
	return math.IsNaN(c.F[i])
}

// Dataset is features and labels. Y is the regression target, or the class
// index (0, 1, ...) of each row for classification.
type Dataset struct {
	Features []Column
	Y        []float64
}

func (d *Dataset) rows() int { return len(d.Y) }

func (d *Dataset) check(what string) error {
	for _, c := range d.Features {
		if c.Kind != model.Numeric && c.Kind != model.Categorical {
			return fmt.Errorf("%s: feature %s: unknown kind %q", what, c.Name, c.Kind)
		}
		if c.len() != len(d.Y) || (c.Null != nil && len(c.Null) != len(d.Y)) {
			return fmt.Errorf("%s: feature %s has %d values for %d labels", what, c.Name, c.len(), len(d.Y))
		}
	}
	return nil
}

// binSample is how many values per feature the quantile cuts are computed
// from; more buys little precision for a lot of sorting.
const binSample = 200_000

// missingBin holds missing values (and categories unseen in training);
// values take bins 1..n.
const missingBin = 0

// featureBins maps one feature's values to bins.
type featureBins struct {
	kind model.Kind
	// cuts: value bin i+1 holds x <= cuts[i] (and > cuts[i-1]); the last
	// bin holds everything above the last cut.
	cuts   []float64
	padded *[256]float64 // cuts, then +Inf
	// cats: bin i+1 is category cats[i], most frequent first.
	cats  []string
	index map[string]uint8
}

func (f *featureBins) bin(c *Column, i int) uint8 {
	if c.missing(i) {
		return missingBin
	}
	if f.kind == model.Categorical {
		return f.index[c.S[i]] // unseen: 0, the missing bin
	}
	return f.numericBin(c.F[i])
}

// numericBin counts the cuts below x with a branch-free binary search over
// the cuts padded to 256 with +Inf (never below x): a data-dependent
// branch per step would mispredict half the time.
func (f *featureBins) numericBin(x float64) uint8 {
	pc := f.padded
	i := 0
	for step := 128; step > 0; step >>= 1 {
		i += step * b2i(pc[i+step-1] < x)
	}
	return uint8(i + 1)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// clampInf keeps every threshold finite (JSON has no infinities) while
// preserving order.
func clampInf(x float64) float64 {
	return max(-math.MaxFloat64, min(x, math.MaxFloat64))
}

// newFeatureBins computes the bins of one feature from (a sample of) the
// training rows.
func newFeatureBins(c *Column, maxBins int, rng *rand.Rand) *featureBins {
	n := c.len()
	pick := func(yield func(int) bool) {
		if n <= binSample {
			for i := range n {
				if !yield(i) {
					return
				}
			}
			return
		}
		for range binSample {
			if !yield(rng.IntN(n)) {
				return
			}
		}
	}
	if c.Kind == model.Categorical {
		return categoricalBins(c, maxBins, pick)
	}
	var vals []float64
	for i := range pick {
		if !c.missing(i) {
			vals = append(vals, clampInf(c.F[i]))
		}
	}
	f := &featureBins{kind: model.Numeric, cuts: quantileCuts(vals, maxBins), padded: new([256]float64)}
	for i := range f.padded {
		f.padded[i] = math.Inf(1)
	}
	copy(f.padded[:], f.cuts)
	return f
}

// quantileCuts sorts vals and places at most maxBins-1 cuts so that the bins
// hold about equal counts; with few distinct values each gets its own bin.
// Cuts sit halfway between neighbouring distinct values.
func quantileCuts(vals []float64, maxBins int) []float64 {
	slices.Sort(vals)
	type run struct {
		v float64
		n int
	}
	var runs []run
	for _, v := range vals {
		if len(runs) > 0 && runs[len(runs)-1].v == v {
			runs[len(runs)-1].n++
			continue
		}
		runs = append(runs, run{v, 1})
	}
	mid := func(a, b float64) float64 { return a/2 + b/2 }
	var cuts []float64
	if len(runs) <= maxBins {
		for i := 1; i < len(runs); i++ {
			cuts = append(cuts, mid(runs[i-1].v, runs[i].v))
		}
		return cuts
	}
	// Greedy: close a bin once it reaches its share of what is left, so a
	// heavy value does not leave the remaining bins starved.
	left, binsLeft, acc := len(vals), maxBins, 0
	for i := 0; i < len(runs)-1 && binsLeft > 1; i++ {
		acc += runs[i].n
		if float64(acc) >= float64(left)/float64(binsLeft) {
			cuts = append(cuts, mid(runs[i].v, runs[i+1].v))
			left -= acc
			acc = 0
			binsLeft--
		}
	}
	return cuts
}

// categoricalBins gives the maxBins most frequent categories a bin each, ties
// by name; rarer ones share the missing bin.
func categoricalBins(c *Column, maxBins int, pick func(func(int) bool)) *featureBins {
	counts := map[string]int{}
	for i := range pick {
		if !c.missing(i) {
			counts[c.S[i]]++
		}
	}
	cats := make([]string, 0, len(counts))
	for s := range counts {
		cats = append(cats, s)
	}
	slices.SortFunc(cats, func(a, b string) int {
		if d := cmp.Compare(counts[b], counts[a]); d != 0 {
			return d
		}
		return cmp.Compare(a, b)
	})
	if len(cats) > maxBins {
		cats = cats[:maxBins]
	}
	f := &featureBins{kind: model.Categorical, cats: cats, index: make(map[string]uint8, len(cats))}
	for i, s := range cats {
		f.index[s] = uint8(i + 1)
	}
	return f
}

func (f *featureBins) values() int {
	if f.kind == model.Categorical {
		return len(f.cats)
	}
	return len(f.cuts) + 1
}

// matrix is a binned dataset. Rows are stored row-major, each padded to
// whole words, so that a histogram reads one row's features together and a
// node's rows can be gathered a word at a time. Training sets also keep a
// column-major copy, from which partitioning reads the one feature it
// splits on.
type matrix struct {
	n, nf  int
	stride int      // bytes per row, a multiple of 8
	words  []uint64 // row r is words[r*stride/8 : (r+1)*stride/8]
	bins   []uint8  // words as bytes: feature j of row r is bins[r*stride+j]
	cols   []uint8  // feature j of row r is cols[j*n+r]; nil if not kept
}

func (m *matrix) row(r int) []uint8 { return m.bins[r*m.stride : r*m.stride+m.nf] }

// byteView is words' memory as bytes: histograms index single bins, gathers
// move whole words.
func byteView(words []uint64) []uint8 {
	if len(words) == 0 {
		return nil
	}
	return unsafe.Slice((*uint8)(unsafe.Pointer(&words[0])), len(words)*8)
}

// binData bins every row with the given feature bins, in parallel blocks.
func binData(d *Dataset, fb []*featureBins, withCols bool, threads int) *matrix {
	m := &matrix{n: d.rows(), nf: len(fb), stride: (len(fb) + 7) / 8 * 8}
	m.words = make([]uint64, m.n*m.stride/8)
	m.bins = byteView(m.words)
	if withCols {
		m.cols = make([]uint8, m.n*m.nf)
	}
	const block = 4096
	parallelFor((m.n+block-1)/block, threads, func(b int) {
		lo, hi := b*block, min((b+1)*block, m.n)
		for j := range fb {
			c := &d.Features[j]
			f := fb[j]
			for r := lo; r < hi; r++ {
				v := f.bin(c, r)
				m.bins[r*m.stride+j] = v
				if withCols {
					m.cols[j*m.n+r] = v
				}
			}
		}
	})
	return m
}

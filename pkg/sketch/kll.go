package sketch

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// DefaultKLLK is the KLL accuracy parameter profiles use. With k=200 the
// normalised rank error is below 1.65% with 99% confidence (the bound of
// Karnin, Lang and Liberty's analysis as Apache DataSketches states it);
// the tests in this package observe well under half of that.
const DefaultKLLK = 200

const (
	// kllShrink is c: each level below the top holds 2/3 of the one above.
	kllShrink = 2.0 / 3.0
	// kllMinWidth keeps low levels from compacting a handful of items at a time.
	kllMinWidth = 8
	// kllSeed starts the coin flips, so equal input gives equal sketches.
	kllSeed = 0x5eed_6c6c_6b_2024
)

// KLL is a quantile sketch (Karnin, Lang, Liberty 2016) over float64 values.
// It keeps about 3k values in levels; a value at level h stands for 2^h
// inputs. When the sketch is full, the lowest level over its capacity is
// compacted: sorted, and every other value (even or odd positions by a
// coin flip) moves up with double weight. Count, Min and Max are exact;
// ranks and quantiles carry the rank error stated at DefaultKLLK. NaN and
// ±Inf are not counted (no rank is sensible for NaN, and profiles count
// non-finite numbers as invalid).
type KLL struct {
	k        int
	n        int64
	min, max float64
	levels   [][]float64
	caps     []int
	size     int // values held across all levels
	maxSize  int // sum of caps: reaching it triggers a compaction
	rng      uint64
	scratch  []uint64 // sortFloats's, reused
}

// NewKLL returns an empty sketch with accuracy parameter k (8 to 65535;
// larger is more accurate and bigger).
func NewKLL(k int) *KLL {
	if k < kllMinWidth || k > math.MaxUint16 {
		panic(fmt.Sprintf("sketch: KLL k=%d outside [%d, %d]", k, kllMinWidth, math.MaxUint16))
	}
	s := &KLL{k: k, rng: kllSeed}
	s.grow()
	return s
}

// K returns the accuracy parameter.
func (s *KLL) K() int { return s.k }

// Count returns how many values were added.
func (s *KLL) Count() int64 { return s.n }

// Min returns the smallest value added (NaN when empty).
func (s *KLL) Min() float64 {
	if s.n == 0 {
		return math.NaN()
	}
	return s.min
}

// Max returns the largest value added (NaN when empty).
func (s *KLL) Max() float64 {
	if s.n == 0 {
		return math.NaN()
	}
	return s.max
}

// Update adds x.
func (s *KLL) Update(x float64) {
	if !s.counted(x, 1) {
		return
	}
	s.levels[0] = append(s.levels[0], x)
	s.size++
	if s.size >= s.maxSize {
		s.compress()
	}
}

// counted reports whether x is finite (else it is not counted), and counts
// it n times in the count, minimum and maximum.
func (s *KLL) counted(x float64, n int64) bool {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return false
	}
	if s.n == 0 || x < s.min {
		s.min = x
	}
	if s.n == 0 || x > s.max {
		s.max = x
	}
	s.n += n
	return true
}

// UpdateAll adds every value of xs, with the guarantees of Update. The
// values go to level 0 together, to be sorted there at once by radix
// (sortFloats): with a few hundred values at a time, that costs a third of
// sorting them a dozen at a time as Update's compactions do.
func (s *KLL) UpdateAll(xs []float64) {
	lv := s.levels[0]
	for _, x := range xs {
		if s.counted(x, 1) {
			lv = append(lv, x)
		}
	}
	s.size += len(lv) - len(s.levels[0])
	s.levels[0] = lv
	for s.size >= s.maxSize {
		s.compress()
	}
}

// UpdateN adds x n times. A value at level h weighs 2^h, so n becomes its
// binary weights: one x at the level of each of n's set bits (kept sorted
// above level 0), with the total weight exactly n, at the cost of one
// update per bit.
func (s *KLL) UpdateN(x float64, n int64) {
	if n <= 0 || !s.counted(x, n) {
		return
	}
	for h := 0; n > 0; h, n = h+1, n>>1 {
		if n&1 == 0 {
			continue
		}
		for h >= len(s.levels) {
			s.grow()
		}
		lv := s.levels[h]
		if h == 0 {
			lv = append(lv, x)
		} else {
			i := sort.SearchFloat64s(lv, x)
			lv = slices.Insert(lv, i, x)
		}
		s.levels[h] = lv
		s.size++
	}
	for s.size >= s.maxSize {
		s.compress()
	}
}

// grow adds a level on top; every level's capacity shrinks geometrically
// with its distance from the top.
func (s *KLL) grow() {
	s.levels = append(s.levels, nil)
	s.caps = s.caps[:0]
	s.maxSize = 0
	top := len(s.levels) - 1
	for h := range s.levels {
		c := max(kllMinWidth, int(math.Ceil(float64(s.k)*math.Pow(kllShrink, float64(top-h)))))
		s.caps = append(s.caps, c)
		s.maxSize += c
	}
}

// compress compacts the lowest full levels until the sketch fits again.
// Compacting lazily (only when the whole sketch is full) keeps levels as
// large as possible, which is what makes the error small.
func (s *KLL) compress() {
	for h := 0; h < len(s.levels); h++ {
		if len(s.levels[h]) < s.caps[h] {
			continue
		}
		if h+1 == len(s.levels) {
			s.grow()
		}
		s.compact(h)
		if s.size < s.maxSize {
			return
		}
	}
}

// compact moves every other value of level h (even or odd positions by a
// coin flip) up to level h+1 with double weight; with an odd count the
// smallest value stays behind, keeping the total weight exact. Levels above
// 0 are kept sorted, so only level 0 is ever sorted and moving up is a
// linear merge.
func (s *KLL) compact(h int) {
	lv := s.levels[h]
	if h == 0 {
		s.scratch = sortFloats(lv, s.scratch)
	}
	keep := len(lv) % 2
	n := 0
	for i := keep + int(splitmix64(&s.rng)&1); i < len(lv); i += 2 {
		lv[keep+n] = lv[i] // writes never pass reads: keep+n ≤ i
		n++
	}
	s.levels[h+1] = mergeSorted(s.levels[h+1], lv[keep:keep+n])
	s.size -= n
	s.levels[h] = lv[:keep]
}

// mergeSorted merges sorted b into sorted a, from the back, so a's own
// spare capacity is the only buffer needed.
func mergeSorted(a, b []float64) []float64 {
	i, j := len(a)-1, len(b)-1
	a = append(a, b...)
	for k := len(a) - 1; j >= 0; k-- {
		if i >= 0 && a[i] > b[j] {
			a[k] = a[i]
			i--
		} else {
			a[k] = b[j]
			j--
		}
	}
	return a
}

// Merge folds o into s; both must have the same k.
func (s *KLL) Merge(o *KLL) error {
	if o.k != s.k {
		return fmt.Errorf("merge kll: k=%d and k=%d", s.k, o.k)
	}
	if o.n == 0 {
		return nil
	}
	if o == s {
		o = o.Clone()
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.n == 0 || o.max > s.max {
		s.max = o.max
	}
	s.n += o.n
	for len(s.levels) < len(o.levels) {
		s.grow()
	}
	for h, lv := range o.levels {
		if h == 0 {
			s.levels[h] = append(s.levels[h], lv...)
		} else {
			s.levels[h] = mergeSorted(s.levels[h], lv)
		}
		s.size += len(lv)
	}
	for s.size >= s.maxSize {
		s.compress()
	}
	return nil
}

// Clone returns an independent copy.
func (s *KLL) Clone() *KLL {
	c := *s
	c.levels = make([][]float64, len(s.levels))
	for h, lv := range s.levels {
		c.levels[h] = slices.Clone(lv)
	}
	c.caps = slices.Clone(s.caps)
	c.scratch = nil
	return &c
}

// Quantile returns the estimated q-quantile (0 ≤ q ≤ 1): the smallest value
// whose estimated rank reaches q·Count. Quantile(0) is Min and Quantile(1)
// Max, exactly. NaN when the sketch is empty.
func (s *KLL) Quantile(q float64) float64 { return s.Sorted().Quantile(q) }

// Rank returns the estimated number of values ≤ x.
func (s *KLL) Rank(x float64) int64 { return s.Sorted().Rank(x) }

// CDF returns the estimated fraction of values ≤ x (0 when empty).
func (s *KLL) CDF(x float64) float64 { return s.Sorted().CDF(x) }

// Sorted returns the sketch's values sorted with their cumulative weights,
// for answering many queries with one sort. It does not change s and stays
// valid (as a snapshot) when s changes later.
func (s *KLL) Sorted() *SortedView {
	v := &SortedView{n: s.n, min: s.min, max: s.max}
	type item struct {
		x float64
		w int64
	}
	items := make([]item, 0, s.size)
	for h, lv := range s.levels {
		for _, x := range lv {
			items = append(items, item{x, 1 << h})
		}
	}
	slices.SortFunc(items, func(a, b item) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
	v.values = make([]float64, 0, len(items))
	v.cum = make([]int64, 0, len(items))
	var cum int64
	for _, it := range items {
		cum += it.w
		if n := len(v.values); n > 0 && v.values[n-1] == it.x {
			v.cum[n-1] = cum
			continue
		}
		v.values = append(v.values, it.x)
		v.cum = append(v.cum, cum)
	}
	return v
}

// SortedView answers rank and quantile queries on a KLL snapshot.
type SortedView struct {
	n        int64
	min, max float64
	values   []float64 // distinct, ascending
	cum      []int64   // cum[i]: estimated number of inputs ≤ values[i]
}

// Count returns the number of values summarised.
func (v *SortedView) Count() int64 { return v.n }

// Values returns the distinct retained values, ascending, and for each the
// estimated number of inputs ≤ it (the last is Count). Callers must not
// modify them. They are the steps of the estimated CDF, e.g. for a
// Kolmogorov-Smirnov statistic between two sketches.
func (v *SortedView) Values() (values []float64, cumulative []int64) { return v.values, v.cum }

// Quantile is KLL.Quantile on the snapshot.
func (v *SortedView) Quantile(q float64) float64 {
	switch {
	case v.n == 0 || math.IsNaN(q):
		return math.NaN()
	case q <= 0:
		return v.min
	case q >= 1:
		return v.max
	}
	target := q * float64(v.n)
	i := sort.Search(len(v.cum), func(i int) bool { return float64(v.cum[i]) >= target })
	if i == len(v.cum) {
		return v.max
	}
	return v.values[i]
}

// Rank is KLL.Rank on the snapshot.
func (v *SortedView) Rank(x float64) int64 {
	switch {
	case v.n == 0 || x < v.min:
		return 0
	case x >= v.max:
		return v.n
	}
	// Index of the first value > x; everything before it is ≤ x.
	i := sort.Search(len(v.values), func(i int) bool { return v.values[i] > x })
	if i == 0 {
		return 0
	}
	return v.cum[i-1]
}

// CDF is KLL.CDF on the snapshot.
func (v *SortedView) CDF(x float64) float64 {
	if v.n == 0 {
		return 0
	}
	return float64(v.Rank(x)) / float64(v.n)
}

// MarshalBinary encodes the whole state, coin included: a decoded sketch
// continues exactly as the saved one would have.
func (s *KLL) MarshalBinary() ([]byte, error) {
	w := newWriter(tagKLL)
	w.uvarint(uint64(s.k))
	w.uvarint(uint64(s.n))
	w.float(s.min)
	w.float(s.max)
	w.uint64(s.rng)
	w.uvarint(uint64(len(s.levels)))
	for _, lv := range s.levels {
		w.uvarint(uint64(len(lv)))
		for _, x := range lv {
			w.float(x)
		}
	}
	return w.buf, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (s *KLL) UnmarshalBinary(data []byte) error {
	r, err := newReader(data, tagKLL, "kll")
	if err != nil {
		return err
	}
	k := r.uvarint()
	if r.err == nil && (k < kllMinWidth || k > math.MaxUint16) {
		return fmt.Errorf("decode kll: k=%d out of range", k)
	}
	n := r.uvarint()
	lo, hi, rng := r.float(), r.float(), r.uint64()
	numLevels := r.count(1)
	if r.err == nil && (numLevels == 0 || numLevels > 63) {
		r.fail(fmt.Errorf("%d levels", numLevels))
	}
	if r.err == nil && n > 0 && !(lo <= hi && !math.IsInf(lo, 0) && !math.IsInf(hi, 0)) {
		r.fail(fmt.Errorf("min %g and max %g", lo, hi))
	}
	d := &KLL{k: int(k), n: int64(n), min: lo, max: hi, rng: rng}
	var weight uint64
	for h := 0; h < numLevels && r.err == nil; h++ {
		lv := make([]float64, r.count(8))
		for i := range lv {
			lv[i] = r.float()
			if math.IsNaN(lv[i]) || math.IsInf(lv[i], 0) || (h > 0 && i > 0 && lv[i] < lv[i-1]) {
				r.fail(fmt.Errorf("level %d is not sorted finite values", h))
				break
			}
		}
		d.grow()
		d.levels[h] = lv
		d.size += len(lv)
		weight += uint64(len(lv)) << h
	}
	if r.err == nil && (weight != n || n > math.MaxInt64) {
		r.fail(fmt.Errorf("levels weigh %d, count is %d", weight, n))
	}
	if err := r.done("kll"); err != nil {
		return err
	}
	*s = *d
	return nil
}

// MarshalJSON is the binary form in base64.
func (s *KLL) MarshalJSON() ([]byte, error) { return marshalBase64(s.MarshalBinary()) }

// UnmarshalJSON decodes what MarshalJSON wrote.
func (s *KLL) UnmarshalJSON(js []byte) error {
	data, err := unmarshalBase64(js, "kll")
	if err != nil {
		return err
	}
	return s.UnmarshalBinary(data)
}

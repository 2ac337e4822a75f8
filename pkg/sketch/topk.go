package sketch

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// TopK finds the most frequent values of a stream: Misra-Gries with
// reduce-by-median purges, as in Apache DataSketches' frequent-items sketch.
// It counts values in up to capacity counters; when a new value finds them
// all taken, the median count is subtracted from every counter, the counters
// that reach zero are dropped (at least half), and the median is added to
// the sketch's offset. Each update is one hash-table probe; purges cost
// O(capacity) but free half the table, so they are O(1) amortised.
//
// Bounds, for N values added and capacity C: a tracked value's true count
// lies in [Count-Error, Count], and an untracked value occurred at most
// MaxError times, where Error = MaxError = the offset, which is 0 until the
// first purge and never above 2N/C. So every value occurring more than 2N/C
// times is tracked. Merging keeps these bounds for the combined stream.
//
// The state is a set of (value, count) pairs plus the offset, independent
// of insertion layout, so equal input gives equal sketches and encodings.
type TopK struct {
	capacity int
	n        int64 // values added
	offset   int64 // total subtracted by purges: the error bound
	live     int   // occupied slots
	// slots is an open-addressing hash table (linear probing, load ≤ 1/2);
	// count 0 marks an empty slot. Deletions only happen in purge, which
	// rebuilds the table, so no tombstones are needed.
	slots []slot
	mask  uint64
	// scratch buffers for purge, kept to avoid allocating per purge.
	counts   []int64
	survived []slot
}

type slot struct {
	value string
	hash  uint64
	count int64
}

// Counter is one tracked value: its true count lies in [Count-Error, Count].
type Counter struct {
	Value string
	Count int64
	Error int64
}

// maxTopKCapacity bounds the counters (and what a decoder will allocate).
const maxTopKCapacity = 1 << 16

// NewTopK returns an empty summary with room for capacity values (2 to
// 65536).
func NewTopK(capacity int) *TopK {
	if capacity < 2 || capacity > maxTopKCapacity {
		panic(fmt.Sprintf("sketch: TopK capacity %d outside [2, %d]", capacity, maxTopKCapacity))
	}
	size := 4
	for size < 2*capacity {
		size *= 2
	}
	return &TopK{capacity: capacity, slots: make([]slot, size), mask: uint64(size - 1)}
}

// Capacity returns the number of counters.
func (t *TopK) Capacity() int { return t.capacity }

// Count returns how many values were added (N).
func (t *TopK) Count() int64 { return t.n }

// Len returns how many values are tracked.
func (t *TopK) Len() int { return t.live }

// Exact reports whether the counts are exact: no purge has happened, so
// every value added is tracked with its true count.
func (t *TopK) Exact() bool { return t.offset == 0 }

// MaxError returns the most any count can be off by, and the most times an
// untracked value can have occurred: 0 while Exact, never above 2N/C.
func (t *TopK) MaxError() int64 { return t.offset }

// Add counts one occurrence of v. The summary keeps v itself (no copy), so
// only pass strings that are not modified later.
func (t *TopK) Add(v string) { t.add(v, HashString(v), 1) }

// AddN counts n occurrences of v, as n calls of Add would.
func (t *TopK) AddN(v string, n int64) {
	if n > 0 {
		t.add(v, HashString(v), n)
	}
}

func (t *TopK) add(v string, h uint64, w int64) {
	t.n += w
	s := t.find(v, h)
	if t.slots[s].count > 0 {
		t.slots[s].count += w
		return
	}
	if t.live == t.capacity {
		// Purging only decrements counters and drops, so the new value
		// enters counted in full afterwards; DataSketches does the same.
		t.purge()
		s = t.find(v, h)
	}
	// A copy: v may be a slice of a much larger string (a block of a
	// file), which the sketch must not keep alive.
	t.slots[s] = slot{value: strings.Clone(v), hash: h, count: w}
	t.live++
}

// find returns v's slot, or the empty slot where v would go.
func (t *TopK) find(v string, h uint64) uint64 {
	s := h & t.mask
	for {
		e := &t.slots[s]
		if e.count == 0 || (e.hash == h && e.value == v) {
			return s
		}
		s = (s + 1) & t.mask
	}
}

// purge subtracts the median count from every counter and drops those
// left at zero or below: at least half, since half are at most the median.
func (t *TopK) purge() {
	t.counts = t.counts[:0]
	for i := range t.slots {
		if c := t.slots[i].count; c > 0 {
			t.counts = append(t.counts, c)
		}
	}
	median := nthSmallest(t.counts, len(t.counts)/2)
	t.survived = t.survived[:0]
	for i := range t.slots {
		if e := t.slots[i]; e.count > median {
			e.count -= median
			t.survived = append(t.survived, e)
		}
	}
	clear(t.slots)
	t.live = 0
	for _, e := range t.survived {
		t.slots[t.find(e.value, e.hash)] = e
		t.live++
	}
	clear(t.survived) // drop references to value strings
	t.offset += median
}

// nthSmallest returns the k-th smallest of a (0-based), reordering a
// (Hoare's quickselect with a median-of-three pivot: deterministic).
func nthSmallest(a []int64, k int) int64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// Get returns the counter of v, if v is tracked.
func (t *TopK) Get(v string) (Counter, bool) {
	e := &t.slots[t.find(v, HashString(v))]
	if e.count == 0 {
		return Counter{}, false
	}
	return Counter{Value: v, Count: e.count + t.offset, Error: t.offset}, true
}

// Top returns up to n counters, largest count first (ties by value), or all
// of them when n ≤ 0.
func (t *TopK) Top(n int) []Counter {
	out := make([]Counter, 0, t.live)
	for i := range t.slots {
		if e := &t.slots[i]; e.count > 0 {
			out = append(out, Counter{Value: e.value, Count: e.count + t.offset, Error: t.offset})
		}
	}
	slices.SortFunc(out, func(a, b Counter) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	if n > 0 && n < len(out) {
		out = out[:n]
	}
	return out
}

// Merge folds o into t, keeping t's capacity: o's counters are added as
// weighted updates (in o's Top order, so the result does not depend on
// o's table layout) and the offsets add up.
func (t *TopK) Merge(o *TopK) {
	if o == t {
		o = o.Clone()
	}
	n := t.n + o.n
	for _, c := range o.Top(0) {
		t.add(c.Value, HashString(c.Value), c.Count-c.Error)
	}
	t.n = n
	t.offset += o.offset
}

// Clone returns an independent copy.
func (t *TopK) Clone() *TopK {
	c := *t
	c.slots = slices.Clone(t.slots)
	c.counts, c.survived = nil, nil
	return &c
}

// MarshalBinary encodes the counters in Top order: the encoding depends
// only on the state, not on how the table happens to be laid out.
func (t *TopK) MarshalBinary() ([]byte, error) {
	w := newWriter(tagTopK)
	w.uvarint(uint64(t.capacity))
	w.uvarint(uint64(t.n))
	w.uvarint(uint64(t.offset))
	top := t.Top(0)
	w.uvarint(uint64(len(top)))
	for _, c := range top {
		w.string(c.Value)
		w.uvarint(uint64(c.Count - c.Error))
	}
	return w.buf, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (t *TopK) UnmarshalBinary(data []byte) error {
	r, err := newReader(data, tagTopK, "topk")
	if err != nil {
		return err
	}
	capacity := r.uvarint()
	n, offset := r.uvarint(), r.uvarint()
	size := r.count(2)
	if r.err != nil {
		return r.done("topk")
	}
	if capacity < 2 || capacity > maxTopKCapacity || uint64(size) > capacity {
		return fmt.Errorf("decode topk: %d counters for capacity %d", size, capacity)
	}
	if n > 1<<62 || offset > n {
		return fmt.Errorf("decode topk: offset %d for count %d", offset, n)
	}
	d := NewTopK(int(capacity))
	d.n, d.offset = int64(n), int64(offset)
	var total uint64
	for i := 0; i < size && r.err == nil; i++ {
		v, c := r.string(), r.uvarint()
		h := HashString(v)
		s := d.find(v, h)
		if r.err == nil && (c == 0 || c > n || d.slots[s].count != 0) {
			r.fail(fmt.Errorf("counter %d is zero, too large or a repeat", i))
			break
		}
		d.slots[s] = slot{value: v, hash: h, count: int64(c)}
		d.live++
		total += c
	}
	if r.err == nil && total > n {
		r.fail(fmt.Errorf("counters sum to %d, above the count %d", total, n))
	}
	if err := r.done("topk"); err != nil {
		return err
	}
	*t = *d
	return nil
}

// MarshalJSON is the binary form in base64.
func (t *TopK) MarshalJSON() ([]byte, error) { return marshalBase64(t.MarshalBinary()) }

// UnmarshalJSON decodes what MarshalJSON wrote.
func (t *TopK) UnmarshalJSON(js []byte) error {
	data, err := unmarshalBase64(js, "topk")
	if err != nil {
		return err
	}
	return t.UnmarshalBinary(data)
}

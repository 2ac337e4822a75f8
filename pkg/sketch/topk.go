package sketch

import (
	"cmp"
	"fmt"
	"slices"
)

// TopK finds the most frequent values of a stream with SpaceSaving
// (Metwally, Agrawal, El Abbadi 2005) in a fixed number of counters.
//
// Bounds, for N values added and capacity C: every value occurring more
// than N/C times holds a counter; a counter's Count is never below the
// value's true count and exceeds it by at most its Error, which is at most
// N/C. Until more than C distinct values arrive the counts are exact
// (Error 0). Merging keeps these bounds for the combined stream (the
// parallel SpaceSaving merge of Cafaro, Pulimeno and Tempesta 2016).
type TopK struct {
	capacity int
	n        int64
	index    map[string]*counter
	heap     []*counter // min-heap by count: heap[0] is the next to evict
}

type counter struct {
	value      string
	count, err int64
	pos        int // index in heap
}

// Counter is one tracked value: Count is an upper bound on its occurrences
// and Count-Error a lower bound.
type Counter struct {
	Value string
	Count int64
	Error int64
}

// NewTopK returns an empty summary with room for capacity values.
func NewTopK(capacity int) *TopK {
	if capacity < 1 {
		panic(fmt.Sprintf("sketch: TopK capacity %d < 1", capacity))
	}
	return &TopK{capacity: capacity, index: make(map[string]*counter, capacity)}
}

// Capacity returns the number of counters.
func (t *TopK) Capacity() int { return t.capacity }

// Count returns how many values were added (N).
func (t *TopK) Count() int64 { return t.n }

// Len returns how many values are tracked.
func (t *TopK) Len() int { return len(t.heap) }

// Exact reports whether every count is exact: no value was ever evicted.
func (t *TopK) Exact() bool {
	for _, c := range t.heap {
		if c.err != 0 {
			return false
		}
	}
	return true
}

// MaxError returns the largest possible overcount of any value, tracked or
// not: 0 until the counters fill up, then the smallest count, which is at
// most N/capacity.
func (t *TopK) MaxError() int64 {
	if len(t.heap) < t.capacity {
		return 0
	}
	return t.heap[0].count
}

// Add counts one occurrence of v. The summary keeps v itself (no copy), so
// only pass strings that are not modified later.
func (t *TopK) Add(v string) {
	t.n++
	if c, ok := t.index[v]; ok {
		c.count++
		t.down(c.pos)
		return
	}
	if len(t.heap) < t.capacity {
		c := &counter{value: v, count: 1, pos: len(t.heap)}
		t.heap = append(t.heap, c)
		t.index[v] = c
		t.up(c.pos)
		return
	}
	// Evict the smallest counter; the newcomer inherits its count as error.
	c := t.heap[0]
	delete(t.index, c.value)
	c.value, c.err = v, c.count
	c.count++
	t.index[v] = c
	t.down(0)
}

// Get returns the counter of v, if v is tracked.
func (t *TopK) Get(v string) (Counter, bool) {
	c, ok := t.index[v]
	if !ok {
		return Counter{}, false
	}
	return Counter{Value: c.value, Count: c.count, Error: c.err}, true
}

// Top returns up to n counters, largest count first (ties by value), or all
// of them when n ≤ 0.
func (t *TopK) Top(n int) []Counter {
	out := make([]Counter, len(t.heap))
	for i, c := range t.heap {
		out[i] = Counter{Value: c.value, Count: c.count, Error: c.err}
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

// Merge folds o into t, keeping t's capacity. A value tracked on one side
// only is charged the other side's MaxError (it may have been evicted
// there), so counts stay upper bounds.
func (t *TopK) Merge(o *TopK) {
	tMiss, oMiss := t.MaxError(), o.MaxError()
	merged := make([]Counter, 0, len(t.heap)+len(o.heap))
	for _, c := range t.heap {
		m := Counter{Value: c.value, Count: c.count, Error: c.err}
		if oc, ok := o.index[c.value]; ok {
			m.Count += oc.count
			m.Error += oc.err
		} else {
			m.Count += oMiss
			m.Error += oMiss
		}
		merged = append(merged, m)
	}
	for _, oc := range o.heap {
		if _, ok := t.index[oc.value]; !ok {
			merged = append(merged, Counter{Value: oc.value, Count: oc.count + tMiss, Error: oc.err + tMiss})
		}
	}
	slices.SortFunc(merged, func(a, b Counter) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	if len(merged) > t.capacity {
		merged = merged[:t.capacity]
	}
	t.n += o.n
	t.rebuild(merged)
}

// rebuild replaces the counters; the input order becomes the heap order
// after heapifying, so equal inputs give equal heaps.
func (t *TopK) rebuild(cs []Counter) {
	t.heap = make([]*counter, len(cs))
	t.index = make(map[string]*counter, t.capacity)
	for i, c := range cs {
		t.heap[i] = &counter{value: c.Value, count: c.Count, err: c.Error, pos: i}
		t.index[c.Value] = t.heap[i]
	}
	for i := len(t.heap)/2 - 1; i >= 0; i-- {
		t.down(i)
	}
}

// Clone returns an independent copy.
func (t *TopK) Clone() *TopK {
	c := &TopK{capacity: t.capacity, n: t.n}
	cs := make([]Counter, len(t.heap))
	for i, h := range t.heap {
		cs[i] = Counter{Value: h.value, Count: h.count, Error: h.err}
	}
	c.rebuild(cs) // already a heap, so the order is kept
	return c
}

func (t *TopK) less(i, j int) bool { return t.heap[i].count < t.heap[j].count }

func (t *TopK) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.heap[i].pos = i
	t.heap[j].pos = j
}

func (t *TopK) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !t.less(i, parent) {
			return
		}
		t.swap(i, parent)
		i = parent
	}
}

func (t *TopK) down(i int) {
	n := len(t.heap)
	for {
		small := i
		if l := 2*i + 1; l < n && t.less(l, small) {
			small = l
		}
		if r := 2*i + 2; r < n && t.less(r, small) {
			small = r
		}
		if small == i {
			return
		}
		t.swap(i, small)
		i = small
	}
}

// MarshalBinary encodes the counters in heap order, so a decoded summary
// evicts exactly as the saved one would have.
func (t *TopK) MarshalBinary() ([]byte, error) {
	w := newWriter(tagTopK)
	w.uvarint(uint64(t.capacity))
	w.uvarint(uint64(t.n))
	w.uvarint(uint64(len(t.heap)))
	for _, c := range t.heap {
		w.string(c.value)
		w.uvarint(uint64(c.count))
		w.uvarint(uint64(c.err))
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
	n := r.uvarint()
	size := r.count(3)
	if r.err == nil && (capacity < 1 || uint64(size) > capacity || capacity > 1<<24) {
		return fmt.Errorf("decode topk: %d counters for capacity %d", size, capacity)
	}
	cs := make([]Counter, size)
	seen := make(map[string]bool, size)
	var total uint64
	for i := range cs {
		cs[i] = Counter{Value: r.string(), Count: int64(r.uvarint()), Error: int64(r.uvarint())}
		if r.err != nil {
			break
		}
		if seen[cs[i].Value] || cs[i].Count < 1 || cs[i].Error >= cs[i].Count {
			r.fail(fmt.Errorf("counter %d is invalid", i))
			break
		}
		seen[cs[i].Value] = true
		total += uint64(cs[i].Count - cs[i].Error)
	}
	if r.err == nil && total > n {
		r.fail(fmt.Errorf("counters exceed the count %d", n))
	}
	if err := r.done("topk"); err != nil {
		return err
	}
	d := &TopK{capacity: int(capacity), n: int64(n)}
	d.rebuild(cs)
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

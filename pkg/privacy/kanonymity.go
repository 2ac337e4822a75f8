package privacy

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
)

// MaxClasses bounds the memory of a KAnonymity (48 to 96 bytes a class):
// rows of combinations first seen after this many are counted as Untracked.
const MaxClasses = 1 << 21

// KAnonymity counts the equivalence classes of a stream of rows over the
// quasi-identifier columns: rows with the same values in all of them.
type KAnonymity struct {
	idx []int
	// A class is known by a 128-bit hash of its values, never the values:
	// memory stays per class, and a collision (odds about n²/2¹²⁹) merges two.
	// With ObserveHashColumns the values are known by the caller's 64-bit
	// hashes, so two of a column's d values merge with odds about d²/2⁶⁵.
	seed1, seed2 maphash.Seed
	key          []byte      // the row's encoded values (Observe), reused
	pending      [][2]uint64 // hashes of rows not yet counted
	lanes        [2]uint64   // ObserveHashColumns' random starts
	classes      classTable
	maxClasses   int
	rows         int64
	untracked    int64
}

// NewKAnonymity returns a KAnonymity for rows with these columns.
func NewKAnonymity(columns []string, quasiIdentifiers []string) (*KAnonymity, error) {
	if len(quasiIdentifiers) == 0 {
		return nil, errors.New("k-anonymity: no quasi-identifiers")
	}
	k := &KAnonymity{maxClasses: MaxClasses, pending: make([][2]uint64, 0, 256)}
	k.seed1, k.seed2 = maphash.MakeSeed(), maphash.MakeSeed()
	k.lanes = [2]uint64{maphash.Comparable(k.seed1, 1), maphash.Comparable(k.seed2, 2)}
	for _, qi := range quasiIdentifiers {
		i := slices.Index(columns, qi)
		if i < 0 {
			return nil, fmt.Errorf("k-anonymity: quasi-identifier %q is not a column of the data", qi)
		}
		if slices.Contains(k.idx, i) {
			return nil, fmt.Errorf("k-anonymity: quasi-identifier %q given twice", qi)
		}
		k.idx = append(k.idx, i)
	}
	return k, nil
}

// Observe counts one row. A null quasi-identifier is a value of its own,
// distinct from the empty string.
func (k *KAnonymity) Observe(values []string, null []bool) {
	k.rows++
	k.key = k.key[:0]
	for _, i := range k.idx {
		v, isNull := "", i >= len(values) || (i < len(null) && null[i])
		if !isNull {
			v = values[i]
		}
		// Length-prefixed so ("ab", "c") and ("a", "bc") differ.
		notNull := byte(0)
		if !isNull {
			notNull = 1
		}
		k.key = append(k.key, notNull)
		k.key = binary.LittleEndian.AppendUint64(k.key, uint64(len(v)))
		k.key = append(k.key, v...)
	}
	// Hashed whole: much cheaper than streaming small writes into a Hash.
	k.pending = append(k.pending, [2]uint64{maphash.Bytes(k.seed1, k.key), maphash.Bytes(k.seed2, k.key)})
	if len(k.pending) == cap(k.pending) {
		k.flush()
	}
}

// Columns returns the header indexes of the quasi-identifiers, in order.
func (k *KAnonymity) Columns() []int { return k.idx }

// ObserveHashColumns counts rows given, for each quasi-identifier in the
// order of Columns, a 64-bit hash of its value in each row (any hash, the
// same for the whole stream) and whether it is null: hashes[q][i] is
// quasi-identifier q's in row i. It is Observe for a caller that has the
// hashes already, a column at a time; a stream uses one or the other.
func (k *KAnonymity) ObserveHashColumns(hashes [][]uint64, null [][]bool) {
	if len(hashes) == 0 {
		return
	}
	for start, n := 0, len(hashes[0]); start < n; {
		// The rows' class hashes go straight into pending, a column at a
		// time: two lanes of a 64-bit mixer from random starts. The values
		// are hashes already, so mixing them is enough, and far cheaper
		// than hashing their bytes.
		m := min(n-start, cap(k.pending)-len(k.pending))
		lanes := k.pending[len(k.pending) : len(k.pending)+m]
		for i := range lanes {
			lanes[i] = k.lanes
		}
		for q := range hashes {
			hq, nq := hashes[q][start:start+m], null[q][start:start+m]
			for i := range lanes {
				h := hq[i]
				if nq[i] {
					h = nullHash
				}
				lanes[i] = [2]uint64{mix64(lanes[i][0] ^ h), mix64(lanes[i][1] + h)}
			}
		}
		k.pending = k.pending[:len(k.pending)+m]
		k.rows += int64(m)
		start += m
		if len(k.pending) == cap(k.pending) {
			k.flush()
		}
	}
}

// nullHash stands for a null quasi-identifier in ObserveHashColumns.
const nullHash = 0x6e756c6c_6e756c6c

// mix64 is SplitMix64's finalizer: every input bit flips about half the
// output bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// flush counts the pending rows. Looking classes up many at a time lets the
// processor wait on several cache misses at once, where one lookup per row
// waits on each in turn.
func (k *KAnonymity) flush() {
	for _, h := range k.pending {
		if c := k.classes.find(h[0], h[1], k.classes.n < k.maxClasses); c != nil {
			c.rows++
		} else {
			k.untracked++
		}
	}
	k.pending = k.pending[:0]
}

// classTable counts rows per class: open addressing with linear probing in
// one flat slice, so a row costs one cache miss where a Go map costs more
// (with a hundred thousand classes the table no longer fits in cache, and
// the misses are most of k-anonymity's cost).
type classTable struct {
	slots []classSlot // len a power of two; rows == 0 marks a free slot
	n     int
}

type classSlot struct {
	h1, h2 uint64
	rows   int64
}

// find returns the class with this hash, adding it when add is set (nil
// when it is new and add is not).
func (t *classTable) find(h1, h2 uint64, add bool) *classSlot {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h1 & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		switch {
		case s.rows == 0:
			if !add {
				return nil
			}
			s.h1, s.h2 = h1, h2
			t.n++
			return s
		case s.h1 == h1 && s.h2 == h2:
			return s
		}
	}
}

// grow doubles the table (keeping it at most half full).
func (t *classTable) grow() {
	old := t.slots
	t.slots = make([]classSlot, max(1024, 2*len(old)))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.rows == 0 {
			continue
		}
		i := s.h1 & mask
		for t.slots[i].rows != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// KResult summarises the equivalence classes. It holds counts only.
type KResult struct {
	Rows    int64 `json:"rows"`
	Classes int64 `json:"classes"`
	// SmallestClass is the size of the smallest class: the data is
	// k-anonymous for every k up to it. Zero when there are no rows.
	SmallestClass int64 `json:"smallestClass"`
	// Untracked counts rows that came after MaxClasses distinct
	// combinations; when non-zero the data is treated as failing.
	Untracked int64 `json:"untracked,omitempty"`

	sizes []classSize // ascending by size
}

type classSize struct{ size, classes int64 }

// Result summarises the rows observed so far.
func (k *KAnonymity) Result() KResult {
	k.flush()
	bySize := map[int64]int64{}
	for _, s := range k.classes.slots {
		if s.rows > 0 {
			bySize[s.rows]++
		}
	}
	r := KResult{Rows: k.rows, Classes: int64(k.classes.n), Untracked: k.untracked}
	for size, classes := range bySize {
		r.sizes = append(r.sizes, classSize{size, classes})
	}
	slices.SortFunc(r.sizes, func(a, b classSize) int { return cmp.Compare(a.size, b.size) })
	if len(r.sizes) > 0 {
		r.SmallestClass = r.sizes[0].size
	}
	return r
}

// ClassesBelow counts the classes with fewer than k rows.
func (r KResult) ClassesBelow(k int) int64 {
	var n int64
	for _, s := range r.sizes {
		if s.size < int64(k) {
			n += s.classes
		}
	}
	return n
}

// RowsBelow counts the rows in classes with fewer than k rows: the rows that
// would have to be suppressed or generalised to reach k.
func (r KResult) RowsBelow(k int) int64 {
	var n int64
	for _, s := range r.sizes {
		if s.size < int64(k) {
			n += s.size * s.classes
		}
	}
	return n
}

// Satisfies reports whether every class has at least k rows.
func (r KResult) Satisfies(k int) bool {
	return r.Untracked == 0 && (r.Classes == 0 || r.SmallestClass >= int64(k))
}

package privacy

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
)

// MaxClasses bounds the memory of a KAnonymity (about 40 bytes a class):
// rows of combinations first seen after this many are counted as Untracked.
const MaxClasses = 1 << 21

// KAnonymity counts the equivalence classes of a stream of rows over the
// quasi-identifier columns: rows with the same values in all of them.
type KAnonymity struct {
	idx []int
	// A class is known by a 128-bit hash of its values, never the values:
	// memory stays per class, and a collision (odds about n²/2¹²⁹) merges two.
	seed1, seed2 maphash.Seed
	key          []byte // the row's encoded values, reused
	classes      map[[2]uint64]int64
	maxClasses   int
	rows         int64
	untracked    int64
}

// NewKAnonymity returns a KAnonymity for rows with these columns.
func NewKAnonymity(columns []string, quasiIdentifiers []string) (*KAnonymity, error) {
	if len(quasiIdentifiers) == 0 {
		return nil, errors.New("k-anonymity: no quasi-identifiers")
	}
	k := &KAnonymity{classes: map[[2]uint64]int64{}, maxClasses: MaxClasses}
	k.seed1, k.seed2 = maphash.MakeSeed(), maphash.MakeSeed()
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
	key := [2]uint64{maphash.Bytes(k.seed1, k.key), maphash.Bytes(k.seed2, k.key)}
	if len(k.classes) < k.maxClasses {
		k.classes[key]++ // one map operation where two would do the same
		return
	}
	if n, ok := k.classes[key]; ok {
		k.classes[key] = n + 1
		return
	}
	k.untracked++
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
	bySize := map[int64]int64{}
	for _, n := range k.classes {
		bySize[n]++
	}
	r := KResult{Rows: k.rows, Classes: int64(len(k.classes)), Untracked: k.untracked}
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

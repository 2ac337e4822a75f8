package table

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/internal/parallel"
)

// SplitSpec says how a table's rows are split into train and holdout.
type SplitSpec struct {
	// Holdout is the share of rows held out, in [0, 1).
	Holdout float64 `json:"holdout"`
	Seed    uint64  `json:"seed"`
	// Stratify holds out the same share of every class of Target.
	Stratify bool   `json:"stratify"`
	Target   string `json:"target,omitempty"`
}

// Split divides the rows of t into train and holdout, each in ascending
// row order. Where a row goes depends on its content (every value of every
// column, in column order), the seed, and for a stratified split on the
// other rows of its class; never on its position, so the same dataset
// version and spec give the same split on any machine, and identical rows
// land on the same side unless a class quota splits them.
//
// Unstratified, a row is held out when its seeded content hash, read as a
// number in [0, 1), is below Holdout: its side does not depend on the other
// rows, so a row keeps its side in every later dataset version that holds
// it. The holdout share is Holdout up to sampling noise.
//
// Stratified, the rows of each class of Target (a missing target is a class
// of its own) are ordered by the same hash (then by row, for identical
// rows) and the first round(Holdout × class size) are held out: every
// class's holdout count is within half a row of its exact share.
func Split(t *Table, s SplitSpec) (train, holdout []int, err error) {
	if !(s.Holdout >= 0 && s.Holdout < 1) {
		return nil, nil, fmt.Errorf("split: holdout must be in [0, 1), got %v", s.Holdout)
	}
	var target *Column
	if s.Stratify {
		if s.Target == "" {
			return nil, nil, errors.New("split: a stratified split needs a target column")
		}
		c, ok := t.Column(s.Target)
		if !ok {
			return nil, nil, fmt.Errorf("split: no target column %q", s.Target)
		}
		target = c
	}
	hashes := RowHashes(t, s.Seed)
	held := make([]bool, t.Rows)
	if target == nil {
		// The top 53 bits as a float in [0, 1), exactly.
		for i, h := range hashes {
			held[i] = float64(h>>11)/(1<<53) < s.Holdout
		}
	} else {
		classes := make(map[string][]int)
		for i := range t.Rows {
			key := "\x00" // missing: a class no text value can be
			if !target.Null[i] {
				key = "=" + target.Text(i)
			}
			classes[key] = append(classes[key], i)
		}
		for _, rows := range classes {
			slices.SortFunc(rows, func(a, b int) int {
				return cmp.Or(cmp.Compare(hashes[a], hashes[b]), cmp.Compare(a, b))
			})
			n := int(math.Round(s.Holdout * float64(len(rows))))
			for _, i := range rows[:n] {
				held[i] = true
			}
		}
	}
	for i, h := range held {
		if h {
			holdout = append(holdout, i)
		} else {
			train = append(train, i)
		}
	}
	return train, holdout, nil
}

// RowHashes is the seeded 64-bit hash of each row's content that Split
// uses: FNV-1a over every column in order (a missing value, a number's
// IEEE 754 bits with -0 as 0, or a string's length and bytes), finished
// with the splitmix64 mixer.
func RowHashes(t *Table, seed uint64) []uint64 {
	out := make([]uint64, t.Rows)
	parallel.Chunks(t.Rows, 8192, func(_, lo, hi int) {
		var buf []byte
		for i := lo; i < hi; i++ {
			buf = binary.LittleEndian.AppendUint64(buf[:0], seed)
			for _, c := range t.Columns {
				switch {
				case c.Null[i]:
					buf = append(buf, 0)
				case c.Kind == model.Categorical:
					buf = append(buf, 2)
					buf = binary.LittleEndian.AppendUint64(buf, uint64(len(c.S[i])))
					buf = append(buf, c.S[i]...)
				default:
					f := c.F[i]
					if f == 0 {
						f = 0 // -0 is 0
					}
					buf = append(buf, 1)
					buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(f))
				}
			}
			out[i] = mix(fnv1a(buf) ^ seed)
		}
	})
	return out
}

func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, x := range b {
		h ^= uint64(x)
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finaliser: FNV's low bits are weak, and Split reads
// the high ones.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// TrainHoldout is the split a pipeline's training makes and its evaluation
// rebuilds: stratified by the target only when the target is categorical
// (a numeric target has no classes to balance).
func TrainHoldout(t *Table, target string, holdout float64, seed uint64, stratify bool) (train, held []int, err error) {
	if c, ok := t.Column(target); !ok || c.Kind != model.Categorical {
		stratify = false
	}
	return Split(t, SplitSpec{Holdout: holdout, Seed: seed, Stratify: stratify, Target: target})
}

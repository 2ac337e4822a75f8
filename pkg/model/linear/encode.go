package linear

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/internal/parallel"
	"github.com/gyreml/gyre/pkg/model/table"
)

// Feature is the preprocessing of one input, as stored in the bundle.
// Weight slots: each numeric input has one, in input order, starting at 0;
// then each categorical input has one per category and one for "other",
// from Offset on.
type Feature struct {
	Name string     `json:"name"`
	Kind model.Kind `json:"kind"`
	// Offset is the input's first weight slot.
	Offset int `json:"offset"`
	// Mean and Std standardise a numeric input: z = (x - Mean) / Std; a
	// missing value is imputed with Mean (z = 0).
	Mean float64 `json:"mean,omitempty"`
	Std  float64 `json:"std,omitempty"`
	// Categories are a categorical input's one-hot slots, most frequent in
	// training first; any other value takes the slot after them ("other"),
	// and a missing value takes none.
	Categories []string `json:"categories,omitempty"`
}

// encoder turns model rows into weight slots and standardised values.
type encoder struct {
	features []Feature
	// numeric and categorical index features by kind, in input order.
	numeric, categorical []int
	index                []map[string]int32 // per feature; nil for numeric
	dim                  int
}

func newEncoder(features []Feature) (*encoder, error) {
	e := &encoder{features: features, index: make([]map[string]int32, len(features))}
	for j, f := range features {
		switch f.Kind {
		case model.Numeric:
			if f.Offset != len(e.numeric) || !(f.Std > 0) || math.IsInf(f.Mean, 0) || math.IsNaN(f.Mean) {
				return nil, fmt.Errorf("feature %s: bad offset or standardisation", f.Name)
			}
			e.numeric = append(e.numeric, j)
		case model.Categorical:
			e.categorical = append(e.categorical, j)
			e.index[j] = make(map[string]int32, len(f.Categories))
			for k, c := range f.Categories {
				e.index[j][c] = int32(k)
			}
		default:
			return nil, fmt.Errorf("feature %s: unknown kind %q", f.Name, f.Kind)
		}
	}
	e.dim = len(e.numeric)
	for _, j := range e.categorical {
		f := features[j]
		if f.Offset != e.dim {
			return nil, fmt.Errorf("feature %s: offset %d, want %d", f.Name, f.Offset, e.dim)
		}
		e.dim += len(f.Categories) + 1
	}
	return e, nil
}

// slot is the weight slot of categorical feature j's value, -1 when
// missing.
func (e *encoder) slot(j int, v model.Value) int32 {
	if v.Null || v.S == "" {
		return -1
	}
	f := &e.features[j]
	k, ok := e.index[j][v.S]
	if !ok {
		k = int32(len(f.Categories)) // other
	}
	return int32(f.Offset) + k
}

func (e *encoder) z(j int, v model.Value) float64 {
	if v.Null || math.IsNaN(v.F) {
		return 0
	}
	f := &e.features[j]
	return (v.F - f.Mean) / f.Std
}

// design is encoded training rows: the standardised numeric values
// row-major (dense), and the weight slot of each categorical value (-1:
// missing).
type design struct {
	n, nn, nc int
	dense     []float64
	cats      []int32
}

// fitFeatures computes each input's preprocessing from the train rows.
func fitFeatures(t *table.Table, rows []int, inputs []model.Input, maxCategories int) []Feature {
	features := make([]Feature, len(inputs))
	offset := 0
	for j, in := range inputs {
		features[j] = Feature{Name: in.Name, Kind: in.Kind}
		if in.Kind == model.Numeric {
			c, _ := t.Column(in.Name)
			features[j].Mean, features[j].Std = standardisation(c, rows)
			features[j].Offset = offset
			offset++
		}
	}
	for j, in := range inputs {
		if in.Kind == model.Categorical {
			c, _ := t.Column(in.Name)
			features[j].Categories = vocabulary(c, rows, maxCategories)
			features[j].Offset = offset
			offset += len(features[j].Categories) + 1
		}
	}
	return features
}

// standardisation is the mean and population standard deviation of the
// non-missing values (1 when they are all equal or there are none, as
// scikit-learn's StandardScaler does).
func standardisation(c *table.Column, rows []int) (mean, std float64) {
	var n int
	for _, i := range rows {
		if !c.Null[i] {
			mean += c.F[i]
			n++
		}
	}
	if n == 0 {
		return 0, 1
	}
	mean /= float64(n)
	var ss float64
	for _, i := range rows {
		if !c.Null[i] {
			d := c.F[i] - mean
			ss += d * d
		}
	}
	std = math.Sqrt(ss / float64(n))
	if !(std > 0) || math.IsInf(std, 0) || math.IsInf(mean, 0) {
		return mean, 1
	}
	return mean, std
}

// vocabulary is the most frequent values, at most limit, ties broken by
// value so the order is deterministic.
func vocabulary(c *table.Column, rows []int, limit int) []string {
	counts := make(map[string]int)
	for _, i := range rows {
		if !c.Null[i] {
			counts[c.Text(i)]++
		}
	}
	vocab := make([]string, 0, len(counts))
	for v := range counts {
		vocab = append(vocab, v)
	}
	slices.SortFunc(vocab, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	return vocab[:min(len(vocab), limit)]
}

// encodeTable builds the design of the given rows.
func (e *encoder) encodeTable(t *table.Table, rows []int) *design {
	d := &design{n: len(rows), nn: len(e.numeric), nc: len(e.categorical)}
	d.dense = make([]float64, d.n*d.nn)
	d.cats = make([]int32, d.n*d.nc)
	cols := make([]*table.Column, len(e.features))
	for j, f := range e.features {
		cols[j], _ = t.Column(f.Name)
	}
	parallel.Chunks(d.n, 4096, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			i := rows[r]
			for k, j := range e.numeric {
				d.dense[r*d.nn+k] = e.z(j, cols[j].Value(i, model.Numeric))
			}
			for k, j := range e.categorical {
				d.cats[r*d.nc+k] = e.slot(j, cols[j].Value(i, model.Categorical))
			}
		}
	})
	return d
}

// encodeRow fills dense (len nn) and cats (len nc) for one model row.
func (e *encoder) encodeRow(row model.Row, dense []float64, cats []int32) {
	for k, j := range e.numeric {
		dense[k] = e.z(j, row[j])
	}
	for k, j := range e.categorical {
		cats[k] = e.slot(j, row[j])
	}
}

// dot is w · x for one encoded row, w's intercept excluded.
func dot(w []float64, dense []float64, cats []int32) float64 {
	var s float64
	for k, x := range dense {
		s += w[k] * x
	}
	for _, c := range cats {
		if c >= 0 {
			s += w[c]
		}
	}
	return s
}

// Package profile builds a dataset profile in one streaming pass: per
// column, counts, a distinct estimate, moments, quantiles, a histogram and
// the most frequent values, backed by the mergeable sketches of
// pkg/sketch. A Profile serialises to JSON with its sketch state, so it can
// be stored as an artifact, merged with the profile of more data later, and
// used as the reference that drift (PSI, Jensen-Shannon) is measured from.
//
// docs/profiles.md describes what a profile holds and its error bounds.
package profile

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/gyreml/gyre/pkg/sketch"
)

// ColumnKind says how a column's values are read and summarised.
type ColumnKind string

// Column kinds.
const (
	Numeric     ColumnKind = "numeric"     // strconv.ParseFloat; NaN and ±Inf are invalid
	Categorical ColumnKind = "categorical" // any string
	Bool        ColumnKind = "bool"        // ParseBool
	Timestamp   ColumnKind = "timestamp"   // ParseTimestamp, summarised as Unix seconds
)

// Valid reports whether k is one of the column kinds.
func (k ColumnKind) Valid() bool {
	switch k {
	case Numeric, Categorical, Bool, Timestamp:
		return true
	}
	return false
}

// ordered reports whether values of kind k have quantiles (numeric, timestamp).
func (k ColumnKind) ordered() bool { return k == Numeric || k == Timestamp }

// Sizes of a profile's summaries.
const (
	HistogramBins = 20  // equal-width bins between min and max
	TopKCapacity  = 512 // counters per categorical column
	TopKShown     = 20  // values listed in ColumnProfile.TopK
)

// quantileLevels are the quantiles a profile lists, by key.
var quantileLevels = []struct {
	key string
	q   float64
}{
	{"p01", 0.01}, {"p05", 0.05}, {"p25", 0.25}, {"p50", 0.50},
	{"p75", 0.75}, {"p95", 0.95}, {"p99", 0.99},
}

// Profile summarises a dataset, column by column.
type Profile struct {
	Rows    int64            `json:"rows"`
	Columns []*ColumnProfile `json:"columns"`
}

// ColumnProfile summarises one column. Every row is counted once in Count
// (valid values), Nulls or Invalid (values that do not parse as the kind).
// The summary fields are derived from Sketches, which is the state that
// merges; the summaries are recomputed on every merge.
type ColumnProfile struct {
	Name    string     `json:"name"`
	Kind    ColumnKind `json:"kind"`
	Count   int64      `json:"count"`
	Nulls   int64      `json:"nulls"`
	Invalid int64      `json:"invalid"`
	// Distinct is exact for bool columns and for categorical columns that
	// never had more than TopKCapacity values, else a HyperLogLog estimate.
	Distinct int64 `json:"distinct"`
	// Min, Max, Mean and Std (sample, n-1) are exact, for numeric and
	// timestamp columns (Unix seconds) with values; Std needs two values.
	Min  *float64 `json:"min,omitempty"`
	Max  *float64 `json:"max,omitempty"`
	Mean *float64 `json:"mean,omitempty"`
	Std  *float64 `json:"std,omitempty"`
	// Quantiles p01, p05, p25, p50, p75, p95, p99 from the KLL sketch.
	Quantiles map[string]float64 `json:"quantiles,omitempty"`
	// Histogram has HistogramBins equal-width bins from Min to Max; counts
	// come from the KLL sketch's ranks and sum to Count.
	Histogram []Bin `json:"histogram,omitempty"`
	// TopK lists the TopKShown most frequent values of categorical and
	// bool columns, most frequent first.
	TopK     []ValueCount `json:"topK,omitempty"`
	Sketches Sketches     `json:"sketches,omitzero"`
}

// Bin is one histogram bin. The first holds [Lower, Upper], the others
// (Lower, Upper].
type Bin struct {
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	Count int64   `json:"count"`
}

// ValueCount is a frequent value: its true count lies in [Count-Error,
// Count]. Error is 0 while the column never had more than TopKCapacity
// distinct values, and at most 2·Count/TopKCapacity of the column after.
type ValueCount struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
	Error int64  `json:"error,omitempty"`
}

// Sketches is a column's mergeable state. Which are set depends on the kind:
// numeric and timestamp have Moments, Quantiles and Distinct; categorical
// has TopK and Distinct; bool has TopK.
type Sketches struct {
	Moments   *sketch.Moments `json:"moments,omitempty"`
	Quantiles *sketch.KLL     `json:"quantiles,omitempty"`
	Distinct  *sketch.HLL     `json:"distinct,omitempty"`
	TopK      *sketch.TopK    `json:"topK,omitempty"`
}

func newSketches(kind ColumnKind) Sketches {
	switch kind {
	case Numeric, Timestamp:
		return Sketches{Moments: &sketch.Moments{}, Quantiles: sketch.NewKLL(sketch.DefaultKLLK), Distinct: sketch.NewHLL()}
	case Categorical:
		return Sketches{TopK: sketch.NewTopK(TopKCapacity), Distinct: sketch.NewHLL()}
	case Bool:
		return Sketches{TopK: sketch.NewTopK(2)}
	}
	panic(fmt.Sprintf("profile: unknown column kind %q", kind))
}

// check reports a sketch a column of this kind needs but lacks (a profile
// decoded from JSON written by hand, say).
func (s Sketches) check(kind ColumnKind) error {
	want := newSketches(kind)
	switch {
	case want.Moments != nil && s.Moments == nil:
		return fmt.Errorf("no moments sketch")
	case want.Quantiles != nil && s.Quantiles == nil:
		return fmt.Errorf("no quantile sketch")
	case want.Distinct != nil && s.Distinct == nil:
		return fmt.Errorf("no distinct-count sketch")
	case want.TopK != nil && s.TopK == nil:
		return fmt.Errorf("no top-k sketch")
	}
	return nil
}

func (s Sketches) clone() Sketches {
	var c Sketches
	if s.Moments != nil {
		c.Moments = s.Moments.Clone()
	}
	if s.Quantiles != nil {
		c.Quantiles = s.Quantiles.Clone()
	}
	if s.Distinct != nil {
		c.Distinct = s.Distinct.Clone()
	}
	if s.TopK != nil {
		c.TopK = s.TopK.Clone()
	}
	return c
}

// merge folds o into s; both passed check for the same kind.
func (s Sketches) merge(o Sketches) error {
	if s.Moments != nil {
		s.Moments.Merge(o.Moments)
	}
	if s.Quantiles != nil {
		if err := s.Quantiles.Merge(o.Quantiles); err != nil {
			return err
		}
	}
	if s.Distinct != nil {
		s.Distinct.Merge(o.Distinct)
	}
	if s.TopK != nil {
		s.TopK.Merge(o.TopK)
	}
	return nil
}

// Summary returns a copy of p without the sketches: the readable part, a
// few KiB, for a database row or an API response. It cannot be merged or
// used for drift.
func (p *Profile) Summary() *Profile {
	out := &Profile{Rows: p.Rows, Columns: make([]*ColumnProfile, len(p.Columns))}
	for i, c := range p.Columns {
		s := *c
		s.Quantiles = maps.Clone(c.Quantiles)
		s.Histogram = slices.Clone(c.Histogram)
		s.TopK = slices.Clone(c.TopK)
		s.Sketches = Sketches{}
		out.Columns[i] = &s
	}
	return out
}

// Column returns the column named name, or nil.
func (p *Profile) Column(name string) *ColumnProfile {
	for _, c := range p.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Merge folds o, the profile of more rows with the same columns, into p, so
// that p profiles both. Columns are matched by name, in any order; a column
// on one side only, or of another kind, is an error naming it, and then p
// is left unchanged.
func (p *Profile) Merge(o *Profile) error {
	var problems []string
	for _, c := range p.Columns {
		switch oc := o.Column(c.Name); {
		case oc == nil:
			problems = append(problems, fmt.Sprintf("column %q missing from the other profile", c.Name))
		case oc.Kind != c.Kind:
			problems = append(problems, fmt.Sprintf("column %q is %s here and %s in the other profile", c.Name, c.Kind, oc.Kind))
		}
	}
	for _, oc := range o.Columns {
		if p.Column(oc.Name) == nil {
			problems = append(problems, fmt.Sprintf("column %q missing from this profile", oc.Name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("merge profiles: %s", strings.Join(problems, "; "))
	}
	merged := make([]ColumnProfile, len(p.Columns))
	for i, c := range p.Columns {
		oc := o.Column(c.Name)
		if err := c.Sketches.check(c.Kind); err != nil {
			return fmt.Errorf("merge profiles: column %q: %w", c.Name, err)
		}
		if err := oc.Sketches.check(oc.Kind); err != nil {
			return fmt.Errorf("merge profiles: other column %q: %w", c.Name, err)
		}
		m := ColumnProfile{
			Name: c.Name, Kind: c.Kind,
			Count: c.Count + oc.Count, Nulls: c.Nulls + oc.Nulls, Invalid: c.Invalid + oc.Invalid,
			Sketches: c.Sketches.clone(),
		}
		if err := m.Sketches.merge(oc.Sketches); err != nil {
			return fmt.Errorf("merge profiles: column %q: %w", c.Name, err)
		}
		m.summarize()
		merged[i] = m
	}
	p.Rows += o.Rows
	for i, c := range p.Columns {
		*c = merged[i]
	}
	return nil
}

// summarize derives the summary fields from the sketches.
func (c *ColumnProfile) summarize() {
	c.Distinct, c.Min, c.Max, c.Mean, c.Std = 0, nil, nil, nil, nil
	c.Quantiles, c.Histogram, c.TopK = nil, nil, nil
	s := c.Sketches
	switch {
	case c.Kind == Bool:
		c.Distinct = int64(s.TopK.Len())
	case c.Kind == Categorical && s.TopK.Exact():
		// Never purged, so every value seen has a counter.
		c.Distinct = int64(s.TopK.Len())
	default:
		c.Distinct = min(s.Distinct.Estimate(), c.Count)
	}
	if s.TopK != nil {
		for _, v := range s.TopK.Top(TopKShown) {
			c.TopK = append(c.TopK, ValueCount{Value: v.Value, Count: v.Count, Error: v.Error})
		}
	}
	if !c.Kind.ordered() || s.Moments.Count() == 0 {
		return
	}
	m := s.Moments
	c.Min, c.Max, c.Mean = ptr(m.Min()), ptr(m.Max()), ptr(m.Mean())
	if m.Count() >= 2 {
		c.Std = ptr(math.Sqrt(m.SampleVariance()))
	}
	view := s.Quantiles.Sorted()
	c.Quantiles = make(map[string]float64, len(quantileLevels))
	for _, l := range quantileLevels {
		c.Quantiles[l.key] = view.Quantile(l.q)
	}
	c.Histogram = histogram(view, m.Min(), m.Max())
}

// histogram cuts [lo, hi] into HistogramBins equal widths and counts each
// bin as the difference of the sketch's ranks at its edges, so the counts
// are whole and sum to the sketch's count.
func histogram(view *sketch.SortedView, lo, hi float64) []Bin {
	n := view.Count()
	if lo == hi {
		return []Bin{{Lower: lo, Upper: hi, Count: n}}
	}
	bins := make([]Bin, HistogramBins)
	var prev int64
	lower := lo
	for i := range bins {
		upper := lo + (hi-lo)*float64(i+1)/HistogramBins
		if i == HistogramBins-1 {
			upper = hi
		}
		rank := view.Rank(upper)
		bins[i] = Bin{Lower: lower, Upper: upper, Count: rank - prev}
		prev, lower = rank, upper
	}
	return bins
}

func ptr(x float64) *float64 { return &x }

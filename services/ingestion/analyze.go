package ingestion

import (
	"slices"
	"sync/atomic"

	"github.com/gyreml/gyre/pkg/privacy"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/quality"
	"github.com/gyreml/gyre/pkg/tabular"
)

// batchRows is how many records travel together from the parser to the
// observers: big enough to make the hand-over cheap, small enough to keep
// memory flat.
const batchRows = 512

// profileSampleRows is how many records are held back, when the schema is
// not known in advance, to decide how to profile each column.
const profileSampleRows = 1000

// batch holds copies of the slices of batchRows records (the strings
// themselves outlive the reader's next call, so are shared). Both observer
// goroutines read it; the last one done recycles it.
type batch struct {
	recs    []tabular.Record
	values  []string
	null    []bool
	readers atomic.Int32
}

func newBatch(cols int) *batch {
	return &batch{recs: make([]tabular.Record, 0, batchRows), values: make([]string, batchRows*cols), null: make([]bool, batchRows*cols)}
}

func (b *batch) add(rec tabular.Record) {
	i, n := len(b.recs), len(rec.Values)
	v, nl := b.values[i*n:(i+1)*n:(i+1)*n], b.null[i*n:(i+1)*n:(i+1)*n]
	copy(v, rec.Values)
	copy(nl, rec.Null)
	b.recs = append(b.recs, tabular.Record{Row: rec.Row, Line: rec.Line, Values: v, Null: nl})
}

// observers are what pass 1 computes over every record, on two goroutines
// beside the parser: the checks (observe) and the profile (observeProfile),
// about equal in cost.
type observers struct {
	header   []string
	inferrer *tabular.Inferrer
	checker  *quality.Checker
	scanner  *privacy.Scanner
	kanon    *privacy.KAnonymity
	// profiler starts once the column kinds are known: from the expected
	// schema, or from the first profileSampleRows records.
	profiler *profile.Profiler
	kinds    []profile.ColumnKind
	sample   []tabular.Record
	sampled  *tabular.Inferrer
}

func (o *observers) observe(rec tabular.Record) {
	o.inferrer.Observe(rec.Values, rec.Null)
	o.checker.Observe(rec)
	o.scanner.Observe(rec.Row, rec.Values, rec.Null)
	if o.kanon != nil {
		o.kanon.Observe(rec.Values, rec.Null)
	}
}

func (o *observers) observeProfile(rec tabular.Record) {
	if o.profiler != nil {
		o.profiler.Observe(rec.Values, rec.Null)
		return
	}
	if o.sampled == nil {
		o.sampled = tabular.NewInferrer(o.header)
	}
	o.sampled.Observe(rec.Values, rec.Null)
	// The batch is recycled after this call: keep copies.
	rec.Values, rec.Null = slices.Clone(rec.Values), slices.Clone(rec.Null)
	o.sample = append(o.sample, rec)
	if len(o.sample) == profileSampleRows {
		o.startProfile(o.sampled.Schema())
	}
}

func (o *observers) startProfile(s tabular.Schema) {
	o.kinds = profileKinds(o.header, s)
	o.profiler = profile.NewProfiler(columnSpecs(o.header, o.kinds))
	for _, rec := range o.sample {
		o.profiler.Observe(rec.Values, rec.Null)
	}
	o.sample = nil
}

// profile is the profile of every record, or nil when the final schema
// profiles a column differently than the sample suggested (a value late in
// the file was not a number after all): then pass 2 profiles again.
func (o *observers) profile(final tabular.Schema) *profile.Profile {
	if o.profiler == nil {
		o.startProfile(final)
	}
	for i, k := range profileKinds(o.header, final) {
		if o.kinds[i] != k {
			return nil
		}
	}
	return o.profiler.Profile()
}

func profileKinds(header []string, schema tabular.Schema) []profile.ColumnKind {
	kinds := make([]profile.ColumnKind, len(header))
	for i, name := range header {
		kinds[i] = profile.Categorical
		if c, ok := schema.Column(name); ok {
			switch c.Type {
			case tabular.Int, tabular.Float:
				kinds[i] = profile.Numeric
			case tabular.Bool:
				kinds[i] = profile.Bool
			case tabular.Timestamp:
				kinds[i] = profile.Timestamp
			}
		}
	}
	return kinds
}

func columnSpecs(header []string, kinds []profile.ColumnKind) []profile.ColumnSpec {
	specs := make([]profile.ColumnSpec, len(header))
	for i, name := range header {
		specs[i] = profile.ColumnSpec{Name: name, Kind: kinds[i]}
	}
	return specs
}

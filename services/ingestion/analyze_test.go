package ingestion

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/privacy"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/quality"
	"github.com/gyreml/gyre/pkg/tabular"
)

// Pass 1 remembers distinct values, checks each once and profiles them with
// their counts, on two workers that rebalance columns as they go. It must
// report what checking every record in turn reports: the same schema, rule
// results (rows included), privacy findings and k-anonymity; the same
// profile counts, distinct values and moments, and quantiles within the
// sketch's error. The data makes columns overflow their dictionaries, hold
// repeated offending values, nulls and empty strings, and change type late.
func TestPassOneMatchesCheckingRecordByRecord(t *testing.T) {
	header := []string{"id", "age", "segment", "email", "zip3", "sex", "late", "note", "amount", "first_name"}
	rng := rand.New(rand.NewPCG(3, 4))
	var records []tabular.Record
	for i := range 70_000 { // more than rebalanceEvery batches
		row := []string{
			strconv.Itoa(i),                            // unique: goes raw
			strconv.Itoa(10 + rng.IntN(100)),           // a few out of the rule's range
			[]string{"a", "b", "c", "zz"}[rng.IntN(4)], // zz not allowed
			"",                                // mostly empty
			fmt.Sprintf("%03d", rng.IntN(40)), // quasi-identifier
			[]string{"f", "m"}[rng.IntN(2)],   // quasi-identifier
			strconv.Itoa(rng.IntN(3)),         // an int column...
			[]string{"ok", "call 555-867-5309", ""}[rng.IntN(3)],
			strconv.FormatFloat(rng.NormFloat64()*100, 'f', 2, 64), // overflows its dictionary
			[]string{"Ana", "Rui", "Eva"}[rng.IntN(3)],             // named like personal data
		}
		null := make([]bool, len(header))
		if i%97 == 0 {
			null[1], null[4] = true, true
		}
		if i%13 == 0 {
			row[3] = fmt.Sprintf("user%d@example.com", i%50) // repeated personal data
		}
		if i == 65_000 {
			row[6] = "n/a" // ... until a value late in the file is not a number
		}
		if i == 40_000 || i == 40_001 {
			row[8] = "1e308" // in one batch, numbers whose sum overflows
		}
		records = append(records, tabular.Record{Row: int64(i + 1), Line: int64(i + 2), Values: row, Null: null})
	}
	v := pipeline.Validation{
		Rules: []pipeline.Rule{
			{Column: "age", Min: ptr(18.0), Max: ptr(100.0), NotNull: true},
			{Column: "segment", Allowed: []string{"a", "b", "c"}},
			{Column: "zip3", Unique: true},
			{Column: "note", Regex: "^[a-z ]*$"},
			{MinRows: 10},
		},
		Privacy: pipeline.Privacy{Detect: []string{"email", "phone", "name_hint"}, QuasiIdentifiers: []string{"zip3", "sex"}},
	}

	expected := tabular.Schema{Columns: []tabular.SchemaColumn{
		{Name: "id", Type: tabular.Int}, {Name: "age", Type: tabular.Int, Nullable: true}, {Name: "segment", Type: tabular.Category},
		{Name: "email", Type: tabular.String}, {Name: "zip3", Type: tabular.Int, Nullable: true}, {Name: "sex", Type: tabular.Category},
		{Name: "late", Type: tabular.Int}, {Name: "note", Type: tabular.String}, {Name: "amount", Type: tabular.Float},
		{Name: "first_name", Type: tabular.Category},
	}}
	for _, c := range []struct {
		name             string
		limit, byteLimit int
		expected         tabular.Schema
	}{
		// amount overflows; zip3, age and the rest do not.
		{"amount raw", 2000, 1 << 20, tabular.Schema{}},
		// zip3 (unique, a quasi-identifier) and the mostly empty email go raw too.
		{"low limit", 30, 1 << 20, tabular.Schema{}},
		// Every column with more than a few bytes of distinct values goes raw.
		{"byte limit", 2000, 64, tabular.Schema{}},
		// Kinds come from the declared schema, which late and id break.
		{"expected schema", 30, 1 << 20, expected},
	} {
		for _, workers := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s, %d workers", c.name, workers), func(t *testing.T) {
				comparePassOne(t, header, records, v, c.expected, c.limit, c.byteLimit, workers)
			})
		}
	}
}

// comparePassOne runs pass 1's checks over records with these dictionary
// limits, and compares what they report with checking every record in turn.
// The records go through pass 1 as an upload's do: written as CSV, read a
// batch at a time into batches that are read into again once checked.
func comparePassOne(t *testing.T, header []string, records []tabular.Record, v pipeline.Validation, expected tabular.Schema, limit, byteLimit, workers int) {
	cs, err := newPassOneChecks(header, v, expected)
	if err != nil {
		t.Fatal(err)
	}
	cs.workers, cs.barrier.parties = workers, workers
	cs.limit, cs.byteLimit = limit, byteLimit
	var upload, spool bytes.Buffer
	w := tabular.NewCSVWriter(&upload, header)
	for _, r := range records {
		if err := w.Write(r.Values, r.Null); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	canonical := slices.Clone(upload.Bytes())
	reader, err := tabular.NewReader(&upload, tabular.CSV, tabular.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := tabular.NewCSVWriter(&spool, header)
	if rows, err := cs.run(reader, out); err != nil || rows != int64(len(records)) {
		t.Fatalf("pass 1 read %d rows: %v", rows, err)
	}
	if err := out.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spool.Bytes(), canonical) {
		t.Fatal("the spool is not the records' canonical CSV")
	}

	// The reference: every check over every record, in turn.
	inferrer := tabular.NewInferrer(header)
	checker, err := quality.NewChecker(header, expected, v.Rules)
	if err != nil {
		t.Fatal(err)
	}
	scanner, err := privacy.NewScanner(header, privacy.Config{Detect: v.Privacy.Detect})
	if err != nil {
		t.Fatal(err)
	}
	kanon, err := privacy.NewKAnonymity(header, v.Privacy.QuasiIdentifiers)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		inferrer.Observe(r.Values, r.Null)
		checker.Observe(r)
		scanner.Observe(r.Row, r.Values, r.Null)
		kanon.Observe(r.Values, r.Null)
	}

	schema := cs.inferred()
	if want := inferrer.Schema(); !reflect.DeepEqual(schema, want) {
		t.Fatalf("schema\n got %+v\nwant %+v", schema, want)
	}
	if got, want := cs.checker.Report(), checker.Report(); !reflect.DeepEqual(got, want) {
		t.Fatalf("rules\n got %+v\nwant %+v", got, want)
	}
	if got, want := cs.findings(), scanner.Findings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("findings\n got %+v\nwant %+v", got, want)
	}
	if got, want := cs.kanon.Result(), kanon.Result(); got.Rows != want.Rows || got.Classes != want.Classes ||
		got.SmallestClass != want.SmallestClass || got.RowsBelow(50) != want.RowsBelow(50) {
		t.Fatalf("k-anonymity %+v, want %+v", got, want)
	}

	// The late "n/a" makes late a string column. It is profiled by the
	// final schema: the inferred one, or the expected one when declared.
	final := schema
	if len(expected.Columns) > 0 {
		final = expected
	}
	got := cs.profile(final, int64(len(records)))
	if got == nil {
		t.Fatal("no profile")
	}
	ref := profile.NewProfiler(columnSpecs(header, profileKinds(header, final)))
	for _, r := range records {
		ref.Observe(r.Values, r.Null)
	}
	want := ref.Profile()
	if got.Rows != want.Rows {
		t.Fatalf("profile rows %d, want %d", got.Rows, want.Rows)
	}
	for i, w := range want.Columns {
		g := got.Columns[i]
		if g.Name != w.Name || g.Kind != w.Kind || g.Count != w.Count || g.Nulls != w.Nulls || g.Invalid != w.Invalid || g.Distinct != w.Distinct {
			t.Errorf("%s: got %s count %d nulls %d invalid %d distinct %d, want %s %d %d %d %d", w.Name, g.Kind, g.Count, g.Nulls,
				g.Invalid, g.Distinct, w.Kind, w.Count, w.Nulls, w.Invalid, w.Distinct)
		}
		if !reflect.DeepEqual(g.TopK, w.TopK) {
			t.Errorf("%s: top-k %v, want %v", w.Name, g.TopK, w.TopK)
		}
		for _, f := range []struct {
			name string
			g, w *float64
		}{{"min", g.Min, w.Min}, {"max", g.Max, w.Max}, {"mean", g.Mean, w.Mean}, {"std", g.Std, w.Std}} {
			// Written so that a NaN on either side fails (an infinite
			// standard deviation, of values near the float64 limit, is
			// equal to itself).
			if (f.g == nil) != (f.w == nil) || f.g != nil && !(*f.g == *f.w || math.Abs(*f.g-*f.w) <= 1e-9*math.Max(1, math.Abs(*f.w))) {
				t.Errorf("%s: %s %v, want %v", w.Name, f.name, deref(f.g), deref(f.w))
			}
		}
		for name, wq := range w.Quantiles {
			// Within the sketch's rank error: q must fall near the rank
			// interval the value has in the data.
			q, _ := strconv.ParseFloat(name[1:], 64)
			gq := g.Quantiles[name]
			if lo, hi := ranks(records, i, gq); max(lo-q/100, q/100-hi) > 0.02 {
				t.Errorf("%s: %s %v has ranks [%.3f, %.3f] (record by record: %v)", w.Name, name, gq, lo, hi, wq)
			}
		}
	}
}

// ranks are the shares of column j's numeric values below x and at or
// below x.
func ranks(records []tabular.Record, j int, x float64) (lo, hi float64) {
	below, at, n := 0, 0, 0
	for _, r := range records {
		if r.Null[j] {
			continue
		}
		if v, err := strconv.ParseFloat(r.Values[j], 64); err == nil {
			n++
			switch {
			case v < x:
				below++
			case v == x:
				at++
			}
		}
	}
	n = max(n, 1)
	return float64(below) / float64(n), float64(below+at) / float64(n)
}

// A column that went raw as numbers and meets a non-number later was
// profiled as the wrong kind: pass 1 gives no profile, and pass 2 profiles
// the stored values.
func TestPassOneLeavesTheProfileToPassTwoWhenARawColumnChangesType(t *testing.T) {
	cs, err := newPassOneChecks([]string{"n"}, pipeline.Validation{}, tabular.Schema{})
	if err != nil {
		t.Fatal(err)
	}
	cs.limit, cs.workers, cs.barrier.parties = 10, 1, 1
	in := make(chan *batch, 1)
	go func() {
		defer close(in)
		var records []tabular.Record
		for i := range 100 {
			v := strconv.Itoa(i)
			if i == 99 {
				v = "many"
			}
			records = append(records, tabular.Record{Row: int64(i + 1), Values: []string{v}, Null: []bool{false}})
		}
		in <- batchOf(1, records)
	}()
	cs.work(0, in, func(*batch) {})
	schema := cs.inferred()
	if schema.Columns[0].Type != tabular.String {
		t.Fatalf("type %s, want string", schema.Columns[0].Type)
	}
	if p := cs.profile(schema, 100); p != nil {
		t.Fatalf("profile of a column profiled as numbers: %+v", p.Columns[0])
	}
}

// batchOf puts records of consecutive rows in a batch, as ReadBatch would.
func batchOf(columns int, records []tabular.Record) *batch {
	b := newBatch(columns)
	for _, r := range records {
		b.Add(r)
	}
	return b
}

// deref is *p, or nil.
func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

package quality

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/tabular"
)

// BenchmarkCheckerObserve is the cost of Observe per row of 20 mixed columns
// (ints, floats, bools, timestamps, categories), with every column
// type-checked against its schema and one rule of each kind.
func BenchmarkCheckerObserve(b *testing.B) {
	const rows, groups = 10_000, 4
	var header []string
	var schema tabular.Schema
	for g := range groups {
		for _, c := range []tabular.SchemaColumn{
			{Name: "id", Type: tabular.Int},
			{Name: "amount", Type: tabular.Float, Nullable: true},
			{Name: "active", Type: tabular.Bool},
			{Name: "created", Type: tabular.Timestamp},
			{Name: "country", Type: tabular.Category},
		} {
			c.Name += strconv.Itoa(g)
			header = append(header, c.Name)
			schema.Columns = append(schema.Columns, c)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	countries := []string{"BR", "PT", "US", "DE", "IN"}
	records := make([]tabular.Record, rows)
	for i := range records {
		rec := tabular.Record{Row: int64(i + 1), Null: make([]bool, len(header))}
		for g := range groups {
			amount := fmt.Sprintf("%.2f", r.Float64()*10000)
			if r.IntN(20) == 0 {
				amount = ""
				rec.Null[g*5+1] = true
			}
			rec.Values = append(rec.Values,
				strconv.Itoa(i*groups+g),
				amount,
				strconv.FormatBool(r.IntN(2) == 0),
				time.Unix(1.7e9+int64(r.IntN(1e7)), 0).UTC().Format(time.RFC3339),
				countries[r.IntN(len(countries))])
		}
		records[i] = rec
	}
	zero, top, nulls := 0.0, 1e4, 0.1
	rules := []pipeline.Rule{
		{Column: "id0", NotNull: true, Unique: true},
		{Column: "amount0", Min: &zero, Max: &top, MaxNullFraction: &nulls},
		{Column: "country0", Allowed: slices.Clone(countries)},
		{Column: "country1", Regex: "[A-Z]{2}"},
		{MinRows: 1},
	}

	observed := 0
	for b.Loop() {
		c, err := NewChecker(header, schema, rules)
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range records {
			c.Observe(rec)
		}
		if rep := c.Report(); !rep.Passed {
			b.Fatalf("report %+v", rep)
		}
		observed += rows
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(observed), "ns/row")
}
